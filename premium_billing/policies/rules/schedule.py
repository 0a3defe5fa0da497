"""Installment schedules: due dates that keep the anchor day, and exact premium splits.

Pure billing rules: standard library and this package only. Amounts are integers in the
currency's minor unit; every split goes through `money.split_evenly`, so the parts always
sum exactly to the whole and the remainder unit(s) go on the first part.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date

from premium_billing.errors import ScheduleError
from premium_billing.money import scale, split_evenly

MONTHS_PER_INSTALLMENT: dict[str, int] = {
    "annual": 12,
    "semiannual": 6,
    "quarterly": 3,
    "monthly": 1,
}
BILLING_PLANS: tuple[str, ...] = tuple(MONTHS_PER_INSTALLMENT)


def add_months(anchor: date, months: int) -> date:
    """`anchor` moved by `months` calendar months, keeping its day, clamped to month end.

    2026-01-31 + 1 → 2026-02-28, + 2 → 2026-03-31; 2028-01-31 + 1 → 2028-02-29.
    Always computed from the anchor (never step by step), so the day never drifts.
    `months` may be negative.
    """
    year, month_index = divmod(anchor.year * 12 + (anchor.month - 1) + months, 12)
    month = month_index + 1
    day = min(anchor.day, calendar.monthrange(year, month)[1])
    return date(year, month, day)


def _check_term_months(term_months: int) -> None:
    if isinstance(term_months, bool) or not isinstance(term_months, int) or term_months < 1:
        raise ScheduleError(
            f"term must be a positive number of months, got {term_months!r}",
            field="term_months",
        )


def term_end(effective: date, term_months: int) -> date:
    """Expiration date (exclusive end of cover): 2026-01-01 + 12 months → 2027-01-01."""
    _check_term_months(term_months)
    return add_months(effective, term_months)


def months_per_installment(plan: str) -> int:
    """Months between two installments of `plan`; ScheduleError for an unknown plan."""
    try:
        return MONTHS_PER_INSTALLMENT[plan]
    except (KeyError, TypeError):
        raise ScheduleError(
            f"unknown billing plan {plan!r}; expected one of {', '.join(BILLING_PLANS)}",
            field="billing_plan",
        ) from None


def due_dates(effective: date, term_months: int, plan: str) -> list[date]:
    """Due dates of the installments: the first on `effective`, then every
    months-per-installment from that anchor (day kept, clamped to month end).
    """
    step = months_per_installment(plan)
    _check_term_months(term_months)
    if term_months % step:
        raise ScheduleError(
            f"a {term_months}-month term cannot be billed {plan} "
            f"(every {step} months): the term must be a multiple of {step} months",
            field="term_months",
        )
    return [add_months(effective, k * step) for k in range(term_months // step)]


@dataclass(frozen=True)
class PlannedInstallment:
    """One installment of a schedule. `number` is 1-based; `fee` is fees on top of `amount`."""

    number: int
    due_date: date
    amount: int
    fee: int


def term_premium(annual_premium: int, term_months: int) -> int:
    """Premium for a term of `term_months` at an annual rate, rounded once."""
    _check_term_months(term_months)
    return scale(annual_premium, term_months, 12)


def build_schedule(
    effective: date,
    term_months: int,
    plan: str,
    term_premium: int,
    installment_fee: int = 0,
    policy_fee: int = 0,
) -> list[PlannedInstallment]:
    """The installments of one term.

    Premium split evenly, remainder unit(s) on the first installment; every installment
    carries `installment_fee`, the first also the one-off `policy_fee`.
    """
    for name, value in (
        ("term_premium", term_premium),
        ("installment_fee", installment_fee),
        ("policy_fee", policy_fee),
    ):
        if value < 0:
            raise ScheduleError(f"{name} must not be negative, got {value}", field=name)
    dates = due_dates(effective, term_months, plan)
    amounts = split_evenly(term_premium, len(dates))
    return [
        PlannedInstallment(
            number=i + 1,
            due_date=due,
            amount=amount,
            fee=installment_fee + (policy_fee if i == 0 else 0),
        )
        for i, (due, amount) in enumerate(zip(dates, amounts, strict=True))
    ]


def takes_endorsement(due_date: date, effective: date) -> bool:
    """Whether an unbilled installment due on `due_date` takes the delta of an endorsement
    effective on `effective`: only those due on or after it (a change from 15 February
    does not raise the December installment)."""
    return due_date >= effective


def respread(unbilled_amounts: list[int], delta: int) -> list[int]:
    """New amounts of the unbilled installments after adding `delta` (may be negative).

    `delta` is split evenly (remainder on the first) and added to each installment, so the
    result sums exactly to sum(unbilled_amounts) + delta. A large negative delta can make
    an amount negative; the caller decides what to do then (e.g. credit at once).
    With no unbilled installment there is nothing to spread over: ScheduleError.
    """
    if not unbilled_amounts:
        raise ScheduleError(
            "no unbilled installment to spread the change over", field="installments"
        )
    shares = split_evenly(delta, len(unbilled_amounts))
    return [amount + share for amount, share in zip(unbilled_amounts, shares, strict=True)]
