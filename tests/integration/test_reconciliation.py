"""Reconciliation runs over real HTTP: auto-matches with their evidence, tolerance,
overpayment, suspense with candidates, ambiguity, currencies, undo, learned payer links."""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from datetime import date

import pytest
from sqlalchemy import select

from premium_billing.config import Settings
from premium_billing.invoicing.rules import payment_reference as rf_reference
from premium_billing.reconciliation.models import PayerLink
from tests.integration.ledger_helpers import cli, ledger_problems
from tests.integration.recon_helpers import csv_file, holder_with_invoices, upload

WITH_ACCOUNT = "date,amount,currency,payer_name,reference,bank_reference,payer_account"


# Writers: threads (RECONCILE_WRITER_PROCESSES_FROM=0), or processes from the first payment
# (1; PostgreSQL only: SQLite writes from one thread either way).
WRITERS = pytest.mark.parametrize("settings", [0, 1], indirect=True, ids=["threads", "processes"])


@pytest.fixture
def settings(database_url: str, request: pytest.FixtureRequest) -> Settings:
    return Settings(
        database_url=database_url,
        allow_time_travel=True,
        reconcile_writer_processes_from=getattr(request, "param", 10_000),
    )


def _run(api, as_of="2026-02-10"):
    response = api.post("/reconciliation/runs", json={"as_of": as_of})
    assert response.status_code == 201, response.text
    return response.json()


def _payment(api, external_id):
    return next(p for p in api.get("/payments").json()["data"] if p["external_id"] == external_id)


@WRITERS
def test_run_posts_confident_matches_and_leaves_the_rest_in_suspense(api, db):
    _, [(ann_inv, ann_num)] = holder_with_invoices(api, db, "Ann Lee", [48200])
    _, [(raj_inv, raj_num)] = holder_with_invoices(api, db, "Raj Patel", [26000])
    _, [(eva1, _), (eva2, _)] = holder_with_invoices(api, db, "Eva Schmidt", [9000, 9000])
    typo = rf_reference(raj_num)
    typo = typo[:-2] + typo[-1] + typo[-2]  # adjacent transposition of the last digits
    upload(
        api,
        csv_file(
            f"2026-02-03,482.00,USD,Ann Lee,Premium {ann_num},B-1",
            f"2026-02-03,260.00,USD,Mr R Patel,{typo},B-2",
            "2026-02-04,90.00,USD,SCHMIDT E,pet insurance,B-3",
            "2026-02-04,77.00,USD,Zed Unknown,gift,B-4",
        ),
    )
    run = _run(api)
    assert run["id"].startswith("recon_")
    assert (run["examined"], run["matched"], run["partially_matched"], run["suspense"]) == (
        4, 3, 0, 1,
    )  # fmt: skip
    ann = _payment(api, "B-1")
    assert ann["status"] == "applied"
    assert ann["allocations"] == [{"invoice_id": ann_inv, "amount": 48200}]
    assert ann["match"]["rule"] == "reference"
    assert float(ann["match"]["evidence"]["score"]) >= 0.9
    assert ann["match"]["evidence"]["reference"]
    raj = _payment(api, "B-2")
    assert raj["match"]["rule"].startswith("fuzzy_")
    assert raj["allocations"] == [{"invoice_id": raj_inv, "amount": 26000}]
    eva = _payment(api, "B-3")
    assert eva["match"]["rule"] == "payer_name"
    assert eva["allocations"] == [{"invoice_id": eva1, "amount": 9000}]  # the oldest first
    assert api.get(f"/invoices/{eva2}").json()["status"] == "open"

    queue = api.get("/reconciliation/suspense").json()
    assert [row["payment"]["external_id"] for row in queue["data"]] == ["B-4"]
    assert queue["data"][0]["outcome"] == "suspense" and queue["data"][0]["reason"]
    again = _run(api)
    assert (again["examined"], again["matched"], again["suspense"]) == (1, 0, 1)
    assert ledger_problems(db) == []


