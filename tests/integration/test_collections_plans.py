"""Delinquency plans from DELINQUENCY_PLANS: fees as invoice lines (a late fee at grace
start, a reinstatement fee when reinstated), and a bad plan stopping start-up in one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta

import pytest

from premium_billing.config import Settings
from tests.integration.collections_helpers import Heard, monthly_policy, number, pay_all, run_days
from tests.integration.settlement_helpers import books_ok, invoices_of
from tests.integration.test_collections import TODAY

PLANS = {"pet": {"late_fee": 1500, "reinstatement_fee": 2500}}


@pytest.fixture
def settings(database_url, tmp_path):
    path = tmp_path / "plans.json"
    path.write_text(json.dumps(PLANS))
    return Settings(database_url=database_url, allow_time_travel=True, delinquency_plans=str(path))


def _lines(api, policy_id: str) -> list[str]:
    return [line["kind"] for i in invoices_of(api, policy_id) for line in i["lines"]]


def test_late_fee_at_grace_start_and_reinstatement_fee_when_reinstated(api, db, settings):
    heard = Heard(db)
    due = TODAY - timedelta(days=40)
    policy = monthly_policy(api, "FEE-1", effective=due.isoformat())
    pid = number(policy["id"])
    run_days(db, settings, due - timedelta(days=14), due + timedelta(days=14))
    assert _lines(api, policy["id"]).count("late_fee") == 1
    assert ("late_fee", None, due + timedelta(days=14)) in heard.step_days(pid)
    run_days(db, settings, due + timedelta(days=15), TODAY - timedelta(days=1))
    assert api.get(f"/policies/{policy['id']}").json()["status"] == "lapsed"
    pay_all(api, policy, TODAY)
    run_days(db, settings, TODAY, TODAY)
    assert ("lapsed", "reinstated", TODAY) in heard.states(pid)
    assert _lines(api, policy["id"]).count("reinstatement_fee") == 1
    assert _lines(api, policy["id"]).count("late_fee") == 1
    plans = api.get("/delinquency-plans").json()["data"]
    assert {p["product"]: p["reinstatement_fee"] for p in plans} == {"pet": 2500, "general": 0}
    books_ok(db)


def test_a_bad_plan_stops_start_up_with_one_line(tmp_path):
    path = tmp_path / "plans.json"
    path.write_text(json.dumps({"pet": {"grace_start_days": 45}}))
    env = {**os.environ, "DELINQUENCY_PLANS": str(path),
           "DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "premium_billing", "routes"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: DELINQUENCY_PLANS: pet.grace_start_days: between 1 and grace_days (30)"
    ]
