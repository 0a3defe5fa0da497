"""Normalisation: references and bank accounts as compact keys, names as tokens and keys."""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

_NON_ALNUM = re.compile(r"[^0-9A-Z]+")
_NON_ALNUM_LINE = re.compile(r"[^0-9A-Z\n]+")
_WORDS = re.compile(r"[A-Z0-9]+")
_TITLES = frozenset({"MR", "MRS", "MS", "MISS", "MX", "DR", "PROF", "SIR", "DAME", "REV"})
_SUFFIXES = frozenset(
    {
        "LTD", "LIMITED", "LLC", "INC", "INCORPORATED", "GMBH", "CO", "CORP", "CORPORATION",
        "PLC", "LLP", "AG", "SA", "SARL", "BV", "NV", "COMPANY", "THE",
    }
)  # fmt: skip
_DROPPED = _TITLES | _SUFFIXES
_CACHED = 1 << 16  # distinct names / references remembered by the cached forms below


def compact(text: str) -> str:
    """Upper case, letters and digits (A-Z, 0-9) only. The regular expression runs only when
    something other than a space or a dash has to go."""
    u = text.upper()
    if u.isascii() and u.isalnum():
        return u
    u = u.replace("-", "").replace(" ", "")
    if u.isascii() and u.isalnum():
        return u
    return _NON_ALNUM.sub("", u)


def compact_all(texts: list[str]) -> list[str]:
    """[compact(t) for t in texts] in a few passes over one joined string; the same strings
    when every one is already compact (RF references usually are)."""
    if not texts:
        return []
    joined = "\n".join(texts)
    if joined.count("\n") != len(texts) - 1:  # a text with a line break: one by one
        return [compact(t) for t in texts]
    upper = joined.upper()
    compacted = upper.replace("-", "").replace(" ", "")  # the usual separators, fast
    if not (compacted.isascii() and compacted.replace("\n", "").isalnum()):
        compacted = _NON_ALNUM_LINE.sub("", upper)
    if compacted == joined:
        return texts
    return compacted.split("\n")


@lru_cache(maxsize=_CACHED)
def compact_reference(text: str) -> str:
    """`compact`, remembered: the duplicate guard compares each payment with its window."""
    return compact(text)


def normalize_account(account: str) -> str:
    """A bank account or IBAN as a lookup key: upper case, letters and digits only."""
    return compact(account)


def name_tokens(name: str) -> tuple[str, ...]:
    """Upper-case words of a person or company name, without titles and company suffixes."""
    words = _WORDS.findall(name.upper().replace("&", " AND "))
    kept = [w for w in words if w not in _DROPPED]
    return tuple(kept) if kept else tuple(words)


def normalize_name(name: str) -> str:
    """A payer name as a lookup key: tokens sorted, joined by one space."""
    return " ".join(sorted(name_tokens(name)))


@lru_cache(maxsize=_CACHED)
def normalized_name(name: str) -> str:
    """`normalize_name`, remembered: the duplicate guard compares each payment with its
    window."""
    return normalize_name(name)


def block_keys(tokens: Sequence[str]) -> set[str]:
    """Blocking keys of a name: (initial of one word | another whole word) for every pair, or
    the one word of a single-word name. "J Smith", "Smith John" and "John Smith" share
    "J|SMITH"."""
    words = [t for t in tokens if len(t) > 1]
    if len(tokens) == 1:
        return {"|" + tokens[0]}
    keys = set()
    for i, a in enumerate(tokens):
        for j, b in enumerate(tokens):
            if i != j and len(b) > 1:
                keys.add(a[0] + "|" + b)
    if not keys and words:
        keys.add("|" + words[0])
    return keys
