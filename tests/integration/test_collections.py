"""Collections on both backends: a policy's days run one by one (issue_invoices, then
collections), each step on its day and once, payments in grace, partial payments, credits,
lapse and reinstatement, a cancelled policy, and the worklist."""

from __future__ import annotations

import json
from datetime import date, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from premium_billing.clock import business_date
from premium_billing.jobs.runner import run_job
from premium_billing.notifications.models import Notification
from premium_billing.notifications.rules import STEP_KINDS
from premium_billing.outbound.models import OutboundEvent
from tests.integration.collections_helpers import Heard, monthly_policy, number, pay_all, run_days
from tests.integration.settlement_helpers import books_ok, cancel, invoices_of, pay_by_check

TODAY = business_date(ZoneInfo("UTC"))  # a payment is posted on today's business date


def test_a_year_without_payment_takes_each_step_once_on_its_day(api, db, settings):
    heard = Heard(db)
    policy = monthly_policy(api, "COL-1")
    pid = number(policy["id"])
    run_days(db, settings, "2025-12-18", "2026-12-31")
    assert heard.step_days(pid) == [
        ("reminder", -3, date(2025, 12, 29)),
        ("reminder", 3, date(2026, 1, 4)),
        ("reminder", 10, date(2026, 1, 11)),
        ("grace_notice", None, date(2026, 1, 15)),
        ("final_notice", None, date(2026, 1, 24)),
        ("lapse", None, date(2026, 1, 31)),
    ]
    assert heard.states(pid) == [
        ("active", "past_due", date(2026, 1, 2)),
        ("past_due", "in_grace", date(2026, 1, 15)),
        ("in_grace", "lapsed", date(2026, 1, 31)),
    ]
    assert api.get(f"/policies/{policy['id']}").json()["status"] == "lapsed"
    body = api.get(f"/policies/{policy['id']}/delinquency", params={"as_of": "2026-12-31"}).json()
    assert body["state"] == "lapsed"
    assert [s["step"] for s in body["steps"] if s["status"] == "taken"] == [
        "reminder", "reminder", "reminder", "grace_notice", "final_notice", "lapse"
    ]  # fmt: skip
    books_ok(db)


def _invoice(api, policy, due: date | None, nth: int = 0) -> dict:
    """The policy's invoice due on `due`, or its `nth` by due date."""
    invoices = invoices_of(api, policy["id"])
    if due is None:
        return invoices[nth]
    (found,) = [i for i in invoices if i["due_date"] == due.isoformat()]
    return found


def test_a_payment_in_grace_brings_it_back_to_active_and_stops_the_steps(api, db, settings):
    # The payment is posted today (its business date): the policy was due 16 days ago.
    heard = Heard(db)
    due = TODAY - timedelta(days=16)
    policy = monthly_policy(api, "COL-2", effective=due.isoformat())
    pid = number(policy["id"])
    run_days(db, settings, due - timedelta(days=14), TODAY)
    assert api.get(f"/policies/{policy['id']}").json()["status"] == "in_grace"
    pay_by_check(api, _invoice(api, policy, due), on=TODAY.isoformat())
    # In the payment's transaction: back to active, the policy's status with it.
    assert heard.states(pid)[-1] == ("in_grace", "active", TODAY)
    assert api.get(f"/policies/{policy['id']}").json()["status"] == "active"
    before = list(heard.step_days(pid))
    # The final notice's and the lapse's days pass: nothing but the next installment's own
    # reminder before its due date.
    run_days(db, settings, TODAY + timedelta(days=1), due + timedelta(days=30))
    after = heard.step_days(pid)[len(before) :]
    assert all(s[:2] == ("reminder", -3) for s in after), after
    assert all(s[0] not in ("final_notice", "lapse") for s in heard.step_days(pid))
    books_ok(db)


