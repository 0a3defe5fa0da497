"""Bank files read exactly as banks write them (issue 13, items 1-5): batched CAMT entries,
amounts with trailing zeros, BAI2's own published sample, payer and remittance from every
place banks put them, CSV exports of real banks. Files in tests/fixtures/bank (README)."""

from __future__ import annotations

import io
import re
from datetime import date
from pathlib import Path

import pytest

from premium_billing.reconciliation.bank_files import (
    StatementError,
    StatementLine,
    read_bai2,
    read_camt053,
    read_csv,
    read_statement,
)

BANK = Path(__file__).resolve().parent.parent / "fixtures" / "bank"
SWISS_BATCH = BANK / "swiss_qr_batch_camt053.xml"
SEPA_BATCH = BANK / "sepa_dd_batch_camt053.xml"
SEPA_RETURN = BANK / "sepa_dd_batch_return_camt053.xml"
BAI2_SPEC = BANK / "bai2_spec_sample.bai2"
SVB = BANK / "svb_us_example.bai2"


def lines_of(data: bytes, **kwargs: object) -> list[StatementLine]:
    return list(read_statement(io.BytesIO(data), **kwargs).lines)  # type: ignore[arg-type]


# -- item 1: a batched CAMT entry is a payment per transaction --------------------------


def test_swiss_qr_batch_is_a_line_per_transaction_with_its_own_payer_and_reference() -> None:
    data = SWISS_BATCH.read_bytes()
    lines = lines_of(data)
    assert len(lines) == 10
    assert sum(line.amount for line in lines) == 374475  # the entry's 3,744.75 CHF
    assert all(line.line_no == 1 and line.currency == "CHF" for line in lines)
    first, second, third, fourth = lines[:4]
    assert (first.amount, first.payer_name, first.payer_account) == (
        112000,
        "Muster AG",
        "CH5604835012345678009",
    )
    assert first.reference == "210000000003139471430009017"  # the QR reference
    # Structured reference first, the unstructured text after it.
    assert second.reference == "000000000000000000000000016 Praemie Hund Bello"
    assert second.payer_name == "Claudia Müller"
    assert (third.amount, third.reference) == (8550, "RF18539007547034")
    # No debtor name: the ultimate debtor pays.
    assert fourth.payer_name == "Tierarztpraxis Bern GmbH"
    # The entry's reference and the transaction's id: EndToEndId, else (NOTPROVIDED) its
    # AcctSvcrRef.
    assert first.bank_reference == "20261130NCXX0AOJ0M8Z/20261130000001"
    assert third.bank_reference == "20261130NCXX0AOJ0M8Z/E2E-202611203"
    assert len({line.bank_reference for line in lines}) == 10
    assert [line.bank_reference for line in lines_of(data)] == [
        line.bank_reference for line in lines
    ]  # stable across re-imports
    assert not any(line.is_return for line in lines)


def test_a_batch_whose_details_do_not_add_up_is_refused_naming_the_entry() -> None:
    data = SWISS_BATCH.read_bytes().replace(
        b'<Amt Ccy="CHF">85.50</Amt>', b'<Amt Ccy="CHF">85.05</Amt>'
    )
    statement = read_camt053(io.BytesIO(data))
    with pytest.raises(StatementError) as caught:
        list(statement.lines)
    assert caught.value.element == "Ntry[1]"
    assert "add up to 3744.30 CHF, not the entry's 3744.75 CHF" in caught.value.reason


def test_a_batch_detail_without_an_amount_names_its_element() -> None:
    data = SWISS_BATCH.read_bytes().replace(
        b'<Amt Ccy="CHF">85.50</Amt>', b"<AddtlTxInf>no amount</AddtlTxInf>"
    )
    with pytest.raises(StatementError) as caught:
        list(read_camt053(io.BytesIO(data)).lines)
    assert caught.value.element == "Ntry[1]/NtryDtls/TxDtls[3]"


def test_a_batch_whose_details_carry_no_amount_at_all_stays_one_line() -> None:
    data = re.sub(
        r'<Amt Ccy="CHF">[0-9.]+</Amt>\s*<CdtDbtInd>CRDT</CdtDbtInd>\s*<BkTxCd>\s*'
        r"<Domn>\s*<Cd>PMNT</Cd>\s*<Fmly>\s*<Cd>RCDT</Cd>\s*<SubFmlyCd>VCOM"
        r"</SubFmlyCd>\s*</Fmly>\s*</Domn>\s*</BkTxCd>\s*<RltdPties>",
        "<RltdPties>",
        SWISS_BATCH.read_text(),
    )
    (line,) = lines_of(data.encode())
    assert line.amount == 374475
    assert line.bank_reference == "20261130NCXX0AOJ0M8Z"


