"""Arranging the collections tests: a monthly pet policy, the daily jobs run day by day, the
domain events heard as a subscriber hears them (helper D's side of the contract)."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from typing import Any

from premium_billing.db import hooks
from premium_billing.jobs.runner import run_job
from tests.factories import create_policy, create_policyholder, pet_line
from tests.integration.settlement_helpers import NO_FEES, invoices_of, pay_by_check


class Heard:
    """Every DELINQUENCY_CHANGED transition and COLLECTION_STEPS_TAKEN step published."""

    def __init__(self, db: Any) -> None:
        self.transitions: list[dict[str, Any]] = []
        self.steps: list[dict[str, Any]] = []
        handlers = db.handlers  # the mapping every session of this Database carries

        def changed(_session: Any, *, transitions: list[dict[str, Any]], **_: Any) -> None:
            self.transitions.extend(transitions)

        def taken(_session: Any, *, steps: list[dict[str, Any]], **_: Any) -> None:
            self.steps.extend(steps)

        for event, handler in (
            (hooks.DELINQUENCY_CHANGED, changed),
            (hooks.COLLECTION_STEPS_TAKEN, taken),
        ):
            handlers[event] = [*handlers.get(event, ()), handler]

    def step_days(self, policy_id: int) -> list[tuple[str, int | None, date]]:
        return [
            (s["step"], s.get("offset"), s["on"]) for s in self.steps if s["policy_id"] == policy_id
        ]

    def states(self, policy_id: int) -> list[tuple[str, str, date]]:
        return [
            (t["from_state"], t["to_state"], t["on"])
            for t in self.transitions
            if t["policy_id"] == policy_id
        ]

    def per_day(self) -> dict[date, int]:
        days: dict[date, int] = defaultdict(int)
        for s in self.steps:
            days[s["on"]] += 1
        return days


def monthly_policy(
    api: Any, number: str, *, premium: int = 120000, effective: str = "2026-01-01", **extra: Any
) -> dict[str, Any]:
    holder = create_policyholder(api)["id"]
    return create_policy(
        api,
        holder,
        policy_number=number,
        effective_date=effective,
        billing_plan="monthly",
        lines=[pet_line(annual_premium=premium)],
        fees=NO_FEES,
        **extra,
    )


def run_days(db: Any, settings: Any, first: str | date, last: str | date) -> None:
    """issue_invoices then collections, for each day from `first` to `last`."""
    day = first if isinstance(first, date) else date.fromisoformat(first)
    end = last if isinstance(last, date) else date.fromisoformat(last)
    while day <= end:
        run_job(db, settings, "issue_invoices", day)
        run_job(db, settings, "collections", day)
        day += timedelta(days=1)


def number(public_id: str) -> int:
    return int(public_id.split("_")[1])


def pay_all(api: Any, policy: dict[str, Any], on: date) -> None:
    """Pay by check every invoice of the policy that still asks for money."""
    for invoice in invoices_of(api, policy["id"]):
        if invoice["status"] in ("open", "partially_paid") and invoice["amount_due"]:
            pay_by_check(api, invoice, on=on.isoformat())
