"""Money: the one rounding rule, exact splits, parsing and formatting of major units."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, localcontext

import pytest
from hypothesis import given
from hypothesis import strategies as st

from premium_billing.errors import InvalidAmount, UnknownCurrency
from premium_billing.money import (
    CURRENCY_EXPONENTS,
    allocate,
    exponent,
    format_major,
    parse_major,
    round_half_up,
    scale,
    split_evenly,
)

amounts = st.integers(min_value=-(10**12), max_value=10**12)
denominators = st.integers(min_value=1, max_value=10**6)


# --- round_half_up / scale -------------------------------------------------------------


@pytest.mark.parametrize(
    ("numerator", "denominator", "expected"),
    [
        (5, 2, 3),  # 2.5 → 3
        (-5, 2, -3),  # -2.5 → -3 (away from zero)
        (7, 2, 4),  # 3.5 → 4
        (9, 2, 5),  # 4.5 → 5, where banker's rounding gives 4
        (1, 3, 0),
        (2, 3, 1),
        (-2, 3, -1),
        (0, 7, 0),
        (10, 5, 2),
        (5, -2, -3),  # negative denominator
        (-5, -2, 3),
    ],
)
def test_round_half_up_examples(numerator: int, denominator: int, expected: int) -> None:
    assert round_half_up(numerator, denominator) == expected


def test_round_half_up_refuses_zero_denominator() -> None:
    with pytest.raises(ZeroDivisionError):
        round_half_up(1, 0)


def test_scale_rounds_once() -> None:
    # 20000 × 184 / 365 = 10082.19… → 10082
    assert scale(20000, 184, 365) == 10082
    # 100000 × 181 / 365 = 49589.04… → 49589
    assert scale(100000, 181, 365) == 49589
    assert scale(73, 1, 2) == 37
    assert scale(-73, 1, 2) == -37


@given(numerator=amounts, denominator=denominators)
def test_round_half_up_matches_decimal_round_half_up(numerator: int, denominator: int) -> None:
    with localcontext() as ctx:
        ctx.prec = 200
        expected = (Decimal(numerator) / Decimal(denominator)).quantize(
            Decimal(1), rounding=ROUND_HALF_UP
        )
    assert round_half_up(numerator, denominator) == int(expected)


@given(numerator=amounts, denominator=denominators)
def test_round_half_up_is_within_half_of_exact(numerator: int, denominator: int) -> None:
    result = round_half_up(numerator, denominator)
    assert 2 * abs(result * denominator - numerator) <= denominator


# --- allocate ----------------------------------------------------------------------------


def test_allocate_examples() -> None:
    assert allocate(100, [1, 1, 1]) == [34, 33, 33]
    assert allocate(-100, [1, 1, 1]) == [-34, -33, -33]
    assert allocate(10, [1, 2]) == [3, 7]  # 3.33 / 6.67: the larger remainder wins
    assert allocate(5, [0, 1]) == [0, 5]
    assert allocate(0, [3, 4]) == [0, 0]


@pytest.mark.parametrize("weights", [[], [0, 0], [1, -1]])
def test_allocate_refuses_bad_weights(weights: list[int]) -> None:
    with pytest.raises(ValueError):
        allocate(100, weights)


@given(
    total=amounts,
    weights=st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=30).filter(
        any
    ),
)
def test_allocate_sums_to_total_and_each_part_is_within_one_unit(
    total: int, weights: list[int]
) -> None:
    parts = allocate(total, weights)
    assert len(parts) == len(weights)
    assert sum(parts) == total
    weight_sum = sum(weights)
    for part, weight in zip(parts, weights, strict=True):
        # |part − total·w/W| < 1
        assert abs(part * weight_sum - total * weight) < weight_sum
        if weight == 0:
            assert part == 0


# --- split_evenly --------------------------------------------------------------------------


def test_split_evenly_puts_the_remainder_on_the_first_part() -> None:
    assert split_evenly(100000, 12) == [8337] + [8333] * 11
    assert split_evenly(100, 3) == [34, 33, 33]
    assert split_evenly(-100, 3) == [-34, -33, -33]
    assert split_evenly(2, 3) == [2, 0, 0]
    assert split_evenly(7, 1) == [7]


def test_split_evenly_refuses_zero_parts() -> None:
    with pytest.raises(ValueError):
        split_evenly(100, 0)


@given(total=amounts, parts=st.integers(min_value=1, max_value=60))
def test_split_evenly_sums_and_all_but_first_are_equal(total: int, parts: int) -> None:
    result = split_evenly(total, parts)
    assert len(result) == parts
    assert sum(result) == total
    assert len(set(result[1:])) <= 1
    base = result[-1]
    # the first part carries the remainder: fewer than `parts` extra units, same sign
    assert 0 <= abs(result[0]) - abs(base) < parts
    assert abs(base) == abs(total) // parts


# --- currencies, parse and format ------------------------------------------------------------


def test_exponents() -> None:
    assert exponent("USD") == 2
    assert exponent("EUR") == 2
    assert exponent("JPY") == 0
    assert exponent("KWD") == 3
    assert exponent("CLF") == 4


def test_unknown_currency() -> None:
    with pytest.raises(UnknownCurrency) as info:
        exponent("XXX")
    assert info.value.field == "currency"


@pytest.mark.parametrize(
    ("text", "currency", "expected"),
    [
        ("480.00", "USD", 48000),
        ("480", "USD", 48000),
        ("480.5", "USD", 48050),
        (" 0.01 ", "EUR", 1),
        ("-12.34", "GBP", -1234),
        ("1000", "JPY", 1000),
        ("1.234", "KWD", 1234),
        ("0.0001", "CLF", 1),
        ("18.150", "EUR", 1815),  # ISO 20022 allows five decimals: trailing zeros are exact
        ("5442.09000", "RON", 544209),
        ("1000.000", "JPY", 1000),
    ],
)
def test_parse_major(text: str, currency: str, expected: int) -> None:
    assert parse_major(text, currency) == expected


@pytest.mark.parametrize(
    ("text", "currency"),
    [
        ("1.234", "USD"),
        ("1.5", "JPY"),
        ("abc", "USD"),
        ("", "USD"),
        ("1,000.00", "USD"),
        ("18.151", "EUR"),
        ("0.00001", "EUR"),
    ],
)
def test_parse_major_refuses(text: str, currency: str) -> None:
    with pytest.raises(InvalidAmount) as info:
        parse_major(text, currency)
    assert info.value.field == "amount"


@pytest.mark.parametrize(
    ("amount", "currency", "thousands", "expected"),
    [
        (48000, "USD", False, "480.00"),
        (100000, "USD", True, "1,000.00"),
        (-5, "USD", False, "-0.05"),
        (1000, "JPY", True, "1,000"),
        (1234, "KWD", False, "1.234"),
        (1, "CLF", False, "0.0001"),
    ],
)
def test_format_major(amount: int, currency: str, thousands: bool, expected: str) -> None:
    assert format_major(amount, currency, thousands=thousands) == expected


@given(amount=amounts, currency=st.sampled_from(sorted(CURRENCY_EXPONENTS)))
def test_parse_major_inverts_format_major_for_every_currency(amount: int, currency: str) -> None:
    text = format_major(amount, currency)
    assert parse_major(text, currency) == amount
    digits = CURRENCY_EXPONENTS[currency]
    if digits:
        assert len(text.rsplit(".", 1)[1]) == digits
    else:
        assert "." not in text


@given(
    amount=amounts,
    currency=st.sampled_from(sorted(CURRENCY_EXPONENTS)),
    zeros=st.integers(min_value=1, max_value=5),
    digit=st.integers(min_value=1, max_value=9),
)
def test_trailing_zeros_are_exact_and_a_fraction_of_a_minor_unit_is_refused(
    amount: int, currency: str, zeros: int, digit: int
) -> None:
    text = format_major(amount, currency)
    if "." not in text:
        text += "."
    assert parse_major(text + "0" * zeros, currency) == amount
    with pytest.raises(InvalidAmount):
        parse_major(text + "0" * (zeros - 1) + str(digit), currency)
