"""The REST API (flask-smorest): /api/v1, problem+json errors, bearer keys, idempotency."""

from __future__ import annotations

from flask import Flask
from flask_smorest import Api

from .auth import register_auth
from .idempotency import register_idempotency
from .problems import ProblemSchema, http_exception_problem, register_problem_handlers
from .session import register_session


class BillingApi(Api):  # type: ignore[misc]
    """flask-smorest's Api with errors as application/problem+json."""

    ERROR_SCHEMA = ProblemSchema

    def handle_http_exception(self, error):  # type: ignore[no-untyped-def]
        return http_exception_problem(error)


def register_api(app: Flask) -> BillingApi:
    from ..logging_setup import register_request_logging
    from . import health, invoices, jobs, policies, policyholders
    from .payments import blp as payments_blp
    from .reports import blp as reports_blp
    from .writeoffs import blp as writeoffs_blp

    register_session(app)
    register_auth(app)
    register_idempotency(app)
    api = BillingApi(
        app,
        spec_kwargs={
            "components": {"securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}}},
            "security": [{"bearerAuth": []}],
        },
    )
    register_problem_handlers(app)
    api.register_blueprint(policyholders.blp)
    api.register_blueprint(policies.blp)
    api.register_blueprint(invoices.blp)
    api.register_blueprint(jobs.blp)
    api.register_blueprint(payments_blp)
    api.register_blueprint(writeoffs_blp)
    api.register_blueprint(reports_blp)
    from .bank_statements import blp as bank_statements_blp
    from .reconciliation import blp as reconciliation_blp

    api.register_blueprint(bank_statements_blp)
    api.register_blueprint(reconciliation_blp)
    from webhooks.views import bp as stripe_webhooks_bp

    from .checkout import blp as checkout_blp

    api.register_blueprint(checkout_blp)
    app.register_blueprint(stripe_webhooks_bp)  # /webhooks/stripe: signed, no bearer key
    app.register_blueprint(health.bp)
    from ..pages import bp as pages_bp

    app.register_blueprint(pages_bp)
    register_request_logging(app)
    return api
