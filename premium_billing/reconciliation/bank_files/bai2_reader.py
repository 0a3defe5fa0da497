"""BAI2 (Cash Management Balance Reporting Specification 2) statements, via the `bai2` package.

The package parses a whole file into groups (02/98), accounts (03/49) and transaction
details (16, with their 88 continuations); it also checks the control totals and record
counts. This module maps every 16 record to a StatementLine and adds what the package does
not keep: the physical line number of each record, for the error messages and `line_no`.
Continuation records (88) are joined here, as the specification says, not by the package:
after a record that ends with its delimiter `/` a continuation starts a new field (the
package glued `190/` + `88,500000` into type code `190500000`); inside the text of a 16 record
it continues the text.

Amounts in BAI2 carry no decimal point: they are already in the currency's minor unit
(implied decimals per ISO 4217). The sign comes from the type code: 100-399 credits,
400-699 debits; other codes follow the package's table, and non-monetary ones (890) are
skipped. Returned items and reversals set `is_return`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any, BinaryIO

from bai2.constants import RecordCode, TypeCodeTransaction
from bai2.exceptions import IntegrityException, NotSupportedYetException, ParsingException
from bai2.helpers import IteratorHelper
from bai2.models import Record
from bai2.parsers import Bai2FileParser

from premium_billing.money import is_currency
from premium_billing.reconciliation.bank_files.records import (
    OccurrenceCounter,
    Statement,
    StatementError,
    StatementLine,
    derive_reference,
    unique_reference,
)

# Type codes of returned items and reversals (BAI2 2005 detail codes): never new money.
RETURN_TYPE_CODES: dict[str, str] = {
    "123": "EDIBANX Credit Return",
    "252": "Debit Reversal",
    "255": "Check Posted and Returned",
    "257": "Individual ACH Return Item",
    "258": "ACH Reversal Credit",
    "261": "Individual Rejected Credit",
    "266": "Return Item",
    "268": "Return Item Adjustment",
    "395": "Check Reversal",
    "423": "EDIBANX Return Item Debit",
    "468": "ACH Return Item or Adjustment Settlement",
    "552": "Credit Reversal",
    "555": "Deposited Item Returned",
    "557": "Individual ACH Return Item",
    "558": "ACH Reversal Debit",
    "561": "Individual Rejected Debit",
    "566": "Return Item",
    "568": "Return Item Adjustment",
    "694": "Deposit Reversal",
}
OPENING_LEDGER = "010"
CLOSING_LEDGER = "015"

# Tagged continuation text: Citi UK "PY:<reference> BO:<account> BO1:<name>", Fedwire
# "ORG:=<originator> OBI:=<originator to beneficiary information>" (also "ORG=", "ORG:"),
# Goldman Sachs "DBNM: <debtor name> DACT: <account> REMI: <remittance>".
_TAG = re.compile(r"(?:^|(?<=\s))([A-Z][A-Z0-9]{1,3})(?::=|:|=)")
# Tags naming the payer, its account and the remittance, most specific first.
PAYER_TAGS = ("BO1", "ORG", "DBNM")
ACCOUNT_TAGS = ("BO", "DACT")
REFERENCE_TAGS = ("PY", "OBI", "REMI")
# A Fedwire originator may lead with its account: "/123456789 ACME CORP".
_LEADING_ACCOUNT = re.compile(r"^/(\S+)\s+(.*)$")
# NACHA-style text of US banks: "ORIG CO NAME:ACME CORP ORIG ID:123 ...".
_ACH_NAME = re.compile(
    r"ORIG CO NAME:\s*(.*?)\s*(?=ORIG ID:|DESC DATE:|CO ENTRY DESCR:|SEC:|TRACE#:|EED:"
    r"|IND ID:|IND NAME:|$)"
)
_SPACES = re.compile(r"\s+")


@dataclass
class _Record:
    code: str
    line: int


class _NumberedHelper(IteratorHelper):  # type: ignore[misc]
    """The package's record iterator over our joined records, remembering which logical
    record it is on."""

    def __init__(self, lines: list[str]) -> None:
        self.index = -1
        self.previous_index = -1
        self.exhausted = False
        self._generator = joined_records(lines)
        self.current_record = None
        self.advance()

    def advance(self) -> None:
        self.previous_index = self.index
        try:
            super().advance()
        except StopIteration:
            # The package swallows this and would parse the last record again and again
            # (a truncated file loops forever): park it on a record no parser accepts.
            self.exhausted = True
            self.current_record = Record(code=None, fields=[])
            raise
        self.index += 1


def read_bai2(stream: BinaryIO) -> Statement:
    """Read a BAI2 file. Malformed files raise StatementError naming the physical line."""
    text = _decode(stream.read())
    numbered = [(n, raw.strip()) for n, raw in enumerate(text.splitlines(), start=1)]
    numbered = [(n, line) for n, line in numbered if line]
    if not numbered:
        raise StatementError("the file is empty")
    records = _records(numbered)
    lines = [line for _, line in numbered]

    helper: _NumberedHelper | None = None
    try:
        helper = _NumberedHelper(lines)
        parsed = Bai2FileParser(helper, check_integrity=True).parse()
    except IntegrityException as exc:
        index = helper.previous_index if helper is not None else 0
        raise StatementError(str(exc), line=_line_of(records, index)) from None
    except ParsingException as exc:
        if helper is not None and helper.exhausted:
            raise StatementError(
                "the file ends early: trailer records (49, 98, 99) are missing",
                line=records[-1].line,
            ) from None
        raise StatementError(str(exc), line=_line_of(records, _index(helper))) from None
    except NotSupportedYetException as exc:
        raise StatementError(str(exc), line=_line_of(records, _index(helper))) from None
    except (ValueError, IndexError, TypeError, KeyError) as exc:
        raise StatementError(
            f"malformed record ({exc})", line=_line_of(records, _index(helper))
        ) from None
    except StopIteration:
        raise StatementError("the file ends early: trailer records are missing") from None
    if not helper.exhausted:
        # The package stops at the file trailer (99) and ignores whatever follows it.
        raise StatementError(
            "unexpected records after the file trailer", line=_line_of(records, helper.index)
        )

    detail_lines = [r.line for r in records if r.code == RecordCode.transaction_detail.value]
    return _statement(parsed, detail_lines)


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _records(numbered: list[tuple[int, str]]) -> list[_Record]:
    """Logical records (a record and its 88 continuations) with their first physical line."""
    records: list[_Record] = []
    valid = {code.value for code in RecordCode}
    for number, line in numbered:
        code = line[:2]
        if code not in valid or (len(line) > 2 and line[2] != ","):
            raise StatementError(f"unknown record type {line[:3]!r}", line=number)
        if code == RecordCode.continuation.value:
            if not records:
                raise StatementError("continuation (88) before any record", line=number)
            continue
        records.append(_Record(code, number))
    if records[0].code != RecordCode.file_header.value:
        raise StatementError("a BAI2 file starts with a file header (01)", line=records[0].line)
    return records


def joined_records(lines: list[str]) -> Iterator[Record]:
    """Each record with its continuation (88) records joined into one list of fields."""
    rows: list[tuple[RecordCode, str]] = []
    for line in lines:
        row = (RecordCode(line[:2]), line[3:])
        if row[0] == RecordCode.continuation and rows:
            rows.append(row)
            continue
        if rows:
            yield _joined(rows)
        rows = [row]
    if rows:
        yield _joined(rows)


def _joined(rows: list[tuple[RecordCode, str]]) -> Record:
    """The fields of a record and its continuations. A `/` ends a record's fields, so a
    continuation starts the next field (`190/` + `500000` is type code 190, amount 500000);
    inside the text field of a 16 record it continues the text (joined with a space). An
    account summary's empty field left where a type code starts (banks that write `,0,/`
    before an `88`) is the bank's extra delimiter, not a field."""
    code = rows[0][0]
    fields: list[str] = []
    for number, (_, raw) in enumerate(rows):
        body = raw.rstrip()
        body = body[:-1] if body.endswith("/") else body
        if number == 0:
            fields = body.split(",")
            continue
        if code == RecordCode.transaction_detail and len(fields) > _text_index(fields):
            fields[-1] = f"{fields[-1]} {body}".strip() if fields[-1] else body
            continue
        extra_delimiter = fields and not fields[-1] and len(fields) - 1 in _summary_starts(fields)
        if code == RecordCode.account_identifier and extra_delimiter:
            fields.pop()
        fields.extend(body.split(","))
    if code == RecordCode.transaction_detail and len(fields) > 5 and fields[2].strip() == "S":
        # A distributed availability amount left empty is defaulted: zero (the spec's own
        # sample writes "S,,200000,300000"); the package would fail on int('').
        fields[3:6] = [amount or "0" for amount in fields[3:6]]
    return Record(code=code, fields=fields, rows=rows)


