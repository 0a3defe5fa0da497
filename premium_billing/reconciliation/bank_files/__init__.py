"""Bank statement readers: CSV, BAI2 and CAMT.053 files -> one record type.

Pure (no Flask, no SQLAlchemy): `read_statement(stream)` returns a `Statement` whose `lines`
iterate `StatementLine`s in minor units, credits positive, debits negative.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import BinaryIO

from premium_billing.reconciliation.bank_files.bai2_reader import read_bai2
from premium_billing.reconciliation.bank_files.camt053_reader import read_camt053
from premium_billing.reconciliation.bank_files.csv_reader import read_csv
from premium_billing.reconciliation.bank_files.records import (
    Statement,
    StatementError,
    StatementLine,
)

__all__ = [
    "FORMATS",
    "Statement",
    "StatementError",
    "StatementLine",
    "detect_format",
    "read_bai2",
    "read_camt053",
    "read_csv",
    "read_statement",
]

FORMATS = ("csv", "bai2", "camt053")
HEAD_SIZE = 4096
_BOMS = (b"\xef\xbb\xbf",)


def detect_format(head: bytes) -> str:
    """'csv', 'bai2' or 'camt053' from the first bytes of a file; StatementError otherwise."""
    for bom in _BOMS:
        if head.startswith(bom):
            head = head[len(bom) :]
    text = head.lstrip()
    if not text:
        raise StatementError("the file is empty")
    if text.startswith(b"<"):
        if b"urn:iso:std:iso:20022:tech:xsd:camt.053." in head:
            return "camt053"
        raise StatementError("an XML file, but not a CAMT.053 statement")
    if text.startswith(b"01,"):
        return "bai2"
    first_line = text.split(b"\n", 1)[0]
    if b"\x00" not in first_line and (b"," in first_line or b";" in first_line):
        try:
            first_line.decode("utf-8")
        except UnicodeDecodeError:
            raise StatementError("not a text file: cannot tell its format") from None
        return "csv"
    raise StatementError("unknown statement format (expected CSV, BAI2 or CAMT.053)")


def read_statement(
    stream: BinaryIO,
    format: str | None = None,
    csv_mapping: Mapping[str, str | None] | None = None,
) -> Statement:
    """Read a statement from a binary stream; the format is detected when not given.

    `csv_mapping` (BANK_CSV_COLUMNS) applies to a CSV file; a BAI2 or CAMT.053 file
    detected as such is read as it is.

    CSV and CAMT.053 lines are read lazily, so keep `stream` open until `lines` is consumed.
    """
    if format is not None and format not in FORMATS:
        raise StatementError(f"unknown format {format!r}: use one of {', '.join(FORMATS)}")
    if format is not None and format != "csv" and csv_mapping:
        raise StatementError("a column mapping applies to CSV files only")
    if format is None:
        head, stream = _peek(stream, HEAD_SIZE)
        try:
            format = detect_format(head)
        except StatementError:
            if not csv_mapping:
                raise
            # A bank's CSV export may open with a preamble, or be written in another
            # encoding: the configured mapping reads it (and names the line at fault).
            format = "csv"
    if format == "csv":
        return read_csv(stream, csv_mapping)
    if format == "bai2":
        return read_bai2(stream)
    return read_camt053(stream)


def _peek(stream: BinaryIO, size: int) -> tuple[bytes, BinaryIO]:
    """The first `size` bytes (or fewer) of `stream`, and a stream that still starts there."""
    try:
        seekable = stream.seekable()
    except (AttributeError, OSError, ValueError):
        seekable = False
    if seekable:
        position = stream.tell()
        head = stream.read(size)
        stream.seek(position)
        return head, stream
    head = stream.read(size)
    return head, io.BufferedReader(_Prepended(head, stream))


class _Prepended(io.RawIOBase):
    """A read-only raw stream: `head`, then the rest of `rest`."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self._head = memoryview(head)
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if self._head:
            count = min(len(buffer), len(self._head))
            buffer[:count] = self._head[:count]
            self._head = self._head[count:]
            return count
        data = self._rest.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)
