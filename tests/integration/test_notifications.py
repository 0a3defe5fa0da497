"""Notices by email (issue 14, item 4): the outbox written in the business event's
transaction, sent over SMTP to a real server on loopback (aiosmtpd), once each."""

from __future__ import annotations

import html as markup
import threading
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from devtools.sinks import SmtpSink, parts, until_idle
from premium_billing.config import Settings
from premium_billing.db import hooks
from premium_billing.db.types import utcnow
from premium_billing.http.ids import parse_id
from premium_billing.notifications.models import Notification
from premium_billing.notifications.sender import send_pass
from tests.factories import create_policy, create_policyholder, pet_line


@pytest.fixture
def smtp() -> Any:
    with SmtpSink() as sink:
        yield sink


@pytest.fixture
def settings(database_url: str, smtp: SmtpSink) -> Settings:
    return Settings(
        database_url=database_url,
        allow_time_travel=True,
        smtp_port=smtp.port,
        sender_batch=50,
        mail_from="billing@insurer.example",
    )


def two_pet_policy(api: Any, locale: str | None = None, **overrides: Any) -> dict[str, Any]:
    holder = create_policyholder(api, name="Ann Lee", email="ann@example.com")
    policy = create_policy(
        api,
        holder["id"],
        lines=[pet_line("Rex", 48000), pet_line("Mia", 24000)],
        **overrides,
    )
    return {"holder": holder, "policy": policy}


def set_locale(api: Any, holder_id: str, locale: str) -> None:
    response = api.patch(f"/policyholders/{holder_id}", json={"locale": locale})
    assert response.status_code == 200, response.text
    assert response.json()["locale"] == locale


def drain(db: Any, settings: Settings, **kw: Any) -> int:
    """Send passes until one claims nothing; how many were sent."""
    return until_idle(lambda: send_pass(db, settings, **kw))


def notices(db: Any, **where: Any) -> list[Notification]:
    with db.session() as session:
        stmt = select(Notification).order_by(Notification.id)
        for k, v in where.items():
            stmt = stmt.where(getattr(Notification, k) == v)
        return list(session.scalars(stmt))


def steps_taken(db: Any, settings: Settings, policy_id: int, *steps: dict[str, Any]) -> None:
    """Publish COLLECTION_STEPS_TAKEN as collections does, on a real session."""
    with db.session() as session:
        hooks.publish(
            session,
            hooks.COLLECTION_STEPS_TAKEN,
            steps=[{"policy_id": policy_id, "installment_id": None, **s} for s in steps],
            settings=settings,
        )
        session.commit()


def test_invoice_issued_email_names_pets_amount_reference_and_link(api, db, settings, smtp):
    made = two_pet_policy(api)
    run = api.post("/jobs/issue_invoices/runs", json={"as_of": "2026-01-20"})
    assert run.status_code in (200, 201), run.text
    invoices = api.get("/invoices", params={"policy_id": made["policy"]["id"]}).json()["data"]
    assert len(invoices) == 1
    invoice = invoices[0]

    assert drain(db, settings) == 1
    assert len(smtp.messages) == 1
    message = smtp.messages[0]
    plain, html = parts(message)
    html = markup.unescape(html)
    assert smtp.recipients[0] == ["ann@example.com"]
    assert invoice["number"] in message["Subject"]
    due = invoice["amount_due"]
    amount = f"${due // 100:,}.{due % 100:02d}"
    for body in (plain, html):
        assert "Rex's and Mia's cover" in body
        assert amount in body
        assert "January 31, 2026" in body
        assert "/portal/" in body
    reference = invoice["payment_reference"]
    spaced = " ".join(reference[i : i + 4] for i in range(0, len(reference), 4))
    assert spaced in plain and spaced in html
    assert "<a href=" in html and "<a href" not in plain
    row = notices(db, kind="invoice_issued")[0]
    assert row.status == "sent" and row.message_id == message["Message-ID"]

    listed = api.get("/notifications", params={"policyholder_id": made["holder"]["id"]}).json()
    assert [(n["kind"], n["status"]) for n in listed["data"]] == [("invoice_issued", "sent")]
    assert api.get("/notifications", params={"status": "queued"}).json()["data"] == []
    bad = api.get("/notifications", params={"kind": "postcard"})
    assert bad.status_code == 422 and "kind" in bad.json()["errors"]


