"""Collections on both backends: a policy's days run one by one (issue_invoices, then
collections), each step on its day and once, payments in grace, partial payments, credits,
lapse and reinstatement, a cancelled policy, and the worklist."""

from __future__ import annotations

from datetime import date

from tests.integration.collections_helpers import Heard, monthly_policy, number, run_days
from tests.integration.settlement_helpers import books_ok

D = date(2026, 1, 1)  # the first installment's due date


def test_a_year_without_payment_takes_each_step_once_on_its_day(api, db, settings):
    heard = Heard(db)
    policy = monthly_policy(api, "COL-1")
    pid = number(policy["id"])
    run_days(db, settings, "2025-12-18", "2026-12-31")
    assert heard.step_days(pid) == [
        ("reminder", -3, date(2025, 12, 29)),
        ("reminder", 3, date(2026, 1, 4)),
        ("reminder", 10, date(2026, 1, 11)),
        ("grace_notice", None, date(2026, 1, 15)),
        ("final_notice", None, date(2026, 1, 24)),
        ("lapse", None, date(2026, 1, 31)),
    ]
    assert heard.states(pid) == [
        ("active", "past_due", date(2026, 1, 2)),
        ("past_due", "in_grace", date(2026, 1, 15)),
        ("in_grace", "lapsed", date(2026, 1, 31)),
    ]
    assert api.get(f"/policies/{policy['id']}").json()["status"] == "lapsed"
    body = api.get(f"/policies/{policy['id']}/delinquency", params={"as_of": "2026-12-31"}).json()
    assert body["state"] == "lapsed"
    assert [s["step"] for s in body["steps"] if s["status"] == "taken"] == [
        "reminder", "reminder", "reminder", "grace_notice", "final_notice", "lapse"
    ]  # fmt: skip
    books_ok(db)
