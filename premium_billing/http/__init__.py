"""The REST API (flask-smorest): /api/v1, problem+json errors, bearer keys, idempotency."""

from __future__ import annotations

from flask import Flask
from flask_smorest import Api

from premium_billing.http.auth import register_auth
from premium_billing.http.idempotency import register_idempotency
from premium_billing.http.ids import PublicId
from premium_billing.http.limits import check_json_depth, register_limits
from premium_billing.http.metrics import register_request_metrics
from premium_billing.http.problems import (
    ProblemSchema,
    http_exception_problem,
    register_problem_handlers,
)
from premium_billing.http.request_id import register_request_id
from premium_billing.http.security import register_security_headers
from premium_billing.http.session import register_session
from premium_billing.http.text_guard import check_text


class BillingApi(Api):  # type: ignore[misc]
    """flask-smorest's Api with errors as application/problem+json."""

    ERROR_SCHEMA = ProblemSchema

    def handle_http_exception(self, error):  # type: ignore[no-untyped-def]
        return http_exception_problem(error)


def register_http(app: Flask) -> BillingApi:
    """The shared HTTP plumbing (request metrics, sessions, request ids, body limits, bearer
    keys, input checks, idempotency, problem+json, security headers, health, GET /metrics);
    the features' blueprints and metric collectors are added by the app's bootstrap.

    Before each request, in this order: its clock (every answer is counted, refusals too);
    its id; its body capped (nothing has read it yet); its key; its JSON's depth and every
    string of its input (the body read, at most its limit); its Idempotency-Key. A hook that
    answers skips the ones after it."""
    from premium_billing.http import health, metrics

    register_request_metrics(app)
    register_session(app)
    register_request_id(app)
    register_limits(app)
    register_auth(app)
    app.before_request(check_json_depth)
    app.before_request(check_text)
    register_idempotency(app)
    register_security_headers(app)
    api = BillingApi(
        app,
        spec_kwargs={
            "components": {"securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}}},
            "security": [{"bearerAuth": []}],
        },
    )
    api.register_field(PublicId, "string", None)  # 'pol_42', its pattern in the metadata
    register_problem_handlers(app)
    app.register_blueprint(health.bp)
    app.register_blueprint(metrics.bp)  # GET /metrics: METRICS_TOKEN or an admin key
    return api
