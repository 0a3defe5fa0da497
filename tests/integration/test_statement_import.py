"""Bank statement import over real HTTP and the CLI: payments, duplicates, returns, errors."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from sqlalchemy import func, select

from premium_billing.payments.models import Payment
from premium_billing.reconciliation.models import BankLine, BankStatement
from tests.integration.ledger_helpers import cli, ledger_problems
from tests.integration.recon_helpers import csv_file, holder_with_invoices, upload

BANK = Path(__file__).resolve().parent.parent / "fixtures" / "bank"


def _count(db, model):
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(model))


def test_csv_credits_become_payments_and_the_same_lines_twice_create_nothing(api, db):
    first = csv_file(
        "2026-02-03,480.00,USD,Ann Lee,INV-2026-000001,B-1",
        "2026-02-03,12.50,USD,Bob Roe,thanks,B-2",
        "2026-02-04,-3.00,USD,Bank,monthly fee,B-3",
    )
    response = upload(api, first)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["id"].startswith("stm_")
    assert (body["lines"], body["payments_created"], body["duplicates_skipped"]) == (3, 2, 0)
    payments = api.get("/payments").json()["data"]
    by_ref = {p["external_id"]: p for p in payments}
    assert set(by_ref) == {"B-1", "B-2"}
    ann = by_ref["B-1"]
    assert (ann["source"], ann["method"], ann["amount"], ann["status"]) == (
        "bank_statement", "bank_transfer", 48000, "unapplied",
    )  # fmt: skip
    assert (ann["payer_name"], ann["reference"], ann["received_on"]) == (
        "Ann Lee", "INV-2026-000001", "2026-02-03",
    )  # fmt: skip

    again = upload(api, first)
    assert again.status_code == 201, again.text
    assert again.json()["id"] == body["id"]
    assert (again.json()["payments_created"], again.json()["duplicates_skipped"]) == (0, 3)

    overlapping = csv_file(
        "2026-02-03,12.50,USD,Bob Roe,thanks,B-2",
        "2026-02-05,99.99,EUR,Eva Schmidt,GEN-000003,B-4",
    )
    third = upload(api, overlapping, format="csv").json()
    assert (third["lines"], third["payments_created"], third["duplicates_skipped"]) == (2, 1, 1)
    assert _count(db, Payment) == 3
    assert _count(db, BankStatement) == 2
    assert _count(db, BankLine) == 4
    assert ledger_problems(db) == []
    tb = api.get("/reports/trial-balance", params={"as_of": "2026-02-28"}).json()
    usd = next(c for c in tb["currencies"] if c["currency"] == "USD")
    accounts = {row["account"]: row["balance"] for row in usd["accounts"]}
    assert accounts["cash_bank"] == 48000 + 1250
    assert accounts["unapplied_cash"] == -(48000 + 1250)


def test_a_malformed_file_is_refused_whole_naming_the_line(api, db):
    bad = csv_file(
        "2026-02-03,480.00,USD,Ann Lee,INV-1,B-1",
        "2026-02-03,12.50,USD,Bob Roe,thanks,B-2",
        "2026-02-04,twelve,USD,Cy Doe,x,B-3",
    )
    # Few lines per batch, so the first batches are written before the bad line is read.
    response = upload(api, bad)
    assert response.status_code == 422, response.text
    assert response.headers["Content-Type"].startswith("application/problem+json")
    problem = response.json()
    assert "line 4" in problem["detail"] and "'twelve'" in problem["detail"]
    assert "file" in problem["errors"]
    assert _count(db, Payment) == 0
    assert _count(db, BankStatement) == 0
    assert _count(db, BankLine) == 0
    unknown = upload(api, b"\x00\x01binary", name="x.bin")
    assert unknown.status_code == 422
    missing = api.post("/bank-statements", data={"format": "csv"})
    assert missing.status_code == 422 and "file" in missing.json()["errors"]
    wrong_format = upload(api, csv_file("2026-02-03,1.00,USD,A,B,C"), format="pdf")
    assert wrong_format.status_code == 422 and "format" in wrong_format.json()["errors"]


def test_text_the_database_cannot_store_refuses_the_file_naming_the_line(api, db):
    # A NUL in a payer name; a UTF-8-encoded lone surrogate (bytes no valid text has).
    for text in (b"Ann\x00Lee", b"Ann \xed\xb2\x80Lee"):
        body = (
            csv_file("2026-02-03,480.00,USD,Bob Roe,INV-1,B-1")
            + b"2026-02-03,12.50,USD,"
            + text
            + b",x,B-2\n"
        )
        response = upload(api, body)
        assert response.status_code == 422, response.text
        assert "line 3" in response.json()["detail"], response.text
    assert _count(db, Payment) == 0
    assert _count(db, BankLine) == 0


def test_malformed_line_after_written_batches_leaves_nothing(db, settings):
    import io

    from premium_billing.errors import Unprocessable
    from premium_billing.reconciliation.imports import import_statement

    rows = [f"2026-02-03,{i}.00,USD,Payer {i},ref {i},R-{i}" for i in range(1, 30)]
    rows.append("2026-02-31,1.00,USD,Late,ref,R-bad")
    with db.session() as session:
        try:
            import_statement(session, settings, io.BytesIO(csv_file(*rows)), batch_size=5)
        except Unprocessable as error:
            assert "line 31" in error.message
        else:
            raise AssertionError("a malformed file was accepted")
    assert _count(db, Payment) == 0
    assert _count(db, BankLine) == 0


def test_a_reference_a_bank_payment_already_has_is_skipped_in_every_batch(db, settings):
    """Another account's statement paid B-7 already (a bank payment with that external id):
    the line is a duplicate, not a second payment; a probe per batch, lines of earlier
    batches of the same file included."""
    import io

    from premium_billing.payments.posting import Received, receive
    from premium_billing.reconciliation.imports import import_statement

    with db.session() as session:
        receive(
            session,
            [Received(100, "USD", "bank_transfer", date(2026, 2, 1), external_id="B-7")],
            source="bank_statement",
        )
        session.commit()
    rows = [f"2026-02-03,{i}.00,USD,Payer {i},ref {i},B-{i}" for i in range(1, 12)]
    with db.session() as session:
        first = import_statement(session, settings, io.BytesIO(csv_file(*rows)), batch_size=3)
    assert (first.lines, first.payments_created, first.duplicates_skipped) == (11, 10, 1)
    more = [*rows, "2026-02-04,5.00,USD,Payer 12,ref 12,B-12"]
    with db.session() as session:
        again = import_statement(session, settings, io.BytesIO(csv_file(*more)), batch_size=4)
    assert (again.lines, again.payments_created, again.duplicates_skipped) == (12, 1, 11)
    assert _count(db, Payment) == 12
    assert _count(db, BankLine) == 11
    assert ledger_problems(db) == []


def test_a_failed_write_stops_the_reader_and_leaves_nothing(db, settings, monkeypatch):
    """The next batch is read in a thread: a write that fails stops it (joined, not left
    parsing) and the error is the writer's."""
    import io
    import threading

    from premium_billing.reconciliation import imports as statement_import

    written = []
    real = statement_import._write_batch

    def fail_on_third(session, *args):  # type: ignore[no-untyped-def]
        written.append(len(args[3]))
        if len(written) == 3:
            raise RuntimeError("disk full")
        real(session, *args)

    monkeypatch.setattr(statement_import, "_write_batch", fail_on_third)
    rows = [f"2026-02-03,{i}.00,USD,Payer {i},ref {i},R-{i}" for i in range(1, 200)]
    with db.session() as session:
        try:
            statement_import.import_statement(
                session, settings, io.BytesIO(csv_file(*rows)), batch_size=5
            )
        except RuntimeError as error:
            assert str(error) == "disk full"
        else:
            raise AssertionError("the failed write was not raised")
    assert written == [5, 5, 5]
    assert not [t for t in threading.enumerate() if t.name == "statement-reader"]
    assert _count(db, Payment) == 0
    assert _count(db, BankLine) == 0


