"""CSV bank statements: the default layout of API.md, or another bank's via a column mapping.

Default header: ``date,amount,currency,payer_name,reference,bank_reference`` (``date`` as
YYYY-MM-DD, ``amount`` in major units with a dot, negative for debits). Optional extra
columns: ``payer_account``, ``value_date``, ``is_return``, ``return_reason``,
``bank_transaction_code``. Rows are read lazily: memory stays bounded by the duplicate
check's compact digest table (~16-32 bytes per line), never by the file.

A bank's own export is read through the mapping (BANK_CSV_COLUMNS): its header names, and
the layout options of `OPTIONS` (date format, decimal and thousands separators, delimiter,
encoding, lines before the header, the statement's currency); debit and credit may be two
columns (`debit=`, `credit=`) instead of one signed `amount`.
"""

from __future__ import annotations

import codecs
import csv
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any, BinaryIO

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
AMOUNT_COLUMNS = ("debit", "credit")  # two unsigned columns instead of a signed amount
# Layout options a mapping may carry besides column names (BANK_CSV_COLUMNS is comma-
# separated, so a comma is named: decimal=comma, delimiter=semicolon, thousands=dot).
OPTIONS = (
    "date_format",
    "decimal",
    "thousands",
    "delimiter",
    "skip_lines",
    "encoding",
    "statement_currency",
)
SEPARATOR_NAMES = {
    "comma": ",",
    "dot": ".",
    "period": ".",
    "semicolon": ";",
    "tab": "\t",
    "pipe": "|",
    "space": " ",
    "apostrophe": "'",
    "none": "",
}
_SPACES = (" ", "\u00a0", "\u202f")  # a space as thousands separator, (narrow) no-break too
ISO_DATE = "%Y-%m-%d"
_ISO_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"", "false", "f", "no", "n", "0"}


@dataclass(frozen=True)
class Layout:
    """How a bank writes its CSV: what the mapping's options say, else our defaults."""

    date_format: str = ISO_DATE
    decimal: str = "."
    thousands: str = ""
    delimiter: str = ","
    skip_lines: int = 0
    encoding: str = "utf-8-sig"
    currency: str | None = None


def date_format_of(pattern: str) -> str:
    """'DD.MM.YYYY' -> '%d.%m.%Y' (a strftime format is taken as it is)."""
    if "%" in pattern:
        return pattern
    converted = pattern
    for token, directive in (("YYYY", "%Y"), ("YY", "%y"), ("MM", "%m"), ("DD", "%d")):
        converted = converted.replace(token, directive)
    if any(d not in converted for d in ("%m", "%d")) or not (
        "%Y" in converted or "%y" in converted
    ):
        raise StatementError(
            f"the column mapping's date_format {pattern!r} must name YYYY (or YY), MM and DD"
        )
    return converted


def _separator(option: str, value: str) -> str:
    separator = SEPARATOR_NAMES.get(value.strip().casefold(), value)
    if len(separator) > 1 or separator.isalnum():
        names = ", ".join(sorted(SEPARATOR_NAMES))
        raise StatementError(f"the column mapping's {option} {value!r}: use one of {names}")
    return separator