def _availability_fields(funds_type: str, count: str) -> int:
    """How many fields follow a funds type: S three amounts, V a date and a time, D a
    count and that many (day, amount) pairs."""
    funds_type = funds_type.strip().upper()
    if funds_type == "S":
        return 3
    if funds_type == "V":
        return 2
    if funds_type == "D":
        return 1 + 2 * int(count) if count.strip().isdigit() else 1
    return 0


def _text_index(fields: list[str]) -> int:
    """Where the text of a 16 record starts: type code, amount, funds type, its
    availability, bank reference, customer reference."""
    if len(fields) < 3:
        return 5
    count = fields[3] if len(fields) > 3 else ""
    return 3 + _availability_fields(fields[2], count) + 2


def _summary_starts(fields: list[str]) -> set[int]:
    """The indexes where an account summary item (type code, amount, count, funds type)
    starts, after the account number and currency."""
    starts: set[int] = set()
    position = 2
    while position < len(fields):
        starts.add(position)
        funds_type = fields[position + 3] if position + 3 < len(fields) else ""
        count = fields[position + 4] if position + 4 < len(fields) else ""
        position += 4 + _availability_fields(funds_type, count)
    return starts


def _index(helper: _NumberedHelper | None) -> int:
    return helper.index if helper is not None and helper.index >= 0 else 0


