"""Business dates in requests: a date field that refuses a date outside the business
date's window (`premium_billing.clock.window_problem`) with a 422 naming the field; with
ALLOW_TIME_TRAVEL on, only a date outside the calendar the service bills in."""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import current_app
from marshmallow import ValidationError, fields

from premium_billing.clock import CALENDAR_END, CALENDAR_START, window_problem


class BusinessDate(fields.Date):
    """A `YYYY-MM-DD` date the service acts on, within the business date's window:
    `ahead=False` for a day that has come (a job's `as_of`, a payment's `received_on`),
    `ahead=True` for an effective date (a policy sold, changed or cancelled ahead)."""

    def __init__(self, *, ahead: bool, **kwargs: Any) -> None:
        metadata = dict(kwargs.pop("metadata", None) or {})
        window = (
            "Within BUSINESS_DATE_WINDOW_DAYS of the business date"
            if ahead
            else "Not after the business date, nor more than BUSINESS_DATE_WINDOW_DAYS before it"
        ) + (
            f" (with ALLOW_TIME_TRAVEL, any date from {CALENDAR_START.isoformat()} to "
            f"{CALENDAR_END.isoformat()})."
        )
        described = metadata.get("description")
        metadata["description"] = f"{described} {window}" if described else window
        super().__init__(metadata=metadata, **kwargs)
        self.ahead = ahead

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> date:
        day: date = super()._deserialize(value, attr, data, **kwargs)
        problem = window_problem(current_app.config["SETTINGS"], day, ahead=self.ahead)
        if problem is not None:
            raise ValidationError(problem)
        return day
