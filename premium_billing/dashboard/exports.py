"""The dashboard's lists as CSV files: a header row, then one row per item; amounts in major
units with a dot (as bank files have them) beside their currency; free text made safe for
spreadsheets. Read-only."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from datetime import date
from typing import Any

from sqlalchemy.orm import Session

from premium_billing.dashboard import queries
from premium_billing.dashboard.rules import csv_text, rate_bp
from premium_billing.http.ids import format_id
from premium_billing.money import format_major
from premium_billing.reconciliation.deposits import day_report
from premium_billing.reports.kpis import Kpis
from premium_billing.reports.trial_balance import trial_balance


def lines(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Iterator[str]:
    """The CSV text, a line at a time (streamed: a long list is never held whole)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")

    def line(values: Sequence[Any]) -> str:
        writer.writerow(["" if v is None else v for v in values])
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    yield line(header)
    for values in rows:
        yield line(values)


def _major(amount: int | None, currency: str) -> str:
    return "" if amount is None else format_major(amount, currency)


SUSPENSE_HEADER = (
    "payment_id", "received_on", "amount", "currency", "payer_name", "reference", "outcome",
    "held", "reason", "best_invoice", "best_policy", "best_score", "best_suggested_amount",
    "candidates",
)  # fmt: skip


def suspense_rows(session: Session) -> Iterator[list[Any]]:
    for row in queries.suspense_all(session):
        pay = row["payment"]
        best = row["candidates"][0] if row["candidates"] else None
        yield [
            format_id("payment", pay.id), pay.received_on.isoformat(),
            _major(pay.amount_unapplied, pay.currency), pay.currency,
            csv_text(pay.payer_name), csv_text(pay.reference), row["outcome"],
            "yes" if row["held"] else "no", csv_text(row["reason"]),
            best["invoice_number"] if best else "", best["policy_number"] if best else "",
            f"{best['score']:.2f}" if best else "",
            _major(best["suggested_amount"], pay.currency) if best else "",
            len(row["candidates"]),
        ]  # fmt: skip


REFUNDS_HEADER = (
    "refund_id", "created_on", "amount", "currency", "policyholder_id", "payment_id",
    "reason", "channel", "status", "failure_reason",
)  # fmt: skip


def refund_rows(session: Session) -> Iterator[list[Any]]:
    for r in queries.refunds_to_pay(session, limit=None):
        yield [
            format_id("refund", r.id), r.created_at.date().isoformat(),
            _major(r.amount, r.currency), r.currency,
            format_id("policyholder", r.policyholder_id), format_id("payment", r.payment_id),
            r.kind, r.channel, r.status, csv_text(r.failure_reason),
        ]  # fmt: skip


RUNS_HEADER = (
    "run_id", "as_of", "trigger", "status", "examined", "matched", "partially_matched",
    "suspense", "auto_match_rate", "started_at", "finished_at",
)  # fmt: skip


def run_rows(session: Session) -> Iterator[list[Any]]:
    for r in queries.recent_runs(session, limit=10_000):
        rate = rate_bp(r.matched + r.partially_matched, r.examined)
        yield [
            f"recon_{r.id}", r.as_of.isoformat(), r.trigger, r.status, r.examined, r.matched,
            r.partially_matched, r.suspense, f"{rate / 100:.2f}%", r.started_at.isoformat(),
            r.finished_at.isoformat() if r.finished_at else "",
        ]  # fmt: skip


DEPOSITS_HEADER = (
    "kind", "payout_id", "arrival_or_booking_date", "amount", "currency", "bank_reference",
    "payer_name", "reference", "status",
)  # fmt: skip


def deposit_rows(session: Session, day: date) -> Iterator[list[Any]]:
    report = day_report(session, day)
    for m in report["deposits_matched"]:
        p, line = m["payout"], m["bank_line"]
        yield ["matched", p["payout_id"], p["arrival_date"].isoformat(),
               _major(p["amount"], p["currency"]), p["currency"],
               csv_text(line["bank_reference"]), "", "", p["status"]]  # fmt: skip
    for p in report["payouts_unmatched"]:
        yield ["payout_unmatched", p["payout_id"], p["arrival_date"].isoformat(),
               _major(p["amount"], p["currency"]), p["currency"], "", "", "",
               p["status"]]  # fmt: skip
    for line in report["bank_lines_unexplained"]:
        yield ["bank_line_unexplained", "", line["booking_date"].isoformat(),
               _major(line["amount"], line["currency"]), line["currency"],
               csv_text(line["bank_reference"]), csv_text(line["payer_name"]),
               csv_text(line["reference"]), ""]  # fmt: skip


TRIAL_BALANCE_HEADER = ("currency", "account", "type", "debit", "credit", "balance")


