"""The hosted Checkout page: a session's `url` is `GET /checkout/{id}` on the fake, a tiny
page with the amount and a Pay button that posts the form to `/checkout/{id}/pay` (tests may
post there directly, with `card=4000000000000002` to decline).  Paying delivers the signed
webhooks (and waits for them) before redirecting to `success_url`."""

from __future__ import annotations

import html
import re
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from .cards import DEFAULT_CARD
from .checkout_sessions import CheckoutSessions, LineItem
from .resources import Emitted
from .upstream import CURRENCY_EXPONENTS
from .webhooks import WebhookSender
from .wire import Exchange, RecordedRequest, RequestLog

_PATH = re.compile(r"/checkout/([^/]+)(/pay)?")


class CheckoutPage:
    def __init__(
        self, sessions: CheckoutSessions, webhooks: WebhookSender, log: RequestLog
    ) -> None:
        self._sessions = sessions
        self._webhooks = webhooks
        self._log = log

    def handle(self, exchange: Exchange, raw: bytes) -> None:
        """`GET /checkout/{id}` (the page), `POST /checkout/{id}/pay` (the form)."""
        method = exchange.method
        record = self._log.add(
            RecordedRequest(
                method=method,
                path=exchange.path,
                idempotency_key=None,
                form=dict(urllib.parse.parse_qsl(raw.decode("utf-8", "replace"))),
                query={},
                stripe_version=None,
                authorization=None,
            )
        )
        match = _PATH.fullmatch(exchange.path)
        session = self._sessions.find(match.group(1)) if match else None
        if session is None or match is None:
            record.status = 404
            _send_page(exchange, 404, "<h1>Not found</h1><p>No such Checkout Session.</p>")
            return
        if method == "GET" and not match.group(2):
            record.status = 200
            _send_page(exchange, 200, self._page(session))
            return
        if method != "POST" or not match.group(2):
            record.status = 405
            _send_page(exchange, 405, "<h1>Method not allowed</h1>")
            return
        card = re.sub(r"\D", "", record.form.get("card") or "") or DEFAULT_CARD
        billing = {
            "email": record.form.get("email") or session.get("customer_email"),
            "name": record.form.get("name") or None,
        }
        events: Emitted = []
        paid = self._sessions.pay(session["id"], card, billing, events)
        if paid is None:
            record.status = 409
            _send_page(exchange, 409, "<h1>This Checkout Session is no longer active.</h1>")
            return
        session, decline = paid
        self._webhooks.dispatch(events, wait=True)
        if decline is not None:
            record.status = 402
            _send_page(exchange, 402, self._page(session, error=decline.message))
            return
        location = (session["success_url"] or "").replace("{CHECKOUT_SESSION_ID}", session["id"])
        record.status = 303
        exchange.send(303, b"", {"Location": location})

    def _page(self, session: dict[str, Any], error: str | None = None) -> str:
        return render_page(session, self._sessions.line_items(session["id"]), error)


def render_page(session: dict[str, Any], items: list[LineItem], error: str | None = None) -> str:
    """The body of the Checkout page of `session` (with `error` after a decline)."""
    esc = html.escape
    if session["status"] != "open":
        return "<h1>Already paid</h1><p>This Checkout Session is complete.</p>"
    if session["mode"] == "payment":
        currency = (session["currency"] or "usd").upper()
        digits = CURRENCY_EXPONENTS.get(currency, 2)
        amount = session["amount_total"] or 0
        shown = f"{amount / 10**digits:,.{digits}f}" if digits else f"{amount:,}"
        title = esc(", ".join(i.name for i in items) or "Payment")
        lines = (
            f"<h1 id='description'>{title}</h1>"
            f"<p>Amount due: <strong id='amount' data-amount='{amount}'>"
            f"{esc(currency)} {esc(shown)}</strong></p>"
        )
        button = "Pay"
    else:
        lines = "<h1>Save a card for future payments</h1>"
        button = "Save card"
    error_html = f"<p id='error' role='alert'>{esc(error)}</p>" if error else ""
    cancel = (
        f"<p><a id='cancel' href='{esc(session['cancel_url'])}'>Cancel</a></p>"
        if session.get("cancel_url")
        else ""
    )
    return (
        f"{lines}{error_html}"
        f"<form method='post' action='/checkout/{esc(session['id'])}/pay'>"
        "<label>Card number <input name='card' id='card' value='4242 4242 4242 4242'>"
        "</label> "
        "<label>Email <input name='email' id='email' type='email'></label> "
        f"<button type='submit' id='pay'>{button}</button></form>{cancel}"
        "<p><small>Test mode: 4000 0000 0000 0002 declines.</small></p>"
    )


def _send_page(exchange: Exchange, status: int, body_html: str) -> None:
    page = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        "<title>Fake Stripe Checkout</title></head><body>" + body_html + "</body></html>"
    )
    exchange.send(status, page.encode("utf-8"), {"Content-Type": "text/html; charset=utf-8"})


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def submit_pay_form(base_url: str, session_id: str, card: str = DEFAULT_CARD) -> int:
    """POST the Pay form of the fake at `base_url` over HTTP, as a browser would (not
    following the redirect); returns the status (303 when paid)."""
    data = urllib.parse.urlencode({"card": card}).encode()
    request = urllib.request.Request(
        f"{base_url}/checkout/{session_id}/pay", data=data, method="POST"
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())
    try:
        with opener.open(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        exc.close()
        return int(exc.code)
