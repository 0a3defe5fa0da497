"""Date edges of invoicing: anchor days 29/30/31 across February and leap years, the
business date around daylight-saving changes, a policy effective today."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from premium_billing.clock import business_date
from premium_billing.jobs.runner import run_job
from tests.factories import create_policy, create_policyholder

NEW_YORK = ZoneInfo("America/New_York")


def due_dates(api, policy_id):
    invoices = api.get("/invoices", params={"policy_id": policy_id}).json()["data"]
    return [i["due_date"] for i in invoices]


@pytest.mark.parametrize(
    "effective,february_due",
    [
        ("2027-01-29", "2027-02-28"),
        ("2027-01-30", "2027-02-28"),
        ("2027-01-31", "2027-02-28"),
        ("2028-01-29", "2028-02-29"),
        ("2028-01-30", "2028-02-29"),
        ("2028-01-31", "2028-02-29"),
    ],
)
def test_anchor_day_across_february_is_invoiced_on_the_lead_day(
    api, db, settings, effective, february_due
):
    holder = create_policyholder(api)["id"]
    policy = create_policy(api, holder, effective_date=effective)
    feb = date.fromisoformat(february_due)
    day_before = feb - timedelta(days=settings.invoice_lead_days + 1)
    run_job(db, settings, "issue_invoices", day_before)
    assert due_dates(api, policy["id"]) == [effective]
    run_job(db, settings, "issue_invoices", day_before + timedelta(days=1))
    assert due_dates(api, policy["id"]) == [effective, february_due]
    # March keeps the anchor day, not February's
    march = api.get(f"/policies/{policy['id']}/schedule").json()["data"][2]["due_date"]
    assert march == effective.replace("-01-", "-03-")


@pytest.mark.parametrize(
    "instant,local_date",
    [
        # spring forward 2026-03-08 02:00 EST → 03:00 EDT
        ("2026-03-08T04:30:00+00:00", "2026-03-07"),  # 23:30 EST on the 7th
        ("2026-03-08T05:30:00+00:00", "2026-03-08"),  # 00:30 EST on the 8th
        ("2026-03-09T03:30:00+00:00", "2026-03-08"),  # 23:30 EDT on the 8th
        ("2026-03-09T04:30:00+00:00", "2026-03-09"),  # 00:30 EDT on the 9th
        # fall back 2026-11-01 02:00 EDT → 01:00 EST
        ("2026-11-01T03:30:00+00:00", "2026-10-31"),  # 23:30 EDT on the 31st
        ("2026-11-01T04:30:00+00:00", "2026-11-01"),  # 00:30 EDT on the 1st
        ("2026-11-02T04:30:00+00:00", "2026-11-01"),  # 23:30 EST on the 1st
        ("2026-11-02T05:30:00+00:00", "2026-11-02"),  # 00:30 EST on the 2nd
    ],
)
def test_business_date_around_daylight_saving_changes(instant, local_date):
    assert business_date(NEW_YORK, datetime.fromisoformat(instant)).isoformat() == local_date


def test_jobs_run_for_the_new_york_business_date_across_the_change(api, db, settings):
    ny = settings.with_overrides(billing_timezone="America/New_York")
    holder = create_policyholder(api)["id"]
    # Due 14 days after each business date on either side of the spring change.
    create_policy(api, holder, policy_number="A", effective_date="2026-03-21")
    create_policy(api, holder, policy_number="B", effective_date="2026-03-22")
    late_evening = datetime(2026, 3, 8, 4, 30, tzinfo=UTC)  # 23:30 EST, March 7
    as_of = business_date(ny.timezone, late_evening)
    assert run_job(db, ny, "issue_invoices", as_of).stats["invoices_issued"] == 1
    after_midnight = datetime(2026, 3, 8, 5, 30, tzinfo=UTC)  # 00:30 EST, March 8
    as_of = business_date(ny.timezone, after_midnight)
    assert run_job(db, ny, "issue_invoices", as_of).stats["invoices_issued"] == 1


def test_a_policy_effective_today_is_invoiced_today(api, db, settings):
    today = date(2026, 6, 15)
    policy = create_policy(api, effective_date=today.isoformat())
    run_job(db, settings, "issue_invoices", today)
    invoice = api.get("/invoices", params={"policy_id": policy["id"]}).json()["data"][0]
    assert invoice["issue_date"] == invoice["due_date"] == today.isoformat()
