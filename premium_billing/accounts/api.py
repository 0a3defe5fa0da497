"""Policyholders: /api/v1/policyholders."""

from __future__ import annotations

from typing import Any

from flask import Response
from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import select

from premium_billing.accounts.balances import account_balances, balances_of
from premium_billing.accounts.schemas import StatementArgs, StatementOut
from premium_billing.http.auth import roles
from premium_billing.http.ids import path_id
from premium_billing.http.pagination import paginate
from premium_billing.http.schemas import ListArgs
from premium_billing.http.session import db_session
from premium_billing.policies import policyholders as service
from premium_billing.policies.models import Policyholder
from premium_billing.policies.schemas import (
    PolicyholderCreate,
    PolicyholderList,
    PolicyholderOut,
    PolicyholderPatch,
)
from premium_billing.policies.views import policyholder_out

blp = Blueprint(
    "policyholders", __name__, url_prefix="/api/v1/policyholders", description="Policyholders"
)


def _out(holder: Policyholder) -> dict[str, Any]:
    balance, credit = account_balances(db_session(), holder.id)
    return policyholder_out(holder, balance, credit)


@blp.route("")
class Policyholders(MethodView):
    @roles("billing")
    @blp.arguments(ListArgs, location="query")
    @blp.response(200, PolicyholderList)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List policyholders (cursor pagination, ascending id)."""
        session = db_session()
        rows, has_more = paginate(
            session, select(Policyholder), Policyholder.id, "policyholder", args
        )
        balances = balances_of(session, [h.id for h in rows])
        return {
            "data": [policyholder_out(h, *balances[h.id]) for h in rows],
            "has_more": has_more,
        }

    @roles("billing")
    @blp.arguments(PolicyholderCreate)
    @blp.response(201, PolicyholderOut)
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Create a policyholder."""
        return _out(service.create_policyholder(db_session(), data))


@blp.route("/<holder_id>")
class PolicyholderById(MethodView):
    @roles("billing")
    @blp.response(200, PolicyholderOut)
    def get(self, holder_id: str) -> dict[str, Any]:
        """A policyholder with `balance` (amount due) and `credit_balance`."""
        session = db_session()
        return _out(service.get_policyholder(session, path_id("policyholder", holder_id)))

    @roles("billing")
    @blp.arguments(PolicyholderPatch)
    @blp.response(200, PolicyholderOut)
    def patch(self, data: dict[str, Any], holder_id: str) -> dict[str, Any]:
        """Change some of a policyholder's fields."""
        number = path_id("policyholder", holder_id)
        return _out(service.update_policyholder(db_session(), number, data))


@blp.route("/<holder_id>/statement")
class PolicyholderStatement(MethodView):
    @roles("billing", "finance")
    @blp.arguments(StatementArgs, location="query")
    @blp.response(200, StatementOut)
    @blp.alt_response(
        200,
        description="`format=html`: the statement as a printable page",
        content_type="text/html",
    )
    def get(self, args: dict[str, Any], holder_id: str) -> Any:
        """Statement of account for a period: opening balance, invoices, payments,
        refunds and write-offs with a running balance, closing balance; per currency."""
        from flask import render_template

        from premium_billing.accounts.statement_of_account import statement
        from premium_billing.money import format_major

        number = path_id("policyholder", holder_id)
        result = statement(db_session(), number, args["from_"], args["to"])
        if args["format"] == "html":
            html = render_template(
                "statement.html",
                s=result,
                money=lambda amount, currency: format_major(amount, currency, thousands=True),
            )
            return Response(html, mimetype="text/html")
        return result
