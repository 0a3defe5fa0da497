"""Proration by days: mid-term premium changes (endorsements) and cancellation.

Pure billing rules: standard library and this package only. A term runs from `start`
(inclusive) to `end` (exclusive, the expiration date). Every prorated amount is computed
as one exact fraction and rounded once by `money.scale`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from fractions import Fraction

from premium_billing.errors import DomainError, OutsideTerm, ScheduleError
from premium_billing.money import scale

PRO_RATA = "pro_rata"
SHORT_RATE = "short_rate"
CANCELLATION_METHODS: tuple[str, ...] = (PRO_RATA, SHORT_RATE)
DEFAULT_SHORT_RATE_PENALTY = Fraction(1, 10)


def term_days(start: date, end: date) -> int:
    """Number of days of cover from `start` (inclusive) to `end` (exclusive)."""
    days = (end - start).days
    if days < 1:
        raise ScheduleError(
            f"term end {end.isoformat()} must be after term start {start.isoformat()}",
            field="term_end",
        )
    return days


def days_remaining(start: date, end: date, on: date) -> int:
    """Days of the term left from `on` (inclusive) to `end`: all days when `on` == start.

    `on` must fall within the term (start <= on < end), else OutsideTerm.
    """
    term_days(start, end)
    if not start <= on < end:
        raise OutsideTerm(
            f"{on.isoformat()} is outside the term "
            f"{start.isoformat()} to {end.isoformat()} (exclusive)",
            field="effective_date",
        )
    return (end - on).days


def pro_rata_factor(start: date, end: date, on: date) -> Fraction:
    """Share of the term remaining on `on` (1 on the start date), as an exact fraction."""
    return Fraction(days_remaining(start, end, on), term_days(start, end))


@dataclass(frozen=True)
class EndorsementProration:
    """Premium change for the rest of the term (negative for a decrease)."""

    delta_amount: int
    days_remaining: int
    term_days: int


def endorsement(
    old_premium: int, new_premium: int, term_start: date, term_end: date, effective: date
) -> EndorsementProration:
    """Pro rata premium change of a mid-term endorsement effective on `effective`.

    delta = (new - old) × days remaining / term days, rounded once.
    """
    remaining = days_remaining(term_start, term_end, effective)
    total = term_days(term_start, term_end)
    delta = scale(new_premium - old_premium, remaining, total)
    return EndorsementProration(delta_amount=delta, days_remaining=remaining, term_days=total)


@dataclass(frozen=True)
class CancellationResult:
    """What a cancellation earns and what is owed either way.

    earned + unearned == term premium; penalty is already inside earned.
    At most one of refund_due and balance_due is non-zero.
    """

    earned_premium: int
    unearned_premium: int
    penalty: int
    refund_due: int
    balance_due: int


def cancellation(
    term_premium: int,
    amount_paid: int,
    term_start: date,
    term_end: date,
    effective: date,
    method: str,
    short_rate_penalty: Fraction = DEFAULT_SHORT_RATE_PENALTY,
) -> CancellationResult:
    """Cancel a term on `effective` (start <= effective <= end; on the end nothing is unearned).

    pro_rata: earned = term premium × days elapsed / term days, rounded once.
    short_rate: the insurer also keeps `short_rate_penalty` of the unearned premium.
    """
    if method not in CANCELLATION_METHODS:
        raise DomainError(
            f"unknown cancellation method {method!r}; "
            f"expected one of {', '.join(CANCELLATION_METHODS)}",
            field="method",
        )
    if isinstance(short_rate_penalty, float):
        raise DomainError(
            "short rate penalty must be an exact fraction, not a float",
            field="short_rate_penalty",
        )
    penalty_rate = Fraction(short_rate_penalty)
    if not 0 <= penalty_rate <= 1:
        raise DomainError(
            f"short rate penalty must be between 0 and 1, got {penalty_rate}",
            field="short_rate_penalty",
        )
    if term_premium < 0:
        raise DomainError("term premium must not be negative", field="term_premium")
    if amount_paid < 0:
        raise DomainError("amount paid must not be negative", field="amount_paid")
    total_days = term_days(term_start, term_end)
    if not term_start <= effective <= term_end:
        raise OutsideTerm(
            f"cancellation date {effective.isoformat()} is outside the term "
            f"{term_start.isoformat()} to {term_end.isoformat()}",
            field="effective_date",
        )
    elapsed = (effective - term_start).days
    earned = scale(term_premium, elapsed, total_days)
    unearned = term_premium - earned
    penalty = 0
    if method == SHORT_RATE:
        penalty = scale(unearned, penalty_rate.numerator, penalty_rate.denominator)
        earned += penalty
        unearned -= penalty
    return CancellationResult(
        earned_premium=earned,
        unearned_premium=unearned,
        penalty=penalty,
        refund_due=max(0, amount_paid - earned),
        balance_due=max(0, earned - amount_paid),
    )
