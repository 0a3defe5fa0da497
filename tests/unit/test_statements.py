"""Bank statement readers: real sample files (tests/fixtures/bank), malformed input, streaming."""

from __future__ import annotations

import io
import tracemalloc
import xml.etree.ElementTree as ET
from datetime import date
from pathlib import Path

import pytest

from premium_billing.reconciliation.bank_files import (
    StatementError,
    StatementLine,
    detect_format,
    read_bai2,
    read_camt053,
    read_csv,
    read_statement,
)

BANK = Path(__file__).resolve().parent.parent / "fixtures" / "bank"
CAMT = BANK / "oca_test_camt053.xml"
SVB = BANK / "svb_us_example.bai2"
CITI = BANK / "citi_gb_example.bai2"

CSV_HEADER = "date,amount,currency,payer_name,reference,bank_reference\n"


def read_file(path: Path, **kwargs: object) -> tuple[object, list[StatementLine]]:
    with path.open("rb") as stream:
        statement = read_statement(stream, **kwargs)  # type: ignore[arg-type]
        return statement, list(statement.lines)


def csv_lines(text: str, **kwargs: object) -> list[StatementLine]:
    statement = read_csv(io.BytesIO(text.encode("utf-8")), **kwargs)  # type: ignore[arg-type]
    return list(statement.lines)


class NonSeekable(io.RawIOBase):
    """An upload stream that cannot seek (a socket, a pipe)."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def, override]
        chunk = self._data.read(min(len(buffer), 100))
        buffer[: len(chunk)] = chunk
        return len(chunk)


# -- CAMT.053: the OCA sample -----------------------------------------------------------


def test_camt_sample_header_and_balances() -> None:
    statement, lines = read_file(CAMT)
    assert statement.format == "camt053"  # type: ignore[attr-defined]
    assert statement.account == "NL77ABNA0574908765"  # type: ignore[attr-defined]
    assert statement.currency == "EUR"  # type: ignore[attr-defined]
    assert statement.opening_balance == 1556827  # type: ignore[attr-defined]
    assert statement.closing_balance == 1512112  # type: ignore[attr-defined]
    assert [line.line_no for line in lines] == [1, 2, 3]
    assert [line.amount for line in lines] == [-75425, -59405, 140531]


def test_camt_sample_direct_debit() -> None:
    _, lines = read_file(CAMT)
    debit = lines[0]
    assert debit.amount == -75425
    assert debit.currency == "EUR"
    assert debit.booking_date == date(2013, 1, 5)
    assert debit.value_date == date(2013, 1, 5)
    assert debit.reference == "Insurance policy 857239PERIOD 01.01.2013 - 31.12.2013"
    assert debit.payer_name == "INSURANCE COMPANY TESTX"  # the creditor of our debit
    assert debit.payer_account == "NL46ABNA0499998748"
    assert debit.is_return is False
    assert debit.return_reason is None
    assert debit.bank_transaction_code == "PMNT/RDDT/ESDD"


def test_camt_sample_reversed_debit_is_a_return_with_reason() -> None:
    _, lines = read_file(CAMT)
    reversal = lines[1]
    assert reversal.amount == -59405  # the entry amount, not TxAmt (564.05 in the file)
    assert reversal.is_return is True
    assert reversal.return_reason == "AC06"
    assert reversal.reference == "Direct Debit S14 0410"
    assert reversal.payer_name == "Test Customer"
    assert reversal.bank_transaction_code == "PMNT/IDDT/UPDD"


def test_camt_sample_credit_text_only_in_addtltxinf() -> None:
    _, lines = read_file(CAMT)
    credit = lines[2]
    assert credit.amount == 140531
    assert credit.reference == "#RD PARTY MEDIA CUSNO 90782 4210773"
    assert credit.payer_name == "3rd party Media"
    assert credit.payer_account == "NL69ABNA0522123643"
    assert credit.is_return is False
    assert credit.bank_transaction_code == "PMNT/RCDT/ESCT"


def test_camt_bank_references_are_unique_and_stable() -> None:
    _, first = read_file(CAMT)
    _, second = read_file(CAMT)
    references = [line.bank_reference for line in first]
    assert len(set(references)) == 3
    assert all(reference for reference in references)
    assert references == [line.bank_reference for line in second]


def _camt(entries: str, namespace: str = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.02") -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="{namespace}"><BkToCstmrStmt><Stmt>
<Acct><Id><IBAN>DE89370400440532013000</IBAN></Id><Ccy>EUR</Ccy></Acct>
<Bal><Tp><CdOrPrtry><Cd>OPBD</Cd></CdOrPrtry></Tp><Amt Ccy="EUR">10.00</Amt>
<CdtDbtInd>DBIT</CdtDbtInd><Dt><Dt>2024-03-01</Dt></Dt></Bal>
{entries}
</Stmt></BkToCstmrStmt></Document>""".encode()