def _line_of(records: list[_Record], index: int) -> int:
    return records[min(max(index, 0), len(records) - 1)].line


def _statement(parsed: Any, detail_lines: list[int]) -> Statement:
    accounts: list[tuple[Any, Any]] = [
        (group, account) for group in parsed.children for account in group.children
    ]
    numbers = {account.header.customer_account_number for _, account in accounts}
    currencies = {_currency(group, account) for group, account in accounts}
    single_account = len(numbers) == 1 and len(currencies) == 1
    opening = closing = None
    if single_account:
        opening = _summary(accounts[0][1], OPENING_LEDGER)
        closing = _summary(accounts[-1][1], CLOSING_LEDGER)
    return Statement(
        format="bai2",
        account=next(iter(numbers)) if single_account else None,
        currency=next(iter(currencies)) if len(currencies) == 1 else None,
        opening_balance=opening,
        closing_balance=closing,
        lines=_lines(accounts, iter(detail_lines)),
    )


def _currency(group: Any, account: Any) -> str:
    currency = (account.header.currency or group.header.currency or "USD").upper()
    if not is_currency(currency):
        number = account.header.customer_account_number
        raise StatementError(f"unknown currency {currency!r} for account {number!r}")
    return currency


def _summary(account: Any, code: str) -> int | None:
    for item in account.header.summary_items:
        if item.type_code is not None and item.type_code.code == code:
            return int(item.amount) if item.amount is not None else None
    return None


