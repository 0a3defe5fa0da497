"""Marshmallow schemas of the reports."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from premium_billing.clock import outside_calendar
from premium_billing.http.ids import PublicId
from premium_billing.http.schemas import Currency, ListArgs, String
from premium_billing.reports.rules import BUCKETS, DAYS_PLACES, RATIO_PLACES, SECONDS_PLACES


def _in_calendar(day: Any) -> None:
    problem = outside_calendar(day)
    if problem is not None:
        raise ValidationError(problem)


class ReportDate(fields.Date):
    """A `YYYY-MM-DD` date of the calendar the service bills in (any past or future day)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(validate=_in_calendar, **kwargs)


class AgingArgs(ListArgs):
    as_of = ReportDate(
        load_default=None,
        metadata={"description": "What was owed at the end of this day (default: today)."},
    )
    currency = Currency(load_default=None, metadata={"description": "Only this currency."})
    format = String(
        load_default="json",
        validate=validate.OneOf(["json", "csv"]),
        metadata={"description": "`csv`: every row as a CSV download (no pagination)."},
    )
    starting_after = String(
        load_default=None, max_length=40, metadata={"description": "A policy id (`pol_…`)."}
    )


def _bucket_fields() -> dict[str, fields.Field]:
    return {bucket: fields.Integer(required=True) for bucket in BUCKETS}


AgingTotalsOut = Schema.from_dict(
    {
        "currency": fields.String(),
        **_bucket_fields(),
        "total": fields.Integer(),
        "invoices": fields.Integer(metadata={"description": "Invoices owed on as_of."}),
    },
    name="AgingTotals",
)

AgingRowOut = Schema.from_dict(
    {
        "policy_id": PublicId("policy"),
        "policy_number": fields.String(),
        "policyholder_id": PublicId("policyholder"),
        "policyholder_name": fields.String(),
        "currency": fields.String(),
        "oldest_due_date": fields.Date(metadata={"description": "Of the invoices owed on as_of."}),
        "days_past_due": fields.Integer(
            metadata={"description": "as_of − oldest_due_date (≤ 0: not yet due)."}
        ),
        **_bucket_fields(),
        "total": fields.Integer(),
        "delinquency_state": fields.String(
            metadata={"description": "The policy's status now (active, past_due, …)."}
        ),
    },
    name="AgingRow",
)


class AgingOut(Schema):
    as_of = fields.Date()
    currencies = fields.List(fields.Nested(AgingTotalsOut))
    data = fields.List(fields.Nested(AgingRowOut))
    has_more = fields.Boolean()


class KpiArgs(Schema):
    from_ = ReportDate(data_key="from", required=True, metadata={"description": "First day."})
    to = ReportDate(required=True, metadata={"description": "Last day (included)."})
    currency = Currency(load_default=None, metadata={"description": "Only this currency."})

    @validates_schema
    def _order(self, data: dict[str, Any], **_: Any) -> None:
        if "from_" in data and "to" in data and data["to"] < data["from_"]:
            raise ValidationError("Must not be before from.", "to")


def _ratio(places: int, what: str) -> fields.Decimal:
    return fields.Decimal(
        places=places,
        as_string=True,
        allow_none=True,
        metadata={"description": f"{what}; a decimal string, {places} places; null when ÷ 0."},
    )


class KpisCurrencyOut(Schema):
    currency = fields.String()
    billed = fields.Integer(metadata={"description": "Premium billed, net of voids and credits."})
    collected = fields.Integer(metadata={"description": "Payments applied to invoices."})
    collection_rate = _ratio(RATIO_PLACES, "collected ÷ billed")
    opening_receivables = fields.Integer()
    closing_receivables = fields.Integer()
    closing_current_receivables = fields.Integer()
    dso = _ratio(DAYS_PLACES, "closing receivables ÷ billed × days")
    cei = _ratio(RATIO_PLACES, "collection effectiveness index")
    written_off = fields.Integer()
    bank_payments = fields.Integer()
    auto_matched = fields.Integer()
    auto_match_rate = _ratio(RATIO_PLACES, "auto_matched ÷ bank_payments")
    suspense_count = fields.Integer()
    suspense_amount = fields.Integer()
    median_posting_latency_seconds = _ratio(SECONDS_PLACES, "Stripe event to posted")
    payment_attempts = fields.Integer()
    failed_payments = fields.Integer()
    failed_payment_rate = _ratio(RATIO_PLACES, "failed_payments ÷ payment_attempts")
    failed_invoices = fields.Integer()
    recovered_invoices = fields.Integer()
    recovery_rate = _ratio(RATIO_PLACES, "recovered_invoices ÷ failed_invoices")


class KpisOut(Schema):
    from_ = fields.Date(data_key="from")
    to = fields.Date()
    days = fields.Integer()
    currencies = fields.List(fields.Nested(KpisCurrencyOut))