def _entry(amount: str = "12.34", indicator: str = "CRDT", extra: str = "") -> str:
    return (
        f'<Ntry><Amt Ccy="EUR">{amount}</Amt><CdtDbtInd>{indicator}</CdtDbtInd>'
        f"<BookgDt><DtTm>2024-03-01T09:30:00+01:00</DtTm></BookgDt>{extra}</Ntry>"
    )


def test_camt_later_version_structured_reference_and_bank_reference() -> None:
    extra = (
        "<Sts><Cd>BOOK</Cd></Sts><AcctSvcrRef>BANK-REF-1</AcctSvcrRef><NtryDtls><TxDtls>"
        "<RltdPties><Dbtr><Pty><Nm>Jane Doe</Nm></Pty></Dbtr>"
        "<DbtrAcct><Id><IBAN>FR7630006000011234567890189</IBAN></Id></DbtrAcct></RltdPties>"
        "<RmtInf><Strd><CdtrRefInf><Ref>RF18539007547034</Ref></CdtrRefInf></Strd></RmtInf>"
        "</TxDtls></NtryDtls>"
    )
    pending = _entry("99.00", extra="<Sts><Cd>PDNG</Cd></Sts>")
    data = _camt(_entry(extra=extra) + pending, "urn:iso:std:iso:20022:tech:xsd:camt.053.001.08")
    statement = read_camt053(io.BytesIO(data))
    assert statement.opening_balance == -1000  # a DBIT balance is negative
    assert statement.closing_balance is None
    lines = list(statement.lines)
    assert len(lines) == 1  # the pending entry is not booked money
    (line,) = lines
    assert line.amount == 1234
    assert line.booking_date == date(2024, 3, 1)
    assert line.bank_reference == "BANK-REF-1"
    assert line.reference == "RF18539007547034"
    assert line.payer_name == "Jane Doe"
    assert line.payer_account == "FR7630006000011234567890189"


def test_camt_identical_entries_get_distinct_stable_references() -> None:
    data = _camt(_entry() + _entry())
    first = [line.bank_reference for line in read_camt053(io.BytesIO(data)).lines]
    second = [line.bank_reference for line in read_camt053(io.BytesIO(data)).lines]
    assert first == second
    assert first[0] != first[1]
    assert all(reference.startswith("derived:") for reference in first)


@pytest.mark.parametrize(
    ("entries", "element", "words"),
    [
        (_entry() + _entry(amount="12,34"), "Ntry[2]/Amt", "is not a number"),
        (_entry(amount="1.234"), "Ntry[1]/Amt", "more decimals"),
        (_entry(indicator="CREDIT"), "Ntry[1]/CdtDbtInd", "neither CRDT nor DBIT"),
        (_entry().replace('Ccy="EUR"', 'Ccy="EUX"'), "Ntry[1]/Amt", "unknown currency"),
        (
            _entry().replace("<DtTm>2024-03-01T09:30:00+01:00</DtTm>", "<Dt>2024-02-30</Dt>"),
            "Ntry[1]/BookgDt",
            "is not a date",
        ),
    ],
)
def test_camt_malformed_entry_names_the_element(entries: str, element: str, words: str) -> None:
    statement = read_camt053(io.BytesIO(_camt(entries)))
    with pytest.raises(StatementError) as caught:
        list(statement.lines)
    assert caught.value.element == element
    assert words in caught.value.reason
    assert str(caught.value).startswith(f"element {element}: ")


