"""The one rule for text we store: what the database can hold. Pure: standard library only.

PostgreSQL refuses a NUL character in text (a DataError), and no encoding can write an
unpaired UTF-16 surrogate (`"\\ud800"` in JSON; a UnicodeEncodeError on either database).
The API applies it to every string of every request (`http.text_guard`, `http.schemas`);
the bank file readers to every text of every line (`bank_files.records`).
"""

from __future__ import annotations

import re

NUL_MESSAGE = "Must not contain a NUL character (\\u0000)."
SURROGATE_MESSAGE = (
    "Must be valid Unicode text: an unpaired surrogate (\\ud800 to \\udfff) cannot be stored."
)
# In a Python string every surrogate is unpaired: JSON's escaped pairs are decoded into one
# character beyond the Basic Multilingual Plane.
SURROGATE = re.compile("[\ud800-\udfff]")


def text_problem(value: str) -> str | None:
    """Why the database cannot store `value` as text (a message for the field), or None."""
    if "\x00" in value:
        return NUL_MESSAGE
    if SURROGATE.search(value):
        return SURROGATE_MESSAGE
    return None