def test_a_returned_item_reverses_the_payment_it_returns(api, db):
    policy, [(inv, num)] = holder_with_invoices(api, db, "Ann Lee", [48000])
    upload(api, csv_file(f"2026-02-03,480.00,USD,Ann Lee,{num},B-1"))
    run = api.post("/reconciliation/runs", json={"as_of": "2026-02-03"}).json()
    assert run["matched"] == 1
    assert api.get(f"/invoices/{inv}").json()["status"] == "paid"
    returned = csv_file(
        "2026-02-06,-480.00,USD,Ann Lee,RETURN B-1 R01 insufficient funds,B-9,true",
        header="date,amount,currency,payer_name,reference,bank_reference,is_return",
    )
    response = upload(api, returned)
    assert response.status_code == 201, response.text
    assert response.json()["returns_reversed"] == 1
    assert response.json()["payments_created"] == 0
    payment = api.get("/payments").json()["data"][0]
    assert payment["status"] == "reversed" and payment["amount_reversed"] == 48000
    assert api.get(f"/invoices/{inv}").json()["status"] == "open"
    assert ledger_problems(db) == []


def test_bai2_and_camt053_files_are_detected_and_imported(api, db):
    for name in ("svb_us_example.bai2", "oca_test_camt053.xml"):
        content = (BANK / name).read_bytes()
        response = upload(api, content, name=name)
        assert response.status_code == 201, (name, response.text)
        body = response.json()
        assert body["lines"] > 0 and body["payments_created"] > 0, (name, body)
    assert ledger_problems(db) == []


def test_cli_import_statement_and_its_errors(database_url, tmp_path):
    good = tmp_path / "good.csv"
    good.write_bytes(csv_file("2026-02-03,10.00,USD,Ann Lee,hello,B-1"))
    done = cli(database_url, "import-statement", "--quiet", str(good))
    assert done.returncode == 0, done.stderr
    assert '"payments_created": 1' in done.stdout
    bad = tmp_path / "bad.csv"
    bad.write_bytes(csv_file("2026-02-03,10.00,XYZ,Ann Lee,hello,B-2"))
    failed = cli(database_url, "import-statement", "--quiet", str(bad))
    assert failed.returncode != 0
    lines = [line for line in failed.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "line 2" in lines[0] and "XYZ" in lines[0], failed.stderr
    missing = cli(database_url, "import-statement", str(tmp_path / "nope.csv"))
    assert missing.returncode != 0 and "nope.csv" in missing.stderr
