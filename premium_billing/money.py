"""Money as integer minor units with an ISO 4217 code.

The one rounding rule of the service lives here: `round_half_up` (half away from zero,
on exact integers). Every other module that divides money calls `scale` or `allocate`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from premium_billing.errors import InvalidAmount, UnknownCurrency

# Active ISO 4217 codes and the exponent of their minor unit (ISO 4217 list, 2024).
_THREE = {"BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"}
_ZERO = {
    "BIF",
    "CLP",
    "DJF",
    "GNF",
    "ISK",
    "JPY",
    "KMF",
    "KRW",
    "PYG",
    "RWF",
    "UGX",
    "UYI",
    "VND",
    "VUV",
    "XAF",
    "XOF",
    "XPF",
}
_FOUR = {"CLF", "UYW"}
_TWO = {
    "AED",
    "AFN",
    "ALL",
    "AMD",
    "ANG",
    "AOA",
    "ARS",
    "AUD",
    "AWG",
    "AZN",
    "BAM",
    "BBD",
    "BDT",
    "BGN",
    "BMD",
    "BND",
    "BOB",
    "BOV",
    "BRL",
    "BSD",
    "BTN",
    "BWP",
    "BYN",
    "BZD",
    "CAD",
    "CDF",
    "CHE",
    "CHF",
    "CHW",
    "CNY",
    "COP",
    "COU",
    "CRC",
    "CUP",
    "CVE",
    "CZK",
    "DKK",
    "DOP",
    "DZD",
    "EGP",
    "ERN",
    "ETB",
    "EUR",
    "FJD",
    "FKP",
    "GBP",
    "GEL",
    "GHS",
    "GIP",
    "GMD",
    "GTQ",
    "GYD",
    "HKD",
    "HNL",
    "HTG",
    "HUF",
    "IDR",
    "ILS",
    "INR",
    "IRR",
    "JMD",
    "KES",
    "KGS",
    "KHR",
    "KPW",
    "KYD",
    "KZT",
    "LAK",
    "LBP",
    "LKR",
    "LRD",
    "LSL",
    "MAD",
    "MDL",
    "MGA",
    "MKD",
    "MMK",
    "MNT",
    "MOP",
    "MRU",
    "MUR",
    "MVR",
    "MWK",
    "MXN",
    "MXV",
    "MYR",
    "MZN",
    "NAD",
    "NGN",
    "NIO",
    "NOK",
    "NPR",
    "NZD",
    "PAB",
    "PEN",
    "PGK",
    "PHP",
    "PKR",
    "PLN",
    "QAR",
    "RON",
    "RSD",
    "RUB",
    "SAR",
    "SBD",
    "SCR",
    "SDG",
    "SEK",
    "SGD",
    "SHP",
    "SLE",
    "SOS",
    "SRD",
    "SSP",
    "STN",
    "SVC",
    "SYP",
    "SZL",
    "THB",
    "TJS",
    "TMT",
    "TOP",
    "TRY",
    "TTD",
    "TWD",
    "TZS",
    "UAH",
    "USD",
    "USN",
    "UYU",
    "UZS",
    "VED",
    "VES",
    "WST",
    "XCD",
    "YER",
    "ZAR",
    "ZMW",
    "ZWG",
}
CURRENCY_EXPONENTS: dict[str, int] = {
    **{c: 2 for c in _TWO},
    **{c: 0 for c in _ZERO},
    **{c: 3 for c in _THREE},
    **{c: 4 for c in _FOUR},
}


def is_currency(code: object) -> bool:
    """True when `code` is an active ISO 4217 code (upper case)."""
    return isinstance(code, str) and code in CURRENCY_EXPONENTS


def exponent(currency: str) -> int:
    """Number of decimal places of the currency's minor unit (USD 2, JPY 0, KWD 3)."""
    try:
        return CURRENCY_EXPONENTS[currency]
    except KeyError:
        raise UnknownCurrency(f"unknown currency {currency!r}", field="currency") from None


def round_half_up(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded to an integer, halves away from zero.

    The single rounding rule of the service: exact integer arithmetic, no floats.
    """
    if denominator == 0:
        raise ZeroDivisionError("denominator is zero")
    if denominator < 0:
        numerator, denominator = -numerator, -denominator
    sign = -1 if numerator < 0 else 1
    quotient, remainder = divmod(abs(numerator), denominator)
    if 2 * remainder >= denominator:
        quotient += 1
    return sign * quotient


def scale(amount: int, numerator: int, denominator: int) -> int:
    """amount × numerator / denominator in minor units, rounded once by the rule."""
    return round_half_up(amount * numerator, denominator)


def allocate(total: int, weights: Sequence[int]) -> list[int]:
    """Split `total` in proportion to `weights` so that the parts sum exactly to `total`.

    Largest remainder method; on equal remainders the earlier part gets the extra unit.
    Negative totals split symmetrically to positive ones.
    """
    if not weights:
        raise ValueError("allocate needs at least one weight")
    if any(w < 0 for w in weights):
        raise ValueError("weights must not be negative")
    weight_sum = sum(weights)
    if weight_sum == 0:
        raise ValueError("weights must not all be zero")
    sign = -1 if total < 0 else 1
    magnitude = abs(total)
    parts = [magnitude * w // weight_sum for w in weights]
    remainders = [magnitude * w % weight_sum for w in weights]
    short = magnitude - sum(parts)
    order = sorted(range(len(weights)), key=lambda i: (-remainders[i], i))
    for i in order[:short]:
        parts[i] += 1
    return [sign * p for p in parts]


def split_evenly(total: int, parts: int) -> list[int]:
    """Split `total` into `parts` equal amounts; the remainder units all go on the first.

    1,000.00 in 12 → 83.37 then eleven of 83.33.
    """
    if parts < 1:
        raise ValueError("parts must be at least 1")
    sign = -1 if total < 0 else 1
    base = abs(total) // parts
    first = abs(total) - base * (parts - 1)
    return [sign * first] + [sign * base] * (parts - 1)


_MAJOR = re.compile(r"^([+-]?)(\d+)(?:\.(\d+))?$")


def parse_major(text: str, currency: str) -> int:
    """'480.00' in USD → 48000. Any amount exact in minor units is taken ('18.150' EUR,
    '5442.09000' RON: ISO 20022 allows five decimals); a real fraction of a minor unit
    ('480.001' USD) is refused, and so are non-numbers."""
    digits = exponent(currency)
    cleaned = text.strip() if isinstance(text, str) else text
    match = _MAJOR.match(cleaned) if isinstance(cleaned, str) else None
    if match is None:
        raise InvalidAmount(f"{text!r} is not an amount", field="amount")
    sign, whole, fraction = match.group(1), match.group(2), match.group(3) or ""
    if len(fraction) > digits and not fraction[digits:].strip("0"):
        fraction = fraction[:digits]  # trailing zeros: the same amount, exactly
    if len(fraction) > digits:
        raise InvalidAmount(
            f"{text!r} has more than {digits} decimals for {currency}", field="amount"
        )
    value: int = int(whole) * 10**digits + (int(fraction.ljust(digits, "0")) if digits else 0)
    return -value if sign == "-" else value


def format_major(amount: int, currency: str, thousands: bool = False) -> str:
    """48000 in USD → '480.00' ('1,000.00' with thousands=True)."""
    digits = exponent(currency)
    sign = "-" if amount < 0 else ""
    whole, fraction = divmod(abs(amount), 10**digits)
    whole_text = f"{whole:,}" if thousands else str(whole)
    return f"{sign}{whole_text}.{fraction:0{digits}d}" if digits else f"{sign}{whole_text}"