def trial_balance_rows(session: Session, as_of: date) -> Iterator[list[Any]]:
    for block in trial_balance(session, as_of)["currencies"]:
        c = block["currency"]
        for a in block["accounts"]:
            yield [c, a["account"], a["type"], _major(a["debit"], c), _major(a["credit"], c),
                   _major(a["balance"], c)]  # fmt: skip
        yield [c, "total", "", _major(block["total_debit"], c), _major(block["total_credit"], c),
               ""]  # fmt: skip


# The KPIs as the home page and its CSV show them: (field of reports.kpis.Kpis, label, kind).
KPI_ROWS = (
    ("billed", "Billed", "money"),
    ("collected", "Collected", "money"),
    ("collection_rate", "Collection rate", "ratio"),
    ("opening_receivables", "Receivables at opening", "money"),
    ("closing_receivables", "Receivables at closing", "money"),
    ("dso", "DSO (days)", "number"),
    ("cei", "Collection effectiveness index", "ratio"),
    ("written_off", "Written off", "money"),
    ("bank_payments", "Bank payments", "number"),
    ("auto_matched", "Auto-matched", "number"),
    ("auto_match_rate", "Auto-match rate", "ratio"),
    ("suspense_count", "In suspense (payments)", "number"),
    ("suspense_amount", "In suspense (amount)", "money"),
    ("median_posting_latency_seconds", "Median posting latency (s)", "number"),
    ("payment_attempts", "Autopay attempts", "number"),
    ("failed_payments", "Failed payments", "number"),
    ("failed_payment_rate", "Failed payment rate", "ratio"),
    ("failed_invoices", "Invoices with a failed payment", "number"),
    ("recovered_invoices", "Of those, recovered", "number"),
    ("recovery_rate", "Recovery rate", "ratio"),
)
KPIS_HEADER = ("currency", "from", "to", *(key for key, _, _ in KPI_ROWS))


def kpi_rows(figures: Iterable[Kpis]) -> Iterator[list[Any]]:
    """One row per currency: amounts in major units, ratios and days as the API has them."""
    for k in figures:
        values = []
        for key, _, kind in KPI_ROWS:
            value = getattr(k, key)
            values.append(_major(value, k.currency) if kind == "money" else value)
        yield [k.currency, k.start.isoformat(), k.end.isoformat(), *values]


WORKLIST_HEADER = (
    "policy_id", "policy_number", "policyholder_id", "state", "oldest_unpaid_due_date",
    "days_overdue", "amount_overdue", "currency", "last_step", "last_step_on",
)  # fmt: skip


def worklist_rows(session: Session, as_of: date) -> Iterator[list[Any]]:
    for r in queries.worklist_all(session, as_of):
        step = r["last_step"] or {}
        yield [
            format_id("policy", r["policy_id"]), csv_text(r["policy_number"]),
            format_id("policyholder", r["policyholder_id"]), r["state"],
            r["oldest_unpaid_due_date"].isoformat(), r["days_overdue"],
            _major(r["amount_overdue"], r["currency"]), r["currency"], step.get("step", ""),
            str(step.get("on") or ""),
        ]  # fmt: skip


NOTIFICATIONS_HEADER = (
    "notification_id", "created_at", "kind", "status", "attempts", "policyholder_id",
    "policy_id", "invoice_id", "subject", "sent_at", "last_error",
)  # fmt: skip


def notification_rows(session: Session, status: str | None) -> Iterator[list[Any]]:
    rows, _ = queries.notifications_page(session, status, limit=None)
    for n in rows:
        yield [
            format_id("notification", n.id), n.created_at.isoformat(), n.kind, n.status,
            n.attempts, format_id("policyholder", n.policyholder_id),
            format_id("policy", n.policy_id) or "", format_id("invoice", n.invoice_id) or "",
            csv_text(n.subject), n.sent_at.isoformat() if n.sent_at else "",
            csv_text(n.last_error),
        ]  # fmt: skip


DELIVERIES_HEADER = (
    "delivery_id", "event_id", "event_type", "endpoint_id", "url", "status", "attempts",
    "next_attempt_at", "delivered_at",
)  # fmt: skip


def delivery_rows(session: Session, status: str | None) -> Iterator[list[Any]]:
    rows, _ = queries.deliveries_page(session, status, limit=None)
    for r in rows:
        d = r.delivery
        yield [
            format_id("delivery", d.id), format_id("event", d.event_id), r.event_type,
            format_id("webhook_endpoint", d.endpoint_id), csv_text(r.url), d.status, d.attempts,
            d.next_attempt_at.isoformat() if d.next_attempt_at else "",
            d.delivered_at.isoformat() if d.delivered_at else "",
        ]  # fmt: skip