def test_batch_details_without_ids_of_their_own_are_told_apart_by_position() -> None:
    data = SWISS_BATCH.read_text()
    data = re.sub(r"<AcctSvcrRef>2026113000\d{4}</AcctSvcrRef>", "", data)
    data = re.sub(r"<EndToEndId>[^<]*</EndToEndId>", "<EndToEndId>NOTPROVIDED</EndToEndId>", data)
    lines = lines_of(data.encode())
    assert [line.bank_reference for line in lines] == [
        f"20261130NCXX0AOJ0M8Z/{n}" for n in range(1, 11)
    ]
    # Two details naming the same id are told apart by position too.
    twice = SWISS_BATCH.read_text().replace("E2E-202611206", "E2E-202611203")
    references = [line.bank_reference for line in lines_of(twice.encode())]
    assert references[2] == "20261130NCXX0AOJ0M8Z/3"
    assert references[5] == "20261130NCXX0AOJ0M8Z/6"
    assert len(set(references)) == 10


def test_sepa_direct_debit_batch_version_02_amounts_in_amtdtls() -> None:
    lines = lines_of(SEPA_BATCH.read_bytes())
    assert [(line.amount, line.payer_name) for line in lines] == [
        (1815, "Jonas Weber"),  # written 18.150 EUR
        (4200, "Lena Fischer"),
        (4200, "Mia Wagner"),
    ]
    assert [line.bank_reference for line in lines] == [
        "2026120100045678/PV-2026-12-000101",
        "2026120100045678/PV-2026-12-000102",
        "2026120100045678/PV-2026-12-000103",
    ]
    assert lines[1].reference == "Praemie Dezember RF97INV2026000102"
    assert lines[0].bank_transaction_code == "PMNT/IDDT/ESDD"


def test_a_batched_return_is_a_return_per_original_naming_it() -> None:
    lines = lines_of(SEPA_RETURN.read_bytes())
    assert [(line.amount, line.is_return, line.return_reason) for line in lines] == [
        (-4200, True, "AM04"),
        (-4200, True, "MD06"),
    ]
    assert [line.names for line in lines] == [("PV-2026-12-000102",), ("PV-2026-12-000103",)]
    assert [line.payer_name for line in lines] == ["Lena Fischer", "Mia Wagner"]


# -- item 2: amounts exact in minor units -----------------------------------------------