def test_a_notice_published_twice_is_stored_and_sent_once(api, db, settings, smtp):
    made = two_pet_policy(api)
    set_locale(api, made["holder"]["id"], "en_GB")
    policy_id = parse_id("policy", made["policy"]["id"])
    step = {
        "step_id": 7,
        "step": "final_notice",
        "on": date(2027, 3, 5),
        "oldest_unpaid_due_date": date(2027, 1, 31),
        "amount_overdue": 6200,
        "currency": "USD",
        "grace_ends_on": date(2027, 3, 12),
        "lapse_on": date(2027, 3, 12),
    }
    steps_taken(db, settings, policy_id, step)
    steps_taken(db, settings, policy_id, step)  # published again: stored once
    assert len(notices(db, kind="final_notice")) == 1
    assert drain(db, settings) == 1
    steps_taken(db, settings, policy_id, step)  # and after it was sent: not again
    assert drain(db, settings) == 0
    assert len(smtp.messages) == 1
    plain, html = parts(smtp.messages[0])
    html = markup.unescape(html)
    assert "Rex's and Mia's cover lapses on 12 March 2027" in plain
    assert "lapses on <strong>12 March 2027</strong>" in html
    assert "US$62.00" in plain  # en_GB writes dollars so


@pytest.mark.parametrize(
    ("step", "offset", "words"),
    [
        ("reminder", -3, "is due on"),
        ("reminder", 10, "overdue since"),
        ("grace_notice", None, "grace period"),
        ("lapse", None, "lapsed on"),
        ("reinstatement", None, "reinstated"),
    ],
)
def test_each_collections_step_sends_its_notice(api, db, settings, smtp, step, offset, words):
    made = two_pet_policy(api, currency="EUR")
    set_locale(api, made["holder"]["id"], "de_DE")
    facts = {
        "step_id": 1,
        "step": step,
        "on": date(2027, 2, 10),
        "oldest_unpaid_due_date": date(2027, 1, 31),
        "amount_overdue": 123456,
        "currency": "EUR",
        "lapse_on": date(2027, 3, 2),
    }
    if offset is not None:
        facts["offset"] = offset
    steps_taken(db, settings, parse_id("policy", made["policy"]["id"]), facts)
    assert drain(db, settings) == 1
    plain, html = parts(smtp.messages[0])
    html = markup.unescape(html)
    assert words in plain and words in html
    assert "Rex's and Mia's cover" in plain + smtp.messages[0]["Subject"]
    if step != "reinstatement":
        assert "1.234,56\xa0€" in plain  # de_DE: the amount as a German reader writes it


def test_autopay_retry_and_late_fee_steps_send_no_notice(api, db, settings):
    made = two_pet_policy(api)
    steps_taken(
        db,
        settings,
        parse_id("policy", made["policy"]["id"]),
        {"step_id": 1, "step": "autopay_retry", "on": date(2027, 2, 3)},
        {"step_id": 2, "step": "late_fee", "on": date(2027, 2, 3)},
    )
    assert notices(db) == []


