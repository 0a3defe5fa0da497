"""Where Stripe Checkout sends the policyholder back: small public pages, no API key."""

from __future__ import annotations

from flask import Blueprint, render_template

bp = Blueprint("checkout_pages", __name__)


@bp.get("/checkout/done")
def checkout_done() -> str:
    return render_template(
        "checkout_result.html",
        title="Thank you — payment received",
        message="Your payment was received and is being posted to your account. "
        "The invoice shows as paid within a few seconds.",
    )


@bp.get("/checkout/cancelled")
def checkout_cancelled() -> str:
    return render_template(
        "checkout_result.html",
        title="Payment cancelled",
        message="Nothing was charged. You can pay the invoice at any time from its link.",
    )
