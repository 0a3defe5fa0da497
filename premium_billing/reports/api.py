"""Reports: /api/v1/reports (trial balance)."""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields

from premium_billing.clock import business_date
from premium_billing.http.auth import roles
from premium_billing.http.session import db_session
from premium_billing.reports.trial_balance import trial_balance

blp = Blueprint("reports", __name__, url_prefix="/api/v1/reports", description="Reports")


class TrialBalanceArgs(Schema):
    as_of = fields.Date(
        load_default=None, metadata={"description": "Entries up to this date (default: today)."}
    )


class TrialBalanceAccount(Schema):
    account = fields.String()
    type = fields.String(metadata={"description": "asset, liability, revenue or expense"})
    debit = fields.Integer()
    credit = fields.Integer()
    balance = fields.Integer(metadata={"description": "debit − credit, minor units"})


class TrialBalanceCurrency(Schema):
    currency = fields.String()
    accounts = fields.List(fields.Nested(TrialBalanceAccount))
    total_debit = fields.Integer()
    total_credit = fields.Integer()
    balanced = fields.Boolean()


class TrialBalanceOut(Schema):
    as_of = fields.Date()
    currencies = fields.List(fields.Nested(TrialBalanceCurrency))


@blp.route("/trial-balance")
class TrialBalance(MethodView):
    @roles("finance")
    @blp.arguments(TrialBalanceArgs, location="query")
    @blp.response(200, TrialBalanceOut)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Debits and credits per account and currency from the journal, up to `as_of`."""
        as_of = args.get("as_of") or business_date(current_app.config["SETTINGS"].timezone)
        return trial_balance(db_session(), as_of)
