"""Policies: /api/v1/policies and their schedule, endorsements and renewal premium."""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import select

from premium_billing.http.auth import roles
from premium_billing.http.ids import path_id
from premium_billing.http.pagination import paginate
from premium_billing.http.session import db_session
from premium_billing.policies import service
from premium_billing.policies.models import Policy
from premium_billing.policies.schemas import (
    EndorsementIn,
    EndorsementOut,
    LinesSchema,
    PolicyCreate,
    PolicyFilters,
    PolicyList,
    PolicyOut,
    RenewalOut,
    ScheduleOut,
)
from premium_billing.policies.views import policy_loads, policy_out, schedule_out

blp = Blueprint("policies", __name__, url_prefix="/api/v1/policies", description="Policies")


def _settings():  # type: ignore[no-untyped-def]
    return current_app.config["SETTINGS"]


@blp.route("")
class Policies(MethodView):
    @roles("billing")
    @blp.arguments(PolicyFilters, location="query")
    @blp.response(200, PolicyList)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List policies, filtered by policyholder, status or policy number."""
        stmt = select(Policy).options(*policy_loads())
        if args.get("policyholder_id") is not None:
            stmt = stmt.where(Policy.policyholder_id == args["policyholder_id"])
        if args.get("status"):
            stmt = stmt.where(Policy.status == args["status"])
        if args.get("policy_number"):
            stmt = stmt.where(Policy.policy_number == args["policy_number"])
        rows, has_more = paginate(db_session(), stmt, Policy.id, "policy", args)
        return {"data": [policy_out(p) for p in rows], "has_more": has_more}

    @roles("billing")
    @blp.arguments(PolicyCreate)
    @blp.response(201, PolicyOut)
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Create a policy with its premium lines and installment schedule."""
        return policy_out(service.create_policy(db_session(), data))


@blp.route("/<policy_id>")
class PolicyById(MethodView):
    @roles("billing")
    @blp.response(200, PolicyOut)
    def get(self, policy_id: str) -> dict[str, Any]:
        """A policy with its current premium lines and schedule."""
        return policy_out(service.get_policy(db_session(), path_id("policy", policy_id)))


@blp.route("/<policy_id>/schedule")
class PolicySchedule(MethodView):
    @roles("billing")
    @blp.response(200, ScheduleOut)
    def get(self, policy_id: str) -> dict[str, Any]:
        """Every installment of every term: due date, amount, fee, status, invoice."""
        policy = service.get_policy(db_session(), path_id("policy", policy_id))
        return {"data": schedule_out(policy)}


@blp.route("/<policy_id>/endorsements")
class PolicyEndorsements(MethodView):
    @roles("billing")
    @blp.arguments(EndorsementIn)
    @blp.response(201, EndorsementOut)
    def post(self, data: dict[str, Any], policy_id: str) -> dict[str, Any]:
        """Change the premium lines mid-term; the pro-rata delta is spread over the
        unbilled installments (or billed at once when none is left)."""
        outcome = service.endorse(
            db_session(),
            path_id("policy", policy_id),
            data["effective_date"],
            data["lines"],
            data.get("reason"),
            _settings(),
        )
        term = service.current_term(outcome.policy, data["effective_date"])
        return {
            "delta_amount": outcome.endorsement.delta_amount,
            "days_remaining": outcome.endorsement.days_remaining,
            "term_days": (term.end_date - term.start_date).days,
            "effective_date": outcome.endorsement.effective_date,
            "annual_premium": outcome.endorsement.new_annual_premium,
            "schedule": schedule_out(outcome.policy),
        }


@blp.route("/<policy_id>/renewal")
class PolicyRenewal(MethodView):
    @roles("billing")
    @blp.arguments(LinesSchema)
    @blp.response(200, RenewalOut)
    def put(self, data: dict[str, Any], policy_id: str) -> dict[str, Any]:
        """Set the premium lines of the next term (used by the renewal job)."""
        policy = service.set_renewal_lines(
            db_session(), path_id("policy", policy_id), data["lines"]
        )
        lines = policy.renewal_lines or []
        return {
            "policy_id": policy.id,
            "annual_premium": sum(int(line["annual_premium"]) for line in lines),
            "lines": lines,
        }