def test_two_senders_at_once_send_each_notice_once(api, db, settings, smtp):
    made = two_pet_policy(api)
    policy_id = parse_id("policy", made["policy"]["id"])
    count = 120
    steps_taken(
        db,
        settings,
        policy_id,
        *(
            {"step_id": i, "step": "reminder", "offset": 3, "on": date(2027, 2, 3),
             "oldest_unpaid_due_date": date(2027, 1, 31), "amount_overdue": 100 + i,
             "currency": "USD"}
            for i in range(count)
        ),
    )  # fmt: skip
    small = settings.with_overrides(sender_batch=7)
    errors: list[BaseException] = []

    def sender() -> None:
        try:
            drain(db, small)
        except BaseException as error:  # pragma: no cover - the assertion shows it
            errors.append(error)

    threads = [threading.Thread(target=sender) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    ids = [m["Message-ID"] for m in smtp.messages]
    assert len(ids) == count and len(set(ids)) == count
    assert {n.status for n in notices(db)} == {"sent"}


def test_smtp_server_down_for_an_hour_each_email_sent_later_once(api, db, settings, smtp):
    made = two_pet_policy(api)
    policy_id = parse_id("policy", made["policy"]["id"])
    smtp.stop()
    steps_taken(
        db,
        settings,
        policy_id,
        *(
            {"step_id": i, "step": "grace_notice", "on": date(2027, 3, 2),
             "oldest_unpaid_due_date": date(2027, 1, 31), "amount_overdue": 6200,
             "currency": "USD", "lapse_on": date(2027, 4, 1)}
            for i in range(3)
        ),
    )  # fmt: skip
    now = utcnow()
    tried = 0
    for minute in range(0, 60, 5):  # the server down for an hour; the sender keeps trying
        tried += send_pass(db, settings, now=now + timedelta(minutes=minute)).claimed
    assert smtp.messages == []
    assert tried >= 6  # retried with backoff, not once a pass
    rows = notices(db)
    assert all(r.status == "queued" and r.attempts >= 2 and r.last_error for r in rows)
    assert all(r.next_attempt_at > now for r in rows)

    smtp.start()
    assert drain(db, settings, now=now + timedelta(hours=2)) == 3
    assert drain(db, settings, now=now + timedelta(hours=5)) == 0
    assert len(smtp.messages) == 3
    assert len({m["Message-ID"] for m in smtp.messages}) == 3
    assert {r.status for r in notices(db)} == {"sent"}


def test_gives_up_after_the_last_attempt(api, db, settings, smtp):
    made = two_pet_policy(api)
    smtp.stop()
    steps_taken(
        db,
        settings,
        parse_id("policy", made["policy"]["id"]),
        {"step_id": 1, "step": "lapse", "on": date(2027, 3, 2), "amount_overdue": 1,
         "currency": "USD"},
    )  # fmt: skip
    few = settings.with_overrides(notify_max_attempts=3)
    now = utcnow()
    for hours in range(5):
        send_pass(db, few, now=now + timedelta(hours=hours * 2))
    (row,) = notices(db)
    assert row.status == "failed" and row.attempts == 3
    smtp.start()
    assert drain(db, few, now=now + timedelta(days=1)) == 0


def test_receipt_refund_and_failure_notices_from_the_domain_events(api, db, settings, smtp):
    made = two_pet_policy(api)
    api.post("/jobs/issue_invoices/runs", json={"as_of": "2026-01-20"})
    invoice = api.get("/invoices", params={"policy_id": made["policy"]["id"]}).json()["data"][0]
    paid = api.post(
        "/payments",
        json={"amount": invoice["amount_due"], "currency": "USD", "method": "check",
              "received_on": "2026-01-25", "reference": invoice["payment_reference"]},
    )  # fmt: skip
    assert paid.status_code == 201, paid.text
    allocated = api.post(
        f"/payments/{paid.json()['id']}/allocations",
        json={"allocations": [{"invoice_id": invoice["id"], "amount": invoice["amount_due"]}]},
    )
    assert allocated.status_code in (200, 201), allocated.text
    with db.session() as session:
        hooks.publish(
            session,
            hooks.PAYMENT_FAILED,
            failures=[{"invoice_ids": [parse_id("invoice", invoice["id"])],
                       "policyholder_id": parse_id("policyholder", made["holder"]["id"]),
                       "amount": 7200, "currency": "USD", "reason": "insufficient_funds",
                       "attempt_id": "autopay-inv_1-1"}],
            on=date(2026, 2, 3),
            settings=settings,
        )  # fmt: skip
        session.commit()
    kinds = sorted(n.kind for n in notices(db))
    assert kinds == ["invoice_issued", "payment_failed", "payment_receipt"]
    assert drain(db, settings) == 3
    texts = {m["Subject"]: parts(m)[0] for m in smtp.messages}
    receipt = next(t for s, t in texts.items() if s.startswith("Payment received"))
    assert invoice["number"] in receipt
    issued = next(t for s, t in texts.items() if s.startswith("Your invoice"))
    assert "already paid" in issued  # paid before the sender got to it: no "please pay"
    failed = next(t for s, t in texts.items() if "did not go through" in s)
    assert "$72.00" in failed and "insufficient_funds" in failed
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Notification)) == 3


