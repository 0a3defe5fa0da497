"""The finance dashboard: /dashboard, HTML pages for named users (not API keys).

Login with a name and password (`premium-billing users create`); a signed session cookie
(HttpOnly, SameSite=Lax, Secure per SESSION_COOKIE_SECURE); a CSRF token on every form of
this blueprint (Flask-WTF's token, checked before any POST here: the API keeps its bearer
keys and is not touched); failed logins throttled from the database. Each view reads, or
calls the one service function the API calls for the same write (one transaction, audited
with the user as the actor), and answers with a page or a redirect.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    stream_with_context,
    url_for,
)
from flask_wtf.csrf import CSRFError, generate_csrf, validate_csrf
from marshmallow import ValidationError
from sqlalchemy.orm import Session
from werkzeug.exceptions import HTTPException
from wtforms import ValidationError as CSRFInvalid

from premium_billing.actor import Actor, set_actor
from premium_billing.clock import business_date
from premium_billing.config import Settings
from premium_billing.dashboard import exports, queries, rules, users
from premium_billing.dashboard.models import DashboardUser
from premium_billing.db.types import utcnow
from premium_billing.errors import DomainError, ServiceError
from premium_billing.http.ids import format_id, parse_id
from premium_billing.http.schemas import Currency
from premium_billing.http.session import database, db_session
from premium_billing.money import exponent, format_major
from premium_billing.notifications.rules import STATUSES as NOTIFICATION_STATUSES
from premium_billing.outbound import endpoints as outbound
from premium_billing.outbound.rules import DELIVERY_STATUSES
from premium_billing.payments import refunds as refund_service
from premium_billing.payments.refunds_api import MarkPaidIn
from premium_billing.reconciliation.api import AllocationIn
from premium_billing.reconciliation.deposits import day_report
from premium_billing.reconciliation.manual import match_manually, undo_match
from premium_billing.reports.aging import aging, aging_totals
from premium_billing.reports.aging import aging_csv as aging_report_csv
from premium_billing.reports.aging import csv_filename as aging_filename
from premium_billing.reports.kpis import kpis
from premium_billing.reports.trial_balance import trial_balance

bp = Blueprint(
    "dashboard",
    __name__,
    url_prefix="/dashboard",
    static_folder="static",
    static_url_path="/static",
)

# Our own style sheet, no script; inline SVG charts (presentation attributes, no style).
POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
PUBLIC_ENDPOINTS = {"dashboard.login", "dashboard.static"}
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
USER_PREFIX = "user_"


def _settings() -> Settings:
    settings: Settings = current_app.config["SETTINGS"]
    return settings


def init_app(app: Flask, settings: Settings) -> None:
    """The session cookie and CSRF settings, and the blueprint: called by the bootstrap."""
    # The app's one session cookie (the portal's CSRF token lives in it too: no path of its
    # own, so that neither part loses the other's).
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.cookie_secure,
        PERMANENT_SESSION_LIFETIME=timedelta(hours=settings.dashboard_session_hours),
        # A form's token is good as long as the login (a page left open posts still).
        WTF_CSRF_TIME_LIMIT=settings.dashboard_session_hours * 3600,
    )
    app.register_blueprint(bp)


# ----------------------------------------------------------------------------- the frame


def current_user() -> DashboardUser | None:
    user: DashboardUser | None = g.get("dashboard_user")
    return user


@bp.before_request
def guard() -> Response | None:
    """CSRF on every POST (login included); then a logged-in user who may read finance's
    pages; a write needs a role that writes (the auditor's POST is a 403)."""
    if request.method not in SAFE_METHODS:
        try:
            validate_csrf(request.form.get("csrf_token"))
        except CSRFInvalid as error:
            raise CSRFError(str(error)) from None
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    user = _session_user()
    if user is None:
        session.clear()
        if request.method in SAFE_METHODS:
            return redirect(url_for("dashboard.login", next=request.full_path.rstrip("?")))
        abort(401)
    g.dashboard_user = user
    g.actor_token = set_actor(
        Actor(kind="user", id=f"{USER_PREFIX}{user.id}", name=user.name,
              request_id=g.get("request_id"))
    )  # fmt: skip
    if not rules.may_read(user.role):
        abort(403)
    writes = request.method not in SAFE_METHODS and request.endpoint != "dashboard.logout"
    if writes and not rules.may_write(user.role):
        abort(403)
    return None


def _session_user() -> DashboardUser | None:
    user_id, since = session.get("uid"), session.get("since")
    if not isinstance(user_id, int) or not isinstance(since, int | float):
        return None
    age = utcnow().timestamp() - since
    if not 0 <= age <= _settings().dashboard_session_hours * 3600:
        return None
    return users.active_user(db_session(), user_id)


@bp.after_request
def headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = POLICY
    if request.endpoint != "dashboard.static":
        response.headers["Cache-Control"] = "no-store"
    return response


@bp.app_template_global()
def money(amount: int | None, currency: str) -> str:
    return "" if amount is None else format_major(amount, currency, thousands=True)


@bp.app_template_global()
def public_id(kind: str, number: int | None) -> str:
    return format_id(kind, number) or ""


@bp.app_template_global()
def percent(basis_points: int) -> str:
    return f"{basis_points // 100}.{basis_points % 100 // 10}%"


@bp.app_template_global()
def ratio(value: Decimal | None) -> str:
    """A KPI ratio (0.9123) as a percent with one decimal (91.2%); a dash when undefined."""
    if value is None:
        return "—"
    return f"{(value * 100).quantize(Decimal('0.1'), ROUND_HALF_UP)}%"


@bp.app_template_global()
def compact(amount: int, currency: str) -> str:
    """An axis label: whole major units, in thousands (k) or millions (M) when large."""
    major = amount // 10 ** exponent(currency)
    if major >= 1_000_000:
        return f"{major // 1_000_000}.{major % 1_000_000 // 100_000}M"
    if major >= 10_000:
        return f"{major // 1000}k"
    return str(major)


@bp.context_processor
def frame() -> dict[str, Any]:
    user = current_user()
    return {
        "user": user,
        "can_write": user is not None and rules.may_write(user.role),
        "csrf_token": generate_csrf,
    }


def _error_page(status: int, title: str, detail: str) -> tuple[str, int]:
    return render_template("dashboard/error.html", status=status, title=title,
                           detail=detail), status  # fmt: skip


@bp.errorhandler(CSRFError)
def csrf_refused(error: CSRFError) -> tuple[str, int]:
    return _error_page(400, "Form refused", f"{error.description} Reload the page and retry.")


@bp.errorhandler(HTTPException)
def http_error(error: HTTPException) -> tuple[str, int]:
    status = error.code or 500
    details = {
        401: "Log in first.",
        403: "Your role may not do this.",
    }
    return _error_page(status, error.name, details.get(status, error.description or ""))


class BadArgument(ValueError):
    """A query argument the page cannot read: a 400 page naming it."""


@bp.errorhandler(BadArgument)
def bad_argument(error: BadArgument) -> tuple[str, int]:
    return _error_page(400, "Bad request", str(error))


def _date_arg(name: str, default: date) -> date:
    raw = request.args.get(name, "").strip()
    if not raw:
        return default
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise BadArgument(f"{name}: a date as YYYY-MM-DD, not {raw[:20]!r}") from None


def _id_arg(kind: str, name: str) -> int | None:
    raw = request.args.get(name, "").strip()
    if not raw:
        return None
    number = parse_id(kind, raw)
    if number is None:
        raise BadArgument(f"{name}: not a {kind} id")
    return number


def _today() -> date:
    return business_date(_settings().timezone)


def _csv(
    name: str, header: Sequence[str], rows: Callable[[Session], Iterable[Sequence[Any]]]
) -> Response:
    """A CSV download, streamed: `rows` reads in a session of the stream's own, closed when
    the stream ends or is dropped. (Not the request's: Flask tears the request down when
    the view returns, before the stream is read; a request session read from the stream
    would open a transaction nobody closes, its connection left checked out.)"""
    filename = f"{name}-{_today().isoformat()}.csv"
    db = database()

    def stream() -> Iterator[str]:
        with db.session() as session:
            yield from exports.lines(header, rows(session))

    return Response(
        stream_with_context(stream()),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _write(action: Callable[[], str], back: str) -> Response:
    """Run one write (a service call), flash its outcome, and go back to the list (303)."""
    try:
        flash(action(), "ok")
    except (ServiceError, DomainError) as error:
        field = f"{error.field}: " if error.field else ""
        flash(f"Refused — {field}{error.message}", "error")
    except ValidationError as error:
        flash(f"Refused — {_messages(error.messages)}", "error")
    return redirect(back, code=303)


def _messages(messages: Any) -> str:
    if isinstance(messages, dict):
        return "; ".join(f"{k}: {_messages(v)}" for k, v in messages.items())
    if isinstance(messages, list):
        return " ".join(_messages(m) for m in messages)
    return str(messages)


# ----------------------------------------------------------------------------- login


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    """The login form; a POST checks the name and password (throttled)."""
    target = request.values.get("next", "")
    if not target.startswith("/dashboard") or target.startswith("//"):
        target = url_for("dashboard.home")
    if request.method == "GET":
        return render_template("dashboard/login.html", next=target, error=None)
    name = request.form.get("name", "")
    password = request.form.get("password", "")
    try:
        g.actor_token = set_actor(
            Actor(kind="user", name="dashboard login", request_id=g.get("request_id"))
        )
        user = users.log_in(
            db_session(), _settings(), name, password, request.remote_addr or "unknown"
        )
    except users.LoginThrottled as error:
        return render_template("dashboard/login.html", next=target, error=error.message), 429
    except users.LoginRefused as error:
        return render_template("dashboard/login.html", next=target, error=error.message), 401
    session.clear()  # a new session: nothing from before the login carries over
    session.permanent = True
    session["uid"] = user.id
    session["since"] = int(utcnow().timestamp())
    return redirect(target, code=303)


@bp.post("/logout")
def logout() -> Response:
    session.clear()
    return redirect(url_for("dashboard.login"), code=303)


# ----------------------------------------------------------------------------- home


def _period() -> tuple[date, date]:
    today = _today()
    end = _date_arg("to", today)
    first = (
        date(end.year - 1, end.month, 1)
        if end.month == 12
        else date(end.year - 1, end.month + 1, 1)
    )
    start = _date_arg("from", first)
    if start > end:
        raise BadArgument("from: after to")
    if (end - start).days > 3 * 366:
        raise BadArgument("from: at most three years before to")
    return start, end


def _currency_arg() -> str | None:
    raw = request.args.get("currency", "").strip()
    if not raw:
        return None
    try:
        code: str = Currency().deserialize(raw)
    except ValidationError as error:
        raise BadArgument(f"currency: {_messages(error.messages)}") from None
    return code


@bp.get("/")
def home() -> str:
    """The KPIs of a period (`from`, `to`, `currency`: `reports.kpis`, as the KPIs API
    answers them); charts: aging by bucket, billed vs collected per month, the delinquency
    funnel, the auto-match rate per reconciliation run."""
    s = db_session()
    as_of = _date_arg("as_of", _today())
    start, end = _period()
    currency = _currency_arg()
    aged = aging_totals(s, as_of)  # the chart's; the KPIs' closing too when `to` is that day
    figures = kpis(
        s, start, end, _settings().timezone, currency, closing_totals=aged if as_of == end else None
    )
    aging = queries.aging_by_bucket(aged)
    flows = queries.billed_vs_collected(s, start, end)
    stages = queries.delinquency_funnel(s)
    rates = queries.auto_match_rates(s)
    charts: dict[str, Any] = {
        "aging": {
            c: rules.bar_chart(
                [rules.AGING_LABELS[b] for b in rules.AGING_BUCKETS],
                [[buckets[b] for b in rules.AGING_BUCKETS]],
            )
            for c, buckets in aging.items()
        },
        "flows": {
            c: rules.bar_chart(
                [m[2:] for m, _, _ in months],
                [[b for _, b, _ in months], [c_ for _, _, c_ in months]],
            )
            for c, months in flows.items()
        },
        "funnel": rules.funnel([(state.replace("_", " "), n) for state, n in stages]),
        "rates": rules.bar_chart(
            [f"#{r.id}" for r in rates], [[r.rate_bp for r in rates]], maximum=10000
        ),
    }
    return render_template(
        "dashboard/home.html", as_of=as_of, start=start, end=end, aging=aging, flows=flows,
        stages=stages, rates=rates, charts_data=charts, buckets=rules.AGING_LABELS,
        kpis=figures, currency=currency or "", kpi_rows=exports.KPI_ROWS,
    )  # fmt: skip


@bp.get("/kpis.csv")
def kpis_csv() -> Response:
    start, end = _period()
    figures = kpis(db_session(), start, end, _settings().timezone, _currency_arg())
    return _csv("kpis", exports.KPIS_HEADER, lambda _: exports.kpi_rows(figures))


# ----------------------------------------------------------------------------- aging


@bp.get("/aging")
def aging_page() -> str:
    """The aging report as `GET /reports/aging` has it: per currency the buckets, and a
    row per policy (ascending policy id, a page after `after`)."""
    as_of = _date_arg("as_of", _today())
    currency = _currency_arg()
    report = aging(
        db_session(),
        as_of,
        currency,
        limit=queries.PAGE,
        after_policy_id=_id_arg("policy", "after"),
    )
    return render_template(
        "dashboard/aging.html", report=report, as_of=as_of, currency=currency or "",
        buckets=rules.AGING_LABELS,
        next_after=format_id("policy", report.rows[-1].policy_id) if report.has_more else None,
    )  # fmt: skip


@bp.get("/aging.csv")
def aging_csv() -> Response:
    """The aging report's own CSV (a row per policy: `reports.aging.aging_csv`)."""
    as_of = _date_arg("as_of", _today())
    currency = _currency_arg()
    return Response(
        aging_report_csv(database(), as_of, currency),
        mimetype="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="{aging_filename(as_of, currency)}"'
        },
    )


# ----------------------------------------------------------------------------- suspense


@bp.get("/suspense")
def suspense() -> str:
    """The suspense queue with ranked candidates (match one in a click), and the latest
    manual matches (undo one in a click)."""
    s = db_session()
    after = _id_arg("payment", "after")
    rows, more = queries.suspense_page(s, after)
    return render_template(
        "dashboard/suspense.html", rows=rows, more=more,
        next_after=format_id("payment", rows[-1]["payment"].id) if rows and more else None,
        matches=queries.manual_matches(s),
    )  # fmt: skip


@bp.get("/suspense.csv")
def suspense_csv() -> Response:
    return _csv("suspense", exports.SUSPENSE_HEADER, exports.suspense_rows)


@bp.post("/payments/<payment_id>/match")
def match(payment_id: str) -> Response:
    """Match the payment to one candidate invoice (POST /payments/{id}/allocations)."""

    def act() -> str:
        number = _path_id("payment", payment_id)
        raw_amount = request.form.get("amount", "").strip()
        data = AllocationIn().load(
            {
                "invoice_id": request.form.get("invoice_id", ""),
                "amount": int(raw_amount) if raw_amount.isdigit() else raw_amount,
            }
        )
        payment = match_manually(
            db_session(), _settings(), number, [(data["invoice_id"], data["amount"])]
        )
        return (
            f"Matched {format_id('payment', payment.id)}: "
            f"{money(data['amount'], payment.currency)} {payment.currency} to "
            f"{format_id('invoice', data['invoice_id'])}."
        )

    return _write(act, url_for("dashboard.suspense"))


@bp.post("/payments/<payment_id>/undo")
def undo(payment_id: str) -> Response:
    """Undo the payment's match (DELETE /payments/{id}/allocations): back to suspense."""

    def act() -> str:
        payment = undo_match(db_session(), _settings(), _path_id("payment", payment_id))
        return f"Undone: {format_id('payment', payment.id)} is unapplied again."

    return _write(act, url_for("dashboard.suspense"))


def _path_id(kind: str, text: str) -> int:
    number = parse_id(kind, text)
    if number is None:
        abort(404)
    return number


# ----------------------------------------------------------------------------- reconciliation


@bp.get("/reconciliation")
def reconciliation() -> str:
    """The latest reconciliation run, the auto-match rate of recent runs, and the day's
    deposit reconciliation (Stripe payouts ↔ bank deposits)."""
    s = db_session()
    day = _date_arg("date", _today())
    return render_template(
        "dashboard/reconciliation.html", latest=queries.latest_run(s),
        runs=queries.recent_runs(s, 20), report=day_report(s, day), day=day,
        rate=lambda r: rules.rate_bp(r.matched + r.partially_matched, r.examined),
    )  # fmt: skip


@bp.get("/reconciliation/runs.csv")
def runs_csv() -> Response:
    return _csv("reconciliation-runs", exports.RUNS_HEADER, exports.run_rows)


@bp.get("/reconciliation/deposits.csv")
def deposits_csv() -> Response:
    day = _date_arg("date", _today())
    return _csv("deposits", exports.DEPOSITS_HEADER, lambda s: exports.deposit_rows(s, day))


# ----------------------------------------------------------------------------- refunds


@bp.get("/refunds")
def refunds() -> str:
    """Refunds finance pays by check or transfer, each with a mark-paid form."""
    return render_template(
        "dashboard/refunds.html", refunds=queries.refunds_to_pay(db_session()), today=_today()
    )


@bp.get("/refunds.csv")
def refunds_csv() -> Response:
    return _csv("refunds-to-pay", exports.REFUNDS_HEADER, exports.refund_rows)


@bp.post("/refunds/<refund_id>/mark-paid")
def mark_paid(refund_id: str) -> Response:
    """Mark a refund paid (POST /refunds/{id}/mark-paid): refunds payable → the bank."""

    def act() -> str:
        number = _path_id("refund", refund_id)
        form = {k: request.form.get(k, "").strip() for k in ("method", "reference", "paid_on")}
        data = MarkPaidIn().load({k: v for k, v in form.items() if v or k == "method"})
        refund = refund_service.mark_paid(
            db_session(), _settings(), number, method=data["method"],
            reference=data.get("reference"), paid_on=data.get("paid_on"),
        )  # fmt: skip
        return (
            f"Marked {format_id('refund', refund.id)} paid by {refund.paid_method} on "
            f"{refund.paid_on}."
        )

    return _write(act, url_for("dashboard.refunds"))


# ----------------------------------------------------------------------------- collections


@bp.get("/collections")
def collections() -> str:
    """The collections worklist (`GET /reports/collections-worklist`): past-due and in-grace
    policies, riskiest first, a page after the policy `after`."""
    as_of = _date_arg("as_of", _today())
    after = request.args.get("after", "").strip() or None
    try:
        rows, more = queries.worklist_page(db_session(), as_of, after)
    except ServiceError as error:
        raise BadArgument(f"after: {error.message}") from None
    return render_template(
        "dashboard/collections.html", rows=rows, as_of=as_of,
        next_after=format_id("policy", rows[-1]["policy_id"]) if rows and more else None,
    )  # fmt: skip


@bp.get("/collections.csv")
def collections_csv() -> Response:
    as_of = _date_arg("as_of", _today())
    return _csv(
        "collections-worklist",
        exports.WORKLIST_HEADER,
        lambda s: exports.worklist_rows(s, as_of),
    )


# ----------------------------------------------------------------------------- notifications


def _choice_arg(name: str, choices: Sequence[str]) -> str | None:
    raw = request.args.get(name, "").strip()
    if not raw:
        return None
    if raw not in choices:
        raise BadArgument(f"{name}: one of {', '.join(choices)}")
    return raw


@bp.get("/notifications")
def notifications() -> str:
    """Emails to policyholders, newest first: queued, sent, failed (`?status=`)."""
    s = db_session()
    status = _choice_arg("status", NOTIFICATION_STATUSES)
    rows, more = queries.notifications_page(s, status, _id_arg("notification", "before"))
    return render_template(
        "dashboard/notifications.html", rows=rows, status=status or "",
        statuses=NOTIFICATION_STATUSES, counts=queries.notification_counts(s),
        next_before=format_id("notification", rows[-1].id) if rows and more else None,
    )  # fmt: skip


@bp.get("/notifications.csv")
def notifications_csv() -> Response:
    status = _choice_arg("status", NOTIFICATION_STATUSES)
    return _csv(
        "notifications",
        exports.NOTIFICATIONS_HEADER,
        lambda s: exports.notification_rows(s, status),
    )


# ----------------------------------------------------------------------------- outbound events


@bp.get("/deliveries")
def deliveries() -> str:
    """Outbound event deliveries to the insurer's endpoints, newest first (`?status=`); the
    admin redelivers an event."""
    status = _choice_arg("status", DELIVERY_STATUSES)
    rows, more = queries.deliveries_page(db_session(), status, _id_arg("delivery", "before"))
    user = current_user()
    return render_template(
        "dashboard/deliveries.html", rows=rows, status=status or "", statuses=DELIVERY_STATUSES,
        may_redeliver=user is not None and rules.may_redeliver(user.role),
        next_before=format_id("delivery", rows[-1].delivery.id) if rows and more else None,
    )  # fmt: skip


@bp.get("/deliveries.csv")
def deliveries_csv() -> Response:
    status = _choice_arg("status", DELIVERY_STATUSES)
    return _csv("deliveries", exports.DELIVERIES_HEADER, lambda s: exports.delivery_rows(s, status))


@bp.post("/events/<event_id>/redeliver")
def redeliver(event_id: str) -> Response:
    """Deliver an event again (POST /events/{id}/redeliver): the admin only."""
    user = current_user()
    if user is None or not rules.may_redeliver(user.role):
        abort(403)

    def act() -> str:
        number = _path_id("event", event_id)
        redelivered = outbound.redeliver(db_session(), number)
        return f"Redelivering {format_id('event', number)}: {len(redelivered)} delivery(ies)."

    return _write(act, url_for("dashboard.deliveries"))


# ----------------------------------------------------------------------------- trial balance


@bp.get("/trial-balance")
def trial_balance_page() -> str:
    as_of = _date_arg("as_of", _today())
    return render_template(
        "dashboard/trial_balance.html", report=trial_balance(db_session(), as_of), as_of=as_of
    )


@bp.get("/trial-balance.csv")
def trial_balance_csv() -> Response:
    as_of = _date_arg("as_of", _today())
    return _csv(
        "trial-balance",
        exports.TRIAL_BALANCE_HEADER,
        lambda s: exports.trial_balance_rows(s, as_of),
    )


__all__ = ["bp", "init_app"]
