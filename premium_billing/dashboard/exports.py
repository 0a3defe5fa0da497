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
from premium_billing.dashboard.rules import AGING_BUCKETS, csv_text, rate_bp
from premium_billing.http.ids import format_id
from premium_billing.money import format_major
from premium_billing.reconciliation.deposits import day_report
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


AGING_HEADER = ("currency", *AGING_BUCKETS)


def aging_rows(session: Session, as_of: date) -> Iterator[list[Any]]:
    for currency, buckets in queries.aging_by_bucket(session, as_of).items():
        yield [currency, *(_major(buckets[b], currency) for b in AGING_BUCKETS)]
