"""ISO 11649 RF payment references derived from invoice numbers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from premium_billing.invoicing.rules import (
    format_reference,
    is_valid_rf,
    normalize_reference,
    payment_reference,
)


def test_reference_of_an_invoice_number_is_rf_with_check_digits_and_the_body() -> None:
    ref = payment_reference("INV-2026-000123")
    assert ref.startswith("RF")
    assert ref[2:4].isdigit()
    assert ref[4:] == "INV2026000123"
    assert is_valid_rf(ref)


def test_reference_is_deterministic_and_differs_between_invoices() -> None:
    assert payment_reference("INV-2026-000123") == payment_reference("INV-2026-000123")
    assert payment_reference("INV-2026-000123") != payment_reference("INV-2026-000124")


def test_known_iso11649_example_validates() -> None:
    assert is_valid_rf("RF18 5390 0754 7034")
    assert not is_valid_rf("RF17 5390 0754 7034")


def test_normalize_strips_spaces_and_dashes_and_upper_cases() -> None:
    assert normalize_reference(" inv-2026 000123 ") == "INV2026000123"
    assert normalize_reference("rf18-5390 0754") == "RF1853900754"


def test_printed_form_in_blocks_of_four_still_validates() -> None:
    ref = payment_reference("INV-2026-000123")
    printed = format_reference(ref)
    assert " " in printed
    assert is_valid_rf(printed)
    assert normalize_reference(printed) == ref


def test_not_rf_is_not_valid() -> None:
    assert not is_valid_rf("INV-2026-000123")
    assert not is_valid_rf("")


def test_body_too_long_is_refused() -> None:
    with pytest.raises(ValueError):
        payment_reference("X" * 22)
    with pytest.raises(ValueError):
        payment_reference("---")


@given(st.integers(min_value=0, max_value=10**7 - 1), st.data())
def test_any_single_substitution_or_transposition_is_detected(n: int, data: st.DataObject) -> None:
    ref = payment_reference(f"INV-2026-{n:07d}")
    i = data.draw(st.integers(min_value=2, max_value=len(ref) - 1))
    if data.draw(st.booleans()) and i + 1 < len(ref) and ref[i] != ref[i + 1]:
        broken = ref[:i] + ref[i + 1] + ref[i] + ref[i + 2 :]
    else:
        alphabet = "0123456789" if ref[i].isdigit() else "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
        ch = data.draw(st.sampled_from([c for c in alphabet if c != ref[i]]))
        broken = ref[:i] + ch + ref[i + 1 :]
    assert not is_valid_rf(broken)
