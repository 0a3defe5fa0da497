"""Cancellations and reinstatements: /api/v1/policies/{id}/cancellations and
/api/v1/policies/{id}/reinstatements."""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint

from premium_billing.cancellations import service
from premium_billing.http.auth import roles
from premium_billing.http.ids import path_id
from premium_billing.http.session import db_session
from premium_billing.policies.schemas import (
    CancellationIn,
    CancellationOut,
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
    @blp.response(201, CancellationOut)
    def post(self, data: dict[str, Any], policy_id: str) -> dict[str, Any]:
        """Cancel pro rata or short rate: earned premium, refund due, balance due;
        unbilled installments are voided."""
        cancellation = service.cancel(
            db_session(),
            _settings(),
            path_id("policy", policy_id),
            data["effective_date"],
            data["method"],
            data.get("reason"),
        )
        return {
            "policy_id": cancellation.policy_id,
            "effective_date": cancellation.effective_date,
            "method": cancellation.method,
            "earned_premium": cancellation.earned_premium,
            "refund_due": cancellation.refund_due,
            "balance_due": cancellation.balance_due,
            "status": "cancelled",
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
