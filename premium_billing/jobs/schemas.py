"""Marshmallow schemas shared by the API blueprints."""

from __future__ import annotations

from marshmallow import Schema, fields

from premium_billing.http.dates import BusinessDate
from premium_billing.http.ids import PublicId


class JobRunIn(Schema):
    as_of = BusinessDate(ahead=False, load_default=None)


class JobRunOut(Schema):
    id = PublicId("run")
    job = fields.String()
    as_of = fields.Date()
    trigger = fields.String()
    status = fields.String()
    stats = fields.Dict(allow_none=True)
    started_at = fields.DateTime(format="iso")
    finished_at = fields.DateTime(format="iso", allow_none=True)


class JobOut(Schema):
    name = fields.String()
    description = fields.String()
    schedule = fields.String()
    next_run_at = fields.DateTime(format="iso", allow_none=True)
    last_run = fields.Nested(JobRunOut, allow_none=True)


class JobList(Schema):
    data = fields.List(fields.Nested(JobOut))
