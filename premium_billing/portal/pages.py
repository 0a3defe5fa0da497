"""The portal's pages: `GET /portal/{token}` and what hangs off it. Public (no API key):
the signed token in the path names the policyholder (`portal_links`); an altered, expired
or unreadable token, or an invoice or Checkout of another policyholder, is the same plain
404 page, whatever the reason. Every form carries a CSRF token (flask-wtf, tied to the
session cookie); every request is rate-limited per client address (flask-limiter,
PORTAL_RATE_LIMIT). Thin views: each reads the token and calls one use case."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Flask, Response, current_app, redirect, render_template, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_wtf.csrf import CSRFError, generate_csrf, validate_csrf
from wtforms import ValidationError

from premium_billing.actor import Actor, acting_as
from premium_billing.config import Settings
from premium_billing.errors import Conflict, NotFound
from premium_billing.http.ids import parse_id
from premium_billing.http.session import db_session
from premium_billing.money import format_major
from premium_billing.portal import page, pay
from premium_billing.portal.statement_pdf import statement_pdf
from premium_billing.portal_links import read_token
from premium_billing.stripe_billing.gateway import GatewayError

bp = Blueprint(
    "portal",
    __name__,
    static_folder="static",
    static_url_path="/portal/assets",
)

EXPIRED_FORM = "The form had expired. Go back, reload the page and try again."
UNAVAILABLE = "Payments are unavailable just now. Please try again shortly."
POLL_SECONDS = 2  # the return page reloads itself until the webhook has posted
POLL_TIMES = 30  # … at most this many times (a minute), then says it takes longer
STRIPE_CHECKOUT_ORIGIN = "https://checkout.stripe.com"


def _settings() -> Settings:
    settings: Settings = current_app.config["SETTINGS"]
    return settings


def _money(amount: int, currency: str) -> str:
    return f"{format_major(amount, currency, thousands=True)} {currency}"


def _policy() -> str:
    """The pages' Content-Security-Policy: our own style sheet, no script; forms post to us
    and go on to Stripe's Checkout (a redirect a form's `form-action` must allow)."""
    base = _settings().stripe_api_base
    parts = urlsplit(base) if base else None
    checkout = (
        f"{parts.scheme}://{parts.netloc}" if parts and parts.netloc else STRIPE_CHECKOUT_ORIGIN
    )
    return (
        "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; "
        f"form-action 'self' {checkout}; frame-ancestors 'none'"
    )


def _html(body: str, status: int = 200) -> Response:
    response = Response(body, status=status, mimetype="text/html")
    response.headers["Content-Security-Policy"] = _policy()
    return response


def _render(template: str, status: int = 200, **context: Any) -> Response:
    defaults = {"money": _money, "csrf_token": generate_csrf, "insurer": _settings().insurer_name}
    return _html(render_template(template, **{**defaults, **context}), status)


def not_found() -> Response:
    """The one answer to a token that is not good, or to what is not the holder's."""
    return _render("portal/not_found.html", 404)


def _holder(token: str) -> int | None:
    holder = read_token(_settings(), token)
    if holder is None or not page.holder_exists(db_session(), holder):
        return None
    return holder


def _urls(token: str) -> pay.ReturnUrls:
    base = f"{_settings().public_base_url.rstrip('/')}/portal/{token}"
    return pay.ReturnUrls(
        success=f"{base}/checkout/done?session_id={{CHECKOUT_SESSION_ID}}",
        cancel=f"{base}/checkout/cancelled",
    )


def _checked_form() -> bool:
    try:
        validate_csrf(request.form.get("csrf_token"))
    except ValidationError:
        return False
    return True


def _refused(message: str, token: str, status: int) -> Response:
    return _render("portal/message.html", status, title="Not done", message=message, token=token)


@bp.get("/portal/<token>")
def home(token: str) -> Response:
    holder = _holder(token)
    if holder is None:
        return not_found()
    view = page.portal_page(db_session(), _settings(), holder)
    return _render("portal/home.html", p=view, token=token)


def _form_holder(token: str) -> int | Response:
    """The policyholder a form was posted for, or the answer: 404 (token), 400 (CSRF)."""
    holder = _holder(token)
    if holder is None:
        return not_found()
    if not _checked_form():
        return _refused(EXPIRED_FORM, token, 400)
    return holder


@bp.post("/portal/<token>/invoices/<invoice_id>/pay")
def pay_invoice(token: str, invoice_id: str) -> Response:
    holder = _form_holder(token)
    number = parse_id("invoice", invoice_id)
    if isinstance(holder, Response) or number is None:
        return holder if isinstance(holder, Response) else not_found()
    urls = _urls(token)
    return _to_checkout(
        token, holder, lambda s: pay.pay_invoice(s, _settings(), holder, number, urls)
    )