def _lines(accounts: list[tuple[Any, Any]], detail_lines: Iterator[int]) -> Iterator[StatementLine]:
    references = OccurrenceCounter()
    derived = OccurrenceCounter()
    for group, account in accounts:
        currency = _currency(group, account)
        number = account.header.customer_account_number
        booking_date: date = group.header.as_of_date
        for detail in account.children:
            line = next(detail_lines)
            statement_line = _line(
                detail, line, booking_date, currency, number, references, derived
            )
            if statement_line is not None:
                yield statement_line


def _line(
    detail: Any,
    line: int,
    booking_date: date | None,
    currency: str,
    account: str | None,
    references: OccurrenceCounter,
    derived: OccurrenceCounter,
) -> StatementLine | None:
    type_code = detail.type_code
    code = type_code.code
    number = int(code)
    if 100 <= number <= 399:
        sign = 1
    elif 400 <= number <= 699:
        sign = -1
    elif type_code.transaction == TypeCodeTransaction.credit:
        sign = 1
    elif type_code.transaction == TypeCodeTransaction.debit:
        sign = -1
    else:
        return None  # status or non-monetary information (e.g. 890): not a movement
    if detail.amount is None:
        raise StatementError(f"transaction {code} has no amount", line=line)
    if detail.amount < 0:
        raise StatementError(f"transaction amount {detail.amount} is negative", line=line)
    if booking_date is None:
        raise StatementError("the group header (02) has no as-of date", line=line)

    text = _SPACES.sub(" ", detail.text or "").strip()
    tags = _tags(text)
    reference = _first(tags, REFERENCE_TAGS) or text
    payer_name = _first(tags, PAYER_TAGS)
    payer_account = _first(tags, ACCOUNT_TAGS)
    if payer_name is not None and (leading := _LEADING_ACCOUNT.match(payer_name)):
        payer_account = payer_account or leading.group(1)
        payer_name = leading.group(2).strip() or None
    payer_name = payer_name or _ach_name(text)
    if payer_account and tags.get("BO") == payer_account:
        sort_code = (tags.get("OB") or "").split(" ")[0]
        if sort_code.isdigit() and len(sort_code) == 6:
            payer_account = f"{sort_code}-{payer_account}"

    value_date = None
    availability = detail.availability or {}
    if isinstance(availability.get("date"), date):
        value_date = availability["date"]

    amount = sign * detail.amount
    bank_reference = (detail.bank_reference or "").strip()
    if bank_reference:
        bank_reference = unique_reference(references, account, bank_reference)
    else:
        bank_reference = derive_reference(
            derived,
            "bai2",
            account,
            booking_date,
            amount,
            currency,
            code,
            detail.customer_reference,
            text,
        )
    is_return = code in RETURN_TYPE_CODES
    return StatementLine(
        line_no=line,
        booking_date=booking_date,
        value_date=value_date,
        amount=amount,
        currency=currency,
        payer_name=payer_name,
        payer_account=payer_account,
        reference=reference,
        bank_reference=bank_reference,
        is_return=is_return,
        return_reason=f"{code} {RETURN_TYPE_CODES[code]}" if is_return else None,
        bank_transaction_code=code,
    )


def _tags(text: str) -> dict[str, str]:
    """'PY:ABC 123 BO:111 BO1:DOE JO' -> {'PY': 'ABC 123', 'BO': '111', 'BO1': 'DOE JO'}."""
    matches = list(_TAG.finditer(text))
    tags: dict[str, str] = {}
    if not matches:
        return tags
    for match, following in zip(matches, [*matches[1:], None], strict=True):
        end = following.start() if following is not None else len(text)
        value = text[match.end() : end].strip()
        if value:
            tags.setdefault(match.group(1), value)
    return tags


def _first(tags: dict[str, str], names: tuple[str, ...]) -> str | None:
    return next((tags[name] for name in names if tags.get(name)), None)


def _ach_name(text: str) -> str | None:
    match = _ACH_NAME.search(text)
    if match is None:
        return None
    return match.group(1) or None
