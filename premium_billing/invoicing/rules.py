"""Invoice rules: the payment reference printed on every invoice (ISO 11649 RF), when an
invoice can take money, when an underpaid remainder may be written off, and which status
follows from its amounts. Pure: standard library and python-stdnum only.

Payment references: ISO 11649 "RF" creditor references derived from invoice numbers.

Pure: no framework imports. The RF reference carries two check digits (ISO 7064 mod 97-10),
so a mistyped reference is detected instead of landing on a neighbouring invoice number.
"""

from __future__ import annotations

import re
from fractions import Fraction

from stdnum import iso11649

from premium_billing.errors import DomainError

_SEPARATORS = re.compile(r"[\s\-]+")


_NOT_ALNUM = re.compile(r"[^0-9A-Z]")


_MAX_BODY = 21  # ISO 11649: RF + 2 check digits + at most 21 characters
# ISO 7064 mod 97-10: each letter read as its number (A = 10 ... Z = 35), digits as they are.
_DIGITS_OF = {ord(ch): str(int(ch, 36)) for ch in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"}


def normalize_reference(text: str) -> str:
    """Upper case, spaces and dashes removed: ' inv-2026 000123 ' → 'INV2026000123'."""
    return _SEPARATORS.sub("", text).upper()


def payment_reference(invoice_number: str) -> str:
    """The RF creditor reference of an invoice number, compact form.

    'INV-2026-000123' → 'RF' + two check digits + 'INV2026000123'. Only letters and digits of
    the invoice number are kept; the body must be 1 to 21 characters long.
    """
    body = _NOT_ALNUM.sub("", invoice_number.upper())
    if not 1 <= len(body) <= _MAX_BODY:
        raise ValueError(f"invoice number {invoice_number!r} cannot make an RF reference")
    # ISO 7064 mod 97-10 computed directly (a run derives it for every open invoice);
    # the tests check it against python-stdnum's validator.
    digits = (body + "RF").translate(_DIGITS_OF) + "00"
    return f"RF{98 - int(digits) % 97:02d}{body}"


def format_reference(reference: str) -> str:
    """Printed form, blocks of four: 'RF18 INV2 0260 0012 3'."""
    return str(iso11649.format(reference))


def is_valid_rf(text: str) -> bool:
    """True when `text` (spaces and dashes allowed) is an RF reference with correct check digits."""
    return bool(iso11649.is_valid(normalize_reference(text)))


PAYABLE_STATUSES = ("open", "partially_paid")


def is_payable(status: str) -> bool:
    """Whether an invoice in this status can take money (the one "payable" predicate)."""
    return status in PAYABLE_STATUSES


class OverAllocation(DomainError):
    """More would be allocated than the payment holds or the invoice still has due."""


def within_tolerance(remainder: int, total: int, absolute: int, percent: Fraction) -> bool:
    """True when an underpaid remainder may be written off: ≤ `absolute` or ≤ `percent` of
    the invoice total (DESIGN: ≤ 1.00 or ≤ 1%)."""
    if remainder <= 0:
        return False
    return remainder <= absolute or remainder * percent.denominator <= percent.numerator * total


def invoice_status(
    total: int,
    paid: int,
    written_off: int,
    *,
    void: bool = False,
    tolerance_abs: int = 0,
    tolerance_pct: Fraction = Fraction(0),
    credited: int = 0,
) -> str:
    """The status that follows from an invoice's amounts (`total`: net of the `credited`
    premium taken off by credit notes).

    Credited down to nothing, nothing paid nor written off: `void`. Settled with a
    write-off beyond tolerance: `written_off`; settled otherwise (a small remainder written
    off counts as paid): `paid`; something settled: `partially_paid`.
    """
    if void:
        return "void"
    due = total - paid - written_off
    if due < 0:
        raise OverAllocation("an invoice cannot be settled beyond its total")
    if due == 0 and credited > 0 and paid == 0 and written_off == 0:
        return "void"
    if due == 0:
        if written_off == 0 or within_tolerance(written_off, total, tolerance_abs, tolerance_pct):
            return "paid"
        return "written_off"
    if paid == 0 and written_off == 0:
        return "open"
    return "partially_paid"


def status_consistent(status: str, total: int, paid: int, written_off: int) -> bool:
    """Whether a stored status can follow from these amounts (whatever the tolerances)."""
    if status == "void":
        return True
    due = total - paid - written_off
    if due == 0:
        # A zero invoice may be issued open: it has nothing to settle.
        return status in ("paid", "written_off") if total > 0 else status in ("open", "paid")
    if paid == 0 and written_off == 0:
        return status == "open"
    return status == "partially_paid"