def test_a_partial_payment_re_anchors_on_the_next_oldest_installment(api, db, settings):
    heard = Heard(db)
    due = TODAY - timedelta(days=20)
    policy = monthly_policy(api, "COL-3", effective=due.isoformat())
    pid = number(policy["id"])
    run_days(db, settings, due - timedelta(days=14), TODAY)
    first = _invoice(api, policy, due)
    # Half of the first installment: still anchored on it, still in grace.
    pay_by_check(api, first, amount=first["amount_due"] // 2, on=TODAY.isoformat())
    assert api.get(f"/policies/{policy['id']}").json()["status"] == "in_grace"
    # The rest: the second installment (not yet due) is now the oldest unpaid.
    pay_by_check(api, _invoice(api, policy, due), on=TODAY.isoformat())
    assert heard.states(pid)[-1] == ("in_grace", "active", TODAY)
    second = date.fromisoformat(_invoice(api, policy, None, nth=1)["due_date"])
    taken = len(heard.steps)
    run_days(db, settings, TODAY + timedelta(days=1), second + timedelta(days=16))
    after = [(s["step"], s.get("offset"), s["on"], s["oldest_unpaid_due_date"])
             for s in heard.steps[taken:]]  # fmt: skip
    # No lapse 30 days after the first due date: the schedule starts again from the second.
    assert after == [
        ("reminder", -3, second - timedelta(days=3), second),
        ("reminder", 3, second + timedelta(days=3), second),
        ("reminder", 10, second + timedelta(days=10), second),
        ("grace_notice", None, second + timedelta(days=14), second),
    ]
    assert heard.states(pid)[-2:] == [
        ("active", "past_due", second + timedelta(days=1)),
        ("past_due", "in_grace", second + timedelta(days=14)),
    ]
    books_ok(db)


def test_a_credit_that_clears_the_balance_makes_it_active_again(api, db, settings):
    heard = Heard(db)
    due = TODAY - timedelta(days=19)
    policy = monthly_policy(api, "COL-4", effective=due.isoformat())
    pid = number(policy["id"])
    run_days(db, settings, due - timedelta(days=14), TODAY)
    assert api.get(f"/policies/{policy['id']}").json()["status"] == "in_grace"
    first = _invoice(api, policy, due)
    # Money of the policyholder's, kept as their credit balance (not allocated).
    credit = api.post(
        "/payments",
        json={"amount": first["amount_due"], "currency": "USD", "method": "check",
              "received_on": TODAY.isoformat(), "policyholder_id": first["policyholder_id"]},
    )  # fmt: skip
    assert credit.status_code == 201, credit.text
    assert api.get(f"/policies/{policy['id']}").json()["status"] == "in_grace"
    applied = api.post(
        f"/payments/{credit.json()['id']}/allocations",
        json={"allocations": [{"invoice_id": first["id"], "amount": first["amount_due"]}]},
    )
    assert applied.status_code == 201, applied.text
    assert heard.states(pid)[-1] == ("in_grace", "active", TODAY)
    assert api.get(f"/policies/{policy['id']}").json()["status"] == "active"
    books_ok(db)


def test_a_write_off_of_the_overdue_invoice_makes_it_active_again(api, db, settings):
    heard = Heard(db)
    policy = monthly_policy(api, "COL-5")
    pid = number(policy["id"])
    run_days(db, settings, "2025-12-18", "2026-01-05")
    january = _invoice(api, policy, date(2026, 1, 1))
    response = api.post(f"/invoices/{january['id']}/write-off", json={"reason": "goodwill"})
    assert response.status_code in (200, 201), response.text
    assert heard.states(pid)[-1][:2] == ("past_due", "active")
    books_ok(db)


def test_after_lapse_a_payment_within_the_window_reinstates(api, db, settings):
    heard = Heard(db)
    due = TODAY - timedelta(days=40)
    policy = monthly_policy(api, "COL-6", effective=due.isoformat())
    pid = number(policy["id"])
    run_days(db, settings, due - timedelta(days=14), TODAY - timedelta(days=1))
    assert heard.states(pid)[-1] == ("in_grace", "lapsed", due + timedelta(days=30))
    assert api.get(f"/policies/{policy['id']}").json()["status"] == "lapsed"
    pay_all(api, policy, TODAY)
    run_days(db, settings, TODAY, TODAY)
    assert ("lapsed", "reinstated", TODAY) in heard.states(pid)
    assert ("reinstatement", None, TODAY) in heard.step_days(pid)
    assert api.get(f"/policies/{policy['id']}").json()["status"] != "lapsed"
    run_days(db, settings, TODAY, TODAY + timedelta(days=1))
    assert [s for s in heard.step_days(pid) if s[0] == "reinstatement"] == [
        ("reinstatement", None, TODAY)
    ]
    books_ok(db)


def test_after_the_window_a_payment_leaves_it_lapsed(api, db, settings):
    heard = Heard(db)
    due = TODAY - timedelta(days=65)
    policy = monthly_policy(api, "COL-7", effective=due.isoformat())
    pid = number(policy["id"])
    run_days(db, settings, due - timedelta(days=14), due + timedelta(days=31))
    pay_all(api, policy, TODAY)
    run_days(db, settings, TODAY, TODAY + timedelta(days=1))
    assert heard.states(pid)[-1] == ("in_grace", "lapsed", due + timedelta(days=30))
    assert api.get(f"/policies/{policy['id']}").json()["status"] == "lapsed"
    books_ok(db)


def test_after_the_window_what_is_owed_is_written_off_when_the_setting_says_so(api, db, settings):
    due = TODAY - timedelta(days=65)
    policy = monthly_policy(api, "COL-12", effective=due.isoformat())
    run_days(db, settings, due - timedelta(days=14), due + timedelta(days=31))
    owed = [i for i in invoices_of(api, policy["id"]) if i["amount_due"]]
    assert owed  # the earned premium up to the lapse
    closing = settings.with_overrides(collections_write_off_after_window=True)
    stats = run_job(db, closing, "collections", TODAY).stats
    assert stats["written_off"] == 1
    assert [i["amount_due"] for i in invoices_of(api, policy["id"])] == [0] * len(
        invoices_of(api, policy["id"])
    )
    assert run_job(db, closing, "collections", TODAY).stats["written_off"] == 0
    assert api.get(f"/policies/{policy['id']}").json()["status"] == "lapsed"
    books_ok(db)


def test_a_late_run_catches_up_without_stale_notices_and_still_lapses(api, db, settings):
    heard = Heard(db)
    policy = monthly_policy(api, "COL-11")
    pid = number(policy["id"])
    run_job(db, settings, "issue_invoices", date(2025, 12, 18))
    run_job(db, settings, "collections", date(2026, 1, 20))  # the first run: 19 days late
    assert heard.step_days(pid) == []  # every reminder and the grace notice are stale
    assert heard.states(pid) == [("active", "in_grace", date(2026, 1, 20))]
    run_job(db, settings, "collections", date(2026, 2, 5))  # the lapse day passed unseen
    assert heard.step_days(pid) == [("lapse", None, date(2026, 2, 5))]
    assert api.get(f"/policies/{policy['id']}").json()["status"] == "lapsed"
    books_ok(db)


def test_a_cancelled_policy_gets_no_reminder(api, db, settings):
    heard = Heard(db)
    policy = monthly_policy(api, "COL-8")
    pid = number(policy["id"])
    run_days(db, settings, "2025-12-18", "2026-01-05")
    assert cancel(api, policy["id"], "2026-01-05").status_code == 201
    taken = heard.step_days(pid)
    run_days(db, settings, "2026-01-06", "2026-02-20")
    assert heard.step_days(pid) == taken
    assert api.get(f"/policies/{policy['id']}").json()["status"] == "cancelled"
    books_ok(db)


def test_a_rerun_takes_nothing_twice_and_the_worklist_orders_by_risk(api, db, settings):
    heard = Heard(db)
    small = monthly_policy(api, "COL-9", premium=60000)
    big = monthly_policy(api, "COL-10", premium=240000)
    run_days(db, settings, "2025-12-18", "2026-01-20")
    steps, transitions = len(heard.steps), len(heard.transitions)
    stats = run_job(db, settings, "collections", date(2026, 1, 20)).stats
    assert (len(heard.steps), len(heard.transitions)) == (steps, transitions)
    assert stats["steps"] == {} and stats["transitions"] == {}
    page = api.get("/reports/collections-worklist", params={"as_of": "2026-01-20", "limit": 1})
    assert page.status_code == 200, page.text
    first = page.json()
    assert [r["policy_id"] for r in first["data"]] == [big["id"]] and first["has_more"]
    row = first["data"][0]
    assert row["risk"] == row["amount_overdue"] * row["days_overdue"] > 0
    assert row["last_step"] == {"step": "grace_notice", "on": "2026-01-15"}
    rest = api.get(
        "/reports/collections-worklist",
        params={"as_of": "2026-01-20", "starting_after": big["id"]},
    ).json()
    assert [r["policy_id"] for r in rest["data"]] == [small["id"]] and not rest["has_more"]


def test_the_plans_in_force(api):
    body = api.get("/delinquency-plans").json()
    pet = next(p for p in body["data"] if p["product"] == "pet")
    assert pet["timeline"] == [
        {"step": "reminder", "days_after_due": -3},
        {"step": "reminder", "days_after_due": 3},
        {"step": "reminder", "days_after_due": 10},
        {"step": "grace_notice", "days_after_due": 14},
        {"step": "final_notice", "days_after_due": 23},
        {"step": "lapse", "days_after_due": 30},
    ]
    assert pet["autopay_retry_days"] == [3, 5, 7]


def test_each_notice_carries_the_facts_of_its_step_as_published(api, db, settings):
    # On PostgreSQL the job's notices are written by INSERT … SELECT with the facts built in
    # SQL (`assess_pg.step_fact_sql`), the events' steps by `assess.step_fact`: the same.
    heard = Heard(db)
    policy = monthly_policy(api, "COL-11")
    run_days(db, settings, "2025-12-18", "2026-02-05")
    published = {s["step_id"]: json.loads(json.dumps(s, default=str)) for s in heard.steps}
    with db.session() as session:
        notices = session.execute(
            select(Notification.business_key, Notification.kind, Notification.facts).where(
                Notification.policy_id == number(policy["id"]),
                Notification.kind.in_(list(STEP_KINDS.values())),
            )
        ).all()
    assert sorted(kind for _k, kind, _f in notices) == sorted(
        ["reminder", "reminder", "reminder", "grace_notice", "final_notice", "lapse"]
    )
    for key, _kind, facts in notices:
        assert facts == published[int(key.removeprefix("step_"))]
    assert {f["grace_ends_on"] for _k, kind, f in notices if kind != "lapse"} == {"2026-01-31"}
    assert [f["offset"] for _k, kind, f in notices if kind == "reminder"] == [-3, 3, 10]


def test_delinquency_events_are_written_only_when_an_endpoint_wants_them(api, db, settings):
    quiet = monthly_policy(api, "COL-12")
    run_days(db, settings, "2025-12-18", "2026-01-16")
    with db.session() as session:
        assert session.scalars(select(OutboundEvent.id)).all() == []  # nobody subscribed
    registered = api.post(
        "/webhook-endpoints",
        json={"url": "http://127.0.0.1:9/hook", "events": ["policy.past_due", "policy.in_grace"]},
    )
    assert registered.status_code == 201, registered.text
    heard = monthly_policy(api, "COL-13", effective="2026-02-01")
    run_days(db, settings, "2026-01-17", "2026-02-20")
    with db.session() as session:
        events = session.execute(select(OutboundEvent.type, OutboundEvent.data)).all()
    assert [(t, d["policy_id"], d["to_state"], d["on"]) for t, d in events] == [
        ("policy.past_due", heard["id"], "past_due", "2026-02-02"),
        ("policy.in_grace", heard["id"], "in_grace", "2026-02-15"),
    ]
    assert {d["from_state"] for _t, d in events} == {"active", "past_due"}
    assert all(d["policy_id"] != quiet["id"] for _t, d in events)
