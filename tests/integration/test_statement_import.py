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


def test_postgresql_batches_are_built_in_the_reader_thread_and_write_the_same(
    db, settings, monkeypatch
):
    """On PostgreSQL the reader thread builds each batch's rows (ids reserved on a connection
    of its own), the writer only writes them; on SQLite the writer builds them. Either way
    the same rows: a line imported before is skipped, the ledger checks out."""
    import io
    import threading

    from premium_billing.reconciliation import imports as statement_import

    built_in: list[str] = []
    real = statement_import._write_prepared

    def record(session, statement_id, batch, *rest):  # type: ignore[no-untyped-def]
        built_in.append(batch.built_by)
        real(session, statement_id, batch, *rest)

    monkeypatch.setattr(statement_import, "_write_prepared", record)
    real_call = statement_import._Preparer.__call__

    def tagged(self, batch):  # type: ignore[no-untyped-def]
        prepared = real_call(self, batch)
        prepared.built_by = threading.current_thread().name
        return prepared

    monkeypatch.setattr(statement_import._Preparer, "__call__", tagged)
    first = csv_file("2026-02-03,10.00,USD,Payer 0,ref 0,R-0")
    rows = [f"2026-02-0{3 + i % 2},{i}.00,USD,Payer {i},ref {i},R-{i}" for i in range(12)]
    rows.append("2026-02-04,-2.00,USD,Bank,fee,F-1")
    with db.session() as session:
        statement_import.import_statement(session, settings, io.BytesIO(first))
        result = statement_import.import_statement(
            session, settings, io.BytesIO(csv_file(*rows)), batch_size=5
        )
    postgres = db.engine.dialect.name == "postgresql"
    assert built_in == (["statement-reader"] * 4 if postgres else [])
    assert (result.lines, result.payments_created, result.duplicates_skipped) == (13, 11, 1)
    assert _count(db, Payment) == 12
    assert _count(db, BankLine) == 13
    with db.session() as s:
        lines = s.execute(select(BankLine.bank_reference, BankLine.payment_id, BankLine.kind))
        paid = {ref: (pid, kind) for ref, pid, kind in lines}
        external = dict(s.execute(select(Payment.external_id, Payment.id)).all())
    assert paid["F-1"] == (None, "debit")
    assert all(paid[ref] == (external[ref], "payment") for ref in external)
    assert ledger_problems(db) == []


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


# -- issue 13: bank files read exactly as banks write them ---------------------------------


def _payments_by_reference(api):
    payments = api.get("/payments", params={"limit": 500}).json()["data"]
    return {p["external_id"]: p for p in payments}


def test_a_batched_camt_entry_becomes_a_payment_per_transaction(api, db):
    content = (BANK / "swiss_qr_batch_camt053.xml").read_bytes()
    response = upload(api, content, name="camt053.xml")
    assert response.status_code == 201, response.text
    assert (response.json()["lines"], response.json()["payments_created"]) == (10, 10)
    payments = _payments_by_reference(api)
    assert len(payments) == 10
    assert sum(p["amount"] for p in payments.values()) == 374475
    muster = payments["20261130NCXX0AOJ0M8Z/20261130000001"]
    assert (muster["amount"], muster["currency"], muster["payer_name"], muster["reference"]) == (
        112000, "CHF", "Muster AG", "210000000003139471430009017",
    )  # fmt: skip
    hans = payments["20261130NCXX0AOJ0M8Z/E2E-202611203"]
    assert (hans["amount"], hans["payer_name"], hans["reference"]) == (
        8550, "Hans Meier", "RF18539007547034",
    )  # fmt: skip
    assert payments["20261130NCXX0AOJ0M8Z/20261130000004"]["payer_name"] == (
        "Tierarztpraxis Bern GmbH"
    )
    # The same entries in another file (a re-sent statement): nothing new.
    resent = content.replace(b"<MsgId>20261130375204000006", b"<MsgId>20261130375204000099")
    again = upload(api, resent, name="camt053-resent.xml").json()
    assert (again["payments_created"], again["duplicates_skipped"]) == (0, 10)
    assert _count(db, Payment) == 10
    assert ledger_problems(db) == []


def test_a_batch_that_does_not_add_up_is_refused_naming_the_entry(api, db):
    content = (BANK / "swiss_qr_batch_camt053.xml").read_bytes()
    bad = content.replace(b'<Amt Ccy="CHF">85.50</Amt>', b'<Amt Ccy="CHF">85.05</Amt>')
    response = upload(api, bad, name="camt053.xml")
    assert response.status_code == 422, response.text
    assert "element Ntry[1]:" in response.json()["detail"]
    assert "not the entry's 3744.75 CHF" in response.json()["detail"]
    assert _count(db, Payment) == 0
    assert _count(db, BankLine) == 0
    assert _count(db, BankStatement) == 0