def layout_of(options: Mapping[str, str | None], defaults: Layout) -> Layout:
    """The layout a mapping's options describe (StatementError names a bad option)."""
    values = {k: v.strip() for k, v in options.items() if v is not None and v.strip()}
    changes: dict[str, Any] = {}
    if "date_format" in values:
        changes["date_format"] = date_format_of(values["date_format"])
    for option in ("decimal", "thousands", "delimiter"):
        if option in values:
            changes[option] = _separator(option, values[option])
    if "skip_lines" in values:
        if not values["skip_lines"].isdigit():
            raise StatementError(
                f"the column mapping's skip_lines {values['skip_lines']!r} is not a whole number"
            )
        changes["skip_lines"] = int(values["skip_lines"])
    if "encoding" in values:
        try:
            codecs.lookup(values["encoding"])
        except LookupError:
            raise StatementError(f"unknown encoding {values['encoding']!r}") from None
        changes["encoding"] = values["encoding"]
    if "statement_currency" in values:
        changes["currency"] = values["statement_currency"].upper()
    layout = replace(defaults, **changes)
    if layout.decimal not in (".", ","):
        raise StatementError("the column mapping's decimal must be dot or comma")
    if layout.thousands == layout.decimal:
        raise StatementError("the column mapping's thousands and decimal separators are the same")
    if layout.delimiter in ("", layout.decimal, layout.thousands) and layout.delimiter != ",":
        raise StatementError("the column mapping's delimiter must differ from the separators")
    return layout


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
    such column: `currency` then comes from the `currency` argument (or the mapping's
    `statement_currency`), and `bank_reference` is derived deterministically from the line.
    The mapping may also carry the layout options of `OPTIONS`, which override the keyword
    arguments. The header is checked at once; each row is checked as the lines are consumed
    (StatementError names the physical line).
    """
    mapping = dict(mapping or {})
    options = {key: mapping.pop(key) for key in OPTIONS if key in mapping}
    defaults = Layout(date_format=date_format, delimiter=delimiter, encoding=encoding)
    layout = layout_of(options, replace(defaults, currency=currency))
    currency = layout.currency
    known = set(REQUIRED_FIELDS) | set(OPTIONAL_FIELDS) | set(AMOUNT_COLUMNS)
    unknown = set(mapping) - known
    if unknown:
        raise StatementError(f"unknown field(s) in the column mapping: {sorted(unknown)}")
    if currency is not None and not is_currency(currency):
        raise StatementError(f"unknown currency {currency!r}")
    split = any(mapping.get(column) for column in AMOUNT_COLUMNS)
    if split and mapping.get("amount"):
        raise StatementError("the column mapping names an amount and debit/credit columns")
    if split:
        mapping["amount"] = None
    for field in ("date",) if split else ("date", "amount"):
        if field in mapping and mapping[field] is None:
            raise StatementError(f"the column mapping must name a column for {field!r}")
    if "currency" in mapping and mapping["currency"] is None and currency is None:
        raise StatementError("no currency column: pass the statement's currency")

    lines_after = _skipped(_decoded_lines(stream, layout.encoding), layout.skip_lines)
    rows = csv.reader(lines_after, delimiter=layout.delimiter)
    header, header_line = _read_header(rows, layout.skip_lines)
    positions = _column_positions(header, header_line, mapping, currency, split)
    # A bank's export (a mapping given) may end its rows with empty fields its header does
    # not name (Chase writes one more comma): those are dropped, anything else refused.
    lines = _rows(rows, len(header), positions, layout, account, loose=bool(mapping or options))
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


def _skipped(lines: Iterator[str], count: int) -> Iterator[str]:
    """The lines after the first `count` (a bank's preamble before its header row)."""
    for number, line in enumerate(lines):
        if number >= count:
            yield line


def _read_header(rows: Iterator[list[str]], skipped: int = 0) -> tuple[list[str], int]:
    line = skipped
    try:
        for row in rows:
            line = rows.line_num + skipped  # type: ignore[attr-defined]
            if any(cell.strip() for cell in row):
                return [cell.strip() for cell in row], line
    except csv.Error as exc:
        raise StatementError(f"not readable as CSV: {exc}", line=line + 1) from None
    if skipped:
        raise StatementError(f"no header row after the {skipped} lines skipped")
    raise StatementError("the file is empty: no header row")


def _column_positions(
    header: list[str],
    header_line: int,
    mapping: dict[str, str | None],
    currency: str | None,
    split: bool = False,
) -> dict[str, int | None]:
    index: dict[str, int] = {}
    for column, name in enumerate(header):
        key = name.casefold()
        if key in index:
            raise StatementError(f"column {name!r} appears twice in the header", line=header_line)
        index[key] = column
    positions: dict[str, int | None] = {}
    position: int | None
    for field in REQUIRED_FIELDS + OPTIONAL_FIELDS + AMOUNT_COLUMNS:
        if (field in mapping and mapping[field] is None) or (
            field in AMOUNT_COLUMNS and not mapping.get(field)
        ):
            positions[field] = None
            continue
        wanted = mapping.get(field) or field
        position = index.get(wanted.strip().casefold())
        required = field in REQUIRED_FIELDS or (split and field in AMOUNT_COLUMNS)
        if position is None and required:
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


def amount_text(raw: str, decimal: str, thousands: str) -> str:
    """A bank's written amount as '[-]digits[.digits]': '1.234,56-' with decimal comma and
    thousands dot -> '-1234.56'. ValueError when it is not a number so written."""
    text = raw.strip()
    negative = False
    if text.startswith("(") and text.endswith(")"):
        negative, text = True, text[1:-1].strip()
    if text.endswith("-"):
        negative, text = not negative, text[:-1].strip()
    elif text.startswith(("-", "+")):
        negative, text = text.startswith("-") != negative, text[1:].strip()
    whole, _, fraction = text.partition(decimal)
    separators = _SPACES if thousands == " " else (thousands,) if thousands else ()
    for separator in separators:
        if separator in whole:
            groups = whole.split(separator)
            if not (1 <= len(groups[0]) <= 3 and all(len(g) == 3 for g in groups[1:])):
                raise ValueError(raw)
            whole = "".join(groups)
    if not whole.isdigit() or (fraction and not fraction.isdigit()) or (decimal in fraction):
        raise ValueError(raw)
    if text.endswith(decimal):
        raise ValueError(raw)
    return ("-" if negative else "") + whole + (f".{fraction}" if fraction else "")


def _rows(
    rows: Iterator[list[str]],
    width: int,
    positions: dict[str, int | None],
    layout: Layout,
    account: str | None,
    loose: bool = False,
) -> Iterator[StatementLine]:
    parse = _RowParser(width, positions, layout, account, loose)
    skipped = layout.skip_lines
    previous_end = rows.line_num + skipped  # type: ignore[attr-defined]
    while True:
        try:
            row = next(rows)
        except StopIteration:
            return
        except csv.Error as exc:
            raise StatementError(f"not readable as CSV: {exc}", line=previous_end + 1) from None
        line = previous_end + 1
        previous_end = rows.line_num + skipped  # type: ignore[attr-defined]
        if not any(row) or (len(row) == 1 and not row[0].strip()):
            continue  # a blank line
        yield parse(row, line)


class _RowParser:
    """Turns one CSV row into a StatementLine; remembers the references seen so far."""

    def __init__(
        self,
        width: int,
        positions: dict[str, int | None],
        layout: Layout,
        account: str | None,
        loose: bool = False,
    ) -> None:
        self.loose = loose
        self.width = width
        self.positions = positions
        self.needed = max(p for p in positions.values() if p is not None) + 1
        self.date_format = layout.date_format
        self.layout = layout
        self.default_currency = layout.currency
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

    def _amount(self, raw: str, field: str, currency: str, line: int) -> int:
        try:
            if self.layout.decimal == ".":
                try:
                    return parse_major(raw, currency)  # plain '-1234.56': the common case
                except InvalidAmount as exc:
                    if "decimals" in exc.message:
                        raise
            written = amount_text(raw, self.layout.decimal, self.layout.thousands)
            return parse_major(written, currency)
        except ValueError:
            reason = f"{field} {raw!r} is not a number"
        except InvalidAmount as exc:
            if "decimals" in exc.message:
                reason = f"{field} {raw!r} has more decimals than {currency} allows"
            else:
                reason = f"{field} {raw!r} is not a number"
        except UnknownCurrency:  # pragma: no cover - checked before
            reason = f"unknown currency {currency!r}"
        raise StatementError(reason, line=line)

    def _debit_credit(self, row: list[str], currency: str, line: int) -> int:
        """Credit minus debit; the debit column may be written negative or not."""
        debit_text = self._cell(row, "debit") or ""
        credit_text = self._cell(row, "credit") or ""
        debit = abs(self._amount(debit_text, "debit", currency, line)) if debit_text else 0
        credit = abs(self._amount(credit_text, "credit", currency, line)) if credit_text else 0
        if debit and credit:
            raise StatementError("both debit and credit have an amount", line=line)
        if not debit_text and not credit_text:
            raise StatementError("neither debit nor credit has an amount", line=line)
        return credit - debit

    def __call__(self, row: list[str], line: int) -> StatementLine:
        if len(row) > self.width and self.loose and not any(c.strip() for c in row[self.width :]):
            row = row[: self.width]
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

        if self.positions["amount"] is not None:
            amount = self._amount(cell(row, "amount") or "", "amount", currency, line)
        else:
            amount = self._debit_credit(row, currency, line)

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
