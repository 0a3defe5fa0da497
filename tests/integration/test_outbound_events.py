"""Outbound events (issue 14, item 5): endpoints registered by admins, events written in
the business event's transaction, received on a real HTTP server on loopback whose every
request is verified with the `standardwebhooks` library; retries, the log, redelivery and
an endpoint disabled after 5 days of failures (the sender's `now`, not sleeps)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from devtools.sinks import WebhookSink, until_idle
from premium_billing.db import hooks
from premium_billing.db.types import utcnow
from premium_billing.http.ids import parse_id
from premium_billing.outbound.models import EventDelivery, OutboundEvent, WebhookEndpoint
from premium_billing.outbound.rules import RETRY_SCHEDULE
from premium_billing.outbound.sender import deliver_pass
from tests.factories import create_policy, create_policyholder, pet_line


@pytest.fixture
def sink() -> Any:
    with WebhookSink() as receiver:
        yield receiver


def register(api: Any, sink: WebhookSink, events: list[str]) -> dict[str, Any]:
    response = api.post("/webhook-endpoints", json={"url": sink.url, "events": events})
    assert response.status_code == 201, response.text
    body = response.json()
    sink.secret = body["secret"]
    return dict(body)


def transition(db: Any, settings: Any, policy_id: int, to_state: str, on: date) -> None:
    with db.session() as session:
        hooks.publish(
            session,
            hooks.DELINQUENCY_CHANGED,
            transitions=[
                {"policy_id": policy_id, "from_state": "past_due", "to_state": to_state,
                 "on": on, "oldest_unpaid_due_date": date(2026, 1, 31),
                 "amount_overdue": 6200, "currency": "USD"}
            ],
            settings=settings,
        )  # fmt: skip
        session.commit()


def deliver_all(db: Any, settings: Any, **kw: Any) -> int:
    return until_idle(lambda: deliver_pass(db, settings, **kw))


def test_events_signed_delivered_once_only_to_subscribers(api, db, settings, sink):
    endpoint = register(api, sink, ["invoice.issued", "policy.lapsed"])
    assert endpoint["secret"].startswith("whsec_") and endpoint["status"] == "enabled"
    listed = api.get("/webhook-endpoints").json()["data"]
    assert [e["id"] for e in listed] == [endpoint["id"]] and "secret" not in listed[0]

    holder = create_policyholder(api)
    policy = create_policy(api, holder["id"], lines=[pet_line("Rex")])
    api.post("/jobs/issue_invoices/runs", json={"as_of": "2026-01-20"})
    policy_id = parse_id("policy", policy["id"])
    transition(db, settings, policy_id, "in_grace", date(2026, 3, 2))  # not subscribed
    transition(db, settings, policy_id, "lapsed", date(2026, 4, 1))
    transition(db, settings, policy_id, "lapsed", date(2026, 4, 1))  # published twice

    assert deliver_all(db, settings) == 2
    assert sink.rejected == []
    sink.events.sort(key=lambda e: e["type"])  # sent from several threads: in any order
    assert [e["type"] for e in sink.events] == ["invoice.issued", "policy.lapsed"]
    issued = sink.events[0]["data"]
    invoice = api.get("/invoices", params={"policy_id": policy["id"]}).json()["data"][0]
    assert issued["invoice_id"] == invoice["id"] and issued["number"] == invoice["number"]
    assert issued["amount_due"] == invoice["amount_due"]
    assert issued["payment_reference"] == invoice["payment_reference"]
    assert sink.events[1]["data"]["policy_id"] == policy["id"]
    assert sorted(h["webhook-id"] for h in sink.headers) == sorted(e["id"] for e in sink.events)
    with db.session() as session:
        types = sorted(session.scalars(select(OutboundEvent.type)))
    assert types == ["invoice.issued", "policy.lapsed"]  # no endpoint wants policy.in_grace
    assert deliver_all(db, settings) == 0  # nothing twice

    deliveries = api.get(f"/webhook-endpoints/{endpoint['id']}/deliveries").json()["data"]
    assert [d["status"] for d in deliveries] == ["succeeded", "succeeded"]
    assert [len(d["log"]) for d in deliveries] == [1, 1]
    assert deliveries[0]["log"][0]["status_code"] == 200

    again = api.post(f"/events/{deliveries[1]['event_id']}/redeliver")
    assert again.status_code == 200, again.text
    assert [d["status"] for d in again.json()["data"]] == ["pending"]
    assert deliver_all(db, settings) == 1
    assert [e["type"] for e in sink.events] == ["invoice.issued", "policy.lapsed", "policy.lapsed"]
    assert sink.events[1]["id"] == sink.events[2]["id"]  # the same webhook-id: a repeat


def test_retried_over_three_days_then_failed_endpoint_disabled_after_five(api, db, settings, sink):
    endpoint = register(api, sink, ["policy.past_due"])
    sink.answer = lambda _event: 503
    holder = create_policyholder(api)
    policy_id = parse_id("policy", create_policy(api, holder["id"])["id"])
    transition(db, settings, policy_id, "past_due", date(2026, 2, 3))

    start = utcnow()
    now = start
    for _ in range(len(RETRY_SCHEDULE) + 1):
        stats = deliver_pass(db, settings, now=now)
        assert stats.claimed == 1
        assert deliver_pass(db, settings, now=now).claimed == 0  # not before its time
        with db.session() as session:
            delivery = session.scalars(select(EventDelivery)).one()
        if delivery.status == "failed":
            break
        now = delivery.next_attempt_at
    assert delivery.status == "failed" and delivery.attempts == len(RETRY_SCHEDULE) + 1
    spent = now - start
    assert timedelta(days=2, hours=12) < spent < timedelta(days=3, hours=12)
    log = api.get(f"/webhook-endpoints/{endpoint['id']}/deliveries").json()["data"][0]["log"]
    assert [a["status_code"] for a in log] == [503] * (len(RETRY_SCHEDULE) + 1)
    with db.session() as session:
        row = session.get(WebhookEndpoint, parse_id("webhook_endpoint", endpoint["id"]))
        assert row.status == "enabled" and row.failing_since == start

    transition(db, settings, policy_id, "past_due", date(2026, 3, 3))
    deliver_pass(db, settings, now=start + timedelta(days=5, minutes=1))
    listed = api.get("/webhook-endpoints").json()["data"][0]
    assert listed["status"] == "disabled" and listed["disabled_at"]

    sink.answer = lambda _event: 200
    transition(db, settings, policy_id, "past_due", date(2026, 4, 3))
    assert deliver_all(db, settings, now=start + timedelta(days=9)) == 0
    assert sink.events == []


def test_a_success_ends_the_failing_streak(api, db, settings, sink):
    endpoint = register(api, sink, ["policy.in_grace"])
    answers = iter([500, 200])
    sink.answer = lambda _event: next(answers)
    policy_id = parse_id("policy", create_policy(api, create_policyholder(api)["id"])["id"])
    transition(db, settings, policy_id, "in_grace", date(2026, 3, 2))
    start = utcnow()
    assert deliver_pass(db, settings, now=start).retried == 1
    assert deliver_pass(db, settings, now=start + timedelta(seconds=6)).sent == 1
    with db.session() as session:
        row = session.get(WebhookEndpoint, parse_id("webhook_endpoint", endpoint["id"]))
        assert row.failing_since is None and row.status == "enabled"
    assert len(sink.events) == 1


def test_endpoint_input_roles_and_delete(api, db, make_key, sink):
    for body, field in (
        ({"url": "ftp://example.com/x", "events": ["invoice.issued"]}, "url"),
        ({"url": "http://user:pw@example.com/", "events": ["invoice.issued"]}, "url"),
        ({"url": "not a url", "events": ["invoice.issued"]}, "url"),
        ({"url": "https://example.com/h", "events": ["invoice.paid"]}, "events"),
        ({"url": "https://example.com/h", "events": []}, "events"),
        ({"url": "https://example.com/h"}, "events"),
    ):
        response = api.post("/webhook-endpoints", json=body)
        assert response.status_code == 422, (body, response.text)
        assert field in str(response.json()["errors"]), response.json()
    billing = api.as_key(make_key("billing", "clerk"))
    assert billing.get("/webhook-endpoints").status_code == 403
    assert (
        billing.post(
            "/webhook-endpoints", json={"url": sink.url, "events": ["invoice.issued"]}
        ).status_code
        == 403
    )
    endpoint = register(api, sink, ["invoice.issued"])
    assert api.delete(f"/webhook-endpoints/{endpoint['id']}").status_code == 204
    assert api.get("/webhook-endpoints").json()["data"] == []
    assert api.delete(f"/webhook-endpoints/{endpoint['id']}").status_code == 404
    assert api.get(f"/webhook-endpoints/{endpoint['id']}/deliveries").status_code == 404
    assert api.get("/webhook-endpoints/we_x/deliveries").status_code == 404
    assert api.post("/events/evt_999/redeliver").status_code == 404


def test_an_event_no_endpoint_wants_is_not_stored(api, db, settings, sink):
    holder = create_policyholder(api)
    create_policy(api, holder["id"])
    api.post("/jobs/issue_invoices/runs", json={"as_of": "2026-01-20"})
    register(api, sink, ["payment.posted"])  # from now on: not invoice.issued
    with db.session() as session:
        assert session.scalars(select(OutboundEvent)).all() == []
    assert deliver_all(db, settings) == 0 and sink.events == []


def test_two_senders_at_once_deliver_each_event_once(api, db, settings, sink):
    import threading

    register(api, sink, ["policy.past_due"])
    policy_id = parse_id("policy", create_policy(api, create_policyholder(api)["id"])["id"])
    with db.session() as session:
        hooks.publish(
            session,
            hooks.DELINQUENCY_CHANGED,
            transitions=[
                {"policy_id": policy_id, "from_state": "active", "to_state": "past_due",
                 "on": date(2026, 2, 3) + timedelta(days=i), "amount_overdue": 100 + i,
                 "currency": "USD"}
                for i in range(60)
            ],
            settings=settings,
        )  # fmt: skip
        session.commit()
    small = settings.with_overrides(sender_batch=7)
    threads = [threading.Thread(target=deliver_all, args=(db, small)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sink.rejected == []
    assert len(sink.events) == 60 and len({e["id"] for e in sink.events}) == 60
    with db.session() as session:
        assert set(session.scalars(select(EventDelivery.status))) == {"succeeded"}