def test_camt_wrong_namespace_and_broken_xml_are_refused() -> None:
    other = _camt(_entry(), "urn:iso:std:iso:20022:tech:xsd:camt.052.001.02")
    with pytest.raises(StatementError, match="not a CAMT.053 document"):
        read_camt053(io.BytesIO(other))
    with pytest.raises(StatementError, match="not well-formed"):
        read_camt053(io.BytesIO(_camt(_entry())[:-20]))


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE Document [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"><BkToCstmrStmt><Stmt>
<Ntry><Amt Ccy="EUR">1.00</Amt><CdtDbtInd>CRDT</CdtDbtInd>
<BookgDt><Dt>2024-01-01</Dt></BookgDt><AddtlNtryInf>&lol9;</AddtlNtryInf></Ntry>
</Stmt></BkToCstmrStmt></Document>"""


def test_doctype_entity_bomb_is_refused() -> None:
    assert detect_format(BILLION_LAUGHS) == "camt053"
    with pytest.raises(StatementError, match="DOCTYPE"):
        read_statement(io.BytesIO(BILLION_LAUGHS))


def test_doctype_after_a_long_comment_across_chunks_is_refused() -> None:
    # The DOCTYPE straddles the parser's 64 KiB read boundary.
    boundary = 64 * 1024
    prolog = b'<?xml version="1.0"?>'
    comment_length = boundary - 4 - len(prolog)
    comment = b"<!--" + b"x" * (comment_length - 7) + b"-->"
    data = prolog + comment + BILLION_LAUGHS[BILLION_LAUGHS.index(b"<!DOCTYPE") :]
    assert data[boundary - 4 : boundary] == b"<!DO"
    with pytest.raises(StatementError, match="DOCTYPE"):
        list(read_camt053(io.BytesIO(data)).lines)


def test_camt_streams_large_file_in_bounded_memory() -> None:
    entry = (
        '<Ntry><Amt Ccy="EUR">{n}.00</Amt><CdtDbtInd>CRDT</CdtDbtInd>'
        "<BookgDt><Dt>2024-03-01</Dt></BookgDt><AcctSvcrRef>R{n}</AcctSvcrRef>"
        "<NtryDtls><TxDtls><RltdPties><Dbtr><Nm>Payer {n}</Nm></Dbtr></RltdPties>"
        "<RmtInf><Ustrd>Policy PB-{n}</Ustrd></RmtInf></TxDtls></NtryDtls></Ntry>"
    )
    count = 5_000
    data = _camt("".join(entry.format(n=n) for n in range(1, count + 1)))
    tracemalloc.start()
    try:
        ET.fromstring(data)  # the whole tree at once, for comparison (~6 MB)
        _, tree_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    stream = io.BytesIO(data)
    tracemalloc.start()
    try:
        statement = read_camt053(stream)
        seen = total = 0
        for line in statement.lines:
            seen += 1
            total += line.amount
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert seen == count
    assert total == sum(range(1, count + 1)) * 100
    # Streaming keeps one entry at a time (plus the 64 KiB chunks and a reference table).
    assert peak < tree_peak / 3, (peak, tree_peak)


# -- BAI2: the ministryofjustice/bai2 samples --------------------------------------------


def test_svb_bai2_ach_credits_with_text_from_continuation() -> None:
    statement, lines = read_file(SVB)
    assert statement.format == "bai2"  # type: ignore[attr-defined]
    assert statement.account == "1234567890"  # type: ignore[attr-defined]
    assert statement.currency == "USD"  # type: ignore[attr-defined]
    assert statement.opening_balance == 34726979  # type: ignore[attr-defined]  # day 1, 010
    assert statement.closing_balance == 36122975  # type: ignore[attr-defined]  # day 2, 015
    assert [line.amount for line in lines] == [490196, 905800]
    assert [line.booking_date for line in lines] == [date(2022, 2, 1), date(2022, 2, 2)]
    assert [line.reference for line in lines] == ["SOME PAYMENT ACH OFFSET"] * 2
    assert [line.bank_reference for line in lines] == ["172629", "150675"]
    assert [line.line_no for line in lines] == [7, 16]  # the physical lines of the 16 records
    assert all(line.bank_transaction_code == "142" for line in lines)
    assert not any(line.is_return for line in lines)
    assert all(line.currency == "USD" for line in lines)


def test_citi_bai2_faster_payment_payer_and_reference() -> None:
    statement, lines = read_file(CITI)
    assert statement.account == "77777777"  # type: ignore[attr-defined]
    assert statement.currency == "GBP"  # type: ignore[attr-defined]
    assert statement.opening_balance == 10000  # type: ignore[attr-defined]
    assert statement.closing_balance == 10000  # type: ignore[attr-defined]
    (line,) = lines
    assert line.amount == 1  # "001": one penny
    assert line.currency == "GBP"
    assert line.line_no == 4
    assert line.booking_date == date(2015, 7, 15)
    assert line.value_date == date(2015, 7, 15)  # funds type V
    assert line.payer_name == "DOE JO"
    assert line.payer_account == "111111-11111111"
    assert "A1234BC 22/03/66" in line.reference
    assert line.bank_reference == "1234567890"
    assert line.bank_transaction_code == "191"


def _bai2(details: list[str], control: int, account_records: int) -> str:
    header = "01,SENDER,RECEIVER,240301,0800,1,,,2/\n02,RECEIVER,SENDER,1,240301,,USD,2/\n"
    body = "03,555000111,USD,010,100000,,/\n" + "".join(d + "\n" for d in details)
    records = 2 + account_records
    trailer = f"49,{control},{records}/\n98,{control},1,{records + 2}/\n"
    return header + body + trailer + f"99,{control},1,{records + 4}/\n"


def test_bai2_returned_item_is_a_negative_return() -> None:
    text = _bai2(
        ["16,555,12500,0,RET1,,RETURNED ITEM R01", "16,142,30000,0,ACH1,,ORIG CO NAME:ACME CORP"],
        100000 + 12500 + 30000,
        2,
    )
    statement = read_bai2(io.BytesIO(text.encode()))
    returned, credit = list(statement.lines)
    assert returned.amount == -12500
    assert returned.is_return is True
    assert returned.return_reason == "555 Deposited Item Returned"
    assert returned.line_no == 4
    assert credit.amount == 30000 and credit.is_return is False
    assert credit.payer_name == "ACME CORP"


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        (_bai2(["16,142,30000,0,ACH1,,X"], 1, 1), 5, "control total"),
        (_bai2(["16,142,3x000,0,ACH1,,X"], 130000, 1), 4, "malformed record"),
        (_bai2(["17,142,30000,0,ACH1,,X"], 130000, 1), 4, "unknown record type"),
        (_bai2(["16,999,30000,0,ACH1,,X"], 130000, 1), 4, "999"),
    ],
)
def test_bai2_malformed_names_the_line(text: str, line: int, words: str) -> None:
    with pytest.raises(StatementError) as caught:
        list(read_bai2(io.BytesIO(text.encode())).lines)
    assert caught.value.line == line
    assert words in caught.value.reason
    assert str(caught.value).startswith(f"line {line}: ")


def test_bai2_truncated_file_is_refused_not_looped_over() -> None:
    # The bai2 package alone loops forever on this file (it re-parses the last record).
    text = SVB.read_text().splitlines()
    with pytest.raises(StatementError) as caught:
        read_bai2(io.BytesIO("\n".join(text[:-3]).encode()))
    assert caught.value.line == 16
    assert "ends early" in caught.value.reason


def test_bai2_records_after_the_file_trailer_are_refused() -> None:
    text = CITI.read_text() + "\n16,191,500,0,EXTRA,,SMUGGLED\n"
    with pytest.raises(StatementError) as caught:
        read_bai2(io.BytesIO(text.encode()))
    assert caught.value.line == 15
    assert "after the file trailer" in caught.value.reason


# -- CSV ----------------------------------------------------------------------------------


def test_csv_default_layout() -> None:
    text = (
        CSV_HEADER
        + "2024-03-01,480.00,USD,Jane Doe,INV-000123 RF18539007547034,BR-1\n"
        + '2024-03-02,-12.50,USD,"Doe, John",,BR-2\n'
        + "\n"
        + "2024-03-03,1000,JPY,,,BR-3\n"
    )
    statement = read_csv(io.BytesIO(text.encode()))
    assert statement.format == "csv"
    lines = list(statement.lines)
    assert [line.amount for line in lines] == [48000, -1250, 1000]
    assert [line.line_no for line in lines] == [2, 3, 5]
    first = lines[0]
    assert first.booking_date == date(2024, 3, 1)
    assert first.currency == "USD"
    assert first.payer_name == "Jane Doe"
    assert first.reference == "INV-000123 RF18539007547034"
    assert first.bank_reference == "BR-1"
    assert first.is_return is False
    assert lines[1].payer_name == "Doe, John"
    assert lines[1].reference == ""
    assert lines[2].payer_name is None


def test_csv_optional_columns_and_bom() -> None:
    text = (
        "\ufeffdate,amount,currency,payer_name,reference,bank_reference,payer_account,"
        "is_return,return_reason\n"
        "2024-03-01,-480.00,EUR,Jane,INV-1,BR-9,DE89370400440532013000,true,AC04\n"
        "2024-03-01,480.00,EUR,Jane,INV-1,BR-8,,,\n"
    )
    returned, paid = csv_lines(text)
    assert returned.is_return is True and returned.return_reason == "AC04"
    assert returned.payer_account == "DE89370400440532013000"
    assert paid.is_return is False and paid.return_reason is None and paid.payer_account is None


def test_csv_mapping_date_format_and_derived_references() -> None:
    text = (
        "Buchungstag;Betrag;Auftraggeber;Verwendungszweck\n"
        "01.03.2024;480.00;Jane Doe;Policy PB-1\n"
        "01.03.2024;480.00;Jane Doe;Policy PB-1\n"
    )
    mapping = {
        "date": "Buchungstag",
        "amount": "Betrag",
        "payer_name": "Auftraggeber",
        "reference": "Verwendungszweck",
        "currency": None,
        "bank_reference": None,
    }

    def read() -> list[StatementLine]:
        return csv_lines(
            text, mapping=mapping, date_format="%d.%m.%Y", currency="EUR", delimiter=";"
        )

    first, second = read()
    assert first.booking_date == date(2024, 3, 1) and first.currency == "EUR"
    assert first.amount == 48000 and first.reference == "Policy PB-1"
    # Identical lines stay distinct; re-reading the same file gives the same ids.
    assert first.bank_reference != second.bank_reference
    assert [line.bank_reference for line in read()] == [
        first.bank_reference,
        second.bank_reference,
    ]
    assert first.bank_reference.startswith("derived:")


def test_csv_rereading_gives_identical_bank_references() -> None:
    text = CSV_HEADER + "2024-03-01,1.00,USD,A,r,X-1\n2024-03-01,1.00,USD,A,r,X-2\n"
    assert [line.bank_reference for line in csv_lines(text)] == ["X-1", "X-2"]
    assert [line.bank_reference for line in csv_lines(text)] == ["X-1", "X-2"]


GOOD_ROW = "2024-03-01,480.00,USD,Jane,INV-1,BR-1\n"


@pytest.mark.parametrize(
    ("bad_row", "words"),
    [
        ("2024-03-02,480.00,USD,Jane\n", "missing column 'reference'"),
        ("2024-03-02,480.00,USD,Jane,INV-2,BR-2,extra\n", "the header has 6"),
        ("2024-02-30,480.00,USD,Jane,INV-2,BR-2\n", "date '2024-02-30' is not a date"),
        ("03/02/2024,480.00,USD,Jane,INV-2,BR-2\n", "format YYYY-MM-DD"),
        ("2024-03-02,abc,USD,Jane,INV-2,BR-2\n", "amount 'abc' is not a number"),
        ('2024-03-02,"1,480.00",USD,Jane,INV-2,BR-2\n', "is not a number"),
        ("2024-03-02,480.001,USD,Jane,INV-2,BR-2\n", "more decimals than USD"),
        ("2024-03-02,480.00,XYZ,Jane,INV-2,BR-2\n", "unknown currency 'XYZ'"),
        ("2024-03-02,480.00,USD,Jane,INV-2,\n", "bank_reference is empty"),
        ("2024-03-02,480.00,USD,Jane,INV-2,BR-1\n", "'BR-1' appears more than once"),
        ("2024-03-02,480.00,USD,Jane,INV-2,BR-2,\n", "the header has 6"),
    ],
)
def test_csv_malformed_row_names_its_line(bad_row: str, words: str) -> None:
    text = CSV_HEADER + GOOD_ROW + GOOD_ROW.replace("BR-1", "BR-0") + bad_row + GOOD_ROW
    statement = read_csv(io.BytesIO(text.encode()))
    lines = statement.lines
    assert next(lines).bank_reference == "BR-1"  # lazy: good lines come first
    assert next(lines).bank_reference == "BR-0"
    with pytest.raises(StatementError) as caught:
        next(lines)
    assert caught.value.line == 4
    assert words in caught.value.reason
    assert str(caught.value) == f"line 4: {caught.value.reason}"


def test_csv_header_problems_are_reported_at_once() -> None:
    with pytest.raises(StatementError) as caught:
        read_csv(io.BytesIO(b"\ndate,amount,currency,payer_name,reference\n"))
    assert caught.value.line == 2
    assert "missing column 'bank_reference'" in str(caught.value)
    with pytest.raises(StatementError, match="empty"):
        read_csv(io.BytesIO(b""))
    with pytest.raises(StatementError, match="line 1: .*not valid utf-8-sig"):
        list(read_csv(io.BytesIO(b"date,amount\xff\n")).lines)


def test_csv_quoted_multiline_field_keeps_physical_line_numbers() -> None:
    text = CSV_HEADER + '2024-03-01,1.00,USD,A,"two\nlines",R1\n2024-03-01,oops,USD,A,r,R2\n'
    statement = read_csv(io.BytesIO(text.encode()))
    lines = statement.lines
    assert next(lines).reference == "two\nlines"
    with pytest.raises(StatementError) as caught:
        next(lines)
    assert caught.value.line == 4


def test_csv_streams_200k_lines_in_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    count = 200_000
    with path.open("w", encoding="utf-8") as out:
        out.write(CSV_HEADER)
        for n in range(count):
            out.write(f"2024-03-01,{n % 1000}.25,EUR,Payer {n},Policy PB-{n:07d},BR-{n}\n")
    tracemalloc.start()
    try:
        with path.open("rb") as stream:
            seen = total = 0
            for line in read_statement(stream).lines:
                seen += 1
                total += line.amount
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert seen == count
    assert total == sum((n % 1000) * 100 + 25 for n in range(count))
    assert peak < 50 * 1024 * 1024, peak


# -- format detection and the entry point -------------------------------------------------


@pytest.mark.parametrize(("path", "expected"), [(CAMT, "camt053"), (SVB, "bai2"), (CITI, "bai2")])
def test_detect_format_of_the_samples(path: Path, expected: str) -> None:
    assert detect_format(path.read_bytes()[:4096]) == expected


def test_detect_format_of_csv_and_unknown_files() -> None:
    assert detect_format(b"\xef\xbb\xbf" + CSV_HEADER.encode()) == "csv"
    assert detect_format(b"Buchungstag;Betrag\n") == "csv"
    with pytest.raises(StatementError, match="not a CAMT.053"):
        detect_format(b'<?xml version="1.0"?><Document xmlns="urn:other"/>')
    with pytest.raises(StatementError, match="unknown statement format"):
        detect_format(b"%PDF-1.7\n")
    with pytest.raises(StatementError, match="empty"):
        detect_format(b"  \n")


def test_read_statement_detects_from_a_non_seekable_stream() -> None:
    for path, expected, count in [(CAMT, "camt053", 3), (SVB, "bai2", 2), (CITI, "bai2", 1)]:
        statement = read_statement(io.BufferedReader(NonSeekable(path.read_bytes())))
        assert statement.format == expected
        assert len(list(statement.lines)) == count
    data = (CSV_HEADER + GOOD_ROW).encode()
    statement = read_statement(io.BufferedReader(NonSeekable(data)))
    assert [line.amount for line in statement.lines] == [48000]


def test_read_statement_with_explicit_format_and_mapping() -> None:
    data = b"when,how much,ccy,id\n2024-03-01,5.00,EUR,A1\n"
    mapping = {"date": "when", "amount": "how much", "currency": "ccy", "bank_reference": "id"}
    statement = read_statement(io.BytesIO(data), format="csv", csv_mapping=mapping)
    assert [(line.amount, line.bank_reference) for line in statement.lines] == [(500, "A1")]
    with pytest.raises(StatementError, match="unknown format"):
        read_statement(io.BytesIO(data), format="mt940")
    with pytest.raises(StatementError, match="CSV files only"):
        read_statement(io.BytesIO(SVB.read_bytes()), format="bai2", csv_mapping=mapping)


def test_statement_error_message_shapes() -> None:
    assert str(StatementError("amount 'abc' is not a number", line=7)) == (
        "line 7: amount 'abc' is not a number"
    )
    assert str(StatementError("missing", element="Ntry[3]/Amt")) == "element Ntry[3]/Amt: missing"
    error = StatementError("bad file")
    assert str(error) == "bad file" and error.line is None and error.element is None
    assert isinstance(error, ValueError)
