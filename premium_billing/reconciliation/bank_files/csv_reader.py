"""CSV bank statements: the default layout of API.md, or another bank's via a column mapping.

Default header: ``date,amount,currency,payer_name,reference,bank_reference`` (``date`` as
YYYY-MM-DD, ``amount`` in major units with a dot, negative for debits). Optional extra
columns: ``payer_account``, ``value_date``, ``is_return``, ``return_reason``,
``bank_transaction_code``. Rows are read lazily: memory stays bounded by the duplicate
check's compact digest table (~16-32 bytes per line), never by the file.
"""

from __future__ import annotations

import codecs
import csv
import re
from collections.abc import Iterator, Mapping
from datetime import date, datetime
from typing import BinaryIO

from premium_billing.errors import InvalidAmount, UnknownCurrency
from premium_billing.money import is_currency, parse_major
from premium_billing.reconciliation.bank_files.records import (
    OccurrenceCounter,
    Statement,
    StatementError,
    StatementLine,
    derive_reference,
)

DEFAULT_COLUMNS = ("date", "amount", "currency", "payer_name", "reference", "bank_reference")
REQUIRED_FIELDS = ("date", "amount", "currency", "bank_reference")
OPTIONAL_FIELDS = (
    "payer_name",
    "payer_account",
    "reference",
    "value_date",
    "is_return",
    "return_reason",
    "bank_transaction_code",
)
ISO_DATE = "%Y-%m-%d"
_ISO_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"", "false", "f", "no", "n", "0"}


def read_csv(
    stream: BinaryIO,
    mapping: Mapping[str, str | None] | None = None,
    *,
    date_format: str = ISO_DATE,
    currency: str | None = None,
    account: str | None = None,
    delimiter: str = ",",
    encoding: str = "utf-8-sig",
) -> Statement:
    """Read a CSV statement from a binary stream.

    `mapping` maps our field names to the bank's header names (case and surrounding blanks
    are ignored); unmapped fields keep our name. Map a field to None when the bank has no
    such column: `currency` then comes from the `currency` argument, and `bank_reference`
    is derived deterministically from the line. The header is checked at once; each row is
    checked as the lines are consumed (StatementError names the physical line).
    """
    mapping = dict(mapping or {})
    unknown = set(mapping) - set(REQUIRED_FIELDS) - set(OPTIONAL_FIELDS) - {"date", "amount"}
    if unknown:
        raise StatementError(f"unknown field(s) in the column mapping: {sorted(unknown)}")
    if currency is not None and not is_currency(currency):
        raise StatementError(f"unknown currency {currency!r}")
    for field in ("date", "amount"):
        if field in mapping and mapping[field] is None:
            raise StatementError(f"the column mapping must name a column for {field!r}")
    if "currency" in mapping and mapping["currency"] is None and currency is None:
        raise StatementError("no currency column: pass the statement's currency")

    rows = csv.reader(_decoded_lines(stream, encoding), delimiter=delimiter)
    header, header_line = _read_header(rows)
    positions = _column_positions(header, header_line, mapping, currency)
    lines = _rows(rows, len(header), positions, date_format, currency, account)
    return Statement(
        format="csv",
        account=account,
        currency=currency,
        opening_balance=None,
        closing_balance=None,
        lines=lines,
    )


def _decoded_lines(stream: BinaryIO, encoding: str) -> Iterator[str]:
    """Physical lines of `stream`, decoded, line endings kept (csv wants newline='')."""
    try:
        decoder = codecs.getincrementaldecoder(encoding)()
    except LookupError:
        raise StatementError(f"unknown encoding {encoding!r}") from None
    for number, raw in enumerate(stream, start=1):
        try:
            yield decoder.decode(raw)
        except UnicodeDecodeError as exc:
            raise StatementError(f"not valid {encoding} text ({exc.reason})", line=number) from None
    try:
        tail = decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        raise StatementError(f"not valid {encoding} text ({exc.reason})") from None
    if tail:
        yield tail


def _read_header(rows: Iterator[list[str]]) -> tuple[list[str], int]:
    line = 0
    try:
        for row in rows:
            line = rows.line_num  # type: ignore[attr-defined]
            if any(cell.strip() for cell in row):
                return [cell.strip() for cell in row], line
    except csv.Error as exc:
        raise StatementError(f"not readable as CSV: {exc}", line=line + 1) from None
    raise StatementError("the file is empty: no header row")


def _column_positions(
    header: list[str],
    header_line: int,
    mapping: dict[str, str | None],
    currency: str | None,
) -> dict[str, int | None]:
    index: dict[str, int] = {}
    for column, name in enumerate(header):
        key = name.casefold()
        if key in index:
            raise StatementError(f"column {name!r} appears twice in the header", line=header_line)
        index[key] = column
    positions: dict[str, int | None] = {}
    position: int | None
    for field in REQUIRED_FIELDS + OPTIONAL_FIELDS:
        if field in mapping and mapping[field] is None:
            positions[field] = None
            continue
        wanted = mapping.get(field) or field
        position = index.get(wanted.strip().casefold())
        if position is None and field in REQUIRED_FIELDS:
            if field == "currency" and currency is not None and field not in mapping:
                positions[field] = None
                continue
            raise StatementError(f"missing column {wanted!r} in the header", line=header_line)
        positions[field] = position
    return positions


