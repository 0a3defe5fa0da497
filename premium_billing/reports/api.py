"""Reports: /api/v1/reports (trial balance, aging, KPIs)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from flask import Response, current_app
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields

from premium_billing.clock import business_date
from premium_billing.errors import Unprocessable
from premium_billing.http.auth import roles
from premium_billing.http.ids import parse_id
from premium_billing.http.session import database, db_session
from premium_billing.reports.aging import AgingRow, AgingTotals, aging, aging_csv, csv_filename
from premium_billing.reports.kpis import kpis
from premium_billing.reports.rules import period_days
from premium_billing.reports.schemas import AgingArgs, AgingOut, KpiArgs, KpisOut
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


def _today() -> Any:
    return business_date(current_app.config["SETTINGS"].timezone)


def _flat(item: AgingTotals | AgingRow) -> dict[str, Any]:
    """The dataclass with its buckets as keys of their own (`current`, `1_30`, …)."""
    out = asdict(item)
    out.update(out.pop("buckets"))
    return out


@blp.route("/aging")
class Aging(MethodView):
    @roles("finance")
    @blp.arguments(AgingArgs, location="query")
    @blp.response(200, AgingOut)
    @blp.alt_response(
        200,
        description="`format=csv`: a row per policy, amounts in major units, streamed",
        content_type="text/csv",
    )
    def get(self, args: dict[str, Any]) -> Any:
        """Premium receivable owed at the end of `as_of`, per currency in the buckets
        `current` (not past due), `1_30`, `31_60`, `61_90`, `over_90` days past due, and a
        row per policy (ascending policy id, paginated). Computed from what was posted by
        then: an invoice paid since is still owed as of then."""
        as_of = args["as_of"] or _today()
        if args["format"] == "csv":
            return Response(
                aging_csv(database(), as_of, args["currency"]),
                mimetype="text/csv",
                headers={
                    "Content-Disposition": (
                        f'attachment; filename="{csv_filename(as_of, args["currency"])}"'
                    )
                },
            )
        after = None
        if args["starting_after"] is not None:
            after = parse_id("policy", args["starting_after"])
            if after is None:
                raise Unprocessable("Not a valid policy id.", field="starting_after")
        report = aging(
            db_session(), as_of, args["currency"], limit=args["limit"], after_policy_id=after
        )
        return {
            "as_of": report.as_of,
            "currencies": [_flat(t) for t in report.totals],
            "data": [_flat(r) for r in report.rows],
            "has_more": report.has_more,
        }


@blp.route("/kpis")
class Kpis(MethodView):
    @roles("finance")
    @blp.arguments(KpiArgs, location="query")
    @blp.response(200, KpisOut)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Billing KPIs of the period `from`..`to` (both included), per currency: billed,
        collected, collection rate, DSO, collection effectiveness index, write-offs,
        auto-match rate, suspense, median posting latency, failed payment and recovery
        rates (formulas: docs/kpis.md)."""
        start, end = args["from_"], args["to"]
        settings = current_app.config["SETTINGS"]
        figures = kpis(db_session(), start, end, settings.timezone, args["currency"])
        return {
            "from_": start,
            "to": end,
            "days": period_days(start, end),
            "currencies": [asdict(k) for k in figures],
        }
