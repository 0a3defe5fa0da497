"""Jobs: /api/v1/jobs (admin runs them for any business date)."""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint

from premium_billing.clock import business_date
from premium_billing.http.auth import roles
from premium_billing.http.session import database
from premium_billing.jobs.models import JobRun
from premium_billing.jobs.runner import JOBS, job_spec, last_runs, run_job
from premium_billing.jobs.scheduler import next_runs
from premium_billing.jobs.schemas import JobList, JobRunIn, JobRunOut

blp = Blueprint("jobs", __name__, url_prefix="/api/v1/jobs", description="Scheduled jobs")


def run_out(run: JobRun) -> dict[str, Any]:
    return {
        "id": run.id,
        "job": run.job,
        "as_of": run.as_of,
        "trigger": run.trigger,
        "status": run.status,
        "stats": run.stats,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
    }


@blp.route("")
class Jobs(MethodView):
    @roles("admin")
    @blp.response(200, JobList)
    def get(self) -> dict[str, Any]:
        """Jobs with their schedule (business time zone), next run and last run."""
        upcoming = next_runs(current_app)
        last = last_runs(database())
        tz = current_app.config["SETTINGS"].billing_timezone
        return {
            "data": [
                {
                    "name": name,
                    "description": spec.description,
                    "schedule": f"daily at {spec.default_time} {tz}"
                    if ":" in spec.default_time
                    else spec.default_time,
                    "next_run_at": upcoming.get(name),
                    "last_run": run_out(last[name]) if name in last else None,
                }
                for name, spec in JOBS.items()
            ]
        }


@blp.route("/<name>/runs")
class JobRuns(MethodView):
    @roles("admin")
    @blp.arguments(JobRunIn)
    @blp.response(201, JobRunOut)
    def post(self, data: dict[str, Any], name: str) -> dict[str, Any]:
        """Run a job now for a business date (default: today in BILLING_TIMEZONE)."""
        job_spec(name)
        settings = current_app.config["SETTINGS"]
        as_of = data.get("as_of") or business_date(settings.timezone)
        return run_out(run_job(database(), settings, name, as_of, trigger="api"))