def test_locale_is_a_known_one(api):
    holder = create_policyholder(api)
    assert holder["locale"] == "en_US"
    for bad in ("xx_YY", "english", "", "en_us"):
        response = api.patch(f"/policyholders/{holder['id']}", json={"locale": bad})
        assert response.status_code == 422 and "locale" in response.json()["errors"], bad
    made = api.post("/policyholders", json={"name": "Eva", "email": "e@x.de", "locale": "de_DE"})
    assert made.status_code == 201 and made.json()["locale"] == "de_DE"


def test_send_notifications_command_sends_and_a_bad_setting_is_one_line(api, db, settings, smtp):
    import json
    import os
    import subprocess
    import sys

    made = two_pet_policy(api)
    steps_taken(
        db,
        settings,
        parse_id("policy", made["policy"]["id"]),
        {"step_id": 1, "step": "reinstatement", "on": date(2027, 3, 20)},
    )
    env = {**os.environ, "DATABASE_URL": settings.database_url, "SMTP_PORT": str(smtp.port)}
    command = [sys.executable, "-m", "premium_billing", "send-notifications", "--once"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["emails"]["sent"] == 1 and figures["events"]["claimed"] == 0
    assert len(smtp.messages) == 1 and "reinstated" in smtp.messages[0]["Subject"]
    bad = subprocess.run(
        command, env={**env, "SMTP_TLS": "maybe"}, capture_output=True, text=True, timeout=120
    )
    assert bad.returncode != 0
    assert bad.stderr.strip().splitlines()[-1] == "error: SMTP_TLS: must be off, starttls or ssl"


def test_a_receipt_names_what_the_payment_paid_once_whatever_the_later_allocations(api, db):
    """One INSERT … SELECT builds a receipt's facts in the database: the amount applied, the
    invoices' numbers in id order, the payment's own amount, currency and day."""
    from tests.integration.recon_helpers import holder_with_invoices

    policy, invoices = holder_with_invoices(api, db, "Ann Lee", [1000, 2000, 3000])
    paid = api.post(
        "/payments",
        json={"amount": 6000, "currency": "USD", "method": "check", "received_on": "2026-01-25"},
    )
    assert paid.status_code == 201, paid.text
    payment = paid.json()["id"]
    (one, n1), (two, n2), (three, n3) = invoices
    first = api.post(
        f"/payments/{payment}/allocations",
        json={"allocations": [{"invoice_id": three, "amount": 3000},
                              {"invoice_id": one, "amount": 500},
                              {"invoice_id": two, "amount": 2000}]},
    )  # fmt: skip
    assert first.status_code in (200, 201), first.text
    later = api.post(
        f"/payments/{payment}/allocations",
        json={"allocations": [{"invoice_id": one, "amount": 500}]},
    )
    assert later.status_code in (200, 201), later.text
    receipts = [n for n in notices(db) if n.kind == "payment_receipt"]
    assert len(receipts) == 1
    (receipt,) = receipts
    assert receipt.business_key == f"pay_{parse_id('payment', payment)}"
    assert receipt.invoice_id == parse_id("invoice", one)
    assert receipt.policy_id == parse_id("policy", policy["id"])
    assert receipt.facts == {
        "payment_id": parse_id("payment", payment),
        "amount": 5500,
        "payment_amount": 6000,
        "currency": "USD",
        "received_on": "2026-01-25",
        "on": receipt.facts["on"],
        "invoices": [n1, n2, n3],
    }
    assert date.fromisoformat(receipt.facts["on"]) >= date(2026, 1, 25)
