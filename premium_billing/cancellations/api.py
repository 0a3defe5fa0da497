"""Cancellations and reinstatements: /api/v1/policies/{id}/cancellations and
/api/v1/policies/{id}/reinstatements."""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint

from premium_billing.cancellations import service
from premium_billing.cancellations.schemas import SettlementOut
from premium_billing.http.auth import roles
from premium_billing.http.ids import path_id
from premium_billing.http.session import db_session
from premium_billing.payments.models import Refund
from premium_billing.policies.schemas import (
    CancellationIn,
    PolicyOut,
    ReinstatementIn,
)
from premium_billing.policies.views import policy_out

blp = Blueprint(
    "cancellations",
    __name__,
    url_prefix="/api/v1/policies",
    description="Cancellations and reinstatements of policies",
)


def _settings():  # type: ignore[no-untyped-def]
    return current_app.config["SETTINGS"]


@blp.route("/<policy_id>/cancellations")
class PolicyCancellations(MethodView):
    @roles("billing")
    @blp.arguments(CancellationIn)
    @blp.response(201, SettlementOut)
    def post(self, data: dict[str, Any], policy_id: str) -> dict[str, Any]:
        """Cancel pro rata or short rate: earned premium, refund due, balance due;
        unbilled installments are voided, and the account is settled at once: earned but
        unbilled premium is invoiced (`final_invoice_id`), billed but unearned premium
        credited off the open invoices (`credits`), what was paid beyond the earned premium
        refunded (`refunds`: through Stripe when the money came from Stripe, else listed
        for payment by check or transfer)."""
        outcome = service.cancel(
            db_session(),
            _settings(),
            path_id("policy", policy_id),
            data["effective_date"],
            data["method"],
            data.get("reason"),
        )
        cancellation = outcome.cancellation
        session = db_session()
        refunds = [session.get(Refund, refund_id) for refund_id in outcome.refund_ids]
        return {
            "policy_id": cancellation.policy_id,
            "effective_date": cancellation.effective_date,
            "method": cancellation.method,
            "earned_premium": cancellation.earned_premium,
            "refund_due": cancellation.refund_due,
            "balance_due": cancellation.balance_due,
            "status": "cancelled",
            "final_invoice_id": outcome.settled.final_invoice_id,
            "credits": [
                {"invoice_id": invoice_id, "amount": amount}
                for invoice_id, amount in sorted(outcome.settled.credited.items())
            ],
            "refunds": [
                {
                    "id": r.id,
                    "payment_id": r.payment_id,
                    "amount": r.amount,
                    "currency": r.currency,
                    "channel": r.channel,
                    "status": r.status,
                }
                for r in refunds
                if r is not None
            ],
        }


@blp.route("/<policy_id>/reinstatements")
class PolicyReinstatements(MethodView):
    @roles("billing")
    @blp.arguments(ReinstatementIn)
    @blp.response(201, PolicyOut)
    def post(self, data: dict[str, Any], policy_id: str) -> dict[str, Any]:
        """Reinstate a cancelled or lapsed policy within the reinstatement window."""
        policy = service.reinstate(
            db_session(), _settings(), path_id("policy", policy_id), data["effective_date"]
        )
        return policy_out(policy)
