"""Reconciliation: runs, the suspense queue, matching a payment by hand and undoing a match
(POST/DELETE /payments/{id}/allocations, documented under the payments tag), and the daily
deposit report."""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate
from sqlalchemy import select

from premium_billing.clock import business_date
from premium_billing.errors import NotFound
from premium_billing.http.auth import roles
from premium_billing.http.dates import BusinessDate
from premium_billing.http.ids import PublicId, path_id
from premium_billing.http.pagination import paginate
from premium_billing.http.schemas import ListArgs, ListMeta
from premium_billing.http.session import db_session
from premium_billing.payments.api import PaymentOut, PositiveMoney, payment_out, payments_out
from premium_billing.payments.models import Payment
from premium_billing.reconciliation import deposits
from premium_billing.reconciliation import runs as service
from premium_billing.reconciliation.manual import match_manually, undo_match
from premium_billing.reconciliation.models import ReconciliationRun

blp = Blueprint(
    "reconciliation",
    __name__,
    url_prefix="/api/v1",
    description="Automated reconciliation: runs, suspense queue, deposits",
)

RUN_PREFIX = "recon_"


class AllocationIn(Schema):
    invoice_id = PublicId("invoice", required=True)
    amount = PositiveMoney(required=True)


class AllocationsIn(Schema):
    allocations = fields.List(
        fields.Nested(AllocationIn), required=True, validate=validate.Length(min=1, max=500)
    )
    auto_write_off = fields.Boolean(
        load_default=True,
        metadata={
            "description": "When the payment ends fully applied, write off an invoice "
            "remainder within tolerance (default true)."
        },
    )


class RunIn(Schema):
    as_of = BusinessDate(
        ahead=False, load_default=None, metadata={"description": "Business date (today)."}
    )


class RunOut(Schema):
    id = fields.String(metadata={"example": "recon_1"})
    as_of = fields.Date()
    status = fields.String()
    examined = fields.Integer()
    matched = fields.Integer()
    partially_matched = fields.Integer()
    suspense = fields.Integer()
    stats = fields.Dict(allow_none=True)
    started_at = fields.DateTime(format="iso")
    finished_at = fields.DateTime(format="iso", allow_none=True)


class CandidateOut(Schema):
    invoice_id = PublicId("invoice")
    invoice_number = fields.String()
    policy_number = fields.String()
    policyholder_id = PublicId("policyholder")
    due_date = fields.Date()
    amount_due = fields.Integer(metadata={"description": "Due on the invoice now."})
    invoice_status = fields.String()
    score = fields.Float(
        metadata={"description": "0..1: reference, payer and amount closeness, weighed."}
    )
    rule = fields.String(
        metadata={
            "description": "The evidence that names it best: reference, fuzzy_reference, "
            "policy_number, fuzzy_policy_number, linked_payer, payer_name, amount (or the "
            "matching rule, for a match that could not post)."
        }
    )
    reason = fields.String(
        allow_none=True,
        metadata={"description": "Why it is a candidate, in words (null: ranked before it)."},
    )
    suggested_amount = fields.Integer(
        metadata={
            "description": "What a manual match of it allocates: the payment's unapplied "
            "amount, at most what is due (0: nothing is due any more)."
        }
    )


class SuspenseOut(Schema):
    payment = fields.Nested(PaymentOut)
    outcome = fields.String(
        metadata={"description": "suspense, duplicate, return, or unexamined (no run yet)."}
    )
    reason = fields.String(allow_none=True)
    held = fields.Boolean(metadata={"description": "A match was undone: runs leave it alone."})
    score = fields.Float()
    candidates = fields.List(fields.Nested(CandidateOut))


class SuspenseList(ListMeta):
    data = fields.List(fields.Nested(SuspenseOut))


class ReportArgs(Schema):
    date = fields.Date(load_default=None, metadata={"description": "The day (today)."})


class PayoutOut(Schema):
    payout_id = fields.String()
    amount = fields.Integer()
    currency = fields.String()
    arrival_date = fields.Date()
    charges = fields.Integer()
    refunds = fields.Integer()
    disputes = fields.Integer()
    fees = fields.Integer()
    status = fields.String()
    flag_reason = fields.String(allow_none=True)


class BankLineOut(Schema):
    id = fields.Integer()
    statement_id = PublicId("statement")
    booking_date = fields.Date()
    amount = fields.Integer()
    currency = fields.String()
    payer_name = fields.String(allow_none=True)
    reference = fields.String(allow_none=True)
    bank_reference = fields.String()
    kind = fields.String()


class DepositMatchOut(Schema):
    payout = fields.Nested(PayoutOut)
    bank_line = fields.Nested(BankLineOut)


class PendingPayoutOut(Schema):
    payout_id = fields.String()
    event_id = fields.String()
    amount = fields.Integer(allow_none=True)
    currency = fields.String(allow_none=True)
    arrival_date = fields.Date(allow_none=True)
    status = fields.String(
        metadata={"description": "The payout.paid event: queued, failed (retried) or dead."}
    )
    reason = fields.String(allow_none=True, metadata={"description": "Why it waits."})
    attempts = fields.Integer()
    next_attempt_at = fields.DateTime(allow_none=True)