def _parse_date(text: str, date_format: str) -> date:
    if date_format == ISO_DATE:
        if not _ISO_DATE_RE.match(text):
            raise ValueError(text)
        return date.fromisoformat(text)
    return datetime.strptime(text, date_format).date()


def _describe(date_format: str) -> str:
    return (
        date_format.replace("%Y", "YYYY")
        .replace("%m", "MM")
        .replace("%d", "DD")
        .replace("%y", "YY")
    )


def _rows(
    rows: Iterator[list[str]],
    width: int,
    positions: dict[str, int | None],
    date_format: str,
    default_currency: str | None,
    account: str | None,
) -> Iterator[StatementLine]:
    parse = _RowParser(width, positions, date_format, default_currency, account)
    previous_end = rows.line_num  # type: ignore[attr-defined]
    while True:
        try:
            row = next(rows)
        except StopIteration:
            return
        except csv.Error as exc:
            raise StatementError(f"not readable as CSV: {exc}", line=previous_end + 1) from None
        line = previous_end + 1
        previous_end = rows.line_num  # type: ignore[attr-defined]
        if not any(row) or (len(row) == 1 and not row[0].strip()):
            continue  # a blank line
        yield parse(row, line)


class _RowParser:
    """Turns one CSV row into a StatementLine; remembers the references seen so far."""

    def __init__(
        self,
        width: int,
        positions: dict[str, int | None],
        date_format: str,
        default_currency: str | None,
        account: str | None,
    ) -> None:
        self.width = width
        self.positions = positions
        self.needed = max(p for p in positions.values() if p is not None) + 1
        self.date_format = date_format
        self.default_currency = default_currency
        self.account = account
        self.references = OccurrenceCounter()
        self.derived = OccurrenceCounter()

    def _cell(self, row: list[str], field: str) -> str | None:
        position = self.positions[field]
        return None if position is None else row[position].strip()

    def _date(self, raw: str, field: str, line: int) -> date:
        try:
            return _parse_date(raw, self.date_format)
        except ValueError:
            raise StatementError(
                f"{field} {raw!r} is not a date in the format {_describe(self.date_format)}",
                line=line,
            ) from None

    def __call__(self, row: list[str], line: int) -> StatementLine:
        if len(row) > self.width:
            raise StatementError(f"{len(row)} fields, but the header has {self.width}", line=line)
        if len(row) < self.needed:
            missing = min(
                (p, f) for f, p in self.positions.items() if p is not None and p >= len(row)
            )[1]
            raise StatementError(f"missing column {missing!r}", line=line)
        cell = self._cell

        booking_date = self._date(cell(row, "date") or "", "date", line)
        raw_value_date = cell(row, "value_date")
        value_date = self._date(raw_value_date, "value_date", line) if raw_value_date else None

        currency = (cell(row, "currency") or self.default_currency or "").upper()
        if not is_currency(currency):
            raise StatementError(f"unknown currency {currency!r}", line=line)

        raw_amount = cell(row, "amount") or ""
        try:
            amount = parse_major(raw_amount, currency)
        except InvalidAmount as exc:
            if "decimals" in exc.message:
                reason = f"amount {raw_amount!r} has more decimals than {currency} allows"
            else:
                reason = f"amount {raw_amount!r} is not a number"
            raise StatementError(reason, line=line) from None
        except UnknownCurrency:  # pragma: no cover - checked above
            raise StatementError(f"unknown currency {currency!r}", line=line) from None

        payer_name = cell(row, "payer_name") or None
        reference = cell(row, "reference") or ""
        return_reason = cell(row, "return_reason") or None
        raw_return = cell(row, "is_return")
        if raw_return is None:
            is_return = return_reason is not None
        elif raw_return.casefold() in _TRUE:
            is_return = True
        elif raw_return.casefold() in _FALSE:
            is_return = False
        else:
            raise StatementError(f"is_return {raw_return!r} is not true or false", line=line)

        bank_reference = cell(row, "bank_reference")
        if bank_reference is None:
            bank_reference = derive_reference(
                self.derived,
                "csv",
                self.account,
                booking_date,
                amount,
                currency,
                payer_name,
                reference,
            )
        elif not bank_reference:
            raise StatementError("bank_reference is empty", line=line)
        elif self.references.add(bank_reference):
            raise StatementError(
                f"bank_reference {bank_reference!r} appears more than once in the file",
                line=line,
            )

        return StatementLine(
            line_no=line,
            booking_date=booking_date,
            value_date=value_date,
            amount=amount,
            currency=currency,
            payer_name=payer_name,
            payer_account=cell(row, "payer_account") or None,
            reference=reference,
            bank_reference=bank_reference,
            is_return=is_return,
            return_reason=return_reason,
            bank_transaction_code=cell(row, "bank_transaction_code") or None,
        )