def test_a_batched_return_reverses_each_original_it_names(api, db):
    collected = upload(api, (BANK / "sepa_dd_batch_camt053.xml").read_bytes(), name="c.xml")
    assert collected.status_code == 201, collected.text
    assert collected.json()["payments_created"] == 3
    payments = _payments_by_reference(api)
    assert payments["2026120100045678/PV-2026-12-000101"]["amount"] == 1815  # 18.150 EUR
    returned = upload(api, (BANK / "sepa_dd_batch_return_camt053.xml").read_bytes(), name="r.xml")
    assert returned.status_code == 201, returned.text
    assert (returned.json()["returns_reversed"], returned.json()["payments_created"]) == (2, 0)
    statuses = {ref: p["status"] for ref, p in _payments_by_reference(api).items()}
    assert statuses == {
        "2026120100045678/PV-2026-12-000101": "unapplied",
        "2026120100045678/PV-2026-12-000102": "reversed",
        "2026120100045678/PV-2026-12-000103": "reversed",
    }
    with db.session() as s:
        reasons = set(s.scalars(select(BankLine.return_reason).where(BankLine.kind == "return")))
    assert reasons == {"AM04", "MD06"}
    assert ledger_problems(db) == []


def test_bai2_published_sample_is_imported(api, db):
    content = (BANK / "bai2_spec_sample.bai2").read_bytes()
    response = upload(api, content, name="sample.bai2")
    assert response.status_code == 201, response.text
    assert (response.json()["lines"], response.json()["payments_created"]) == (4, 4)
    amounts = sorted(p["amount"] for p in _payments_by_reference(api).values())
    assert amounts == [450000, 500000, 10000000, 20000000]
    bad = content.replace(b"49,4000000,5/", b"49,4000001,5/")
    refused = upload(api, bad, name="bad.bai2")
    assert refused.status_code == 422
    assert "line 11" in refused.json()["detail"] and "control total" in refused.json()["detail"]
    assert _count(db, Payment) == 4
    assert ledger_problems(db) == []


DEUTSCHE_BANK_COLUMNS = (
    "date=Buchungstag,value_date=Wert,payer_name=Begünstigter / Auftraggeber,"
    "reference=Verwendungszweck,payer_account=IBAN,currency=Währung,debit=Soll,credit=Haben,"
    "bank_reference=,skip_lines=4,delimiter=semicolon,encoding=cp1252,"
    "date_format=DD.MM.YYYY,decimal=comma,thousands=dot"
)
DEUTSCHE_BANK_EXPORT = (BANK / "deutsche_bank_export.csv").read_bytes().decode("cp1252")


def test_a_bank_csv_export_read_through_bank_csv_columns(db, settings):
    import io

    from premium_billing.errors import Unprocessable
    from premium_billing.reconciliation.imports import import_statement

    configured = settings.with_overrides(bank_csv_columns=DEUTSCHE_BANK_COLUMNS)
    data = DEUTSCHE_BANK_EXPORT.encode("cp1252")
    with db.session() as session:
        result = import_statement(session, configured, io.BytesIO(data))
    assert (result.lines, result.payments_created) == (3, 2)
    with db.session() as s:
        payment = s.scalars(select(Payment).where(Payment.payer_name == "Jonas Weber")).one()
        assert (payment.amount, payment.currency, payment.payer_name) == (
            148000,
            "EUR",
            "Jonas Weber",
        )
        assert payment.received_on == date(2026, 12, 2)
        fee = s.scalars(select(BankLine).where(BankLine.kind == "debit")).one()
        assert (fee.amount, fee.line_no) == (-1250, 7)
    bad = (DEUTSCHE_BANK_EXPORT + "04.12.2026;04.12.2026;x;A;B;;;;;;;;;;;;1,001;EUR\n").encode(
        "cp1252"
    )
    with db.session() as session:
        try:
            import_statement(session, configured, io.BytesIO(bad))
        except Unprocessable as error:
            assert "line 9" in error.message and "more decimals than EUR" in error.message
        else:
            raise AssertionError("a fraction of a cent was accepted")
    assert _count(db, Payment) == 2
    assert ledger_problems(db) == []


def test_cli_import_statement_with_a_bank_layout(database_url, tmp_path, monkeypatch):
    export = tmp_path / "umsaetze.csv"
    export.write_bytes(DEUTSCHE_BANK_EXPORT.encode("cp1252"))
    monkeypatch.setenv("BANK_CSV_COLUMNS", DEUTSCHE_BANK_COLUMNS)
    done = cli(database_url, "import-statement", "--quiet", str(export))
    assert done.returncode == 0, done.stderr
    assert '"payments_created": 2' in done.stdout
    monkeypatch.setenv(
        "BANK_CSV_COLUMNS", DEUTSCHE_BANK_COLUMNS.replace("skip_lines=4", "skip_lines=2")
    )
    other = tmp_path / "umsaetze2.csv"
    other.write_bytes(DEUTSCHE_BANK_EXPORT.replace("2026", "2025").encode("cp1252"))
    failed = cli(database_url, "import-statement", "--quiet", str(other))
    assert failed.returncode != 0
    lines = [line for line in failed.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "line 3" in lines[0] and "Buchungstag" in lines[0], failed.stderr
    checked = cli(database_url, "ledger", "check")
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_bai2_fedwire_originator_names_the_payer_and_its_obi_the_reference(api, db):
    content = (BANK / "svb_fedwire_example.bai2").read_bytes()
    response = upload(api, content, name="wires.bai2")
    assert response.status_code == 201, response.text
    wire = _payments_by_reference(api)["172629"]
    assert (wire["amount"], wire["payer_name"], wire["reference"]) == (
        490196, "PAWS AND CLAWS LLC", "INV-2026-000101 PREMIUM",
    )  # fmt: skip
    with db.session() as s:
        line = s.scalars(select(BankLine).where(BankLine.bank_reference == "172629")).one()
        assert line.payer_account == "987654321"
    assert ledger_problems(db) == []
