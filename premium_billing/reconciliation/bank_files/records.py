"""The one record type every bank statement reader produces. Pure: no Flask, no SQLAlchemy."""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

from premium_billing.text import text_problem


@dataclass(frozen=True)
class StatementLine:
    """One booked movement on the account, whatever the file format was."""

    line_no: int  # 1-based physical line (CSV/BAI2) or 1-based entry index (CAMT)
    booking_date: date
    value_date: date | None
    amount: int  # minor units, >0 credit, <0 debit
    currency: str
    payer_name: str | None  # the counterparty (payer of a credit, payee of a debit)
    payer_account: str | None  # IBAN / account no.
    reference: str  # remittance text, "" if none
    bank_reference: str  # unique per line within the account; derived when the file has none
    is_return: bool  # a reversal / returned item: never new money
    return_reason: str | None
    bank_transaction_code: str | None
    # The ids a returned item names of the payment it returns (CAMT EndToEndId, TxId, ...):
    # not stored, used to find that payment.
    names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # Text the database cannot store refuses the file, naming the line (never a 500).
        for name in TEXT_FIELDS:
            value = getattr(self, name)
            problem = text_problem(value) if isinstance(value, str) else None
            if problem is not None:
                raise StatementError(f"{name}: {problem}", line=self.line_no)


TEXT_FIELDS = (
    "currency",
    "payer_name",
    "payer_account",
    "reference",
    "bank_reference",
    "return_reason",
    "bank_transaction_code",
)


@dataclass
class Statement:
    """A parsed file: its header figures and a lazy iterator over its lines.

    `lines` may raise StatementError while it is consumed (CSV and CAMT stream), so a
    caller that wants all-or-nothing imports iterates inside its transaction.
    """

    format: str  # 'csv' | 'bai2' | 'camt053'
    account: str | None
    currency: str | None
    opening_balance: int | None  # minor units
    closing_balance: int | None  # minor units
    lines: Iterator[StatementLine]


class StatementError(ValueError):
    """The file cannot be read. Names the physical line or the XML element at fault."""

    def __init__(self, reason: str, line: int | None = None, element: str | None = None) -> None:
        self.reason = reason
        self.line = line
        self.element = element
        super().__init__(str(self))

    def __str__(self) -> str:
        if self.line is not None:
            return f"line {self.line}: {self.reason}"
        if self.element is not None:
            return f"element {self.element}: {self.reason}"
        return self.reason


DERIVED_PREFIX = "derived:"


def digest64(text: str) -> int:
    """A non-zero 64-bit digest of `text` (for compact 'seen before?' tables)."""
    value = int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "big")
    return value or 1


class OccurrenceCounter:
    """Counts how often each key was seen, in ~16 bytes per distinct key.

    An open-addressing table of 64-bit digests in `array`s, so a file of a million lines
    costs ~16-32 MB instead of the ~100 MB a `set` of strings would. Two different keys
    collide with probability ~n²/2⁶⁵ (3·10⁻⁸ for a million keys).
    """

    def __init__(self) -> None:
        self._capacity = 1024
        self._size = 0
        self._keys = array("Q", bytes(8 * self._capacity))
        self._counts = array("I", bytes(4 * self._capacity))

    def add(self, key: str) -> int:
        """Record one more occurrence of `key`; return how many times it was seen before."""
        digest = digest64(key)
        keys, mask = self._keys, self._capacity - 1
        slot = digest & mask
        while True:
            current = keys[slot]
            if current == digest:
                before = self._counts[slot]
                self._counts[slot] = before + 1
                return before
            if current == 0:
                keys[slot] = digest
                self._counts[slot] = 1
                self._size += 1
                if self._size * 2 > self._capacity:
                    self._grow()
                return 0
            slot = (slot + 1) & mask

    def _grow(self) -> None:
        old_keys, old_counts = self._keys, self._counts
        self._capacity *= 2
        mask = self._capacity - 1
        self._keys = array("Q", bytes(8 * self._capacity))
        self._counts = array("I", bytes(4 * self._capacity))
        for digest, count in zip(old_keys, old_counts, strict=True):
            if digest:
                slot = digest & mask
                while self._keys[slot]:
                    slot = (slot + 1) & mask
                self._keys[slot] = digest
                self._counts[slot] = count


def derive_reference(
    occurrences: OccurrenceCounter,
    *parts: object,
) -> str:
    """A deterministic id for a line the bank gave none: 'derived:' + 32 hex digits.

    `parts` are what identifies the line (account, date, amount, currency, text, ...); the
    n-th identical line of a file gets occurrence index n, so re-importing the same file
    (or an export overlapping it) gives the same ids while identical lines stay distinct.
    """
    key = "|".join("" if p is None else str(p) for p in parts)
    occurrence = occurrences.add(key)
    digest = hashlib.sha256(f"{key}|{occurrence}".encode()).hexdigest()
    return DERIVED_PREFIX + digest[:32]


def unique_reference(occurrences: OccurrenceCounter, account: str | None, reference: str) -> str:
    """The bank's own reference, made unique within the file: a repeat gets '#2', '#3', ..."""
    seen = occurrences.add(f"{account or ''}\x00{reference}")
    return reference if seen == 0 else f"{reference}#{seen + 1}"
