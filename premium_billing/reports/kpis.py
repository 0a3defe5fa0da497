"""Billing KPIs of a period, per currency, from the journal and the events (formulas in
docs/kpis.md; the arithmetic in `reports.rules`).

The period is `start`..`end`, both included, in business dates (an entry's `occurred_on`,
a payment's `received_on`, a bank line's `booking_date`, an autopay attempt's
`scheduled_on`; a Stripe event's `processed_at` taken as a date in BILLING_TIMEZONE).
Amounts are minor units of the one currency; currencies are never added together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import BigInteger, and_, case, cast, func, select, union_all
from sqlalchemy.orm import Session

from premium_billing.invoicing.models import Invoice
from premium_billing.ledger import rules as ledger
from premium_billing.ledger.models import JournalEntry, JournalLine, JournalTotal
from premium_billing.payments.models import Payment
from premium_billing.reconciliation.models import BankLine
from premium_billing.reports import rules
from premium_billing.reports.aging import AgingTotals, aging_totals, open_invoices
from premium_billing.stripe_billing.models import AutopayAttempt, StripeEvent


@dataclass(frozen=True)
class Kpis:
    """One currency's KPIs for the period (amounts in minor units; ratios `Decimal`, None
    when their denominator is zero)."""

    currency: str
    start: date
    end: date
    days: int
    billed: int
    collected: int
    collection_rate: Decimal | None
    opening_receivables: int
    closing_receivables: int
    closing_current_receivables: int
    dso: Decimal | None
    cei: Decimal | None
    written_off: int
    bank_payments: int
    auto_matched: int
    auto_match_rate: Decimal | None
    suspense_count: int
    suspense_amount: int
    median_posting_latency_seconds: Decimal | None
    payment_attempts: int
    failed_payments: int
    failed_payment_rate: Decimal | None
    failed_invoices: int
    recovered_invoices: int
    recovery_rate: Decimal | None


def _in_period(column: Any, start: date, end: date) -> Any:
    return and_(column >= start, column <= end)


def _journal_stmt(start: date, end: date, currency: str | None, *by: Any) -> Any:
    """Per currency (and `by`): billed, collected and written off in the period, read from
    the journal's day totals (`journal_totals`: a row per day, account, currency and entry
    kind, = the sum of those lines), not from the lines themselves."""
    total_ = JournalTotal
    receivable = total_.account == ledger.PREMIUM_RECEIVABLE

    def total(condition: Any, sign: int = 1) -> Any:
        return func.coalesce(func.sum(case((condition, sign * total_.amount), else_=0)), 0)

    stmt = (
        select(
            total_.currency,
            *by,
            total(total_.account == ledger.PREMIUM_BILLED, -1).label("billed"),
            total(and_(receivable, total_.kind.in_(sorted(ledger.PAID_KINDS))), -1).label(
                "collected"
            ),
            total(total_.account == ledger.WRITEOFF_EXPENSE).label("written_off"),
        )
        .where(
            _in_period(total_.occurred_on, start, end),
            total_.account.in_(
                (ledger.PREMIUM_RECEIVABLE, ledger.PREMIUM_BILLED, ledger.WRITEOFF_EXPENSE)
            ),
        )
        .group_by(total_.currency, *by)
    )
    if currency is not None:
        stmt = stmt.where(total_.currency == currency)
    return stmt


def _journal_figures(
    session: Session, start: date, end: date, currency: str | None
) -> dict[str, dict[str, int]]:
    """Per currency: billed, collected and written off in the period."""
    return {row.currency: {k: int(v) for k, v in row._mapping.items() if k != "currency"}
            for row in session.execute(_journal_stmt(start, end, currency))}  # fmt: skip


def receivables_at(session: Session, day: date, currency: str | None = None) -> dict[str, int]:
    """Per currency, the premium receivable at the end of `day` (non-zero only): the
    account's balance over the entries up to `day`, summed from the day totals (= the
    aging's total that day, docs/kpis.md; a row per day, not the lines since)."""
    stmt = (
        select(JournalTotal.currency, func.sum(JournalTotal.amount))
        .where(JournalTotal.account == ledger.PREMIUM_RECEIVABLE, JournalTotal.occurred_on <= day)
        .group_by(JournalTotal.currency)
    )
    if currency is not None:
        stmt = stmt.where(JournalTotal.currency == currency)
    return {cur: int(amount) for cur, amount in session.execute(stmt) if int(amount or 0)}


def daily_flows(
    session: Session, start: date, end: date, currency: str | None = None
) -> dict[tuple[str, date], dict[str, int]]:
    """Per (currency, business date) of `start`..`end`: billed, collected and written off,
    by the same formulas as the period's KPIs (a chart sums them per month)."""
    out: dict[tuple[str, date], dict[str, int]] = {}
    for row in session.execute(
        _journal_stmt(start, end, currency, JournalTotal.occurred_on.label("day"))
    ):
        day = row.day if isinstance(row.day, date) else date.fromisoformat(str(row.day))
        out[(row.currency, day)] = {
            "billed": int(row.billed), "collected": int(row.collected),
            "written_off": int(row.written_off),
        }  # fmt: skip
    return out


