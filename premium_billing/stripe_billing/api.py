"""Pay online: Checkout for an invoice, and a setup-mode Checkout that saves a card for
autopay. Both answer {checkout_url, session_id}; the payment itself arrives by webhook."""

from __future__ import annotations

from typing import Any

from flask import Response, current_app
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields

from premium_billing.http.auth import roles
from premium_billing.http.ids import path_id
from premium_billing.http.problems import problem
from premium_billing.http.session import db_session
from premium_billing.stripe_billing import payments as stripe_payments
from premium_billing.stripe_billing.gateway import GatewayError, GatewayUnavailable

blp = Blueprint("checkout", __name__, url_prefix="/api/v1", description="Pay online (Stripe)")


class CheckoutOut(Schema):
    checkout_url = fields.String(metadata={"description": "Send the payer here (Stripe)."})
    session_id = fields.String(metadata={"description": "The Stripe Checkout Session id."})


def _gateway_problem(error: GatewayError) -> Response:
    if isinstance(error, GatewayUnavailable):
        return problem(503, "Stripe is unavailable; try again shortly.")
    return problem(502, f"Stripe refused the request: {error.message}")


@blp.route("/invoices/<invoice_id>/checkout")
class InvoiceCheckout(MethodView):
    @roles("billing", "finance")
    @blp.response(200, CheckoutOut)
    def post(self, invoice_id: str) -> dict[str, Any] | Response:
        """A Stripe Checkout Session for the invoice's amount due (409 when paid or void).

        The same session is returned again while it is valid and the amount is unchanged."""
        settings = current_app.config["SETTINGS"]
        try:
            result = stripe_payments.start_checkout(
                db_session(), settings, path_id("invoice", invoice_id)
            )
        except GatewayError as error:
            return _gateway_problem(error)
        return {"checkout_url": result.url, "session_id": result.id}


@blp.route("/policyholders/<policyholder_id>/autopay-setup")
class AutopaySetup(MethodView):
    @roles("billing")
    @blp.response(200, CheckoutOut)
    def post(self, policyholder_id: str) -> dict[str, Any] | Response:
        """A setup-mode Checkout Session: the policyholder saves a card for autopay."""
        settings = current_app.config["SETTINGS"]
        try:
            result = stripe_payments.start_autopay_setup(
                db_session(), settings, path_id("policyholder", policyholder_id)
            )
        except GatewayError as error:
            return _gateway_problem(error)
        return {"checkout_url": result.url, "session_id": result.id}