def _camt08(entries: str, currency: str) -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"><BkToCstmrStmt>
<GrpHdr><MsgId>RO-1</MsgId><CreDtTm>2026-11-30T08:00:00</CreDtTm></GrpHdr>
<Stmt><Id>RO-1</Id><Acct><Id><IBAN>RO49AAAA1B31007593840000</IBAN></Id><Ccy>{currency}</Ccy></Acct>
<Bal><Tp><CdOrPrtry><Cd>OPBD</Cd></CdOrPrtry></Tp><Amt Ccy="{currency}">100000.00000</Amt>
<CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>2026-11-30</Dt></Dt></Bal>
{entries}
</Stmt></BkToCstmrStmt></Document>""".encode()


def _ntry08(amount: str, currency: str, parties: str = "", remittance: str = "") -> str:
    return (
        f'<Ntry><NtryRef>N-{amount}</NtryRef><Amt Ccy="{currency}">{amount}</Amt>'
        "<CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>"
        "<BookgDt><Dt>2026-11-30</Dt></BookgDt><BkTxCd><Prtry><Cd>TRF</Cd></Prtry></BkTxCd>"
        f"<NtryDtls><TxDtls><Refs><EndToEndId>NOTPROVIDED</EndToEndId></Refs>"
        f"<RltdPties>{parties}</RltdPties><RmtInf>{remittance}</RmtInf></TxDtls></NtryDtls></Ntry>"
    )


def test_five_decimals_exact_in_minor_units_are_taken_a_real_fraction_refused() -> None:
    data = _camt08(_ntry08("5442.09000", "RON") + _ntry08("18.150", "RON"), "RON")
    statement = read_camt053(io.BytesIO(data))
    assert statement.opening_balance == 10000000
    assert [line.amount for line in statement.lines] == [544209, 1815]
    bad = _camt08(_ntry08("5442.09001", "RON"), "RON")
    with pytest.raises(StatementError) as caught:
        list(read_camt053(io.BytesIO(bad)).lines)
    assert caught.value.element == "Ntry[1]/Amt"
    assert "more decimals than RON allows" in caught.value.reason


# -- item 4: payer and remittance from every place banks put them ------------------------


def test_camt_payer_from_dbtr_pty_or_ultimate_debtor_structured_reference_first() -> None:
    entries = _ntry08(
        "10.00",
        "EUR",
        "<Dbtr><Pty><Nm>Ioana Popescu</Nm></Pty></Dbtr>"
        "<DbtrAcct><Id><IBAN>RO09BCYP0000001234567890</IBAN></Id></DbtrAcct>",
        "<Ustrd>prima decembrie</Ustrd><Strd><CdtrRefInf><Tp><CdOrPrtry><Cd>SCOR</Cd>"
        "</CdOrPrtry></Tp><Ref>RF18539007547034</Ref></CdtrRefInf></Strd>",
    ) + _ntry08(
        "20.00",
        "EUR",
        "<UltmtDbtr><Pty><Nm>Andrei Ionescu</Nm></Pty></UltmtDbtr>",
        "<Strd><RfrdDocInf><Nb>INV-2026-000042</Nb></RfrdDocInf></Strd>",
    )
    first, second = read_camt053(io.BytesIO(_camt08(entries, "EUR"))).lines
    assert first.payer_name == "Ioana Popescu"
    assert first.payer_account == "RO09BCYP0000001234567890"
    assert first.reference == "RF18539007547034 prima decembrie"
    assert second.payer_name == "Andrei Ionescu"
    assert second.reference == "INV-2026-000042"


def _svb_with_text(*continuations: str, type_code: str = "195") -> bytes:
    """The SVB sample (ministryofjustice/bai2) with its first credit an incoming wire."""
    text = SVB.read_text()
    old = "16,142,490196,,172629,/\n88,SOME PAYMENT ACH OFFSET\n"
    new = f"16,{type_code},490196,,172629,/\n" + "".join(f"88,{c}\n" for c in continuations)
    assert old in text
    text = text.replace(old, new)
    # The record counts of the account, group and file grow with the continuations.
    extra = len(continuations) - 1
    text = text.replace("49,138884258,7/", f"49,138884258,{7 + extra}/")
    text = text.replace("98,138884258,1,9/", f"98,138884258,1,{9 + extra}/")
    return text.replace("99,282030196,2,20", f"99,282030196,2,{20 + extra}").encode()


@pytest.mark.parametrize("tag", [":=", "=", ":"])
def test_bai2_fedwire_originator_and_obi_name_payer_and_reference(tag: str) -> None:
    data = _svb_with_text(
        f"WIRE TYPE{tag}FED IN DATE{tag}220201 TIME{tag}1032 ET",
        f"TRN{tag}20220201000123 SEQ{tag}123456/000321",
        f"ORG{tag}/987654321 PAWS AND CLAWS LLC",
        f"OBI{tag}INV-2026-000101 PREMIUM",
    )
    wire = list(read_bai2(io.BytesIO(data)).lines)[0]
    assert wire.amount == 490196
    assert wire.payer_name == "PAWS AND CLAWS LLC"
    assert wire.payer_account == "987654321"
    assert wire.reference == "INV-2026-000101 PREMIUM"


def test_bai2_goldman_debtor_name_and_remittance_tags() -> None:
    data = _svb_with_text(
        "REMI: INV-2026-000102",
        "EREF: GS0D9VGMP1IWPLW",
        "DBNM: TEST AND COMPANY",
        "DACT: 8348572423",
    )
    wire = list(read_bai2(io.BytesIO(data)).lines)[0]
    assert (wire.payer_name, wire.payer_account, wire.reference) == (
        "TEST AND COMPANY",
        "8348572423",
        "INV-2026-000102",
    )


# -- item 3: BAI2's own published sample ---------------------------------------------------


def test_bai2_spec_sample_continuations_start_a_new_field() -> None:
    statement = read_statement(io.BytesIO(BAI2_SPEC.read_bytes()))
    assert statement.format == "bai2" and statement.currency == "USD"
    lines = list(statement.lines)
    assert [(line.line_no, line.amount, line.bank_transaction_code) for line in lines] == [
        (5, 450000, "115"),
        (10, 500000, "115"),
        (16, 20000000, "218"),
        (18, 10000000, "195"),
    ]
    assert lines[1].reference == "LOCK BOX NO.68751"
    letter_of_credit = lines[2]
    assert letter_of_credit.bank_reference == "SP4738"
    assert letter_of_credit.value_date == date(2004, 6, 22)
    assert letter_of_credit.reference == "PROCEEDS OF LETTER OF CREDIT FROM THE ARAMCO OIL CO"
    assert all(line.booking_date == date(2004, 6, 20) for line in lines)


def test_bai2_text_continued_over_several_records_is_one_text() -> None:
    data = _svb_with_text("AMALGAMATED CORP. LOCKBOX", "DEPOSIT-MISC. RECEIVABLES")
    line = list(read_bai2(io.BytesIO(data)).lines)[0]
    assert line.reference == "AMALGAMATED CORP. LOCKBOX DEPOSIT-MISC. RECEIVABLES"


@pytest.mark.parametrize(
    ("old", "new", "line", "words"),
    [
        ("49,4000000,5/", "49,4000001,5/", 11, "account control total"),
        ("49,4000000,5/", "49,4000000,4/", 11, "number of records"),
        ("98,13150000,2,11/", "98,13150000,2,12/", 12, "number of records"),
        ("99,345450000,4,31/", "99,345450001,4,31/", 31, "control total"),
    ],
)
def test_bai2_spec_sample_with_wrong_totals_or_counts_is_refused(
    old: str, new: str, line: int, words: str
) -> None:
    text = BAI2_SPEC.read_text()
    assert old in text
    with pytest.raises(StatementError) as caught:
        read_bai2(io.BytesIO(text.replace(old, new).encode()))
    assert caught.value.line == line
    assert words in caught.value.reason


# -- item 5: CSV exports of real banks ---------------------------------------------------

# Chase (US) checking export: MM/DD/YYYY, one signed amount, no currency and no id column,
# one more (empty) field than its header on every row.
CHASE = (
    "Details,Posting Date,Description,Amount,Type,Balance,Check or Slip #\n"
    'CREDIT,12/15/2026,"ZELLE FROM JANE DOE ON 12/15 REF # PP0JX8KQ3B INV-2026-000101",'
    "480.00,QUICKPAY_CREDIT,5480.00,,\n"
    'DEBIT,12/16/2026,"ACH DEBIT MONTHLY SERVICE FEE",-12.00,FEE_TRANSACTION,5468.00,,\n'
    'CREDIT,12/17/2026,"ORIG CO NAME:PAWS AND CLAWS LLC ORIG ID:1234567890",'
    "1480.25,ACH_CREDIT,6948.25,,\n"
)
CHASE_MAPPING = {
    "date": "Posting Date",
    "amount": "Amount",
    "reference": "Description",
    "payer_name": None,
    "currency": None,
    "bank_reference": None,
    "date_format": "MM/DD/YYYY",
    "statement_currency": "USD",
}


def test_chase_export_us_dates_signed_amount_derived_references() -> None:
    lines = lines_of(CHASE.encode(), format="csv", csv_mapping=CHASE_MAPPING)
    assert [(line.booking_date, line.amount, line.currency) for line in lines] == [
        (date(2026, 12, 15), 48000, "USD"),
        (date(2026, 12, 16), -1200, "USD"),
        (date(2026, 12, 17), 148025, "USD"),
    ]
    assert lines[0].reference.endswith("INV-2026-000101")
    assert all(line.bank_reference.startswith("derived:") for line in lines)
    again = lines_of(CHASE.encode(), format="csv", csv_mapping=CHASE_MAPPING)
    assert [line.bank_reference for line in again] == [line.bank_reference for line in lines]


# Deutsche Bank (DE) export (tests/fixtures/bank/deutsche_bank_export.csv): a preamble of 4
# lines before its header, ';' between fields, Windows-1252 text, DD.MM.YYYY, '1.234,56',
# debit (Soll, written negative) and credit (Haben) in two columns.
DEUTSCHE_BANK = (BANK / "deutsche_bank_export.csv").read_bytes().decode("cp1252")
DEUTSCHE_BANK_MAPPING = {
    "date": "Buchungstag",
    "value_date": "Wert",
    "payer_name": "Begünstigter / Auftraggeber",
    "reference": "Verwendungszweck",
    "payer_account": "IBAN",
    "currency": "Währung",
    "debit": "Soll",
    "credit": "Haben",
    "bank_reference": None,
    "skip_lines": "4",
    "delimiter": "semicolon",
    "encoding": "cp1252",
    "date_format": "DD.MM.YYYY",
    "decimal": "comma",
    "thousands": "dot",
}


def test_deutsche_bank_export_preamble_separators_and_debit_credit_columns() -> None:
    data = DEUTSCHE_BANK.encode("cp1252")
    lines = lines_of(data, csv_mapping=DEUTSCHE_BANK_MAPPING)  # detected despite its preamble
    assert [(line.line_no, line.amount, line.payer_name) for line in lines] == [
        (6, 148000, "Jonas Weber"),
        (7, -1250, None),
        (8, 104965, "Lena Fischer"),
    ]
    assert lines[0].reference == "RF18539007547034 Prämie Bello"
    assert lines[0].payer_account == "DE89370400440532013000"
    assert lines[0].booking_date == date(2026, 12, 2) == lines[0].value_date


@pytest.mark.parametrize(
    ("row", "words"),
    [
        ("05.12.2026;05.12.2026;x;A;B;;;;;;;;;;;-1,00;2,00;EUR\n", "both debit and credit"),
        ("05.12.2026;05.12.2026;x;A;B;;;;;;;;;;;;;EUR\n", "neither debit nor credit"),
        ("05.12.2026;05.12.2026;x;A;B;;;;;;;;;;;;1.00;EUR\n", "credit '1.00' is not a number"),
        ("05.12.2026;05.12.2026;x;A;B;;;;;;;;;;;;12.34,5;EUR\n", "credit '12.34,5' is not a"),
        ("12/05/2026;05.12.2026;x;A;B;;;;;;;;;;;;1,00;EUR\n", "format DD.MM.YYYY"),
        ("05.12.2026;05.12.2026;x;A;B;;;;;;;;;;;;1,001;EUR\n", "more decimals than EUR"),
    ],
)
def test_a_bad_row_of_a_bank_export_names_its_physical_line(row: str, words: str) -> None:
    data = (DEUTSCHE_BANK + row).encode("cp1252")
    statement = read_csv(io.BytesIO(data), DEUTSCHE_BANK_MAPPING)
    with pytest.raises(StatementError) as caught:
        list(statement.lines)
    assert caught.value.line == 9
    assert words in caught.value.reason


@pytest.mark.parametrize(
    ("written", "decimal", "thousands", "expected"),
    [
        ("1.234,56", "comma", "dot", 123456),
        ("1.234,56-", "comma", "dot", -123456),
        ("1'234.50", "dot", "apostrophe", 123450),
        ("1 234,50", "comma", "space", 123450),
        ("1\u202f234,50", "comma", "space", 123450),
        ("(1,234.56)", "dot", "comma", -123456),
        ("-0,01", "comma", "none", -1),
    ],
)
def test_separators_of_real_exports(
    written: str, decimal: str, thousands: str, expected: int
) -> None:
    data = f'date;amount;currency;bank_reference\n2026-12-01;"{written}";EUR;R-1\n'.encode()
    mapping = {"delimiter": "semicolon", "decimal": decimal, "thousands": thousands}
    assert [line.amount for line in lines_of(data, csv_mapping=mapping)] == [expected]


@pytest.mark.parametrize(
    ("option", "value", "words"),
    [
        ("date_format", "MM/YYYY", "must name YYYY"),
        ("decimal", "x", "use one of"),
        ("decimal", "apostrophe", "dot or comma"),
        ("thousands", "comma", "the same"),
        ("skip_lines", "two", "not a whole number"),
        ("encoding", "klingon", "unknown encoding"),
        ("statement_currency", "EUX", "unknown currency"),
    ],
)
def test_a_bad_layout_option_is_refused_naming_it(option: str, value: str, words: str) -> None:
    mapping = {"decimal": "comma", option: value} if option == "thousands" else {option: value}
    with pytest.raises(StatementError, match=words):
        read_csv(io.BytesIO(b"date,amount,currency,bank_reference\n"), mapping)


def test_a_detected_bai2_file_is_read_whatever_the_csv_mapping() -> None:
    lines = lines_of(SVB.read_bytes(), csv_mapping=DEUTSCHE_BANK_MAPPING)
    assert [line.amount for line in lines] == [490196, 905800]
