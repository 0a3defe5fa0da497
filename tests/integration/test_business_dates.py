"""Business dates are guarded (issue 12, item 6), over real HTTP and the CLI on each backend:
a job's as_of, a payment's received_on and an effective date outside the business date's
window are a 422 naming the field, and nothing is done; with ALLOW_TIME_TRAVEL (the demo,
the rest of the tests) they are taken, within the calendar the service bills in.

Dates are chosen a day or more away from each bound, so that a run crossing midnight stays
true; the exact bounds are the unit tests' (tests/unit/test_business_date_window.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from premium_billing.audit import trail as audit
from premium_billing.clock import business_date
from premium_billing.config import Settings
from premium_billing.errors import Unprocessable
from premium_billing.jobs.models import JobRun
from premium_billing.jobs.runner import run_job
from tests.factories import create_policyholder, pet_line, policy_body
from tests.integration.ledger_helpers import ledger_problems

WINDOW = 90


@pytest.fixture
def time_travel(request: pytest.FixtureRequest) -> bool:
    return bool(getattr(request, "param", False))


@pytest.fixture
def settings(database_url: str, time_travel: bool) -> Settings:
    # ALLOW_TIME_TRAVEL off, as in production, unless a test asks for it.
    return Settings(database_url=database_url, allow_time_travel=time_travel)


def today() -> date:
    return business_date(ZoneInfo("UTC"))


def day(offset: int) -> str:
    return (today() + timedelta(days=offset)).isoformat()


def refused(response: Any, field: str) -> str:
    assert response.status_code == 422, response.text
    body = response.json()
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert list(body["errors"]) == [field], body
    assert field in body["detail"]
    (message,) = body["errors"][field]
    assert message.startswith("Must be between "), message
    return str(message)


def books_hold(db: Any) -> None:
    assert ledger_problems(db) == []
    with db.session() as session:
        assert audit.verify(session).problem is None


def cli(database_url: str, *args: str, travel: bool = False) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "ALLOW_TIME_TRAVEL": "true" if travel else "false",
    }
    return subprocess.run(
        [sys.executable, "-m", "premium_billing", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def one_line_error(result: subprocess.CompletedProcess[str], starts: str) -> str:
    assert result.returncode != 0, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(starts), lines
    return lines[0]


def new_policy(api: Any, holder: str, effective: str, number: str) -> Any:
    return api.post(
        "/policies",
        json=policy_body(holder, policy_number=number, effective_date=effective),
    )


def job_runs(db: Any) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(JobRun)) or 0)


def test_a_job_for_a_day_to_come_is_refused_and_issues_nothing(api, db, database_url):
    """The issue's example: a run 83 days ahead (2027-02-20 on 2026-11-29) issued invoices
    dated then, a payment of the day was applied to one and the day's receivable read
    negative. Now it is refused, by the API and by the CLI, and the books of the day hold."""
    holder = create_policyholder(api)["id"]
    policy = new_policy(api, holder, day(60), "PET-AHEAD")  # sold two months ahead: fine
    assert policy.status_code == 201, policy.text

    message = refused(api.post("/jobs/issue_invoices/runs", json={"as_of": day(83)}), "as_of")
    assert f"not after the business date, {today().isoformat()}" in message
    refused(api.post("/jobs/renewals/runs", json={"as_of": "9999-12-31"}), "as_of")
    refused(api.post("/jobs/reconcile/runs", json={"as_of": day(-WINDOW - 2)}), "as_of")
    result = cli(database_url, "run-job", "issue_invoices", "--as-of", day(83), "--quiet")
    line = one_line_error(result, f"Error: --as-of {day(83)}: Must be between")
    assert "not after the business date" in line
    one_line_error(
        cli(database_url, "run-job", "issue_invoices", "--as-of", "2026-02-30"),
        "Error: --as-of: '2026-02-30' is not a date",
    )
    assert job_runs(db) == 0  # refused before a run is recorded
    assert api.get("/invoices").json()["data"] == []

    paid = api.post(
        "/payments",
        json={"amount": 24019, "currency": "USD", "method": "check", "received_on": day(0),
              "policyholder_id": holder},
    )  # fmt: skip
    assert paid.status_code == 201, paid.text
    assert paid.json()["status"] == "unapplied"  # the holder's credit: nothing is due yet
    trial = api.get("/reports/trial-balance", params={"as_of": day(0)}).json()
    balances = {
        (c["currency"], a["account"]): a["balance"]
        for c in trial["currencies"]
        for a in c["accounts"]
    }
    assert balances.get(("USD", "premium_receivable"), 0) >= 0, balances

    now = api.post("/jobs/issue_invoices/runs", json={"as_of": day(0)})
    assert now.status_code == 201, now.text
    assert now.json()["stats"]["invoices_issued"] == 0  # first due in 60 days, lead 14
    assert api.post("/jobs/issue_invoices/runs", json={}).status_code == 201  # today
    done = cli(database_url, "run-job", "issue_invoices", "--as-of", day(-1), "--quiet")
    assert done.returncode == 0, done.stderr
    assert job_runs(db) == 3
    books_hold(db)


def test_the_service_refuses_a_run_before_it_records_it(db, settings):
    with pytest.raises(Unprocessable) as refusal:
        run_job(db, settings, "issue_invoices", today() + timedelta(days=2))
    assert refusal.value.field == "as_of"
    assert job_runs(db) == 0
    assert run_job(db, settings, "issue_invoices", today()).status == "succeeded"


def test_a_payment_received_on_a_day_to_come_or_long_gone_is_refused(api, db):
    def receive(received_on: str, external_id: str) -> Any:
        return api.post(
            "/payments",
            json={"amount": 5000, "currency": "USD", "method": "check",
                  "received_on": received_on, "external_id": external_id},
        )  # fmt: skip

    refused(receive("9999-12-31", "CHK-1"), "received_on")  # the issue's example
    refused(receive(day(2), "CHK-2"), "received_on")
    refused(receive(day(-WINDOW - 2), "CHK-3"), "received_on")
    assert api.get("/payments").json()["data"] == []
    for n, received_on in enumerate((day(0), day(1 - WINDOW)), start=4):
        accepted = receive(received_on, f"CHK-{n}")
        assert accepted.status_code == 201, accepted.text
        assert accepted.json()["received_on"] == received_on
    assert len(api.get("/payments").json()["data"]) == 2
    books_hold(db)


def test_effective_dates_beyond_the_window_are_refused(api, db):
    holder = create_policyholder(api)["id"]
    for n, effective in enumerate((day(WINDOW + 2), day(-WINDOW - 2), "9999-12-31", "0001-01-01")):
        refused(new_policy(api, holder, effective, f"PET-NO{n}"), "effective_date")
    assert api.get("/policies").json()["data"] == []
    ahead = new_policy(api, holder, day(WINDOW - 1), "PET-AHEAD")
    assert ahead.status_code == 201, ahead.text
    backdated = new_policy(api, holder, day(1 - WINDOW), "PET-BACK")
    assert backdated.status_code == 201, backdated.text
    policy = backdated.json()["id"]

    lines = {"lines": [pet_line("Rex", 48000), pet_line("Tom", 24000)], "reason": "a cat"}
    endorse = f"/policies/{policy}/endorsements"
    refused(api.post(endorse, json={**lines, "effective_date": day(WINDOW + 2)}), "effective_date")
    endorsed = api.post(endorse, json={**lines, "effective_date": day(0)})
    assert endorsed.status_code == 201, endorsed.text

    cancel = f"/policies/{policy}/cancellations"
    refused(api.post(cancel, json={"effective_date": "9999-12-31"}), "effective_date")
    refused(api.post(cancel, json={"effective_date": day(-WINDOW - 2)}), "effective_date")
    cancelled = api.post(cancel, json={"effective_date": day(1), "reason": "sold the dog"})
    assert cancelled.status_code == 201, cancelled.text

    reinstate = f"/policies/{policy}/reinstatements"
    refused(api.post(reinstate, json={"effective_date": day(WINDOW + 2)}), "effective_date")
    reinstated = api.post(reinstate, json={"effective_date": day(2)})
    assert reinstated.status_code == 201, reinstated.text
    assert reinstated.json()["status"] == "active"
    books_hold(db)


def test_a_reconciliation_run_for_a_day_to_come_is_refused(api, db, database_url):
    runs = "/reconciliation/runs"
    refused(api.post(runs, json={"as_of": day(2)}), "as_of")
    refused(api.post(runs, json={"as_of": "9999-12-31"}), "as_of")
    assert api.post(runs, json={"as_of": day(0)}).status_code == 201
    assert api.post(runs, json={}).status_code == 201
    one_line_error(
        cli(database_url, "reconcile", "--as-of", "9999-12-31", "--quiet"),
        "Error: --as-of 9999-12-31: Must be between",
    )
    assert cli(database_url, "reconcile", "--as-of", day(-1), "--quiet").returncode == 0
    books_hold(db)


@pytest.mark.parametrize("time_travel", [True], indirect=True)
def test_time_travel_takes_any_date_of_the_calendar(api, db, database_url):
    """ALLOW_TIME_TRAVEL (the demo, the tests): the issue's run is taken again, and a date
    no term, lead time or look-back can be computed from is still a 422, never a 500."""
    holder = create_policyholder(api)["id"]
    assert new_policy(api, holder, day(60), "PET-AHEAD").status_code == 201
    run = api.post("/jobs/issue_invoices/runs", json={"as_of": day(83)})
    assert run.status_code == 201, run.text
    assert run.json()["stats"]["invoices_issued"] >= 1
    ok = cli(database_url, "run-job", "issue_invoices", "--as-of", day(400), "--quiet", travel=True)
    assert ok.returncode == 0, ok.stderr

    far = {"amount": 100, "currency": "USD", "method": "cash"}
    assert api.post("/payments", json={**far, "received_on": "2999-12-31"}).status_code == 201
    assert api.post("/payments", json={**far, "received_on": "1900-01-01"}).status_code == 201
    for beyond in ("9999-12-31", "0001-01-01", "1899-12-31", "3000-01-01"):
        message = refused(api.post("/payments", json={**far, "received_on": beyond}), "received_on")
        assert (
            message == "Must be between 1900-01-01 and 2999-12-31: the dates the service bills in."
        )
        refused(new_policy(api, holder, beyond, f"PET-{beyond}"), "effective_date")
        for job in ("issue_invoices", "renewals", "reconcile"):
            refused(api.post(f"/jobs/{job}/runs", json={"as_of": beyond}), "as_of")
        refused(api.post("/reconciliation/runs", json={"as_of": beyond}), "as_of")
    one_line_error(
        cli(database_url, "run-job", "renewals", "--as-of", "9999-12-31", travel=True),
        "Error: --as-of 9999-12-31: Must be between 1900-01-01 and 2999-12-31",
    )
    for edge in ("2999-12-31", "1900-01-01"):
        for job in ("issue_invoices", "renewals", "reconcile"):
            response = api.post(f"/jobs/{job}/runs", json={"as_of": edge})
            assert response.status_code == 201, (job, edge, response.text)
    books_hold(db)


def test_a_term_is_at_most_120_months_whichever_way_it_is_given(api):
    holder = create_policyholder(api)["id"]
    start = today().replace(day=1)  # within the window; a whole number of months on
    body = policy_body(holder)
    body.pop("term_months")
    body["effective_date"] = start.isoformat()
    body["expiration_date"] = start.replace(year=start.year + 11).isoformat()  # 132 months
    response = api.post("/policies", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["errors"] == {
        "expiration_date": ["Must be at most 120 months after effective_date."]
    }
    body["expiration_date"] = start.replace(year=start.year + 10).isoformat()
    assert api.post("/policies", json=body).status_code == 201
