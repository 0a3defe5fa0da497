"""Stripe payouts against bank deposits: the sum check, fees journaled, matching both ways
round, and the day's reconciliation report over HTTP."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select

from premium_billing.ledger.models import JournalEntry, JournalLine
from premium_billing.stripe_billing.models import StripePayout
from premium_billing.stripe_billing.payouts import record_payout
from tests.integration.recon_helpers import csv_file, upload

TXS = [
    {"id": "txn_1", "type": "charge", "amount": 48200, "fee": 1428, "net": 46772, "source": "ch_1"},
    {"id": "txn_2", "type": "charge", "amount": 26000, "fee": 784, "net": 25216, "source": "ch_2"},
    {"id": "txn_3", "type": "refund", "amount": -5000, "fee": 0, "net": -5000, "source": "re_1"},
    {"id": "txn_4", "type": "adjustment", "amount": -2000, "fee": 1500, "net": -3500,
     "source": "dp_1"},
    {"id": "txn_5", "type": "payout", "amount": -63488, "fee": 0, "net": -63488,
     "source": "po_1"},
]  # fmt: skip
PAYOUT = 48200 + 26000 - 5000 - 2000 - (1428 + 784 + 1500)  # 63488


def _record(db, payout_id="po_1", amount=PAYOUT, txs=TXS, arrival="2026-02-05"):
    with db.session() as s:
        record_payout(
            s, payout_id=payout_id, amount=amount, currency="usd",
            arrival_date=date.fromisoformat(arrival), balance_transactions=txs,
        )  # fmt: skip
        s.commit()


def test_a_payout_that_adds_up_is_journaled_and_matched_to_its_deposit(api, db):
    _record(db)
    _record(db)  # the webhook delivered twice: nothing new
    with db.session() as s:
        payouts = s.scalars(select(StripePayout)).all()
        assert len(payouts) == 1
        payout = payouts[0]
        assert (payout.status, payout.fees, payout.refunds, payout.disputes) == (
            "unmatched", 3712, 5000, 2000,
        )  # fmt: skip
        legs = {
            line.account: line.amount
            for line in s.scalars(
                select(JournalLine).join(JournalEntry).where(JournalEntry.kind == "payout_settled")
            )
        }
    assert legs == {
        "cash_bank": PAYOUT,
        "processing_fees": 3712,
        "stripe_clearing": -(PAYOUT + 3712),
    }
    response = upload(
        api,
        csv_file(
            "2026-02-06,634.88,USD,STRIPE PAYMENTS UK,STRIPE PAYOUT po_1,D-1",
            "2026-02-06,-15.00,USD,Bank,account fee,D-2",
            "2026-02-06,634.88,USD,Ann Lee,premium,D-3",
        ),
    )
    assert response.status_code == 201, response.text
    assert response.json()["payout_deposits"] == 1
    assert response.json()["payments_created"] == 1  # the deposit is not a premium payment
    report = api.get("/reports/reconciliation", params={"date": "2026-02-05"}).json()
    assert [m["payout"]["payout_id"] for m in report["deposits_matched"]] == ["po_1"]
    assert report["deposits_matched"][0]["bank_line"]["bank_reference"] == "D-1"
    assert report["payouts_unmatched"] == []
    next_day = api.get("/reports/reconciliation", params={"date": "2026-02-06"}).json()
    assert [line["bank_reference"] for line in next_day["bank_lines_unexplained"]] == ["D-2"]


def test_a_deposit_seen_first_is_matched_when_the_payout_arrives(api, db):
    upload(api, csv_file("2026-02-04,634.88,USD,STRIPE,TRANSFER ST-ABC,D-1"))
    early = api.get("/reports/reconciliation", params={"date": "2026-02-04"}).json()
    assert [line["bank_reference"] for line in early["bank_lines_unexplained"]] == ["D-1"]
    _record(db, arrival="2026-02-05")
    _record(db, payout_id="po_2", amount=1000, txs=[], arrival="2026-02-05")
    report = api.get("/reports/reconciliation", params={"date": "2026-02-05"}).json()
    assert [m["payout"]["payout_id"] for m in report["deposits_matched"]] == ["po_1"]
    unmatched = report["payouts_unmatched"]
    assert [p["payout_id"] for p in unmatched] == ["po_2"]
    # po_2's transactions add up to 0, not 1000: flagged.
    assert unmatched[0]["status"] == "flagged" and "1000" in unmatched[0]["flag_reason"]
    assert report["payouts_flagged"] == 1
    later = api.get("/reports/reconciliation", params={"date": "2026-02-04"}).json()
    assert later["bank_lines_unexplained"] == []


def test_a_deposit_outside_the_window_or_of_another_amount_is_not_matched(api, db):
    upload(
        api,
        csv_file(
            "2026-02-15,634.88,USD,STRIPE,payout,D-1",
            "2026-02-05,634.87,USD,STRIPE,payout,D-2",
        ),
    )
    _record(db, arrival="2026-02-05")
    report = api.get("/reports/reconciliation", params={"date": "2026-02-05"}).json()
    assert report["deposits_matched"] == []
    assert [p["payout_id"] for p in report["payouts_unmatched"]] == ["po_1"]
    assert api.get("/reports/reconciliation", params={"date": "2026-02-32"}).status_code == 422