def test_short_payment_within_tolerance_is_written_off_and_overpayment_is_credit(api, db):
    policy, [(short_inv, short_num)] = holder_with_invoices(api, db, "Ann Lee", [48200])
    raj, [(over_inv, over_num)] = holder_with_invoices(api, db, "Raj Patel", [26000])
    _, [(part_inv, part_num)] = holder_with_invoices(api, db, "Eva Schmidt", [50000])
    upload(
        api,
        csv_file(
            f"2026-02-03,481.50,USD,Ann Lee,{short_num},B-1",
            f"2026-02-03,300.00,USD,Raj Patel,{over_num},B-2",
            f"2026-02-03,200.00,USD,Eva Schmidt,{part_num},B-3",
        ),
    )
    run = _run(api)
    assert (run["matched"], run["partially_matched"], run["suspense"]) == (2, 1, 0)
    short = api.get(f"/invoices/{short_inv}").json()
    assert (short["status"], short["amount_paid"], short["amount_due"]) == ("paid", 48150, 0)
    over = _payment(api, "B-2")
    assert over["amount_unapplied"] == 4000 and over["status"] == "partially_applied"
    holder = api.get(f"/policyholders/{raj['policyholder_id']}").json()
    assert holder["credit_balance"] == 4000
    part = api.get(f"/invoices/{part_inv}").json()
    assert (part["status"], part["amount_due"]) == ("partially_paid", 30000)
    assert ledger_problems(db) == []


def test_ambiguity_and_other_currencies_are_never_auto_matched(api, db):
    holder_with_invoices(api, db, "John Smith", [5000])
    holder_with_invoices(api, db, "John Smith", [5000])
    _, [(usd_inv, usd_num)] = holder_with_invoices(api, db, "Ann Lee", [7000])
    upload(
        api,
        csv_file(
            "2026-02-03,50.00,USD,J Smith,premium,B-1",
            f"2026-02-03,70.00,EUR,Ann Lee,{usd_num},B-2",
        ),
    )
    run = _run(api)
    assert (run["matched"], run["suspense"]) == (0, 2)
    rows = {
        r["payment"]["external_id"]: r for r in api.get("/reconciliation/suspense").json()["data"]
    }
    smith = rows["B-1"]["candidates"]
    # The two John Smiths first, as likely as each other; then the amount alone.
    assert smith[0]["score"] == smith[1]["score"] > smith[2]["score"]
    assert {c["amount_due"] for c in smith[:2]} == {5000}
    assert all(c["rule"] == "payer_name" for c in smith[:2]) and smith[2]["rule"] == "amount"
    assert api.get(f"/invoices/{usd_inv}").json()["status"] == "open"


def test_undo_requeues_held_and_a_manual_match_teaches_the_payer(api, db):
    _, [(inv1, num1), (inv2, _)] = holder_with_invoices(api, db, "Ann Lee", [6000, 6000])
    upload(api, csv_file(f"2026-02-03,60.00,USD,Ann Lee,{num1},B-1"))
    assert _run(api)["matched"] == 1
    paid = _payment(api, "B-1")
    undone = api.delete(f"/payments/{paid['id']}/allocations")
    assert undone.status_code == 200, undone.text
    row = api.get("/reconciliation/suspense").json()["data"][0]
    assert row["payment"]["id"] == paid["id"] and row["held"] is True
    assert _run(api)["examined"] == 0  # held: waits for a person
    assert api.get(f"/invoices/{inv1}").json()["status"] == "open"

    # A payment with nothing to go on: a person matches it; the account is learned.
    upload(
        api,
        csv_file("2026-02-04,60.00,USD,A L,standing order,B-2,GB00BANK123",
                 header=WITH_ACCOUNT),
    )  # fmt: skip
    assert _run(api)["matched"] == 0
    anon = _payment(api, "B-2")
    manual = api.post(
        f"/payments/{anon['id']}/allocations",
        json={"allocations": [{"invoice_id": inv1, "amount": 6000}]},
    )
    assert manual.status_code == 201, manual.text
    with db.session() as s:
        keys = {(link.kind, link.key) for link in s.scalars(select(PayerLink))}
    assert ("payer_account", "GB00BANK123") in keys
    assert all(r["payment"]["id"] != anon["id"]
               for r in api.get("/reconciliation/suspense").json()["data"])  # fmt: skip

    upload(
        api,
        csv_file("2026-03-04,60.00,USD,,standing order,B-3,GB00 BANK 123",
                 header=WITH_ACCOUNT),
    )  # fmt: skip
    assert _run(api)["matched"] == 1
    learned = _payment(api, "B-3")
    assert learned["match"]["rule"] == "linked_payer"
    assert learned["allocations"] == [{"invoice_id": inv2, "amount": 6000}]
    assert ledger_problems(db) == []


