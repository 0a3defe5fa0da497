"""How alike a payer's name and a policyholder's name are (0..1), and a cheap bound on it."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from rapidfuzz import fuzz

from premium_billing.reconciliation.matching.scores import (
    CERTAIN,
    INITIAL_MATCH,
    NO_EVIDENCE,
    OMITTED_TOKEN_PENALTY,
)

_RATIO_SCALE = 100.0  # rapidfuzz ratios are percentages
_SLACK = 1e-6  # floating-point slack in the bound of `may_agree`: it must never reject a match
_CACHED = 1 << 16  # distinct (payer, holder) name pairs remembered by `similarity`


def name_similarity(payer: Sequence[str], holder: Sequence[str]) -> float:
    """0..1 similarity of two token lists; initials, reordering, titles and suffixes allowed.

    An initial ("J") matches a word with that first letter at a small discount; each other
    token takes its best rapidfuzz ratio among the holder's unused tokens. Holder tokens the
    payer left out (a middle name) cost a little.
    """
    if not payer or not holder:
        return NO_EVIDENCE
    if sorted(payer) == sorted(holder):
        return CERTAIN
    unused = list(holder)
    total = 0.0
    full_tokens = 0
    ratio = fuzz.ratio
    # Full words first so an initial cannot take the word a full token needs.
    for token in sorted(payer, key=len, reverse=True):
        best_i, best = -1, NO_EVIDENCE
        if len(token) == 1:
            for i, other in enumerate(unused):
                if other[0] == token:
                    best_i, best = i, INITIAL_MATCH
                    break
        else:
            full_tokens += 1
            for i, other in enumerate(unused):
                s = CERTAIN if other == token else ratio(token, other) / _RATIO_SCALE
                if s > best:
                    best_i, best = i, s
                    if s == CERTAIN:
                        break
        if best_i >= 0:
            unused.pop(best_i)
        total += best
    if full_tokens == 0:
        return NO_EVIDENCE
    score = total / len(payer)
    return max(NO_EVIDENCE, score - OMITTED_TOKEN_PENALTY * len(unused))


@lru_cache(maxsize=_CACHED)
def similarity(payer: tuple[str, ...], holder: tuple[str, ...]) -> float:
    """`name_similarity`, remembered: payers and policyholders share a few thousand names."""
    return name_similarity(payer, holder)


def may_agree(payer: tuple[str, ...], holder: tuple[str, ...] | None, threshold: float) -> bool:
    """False only when `name_similarity(payer, holder) < threshold` for certain, cheaply.

    The similarity is the mean of per-token scores (each at most 1) less a penalty, so each
    payer token needs a score of at least 1 - (1 - threshold) * len(payer) with some holder
    token; the longest payer token is tried alone. A payer of initials only scores 0.
    """
    if not holder or not payer:
        return False
    token = max(payer, key=len)
    if len(token) == 1:
        return False
    need = _RATIO_SCALE * (CERTAIN - (CERTAIN - threshold) * len(payer)) - _SLACK
    if need <= 0.0:
        return True
    ratio = fuzz.ratio
    return any(ratio(token, other) >= need for other in holder)
