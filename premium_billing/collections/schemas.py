"""Collections' request and response schemas."""

from __future__ import annotations

from marshmallow import Schema, fields

from premium_billing.http.ids import PublicId
from premium_billing.http.schemas import ListArgs, ListMeta


class AsOfArgs(Schema):
    as_of = fields.Date(
        load_default=None, metadata={"description": "The business date (default: today)."}
    )


class WorklistArgs(ListArgs):
    as_of = fields.Date(
        load_default=None, metadata={"description": "The business date (default: today)."}
    )


class StepRuleOut(Schema):
    step = fields.String()
    # `from` is a Python keyword: the field is read from and written as "from".
    from_ = fields.String(data_key="from", attribute="from")
    days = fields.Integer()


class TimelineOut(Schema):
    step = fields.String()
    days_after_due = fields.Integer()


class PlanOut(Schema):
    product = fields.String()
    grace_start_days = fields.Integer(
        metadata={"description": "grace starts this many days after the oldest unpaid due date"}
    )
    grace_days = fields.Integer(
        metadata={"description": "grace ends (the lapse) this many days after it"}
    )
    steps = fields.List(fields.Nested(StepRuleOut))
    timeline = fields.List(fields.Nested(TimelineOut))
    autopay_retry_days = fields.List(fields.Integer())
    threshold = fields.Integer(metadata={"description": "minor units: less unpaid is not chased"})
    late_fee = fields.Integer()
    reinstatement_fee = fields.Integer()
    reinstatement_days = fields.Integer()


class PlanList(Schema):
    data = fields.List(fields.Nested(PlanOut))


class StepOut(Schema):
    step = fields.String(
        metadata={
            "description": "reminder, grace_notice, final_notice, late_fee, lapse, reinstatement"
        }
    )
    days_after_due = fields.Integer()
    on = fields.Date(
        metadata={"description": "taken on (taken, pending) or its day (scheduled, due, skipped)"}
    )
    status = fields.String(
        metadata={"description": "taken, pending, failed, due, skipped (stale), scheduled"}
    )
    oldest_unpaid_due_date = fields.Date()


class DelinquencyOut(Schema):
    policy_id = PublicId("policy")
    state = fields.String(
        metadata={"description": "active, past_due, in_grace, lapsed, reinstated"}
    )
    since = fields.Date(allow_none=True)
    as_of = fields.Date()
    oldest_unpaid_due_date = fields.Date(allow_none=True)
    amount_overdue = fields.Integer()
    currency = fields.String()
    grace_starts_on = fields.Date(allow_none=True)
    grace_ends_on = fields.Date(allow_none=True)
    lapse_on = fields.Date(allow_none=True)
    lapsed_on = fields.Date(allow_none=True)
    steps = fields.List(fields.Nested(StepOut))


class LastStepOut(Schema):
    step = fields.String()
    on = fields.Date()


class WorklistItem(Schema):
    policy_id = PublicId("policy")
    policy_number = fields.String()
    policyholder_id = PublicId("policyholder")
    state = fields.String()
    oldest_unpaid_due_date = fields.Date()
    days_overdue = fields.Integer()
    amount_overdue = fields.Integer()
    currency = fields.String()
    risk = fields.Integer(metadata={"description": "amount overdue × days overdue"})
    last_step = fields.Nested(LastStepOut, allow_none=True)


class WorklistOut(ListMeta):
    as_of = fields.Date()
    data = fields.List(fields.Nested(WorklistItem))
