"""The composition root: the one place that wires the features together.

Features never import the process that runs them: the app factory, the CLI, the scheduler,
the webhook drain and the benchmarks get their database here (the audit trail installed)
and mount the features' HTTP resources here.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import Flask
from sqlalchemy.orm import Session, configure_mappers

from premium_billing import models  # noqa: F401  (every table registered)
from premium_billing.audit import trail
from premium_billing.cancellations import settlement
from premium_billing.clock import business_date
from premium_billing.collections import assess as collections
from premium_billing.collections.plans import plans as delinquency_plans
from premium_billing.config import Settings
from premium_billing.db import Database, hooks
from premium_billing.db.hooks import Handler
from premium_billing.http import BillingApi, register_http
from premium_billing.notifications import outbox as notification_outbox
from premium_billing.outbound import outbox as outbound_outbox
from premium_billing.payments import credits
from premium_billing.reconciliation import deposits
from premium_billing.stripe_billing import refunds as stripe_refunds
from premium_billing.stripe_billing.models import StripePayout


def handlers() -> dict[str, list[Handler]]:
    """What happens, in the same transaction, when a feature publishes a domain event."""
    return {
        # Credit balances settle newly issued invoices through the posting engine.
        # Then each new invoice's email and `invoice.issued` event (set-based, same batch).
        hooks.INVOICES_ISSUED: [_apply_credits, _invoices_issued_notices],
        # A recorded Stripe payout is paired with its bank deposit.
        hooks.PAYOUT_RECORDED: [_match_payout],
        # Refunds owed on Stripe payments go to Stripe (after the commit that owed them).
        hooks.REFUNDS_OWED: [_send_refunds],
        # An endorsement's premium cut with nothing left to bill is credited off the bills.
        hooks.PREMIUM_CUT: [_credit_premium_cut],
        # Notices (email outbox) and outbound events, in the business event's transaction.
        # Money moved (any road): the delinquent policies it touched are re-evaluated
        # (their state changes publish their own notices), then receipts are queued.
        hooks.MONEY_MOVED: [_reassess_delinquency, _payments_posted_notices],
        hooks.PAYMENT_FAILED: [_payment_failed_notices],
        hooks.REFUNDS_SENT: [_refunds_sent_notices],
        hooks.DELINQUENCY_CHANGED: [_delinquency_events],
        hooks.COLLECTION_STEPS_TAKEN: [_collection_step_notices],
    }


def _reassess_delinquency(
    session: Session,
    *,
    invoice_ids: list[int],
    on: date,
    settings: Settings | None,
    **_facts: object,
) -> int:
    outcome = collections.after_money_moved(session, settings or Settings(), invoice_ids, on)
    return len(outcome.transitions)


def _invoices_issued_notices(
    session: Session, *, invoice_ids: list[int], settings: Settings | None
) -> int:
    notification_outbox.queue_invoices_issued(session, invoice_ids)
    outbound_outbox.invoices_issued(session, invoice_ids)
    return 0  # the invoicing job sums this event's results as credits applied: none here


def _payments_posted_notices(
    session: Session, *, allocations: list[tuple[int, int, int]], on: date, **_facts: Any
) -> None:
    notification_outbox.queue_receipts(session, allocations, on)
    outbound_outbox.payments_posted(session, allocations, on)


def _payment_failed_notices(
    session: Session, *, failures: list[dict[str, Any]], **_facts: Any
) -> None:
    notification_outbox.queue_payment_failures(session, failures)
    outbound_outbox.payments_failed(session, failures)


def _refunds_sent_notices(session: Session, *, refund_ids: list[int], **_facts: Any) -> None:
    notification_outbox.queue_refunds_sent(session, refund_ids)
    outbound_outbox.refunds_sent(session, refund_ids)


def _delinquency_events(
    session: Session, *, transitions: list[dict[str, Any]], **_facts: Any
) -> None:
    outbound_outbox.delinquency_changed(session, transitions)


def _collection_step_notices(
    session: Session, *, steps: list[dict[str, Any]], **_facts: Any
) -> None:
    notification_outbox.queue_collection_steps(session, steps)


def _apply_credits(session: Session, *, invoice_ids: list[int], settings: Settings) -> int:
    return credits.apply_credit_balances(session, invoice_ids, settings)


def _match_payout(session: Session, *, payout: StripePayout, settings: Settings) -> bool:
    return deposits.match_payout(session, payout, settings)


def _send_refunds(session: Session, *, refund_ids: list[int], settings: Settings) -> dict[str, int]:
    return stripe_refunds.send_refunds(session, settings, refund_ids)


def _credit_premium_cut(
    session: Session,
    *,
    installment_id: int,
    endorsement_id: int,
    on: date,
    settings: Settings | None,
) -> int:
    settings = settings or Settings()
    return settlement.credit_premium_cut(
        session,
        settings,
        installment_id=installment_id,
        endorsement_id=endorsement_id,
        effective=on,
        on=business_date(settings.timezone),
    )


def database(url: str) -> Database:
    """The database of `url`: every session's changes recorded in the audit trail, and the
    domain events' handlers wired."""
    trail.install()
    configure_mappers()  # every feature's tables known, so that named relationships resolve
    return Database(url, handlers())