def test_a_likely_duplicate_line_is_not_matched_as_new_money(api, db):
    _, pairs = holder_with_invoices(api, db, "Raj Patel", [6000, 6000])
    number = pairs[0][1]
    upload(
        api,
        csv_file(
            f"2026-02-03,60.00,USD,Raj Patel,{number},B-1",
            f"2026-02-04,60.00,USD,Raj Patel,{number},B-2",
        ),
    )
    run = _run(api)
    assert (run["matched"], run["suspense"]) == (1, 1)
    assert run["stats"]["duplicates"] == 1
    row = api.get("/reconciliation/suspense").json()["data"][0]
    assert row["outcome"] == "duplicate" and row["reason"].startswith("likely duplicate of pay_")
    assert api.get(f"/invoices/{pairs[1][0]}").json()["status"] == "open"


def test_reconcile_job_and_cli(api, db, database_url):
    _, [(inv, num)] = holder_with_invoices(api, db, "Ann Lee", [6000])
    upload(api, csv_file(f"2026-02-03,60.00,USD,Ann Lee,{num},B-1"))
    job = api.post("/jobs/reconcile/runs", json={"as_of": "2026-02-10"})
    assert job.status_code in (200, 201), job.text
    assert job.json()["stats"]["matched"] == 1
    jobs = {j["name"]: j for j in api.get("/jobs").json()["data"]}
    assert jobs["reconcile"]["schedule"] == "every 15 min"
    assert jobs["reconcile"]["next_run_at"] is not None
    done = cli(database_url, "reconcile", "--quiet", "--as-of", "2026-02-11")
    assert done.returncode == 0, done.stderr
    assert '"examined": 0' in done.stdout
    bad = cli(database_url, "reconcile", "--as-of", "11/02/2026")
    assert bad.returncode != 0 and "--as-of" in bad.stderr


def test_a_match_naming_the_invoice_wins_and_the_payer_match_takes_the_next(api, db):
    """Eva pays twice 90.00: first with no reference (a payer match: the oldest invoice),
    then naming the oldest invoice. The named one gets it; the first payment is decided
    again against what is still open and pays her next invoice."""
    _, [(eva1, num1), (eva2, _)] = holder_with_invoices(api, db, "Eva Schmidt", [9000, 9000])
    upload(
        api,
        csv_file(
            "2026-02-03,90.00,USD,SCHMIDT E,pet insurance,B-1",
            f"2026-02-04,90.00,USD,Eva Schmidt,Invoice {num1},B-2",
        ),
    )
    run = _run(api)
    assert (run["examined"], run["matched"], run["suspense"]) == (2, 2, 0)
    assert _payment(api, "B-2")["allocations"] == [{"invoice_id": eva1, "amount": 9000}]
    first = _payment(api, "B-1")
    assert first["allocations"] == [{"invoice_id": eva2, "amount": 9000}]
    assert first["match"]["rule"] == "payer_name"
    assert ledger_problems(db) == []