@bp.post("/portal/<token>/pay-overdue")
def pay_overdue(token: str) -> Response:
    holder = _form_holder(token)
    if isinstance(holder, Response):
        return holder
    currency = (request.form.get("currency") or "").strip().upper()[:3]
    urls = _urls(token)
    return _to_checkout(
        token, holder, lambda s: pay.pay_overdue(s, _settings(), holder, currency, urls)
    )


@bp.post("/portal/<token>/autopay")
def autopay(token: str) -> Response:
    holder = _form_holder(token)
    if isinstance(holder, Response):
        return holder
    if request.form.get("autopay") == "off":
        with acting_as(_actor(holder)):
            try:
                pay.autopay_off(db_session(), holder)
            except Conflict as error:
                return _refused(str(error), token, 409)
        return redirect(f"/portal/{token}#autopay", code=303)  # type: ignore[return-value]
    urls = _urls(token)
    return _to_checkout(token, holder, lambda s: pay.autopay_on(s, _settings(), holder, urls))


def _actor(holder: int) -> Actor:
    return Actor(kind="portal", id=f"ph_{holder}", name="policyholder portal")


def _to_checkout(token: str, holder: int, start: Any) -> Response:
    """Run the use case that starts a Checkout and send the browser there (303)."""
    with acting_as(_actor(holder)):
        try:
            url = start(db_session())
        except NotFound:
            return not_found()
        except Conflict as error:
            return _refused(str(error), token, 409)
        except GatewayError:
            return _refused(
                "Payments are unavailable just now. Please try again shortly.", token, 503
            )
    return redirect(url, code=303)  # type: ignore[return-value]


@bp.get("/portal/<token>/checkout/done")
def checkout_done(token: str) -> Response:
    holder = _holder(token)
    if holder is None:
        return not_found()
    session_id = (request.args.get("session_id") or "")[:255]
    result = page.checkout_result(db_session(), _settings(), holder, session_id)
    if result is None:
        return not_found()
    try:
        tries = min(max(int(request.args.get("tries", "0")), 0), POLL_TIMES)
    except ValueError:
        tries = 0
    again = None
    if not result.done and tries < POLL_TIMES:
        again = f"/portal/{token}/checkout/done?session_id={session_id}&tries={tries + 1}"
    return _render(
        "portal/result.html", r=result, token=token, refresh=again, poll_seconds=POLL_SECONDS
    )


@bp.get("/portal/<token>/checkout/cancelled")
def checkout_cancelled(token: str) -> Response:
    holder = _holder(token)
    if holder is None:
        return not_found()
    return _render(
        "portal/message.html",
        title="Payment cancelled",
        message="Nothing was charged. You can pay at any time from your account page.",
        token=token,
    )


@bp.get("/portal/<token>/statement")
def statement_page(token: str) -> Response:
    holder = _holder(token)
    if holder is None:
        return not_found()
    s, today = page.statement_of_account(db_session(), _settings(), holder)
    return _render(
        "portal/statement.html",
        s=s,
        token=token,
        today=today,
        money=lambda amount, currency: format_major(amount, currency, thousands=True),
    )  # the currency heads each account's table


@bp.get("/portal/<token>/statement.pdf")
def statement_download(token: str) -> Response:
    holder = _holder(token)
    if holder is None:
        return not_found()
    s, today = page.statement_of_account(db_session(), _settings(), holder)
    body = statement_pdf(s, _settings().insurer_name, today)
    response = Response(body, mimetype="application/pdf")
    response.headers["Content-Disposition"] = (
        f'attachment; filename="statement-{today.isoformat()}.pdf"'
    )
    return response


def install(app: Flask, settings: Settings) -> None:
    """The portal on the app: its pages and assets, the rate limit per client address
    (request.remote_addr: behind a proxy, the proxy must pass the client's address on, e.g.
    werkzeug's ProxyFix), and the session cookie the CSRF token is tied to (HTTP-only,
    SameSite=Lax, Secure when PUBLIC_BASE_URL is https)."""
    if app.config.get("SESSION_COOKIE_SAMESITE") is None:
        app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    if settings.public_base_url.startswith("https://"):
        app.config["SESSION_COOKIE_SECURE"] = True
    limiter = Limiter(
        get_remote_address,
        app=app,
        storage_uri="memory://",
        default_limits=[],
        strategy="fixed-window",
    )
    # Pages and forms count; the style sheet does not (a page view is one request).
    limiter.limit(settings.portal_rate_limit, exempt_when=_is_asset)(bp)
    app.register_blueprint(bp)
    app.extensions["premium_billing.portal_limiter"] = limiter


def _is_asset() -> bool:
    return request.endpoint == "portal.static"


@bp.errorhandler(429)
def too_many(_error: Exception) -> Response:
    return _render(
        "portal/message.html",
        429,
        title="Too many requests",
        message="Please wait a minute and try again.",
        token=None,
    )


__all__ = ["CSRFError", "bp", "install", "not_found"]
