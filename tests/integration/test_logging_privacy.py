"""No personal data in logs: a full flow's log lines carry ids and amounts, never the
policyholder's name, email, phone or address, nor the payer's name."""

from __future__ import annotations

import logging

from premium_billing.logging_setup import JsonFormatter
from tests.integration.ledger_helpers import allocate, issue_invoice, new_policy, pay

PERSONAL = {
    "name": "Zebedee Quartermaine",
    "email": "zebedee.q@example.org",
    "phone": "+44 20 7946 0958",
    "address": {"line1": "221B Baker Street", "city": "Marylebone", "country": "GB"},
}


def test_a_full_flow_logs_no_personal_data(api, db, caplog):
    caplog.set_level(logging.DEBUG)
    holder = api.post("/policyholders", json=PERSONAL)
    assert holder.status_code == 201
    holder_id = holder.json()["id"]
    policy = new_policy(api, holder_id)
    inv = issue_invoice(db, policy["id"], 9950)
    payment = pay(api, 12000, payer_name="Zebedee Quartermaine", reference="zebedee.q@example.org")
    assert allocate(api, payment["id"], (inv, 9950)).status_code == 201
    api.post(f"/payments/{payment['id']}/refunds", json={"amount": 50})
    api.delete(f"/payments/{payment['id']}/allocations")
    api.patch(f"/policyholders/{holder_id}", json={"email": "bad"})  # a 422 is logged too
    api.get(f"/policyholders/{holder_id}")
    formatter = JsonFormatter()
    lines = [formatter.format(record) for record in caplog.records]
    assert any('"event": "payment_allocated"' in line for line in lines)
    assert any('"route": "/api/v1/payments/<payment_id>/allocations"' in line for line in lines)
    text = "\n".join(lines + [record.getMessage() for record in caplog.records])
    # The phone as written, not a bare "7946": that also turns up in a timestamp's microseconds.
    phone = ("20 7946 0958", "2079460958")
    for needle in ("Zebedee", "Quartermaine", "zebedee.q", *phone, "Baker Street", "Marylebone"):
        assert needle not in text, needle


def test_the_formatter_masks_emails_and_phones_that_slip_through():
    record = logging.makeLogRecord(
        {"msg": "contact %s", "args": ("ann@example.com or +1 617 555 0100",), "levelno": 20}
    )
    record.levelname = "INFO"
    line = JsonFormatter().format(record)
    assert "ann@example.com" not in line and "555 0100" not in line
    assert "[email]" in line and "[phone]" in line


def test_the_formatter_leaves_ids_with_digit_runs_alone():
    request_id = "45dac9a6b2b34e1c80b9475620317ffb"  # hex, with a 10-digit run inside
    record = logging.makeLogRecord(
        {"msg": "request", "levelno": 20, "request_id": request_id, "payment_id": "pay_12"}
    )
    record.levelname = "INFO"
    line = JsonFormatter().format(record)
    assert request_id in line and "[phone]" not in line
