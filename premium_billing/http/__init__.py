"""The REST API (flask-smorest): /api/v1, problem+json errors, bearer keys, idempotency."""

from __future__ import annotations

from flask import Flask
from flask_smorest import Api

from premium_billing.http.auth import register_auth
from premium_billing.http.idempotency import register_idempotency
from premium_billing.http.problems import (
    ProblemSchema,
    http_exception_problem,
    register_problem_handlers,
)
from premium_billing.http.session import register_session


class BillingApi(Api):  # type: ignore[misc]
    """flask-smorest's Api with errors as application/problem+json."""

    ERROR_SCHEMA = ProblemSchema

    def handle_http_exception(self, error):  # type: ignore[no-untyped-def]
        return http_exception_problem(error)


def register_http(app: Flask) -> BillingApi:
    """The shared HTTP plumbing (sessions, bearer keys, idempotency, problem+json, health);
    the features' blueprints are mounted on the returned Api by the app's bootstrap."""
    from premium_billing.http import health

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
    app.register_blueprint(health.bp)
    return api
