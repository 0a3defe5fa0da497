"""Payment references: ISO 11649 "RF" creditor references derived from invoice numbers.

Pure: no framework imports. The RF reference carries two check digits (ISO 7064 mod 97-10),
so a mistyped reference is detected instead of landing on a neighbouring invoice number.
"""

from __future__ import annotations

import re

from stdnum import iso11649

_SEPARATORS = re.compile(r"[\s\-]+")
_NOT_ALNUM = re.compile(r"[^0-9A-Z]")
_MAX_BODY = 21  # ISO 11649: RF + 2 check digits + at most 21 characters


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
    digits = "".join(str(int(ch, 36)) for ch in body + "RF") + "00"
    return f"RF{98 - int(digits) % 97:02d}{body}"


def format_reference(reference: str) -> str:
    """Printed form, blocks of four: 'RF18 INV2 0260 0012 3'."""
    return str(iso11649.format(reference))


def is_valid_rf(text: str) -> bool:
    """True when `text` (spaces and dashes allowed) is an RF reference with correct check digits."""
    return bool(iso11649.is_valid(normalize_reference(text)))