def mount(app: Flask) -> BillingApi:
    """Every feature's resources on the app: /api/v1 (bearer keys), the Stripe webhook, the
    checkout return pages, the policyholder portal, the API docs, health, and what
    GET /metrics reads at scrape time (the features count their own events in their
    `metrics` modules)."""
    from premium_billing.accounts.api import blp as policyholders_blp
    from premium_billing.cancellations.api import blp as cancellations_blp
    from premium_billing.collections.api import blp as collections_blp
    from premium_billing.dashboard import pages as dashboard_pages
    from premium_billing.http.docs import bp as api_docs_bp
    from premium_billing.http.metrics import add_collector
    from premium_billing.invoicing.api import blp as invoices_blp
    from premium_billing.jobs.api import blp as jobs_blp
    from premium_billing.logging_setup import register_request_logging
    from premium_billing.notifications.api import blp as notifications_blp
    from premium_billing.outbound.api import blp as webhook_endpoints_blp
    from premium_billing.payments.api import blp as payments_blp
    from premium_billing.payments.refunds_api import blp as refunds_blp
    from premium_billing.payments.writeoffs_api import blp as writeoffs_blp
    from premium_billing.policies.api import blp as policies_blp
    from premium_billing.portal import pages as portal_pages
    from premium_billing.portal.api import blp as portal_links_blp
    from premium_billing.reconciliation.api import blp as reconciliation_blp
    from premium_billing.reconciliation.import_api import blp as bank_statements_blp
    from premium_billing.reports.api import blp as reports_blp
    from premium_billing.stripe_billing.api import blp as checkout_blp
    from premium_billing.stripe_billing.pages import bp as pages_bp
    from webhooks.metrics import InboxCollector
    from webhooks.views import bp as stripe_webhooks_bp

    # A bad delinquency plan stops start-up here, with one line naming the field.
    delinquency_plans(app.config["SETTINGS"])
    api = register_http(app)
    for blp in (
        policyholders_blp,
        policies_blp,
        cancellations_blp,
        collections_blp,
        invoices_blp,
        jobs_blp,
        payments_blp,
        refunds_blp,
        writeoffs_blp,
        reports_blp,
        bank_statements_blp,
        reconciliation_blp,
        checkout_blp,
        portal_links_blp,
        notifications_blp,
        webhook_endpoints_blp,
    ):
        api.register_blueprint(blp)
    app.register_blueprint(stripe_webhooks_bp)  # /webhooks/stripe: signed, no bearer key
    app.register_blueprint(pages_bp)
    # GET /portal/{token}: the policyholder's pages (signed link, CSRF, rate-limited).
    portal_pages.install(app, app.config["SETTINGS"])
    app.register_blueprint(api_docs_bp)  # GET /api/v1/docs: Swagger UI, our own files
    # /dashboard: finance's pages for named users (session cookie, CSRF on its forms).
    dashboard_pages.init_app(app, app.config["SETTINGS"])
    register_request_logging(app)
    # The webhook queue's depth, read from the inbox on each scrape.
    add_collector(app, InboxCollector(app.extensions["premium_billing.db"]))
    return api