def _suspense(session: Session, end: date, currency: str | None) -> dict[str, tuple[int, int]]:
    """Per currency, (payments, amount) in suspense (payer unknown) at the end of `end`.

    A payment's suspense at `end` (minus the balance of its `unapplied_cash` legs up to
    `end`) is read backwards, as the aging reads an invoice: what it holds in suspense now
    (its amount unapplied while its payer is unknown, else nothing: `ledger check` holds
    every payment to it) plus its suspense legs posted after `end`. So only the payments in
    suspense now (`ix_payments_suspense`) and those whose suspense moved since are read, not
    every suspense leg ever posted."""
    later = (
        select(
            JournalLine.payment_id.label("payment_id"),
            cast(func.sum(JournalLine.amount), BigInteger).label("moved"),
        )
        .join(JournalEntry, JournalEntry.id == JournalLine.entry_id)
        .where(
            JournalEntry.occurred_on > end,
            JournalLine.account == ledger.UNAPPLIED_CASH,
            JournalLine.payment_id.is_not(None),
        )
        .group_by(JournalLine.payment_id)
        .subquery("moved_after")
    )
    now = case((Payment.policyholder_id.is_(None), Payment.amount_unapplied), else_=0)
    untouched = select(Payment.currency, Payment.amount_unapplied.label("held")).where(
        Payment.policyholder_id.is_(None),
        Payment.amount_unapplied > 0,
        ~select(later.c.payment_id).where(later.c.payment_id == Payment.id).exists(),
    )
    touched = select(Payment.currency, (now + later.c.moved).label("held")).join(
        later, later.c.payment_id == Payment.id
    )
    if currency is not None:
        untouched = untouched.where(Payment.currency == currency)
        touched = touched.where(Payment.currency == currency)
    held = union_all(untouched, touched).subquery("held_at_end")
    stmt = (
        select(held.c.currency, func.count(), func.sum(held.c.held))
        .where(held.c.held != 0)
        .group_by(held.c.currency)
    )
    return {cur: (int(n), int(amount)) for cur, n, amount in session.execute(stmt)}


def _auto_match(
    session: Session, start: date, end: date, currency: str | None
) -> dict[str, tuple[int, int]]:
    """Per currency, (bank-file payments booked in the period, those the matcher applied)."""
    by_matcher = and_(
        Payment.match_rule.is_not(None),
        Payment.match_rule != "manual",
        Payment.amount_allocated > 0,
    )
    stmt = (
        select(
            Payment.currency,
            func.count(),
            func.coalesce(func.sum(case((by_matcher, 1), else_=0)), 0),
        )
        .join(BankLine, BankLine.payment_id == Payment.id)
        .where(BankLine.kind == "payment", _in_period(BankLine.booking_date, start, end))
        .group_by(Payment.currency)
    )
    if currency is not None:
        stmt = stmt.where(Payment.currency == currency)
    return {cur: (int(n), int(auto)) for cur, n, auto in session.execute(stmt)}