class FlaggedDisputeOut(Schema):
    dispute_id = fields.String()
    payment_intent_id = fields.String()
    payment_id = PublicId("payment", allow_none=True)
    amount = fields.Integer(metadata={"description": "The disputed amount (minor units)."})
    currency = fields.String(allow_none=True)
    status = fields.String(allow_none=True)
    reason = fields.String()


class ReconciliationReport(Schema):
    date = fields.Date()
    deposits_matched = fields.List(fields.Nested(DepositMatchOut))
    payouts_unmatched = fields.List(fields.Nested(PayoutOut))
    bank_lines_unexplained = fields.List(fields.Nested(BankLineOut))
    payouts_flagged = fields.Integer()
    pending_payouts = fields.List(
        fields.Nested(PendingPayoutOut),
        metadata={"description": "Paid payouts not recorded yet: their event waits."},
    )
    disputes_flagged = fields.List(
        fields.Nested(FlaggedDisputeOut),
        metadata={"description": "Disputes larger than their payment, flagged that day."},
    )


def _settings():  # type: ignore[no-untyped-def]
    return current_app.config["SETTINGS"]


def run_out(run: ReconciliationRun) -> dict[str, Any]:
    return {
        "id": f"{RUN_PREFIX}{run.id}",
        "as_of": run.as_of,
        "status": run.status,
        "examined": run.examined,
        "matched": run.matched,
        "partially_matched": run.partially_matched,
        "suspense": run.suspense,
        "stats": run.stats,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
    }


@blp.route("/payments/<payment_id>/allocations", tags=["payments"])
class PaymentAllocations(MethodView):
    @roles("finance")
    @blp.arguments(AllocationsIn)
    @blp.response(201, PaymentOut)
    def post(self, data: dict[str, Any], payment_id: str) -> dict[str, Any]:
        """Match a payment to invoices by hand. More than the payment's unapplied amount, or
        than an invoice's amount due, is a 422; nothing is posted then."""
        payment = match_manually(
            db_session(),
            _settings(),
            path_id("payment", payment_id),
            [(a["invoice_id"], a["amount"]) for a in data["allocations"]],
            auto_write_off=data["auto_write_off"],
        )  # one transaction: the allocation and the payer link it teaches
        return payment_out(payment)

    @roles("finance")
    @blp.response(200, PaymentOut)
    def delete(self, payment_id: str) -> dict[str, Any]:
        """Undo the payment's allocations: its invoices re-open and the money is unapplied
        again (back to suspense when the match had identified the payer)."""
        payment = undo_match(db_session(), _settings(), path_id("payment", payment_id))
        return payment_out(payment)  # one transaction: the undo and the payment held


@blp.route("/reconciliation/runs")
class Runs(MethodView):
    @roles("finance")
    @blp.arguments(RunIn)
    @blp.response(201, RunOut)
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Run the matcher over every suspense payment now: matches above the confidence
        threshold are posted (rule, score and evidence recorded), the rest stay in
        suspense with ranked candidates."""
        as_of: date = data.get("as_of") or business_date(_settings().timezone)
        run = service.run_reconciliation(db_session(), _settings(), as_of, trigger="api")
        return run_out(run)


@blp.route("/reconciliation/runs/<run_id>")
class RunById(MethodView):
    @roles("finance")
    @blp.response(200, RunOut)
    def get(self, run_id: str) -> dict[str, Any]:
        """One reconciliation run and what it did."""
        number = run_id.removeprefix(RUN_PREFIX)
        # ASCII digits a row id can be ('³' is a digit to isdigit, not to int: was a 500).
        an_id = number.isascii() and number.isdigit() and 0 < len(number) <= 18
        run = db_session().get(ReconciliationRun, int(number)) if an_id else None
        if run is None or not run_id.startswith(RUN_PREFIX):
            raise NotFound(f"run {run_id!r} not found")
        return run_out(run)


@blp.route("/reconciliation/suspense")
class Suspense(MethodView):
    @roles("finance")
    @blp.arguments(ListArgs, location="query")
    @blp.response(200, SuspenseList)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """The suspense queue: unapplied payments whose payer is unknown, each with the
        matcher's reason and up to 5 ranked candidate invoices in its currency (score 0..1
        on reference, payer and amount closeness, each with its reason). Match one by hand
        with POST /payments/{id}/allocations and the candidate's `suggested_amount` (that
        teaches the payer link)."""
        session = db_session()
        stmt = select(Payment).where(
            Payment.status == "unapplied", Payment.policyholder_id.is_(None)
        )
        rows, has_more = paginate(session, stmt, Payment.id, "payment", args)
        data = service.suspense_view(session, rows)
        for row, shown in zip(data, payments_out([r["payment"] for r in data]), strict=True):
            row["payment"] = shown
        return {"data": data, "has_more": has_more}


@blp.route("/reports/reconciliation")
class ReconciliationReportView(MethodView):
    @roles("finance")
    @blp.arguments(ReportArgs, location="query")
    @blp.response(200, ReconciliationReport)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """The day's deposit reconciliation: Stripe payouts matched to bank deposits,
        payouts still unmatched, bank lines nothing explains, payouts waiting to be
        recorded, and disputes larger than their payment."""
        day = args.get("date") or business_date(_settings().timezone)
        return deposits.day_report(db_session(), day)
