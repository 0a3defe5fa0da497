"""Collections: /api/v1/delinquency-plans, /api/v1/policies/{id}/delinquency and
/api/v1/reports/collections-worklist."""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint

from premium_billing.clock import business_date
from premium_billing.collections import views
from premium_billing.collections.plans import plans
from premium_billing.collections.schemas import (
    AsOfArgs,
    DelinquencyOut,
    PlanList,
    WorklistArgs,
    WorklistOut,
)
from premium_billing.http.auth import roles
from premium_billing.http.ids import path_id
from premium_billing.http.session import db_session

blp = Blueprint(
    "collections",
    __name__,
    url_prefix="/api/v1",
    description="Collections: delinquency plans, states and steps, the worklist",
)


def _settings():  # type: ignore[no-untyped-def]
    return current_app.config["SETTINGS"]


@blp.route("/delinquency-plans")
class DelinquencyPlans(MethodView):
    @roles("billing", "finance", "auditor")
    @blp.response(200, PlanList)
    def get(self) -> dict[str, Any]:
        """The delinquency plans in force, per product: grace, the steps with their days
        (from the oldest unpaid due date, grace start or end), autopay retries, threshold,
        fees (DELINQUENCY_PLANS, else the built-in plans)."""
        return {"data": [plan.as_dict() for plan in plans(_settings()).values()]}


@blp.route("/policies/<policy_id>/delinquency")
class PolicyDelinquency(MethodView):
    @roles("billing", "finance", "auditor")
    @blp.arguments(AsOfArgs, location="query")
    @blp.response(200, DelinquencyOut)
    def get(self, args: dict[str, Any], policy_id: str) -> dict[str, Any]:
        """The policy's delinquency state, its oldest unpaid due date, amount overdue, grace
        end and lapse day, and its steps (taken, pending, skipped, scheduled)."""
        settings = _settings()
        as_of = args.get("as_of") or business_date(settings.timezone)
        return views.delinquency(db_session(), settings, path_id("policy", policy_id), as_of)


@blp.route("/reports/collections-worklist")
class CollectionsWorklist(MethodView):
    @roles("billing", "finance", "auditor")
    @blp.arguments(WorklistArgs, location="query")
    @blp.response(200, WorklistOut)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Overdue policies, riskiest first (amount overdue × days overdue), with the last
        step taken; `?limit=&starting_after=<policy id>` pages on."""
        as_of = args.get("as_of") or business_date(_settings().timezone)
        page, more = views.worklist(db_session(), as_of, args)
        return {"as_of": as_of, "data": page, "has_more": more}