def _period_instants(start: date, end: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The UTC instants where the business day `start` begins and the day after `end` begins."""
    first = datetime.combine(start, time.min, tzinfo=tz)
    after = datetime.combine(end + timedelta(days=1), time.min, tzinfo=tz)
    return first, after


def _median_latency(
    session: Session, start: date, end: date, tz: ZoneInfo, currency: str
) -> Decimal | None:
    """The median posting latency of the Stripe events that posted a payment in this
    currency, processed in the period: the middle value(s) read by offset (both dialects)."""
    first, after = _period_instants(start, end, tz)
    where = (
        StripeEvent.posting_latency_ms.is_not(None),
        StripeEvent.processed_at >= first,
        StripeEvent.processed_at < after,
        Payment.currency == currency,
    )
    joined = select(StripeEvent.posting_latency_ms).join(
        Payment, Payment.id == StripeEvent.payment_id
    )
    count = session.scalar(select(func.count()).select_from(joined.where(*where).subquery()))
    offset, how_many = rules.middle_offsets(int(count or 0))
    if how_many == 0:
        return None
    middle = session.scalars(
        joined.where(*where).order_by(StripeEvent.posting_latency_ms).offset(offset).limit(how_many)
    ).all()
    return rules.median_ms_as_seconds([int(ms) for ms in middle])


def _failed_payments(
    session: Session, start: date, end: date, currency: str | None
) -> dict[str, dict[str, int]]:
    """Per currency: autopay attempts decided in the period (succeeded or failed), those
    failed, the invoices with a failed one, and of those the ones owed nothing at `end`."""
    attempts = (
        select(
            AutopayAttempt.currency,
            func.count().label("attempts"),
            func.coalesce(func.sum(case((AutopayAttempt.status == "failed", 1), else_=0)), 0).label(
                "failed"
            ),
        )
        .where(
            AutopayAttempt.status.in_(("succeeded", "failed")),
            _in_period(AutopayAttempt.scheduled_on, start, end),
        )
        .group_by(AutopayAttempt.currency)
    )
    failed_invoices = (
        select(AutopayAttempt.invoice_id)
        .where(
            AutopayAttempt.status == "failed", _in_period(AutopayAttempt.scheduled_on, start, end)
        )
        .distinct()
        .subquery("failed_invoices")
    )
    owed = open_invoices(end, currency)
    still_owed = select(owed.c.invoice_id).where(owed.c.remaining > 0)
    recovery = (
        select(
            Invoice.currency,
            func.count().label("failed_invoices"),
            func.coalesce(func.sum(case((Invoice.id.in_(still_owed), 0), else_=1)), 0).label(
                "recovered"
            ),
        )
        .join(failed_invoices, failed_invoices.c.invoice_id == Invoice.id)
        .group_by(Invoice.currency)
    )
    if currency is not None:
        attempts = attempts.where(AutopayAttempt.currency == currency)
        recovery = recovery.where(Invoice.currency == currency)
    out: dict[str, dict[str, int]] = {}
    for row in session.execute(attempts):
        out.setdefault(row.currency, {}).update(attempts=int(row.attempts), failed=int(row.failed))
    for row in session.execute(recovery):
        out.setdefault(row.currency, {}).update(
            failed_invoices=int(row.failed_invoices), recovered=int(row.recovered)
        )
    return out


def kpis(
    session: Session,
    start: date,
    end: date,
    tz: ZoneInfo,
    currency: str | None = None,
    *,
    closing_totals: Sequence[AgingTotals] | None = None,
) -> list[Kpis]:
    """The KPIs of `start`..`end` per currency (ascending): every currency with receivable,
    billing, payments or events up to `end`, or only `currency`. `closing_totals`: the aging's
    totals of `end` (every currency) when the caller has read them already (the dashboard's
    aging chart of the same day), so they are not read twice."""
    journal = _journal_figures(session, start, end, currency)
    # Receivables at closing: the aging's totals (its current bucket is needed; read from
    # the open invoices and what moved since `end`, little for a recent day). At opening:
    # the receivable account's balance from the day totals (the same figure, docs/kpis.md;
    # the aging would read every leg posted in the period).
    if closing_totals is None:
        closing_totals = aging_totals(session, end, currency)
    closing_aging = {t.currency: t for t in closing_totals if currency in (None, t.currency)}
    opening_aging = receivables_at(session, start - timedelta(days=1), currency)
    suspense = _suspense(session, end, currency)
    matching = _auto_match(session, start, end, currency)
    failures = _failed_payments(session, start, end, currency)
    currencies = sorted(
        set(journal)
        | set(closing_aging)
        | set(opening_aging)
        | set(suspense)
        | set(matching)
        | set(failures)
    )
    days = rules.period_days(start, end)
    out = []
    for cur in currencies:
        j = journal.get(cur, {})
        opening = opening_aging.get(cur, 0)
        closing = closing_aging[cur].total if cur in closing_aging else 0
        billed, collected = j.get("billed", 0), j.get("collected", 0)
        closing_current = closing_aging[cur].buckets[rules.CURRENT] if cur in closing_aging else 0
        bank_payments, auto_matched = matching.get(cur, (0, 0))
        held, held_amount = suspense.get(cur, (0, 0))
        f = failures.get(cur, {})
        attempts, failed = f.get("attempts", 0), f.get("failed", 0)
        failed_invoices, recovered = f.get("failed_invoices", 0), f.get("recovered", 0)
        out.append(
            Kpis(
                currency=cur,
                start=start,
                end=end,
                days=days,
                billed=billed,
                collected=collected,
                collection_rate=rules.ratio(collected, billed),
                opening_receivables=opening,
                closing_receivables=closing,
                closing_current_receivables=closing_current,
                dso=rules.dso(closing, billed, days),
                cei=rules.cei(opening, billed, closing, closing_current),
                written_off=j.get("written_off", 0),
                bank_payments=bank_payments,
                auto_matched=auto_matched,
                auto_match_rate=rules.ratio(auto_matched, bank_payments),
                suspense_count=held,
                suspense_amount=held_amount,
                median_posting_latency_seconds=_median_latency(session, start, end, tz, cur),
                payment_attempts=attempts,
                failed_payments=failed,
                failed_payment_rate=rules.ratio(failed, attempts),
                failed_invoices=failed_invoices,
                recovered_invoices=recovered,
                recovery_rate=rules.ratio(recovered, failed_invoices),
            )
        )
    return out