@WRITERS
def test_matches_wanting_one_invoice_post_in_turn_with_writers_in_parallel(api, db, monkeypatch):
    """One match per batch and two writers: each of sixteen invoices is named by two payments
    in a row, the whole amount each time. Batches in flight never share an invoice, so the
    outcome is that of posting in turn: the first payment pays it, the second finds it paid
    and stays in suspense (in parallel, the second would win about half the races)."""
    from premium_billing.reconciliation import runs as reconciliation

    monkeypatch.setattr(reconciliation, "POST_BATCH", 1)
    invoices = [holder_with_invoices(api, db, f"Holder {n}", [1000 + n])[1][0] for n in range(16)]
    rows = []
    for n, (_, num) in enumerate(invoices):
        rows += [
            f"2026-02-03,{(1000 + n) / 100:.2f},USD,Holder {n},{lead} {num},P-{n}-{k}"
            for k, lead in ((1, "Invoice"), (2, "Premium for"))
        ]  # not a duplicate line
    upload(api, csv_file(*rows))
    run = _run(api)
    assert (run["examined"], run["matched"], run["suspense"]) == (32, 16, 16)
    for n, (inv, _) in enumerate(invoices):
        assert _payment(api, f"P-{n}-1")["allocations"] == [{"invoice_id": inv, "amount": 1000 + n}]
        assert _payment(api, f"P-{n}-2")["allocations"] == []
    queue = api.get("/reconciliation/suspense").json()["data"]
    assert sorted(row["payment"]["external_id"] for row in queue) == sorted(
        f"P-{n}-2" for n in range(16)
    )
    assert all(row["reason"].startswith("match not posted") for row in queue)
    assert ledger_problems(db) == []


@WRITERS
def test_held_matches_post_in_waves_in_the_order_they_were_decided(api, db, monkeypatch):
    """Three payments in a row name each of twelve invoices, half its amount each: the
    first is posted with the others, the two held after it go in two waves (the second
    wants an invoice of the first), so the outcome is that of posting in turn: the first
    two pay the invoice, the third finds nothing left."""
    from premium_billing.reconciliation import runs as reconciliation

    monkeypatch.setattr(reconciliation, "POST_BATCH", 1)
    invoices = [
        holder_with_invoices(api, db, f"Holder {n}", [2000 + 2 * n])[1][0] for n in range(12)
    ]
    rows = []
    for n, (_, num) in enumerate(invoices):
        rows += [
            f"2026-02-03,{(1000 + n) / 100:.2f},USD,Holder {n},{lead} {num},W-{n}-{k}"
            for k, lead in ((1, "Invoice"), (2, "Premium for"), (3, "Payment"))
        ]  # not duplicate lines
    upload(api, csv_file(*rows))
    run = _run(api)
    assert run["examined"] == 36 and run["matched"] + run["partially_matched"] == 24
    for n, (inv, _) in enumerate(invoices):
        for k in (1, 2):
            allocations = _payment(api, f"W-{n}-{k}")["allocations"]
            assert allocations == [{"invoice_id": inv, "amount": 1000 + n}], (n, k)
        assert _payment(api, f"W-{n}-3")["allocations"] == []
    assert ledger_problems(db) == []


@pytest.mark.parametrize("settings", [1], indirect=True)
def test_a_large_run_writes_from_processes_of_its_own_on_postgresql(db, settings, backend):
    """From RECONCILE_WRITER_PROCESSES_FROM payments on, the batches are written by forked
    processes with connections of their own (threads below it, and always on SQLite)."""
    from premium_billing.reconciliation.runs import _Writers

    with db.session() as session:
        many = _Writers(session, settings, 1, date(2026, 2, 10), payments=1)
        few = _Writers(session, settings.with_overrides(reconcile_writer_processes_from=2),
                       1, date(2026, 2, 10), payments=1)  # fmt: skip
        try:
            pids = {many.pool.submit(os.getpid).result() for _ in range(4)}
            if backend == "postgresql":
                assert isinstance(many.pool, ProcessPoolExecutor)
                assert os.getpid() not in pids
            else:
                assert isinstance(many.pool, ThreadPoolExecutor) and pids == {os.getpid()}
            assert isinstance(few.pool, ThreadPoolExecutor)
        finally:
            many.close()
            few.close()
