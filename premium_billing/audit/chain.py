"""The audit trail's hash chain: each row's hash covers its content and the previous hash.
Pure: standard library only."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

GENESIS = "0" * 64


def canonical(content: Mapping[str, Any]) -> bytes:
    """One byte string per content: sorted keys, no spaces, UTF-8."""
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def row_hash(prev_hash: str, content: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the previous row's hash and this row's canonical content."""
    return hashlib.sha256(prev_hash.encode() + b"\n" + canonical(content)).hexdigest()


@dataclass(frozen=True)
class ChainRow:
    """A stored row: its id (for the message), sequence number, content and hashes."""

    id: int
    seq: int
    content: Mapping[str, Any]
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class Break:
    row_id: int | None
    seq: int
    reason: str


def first_break(
    rows: Iterable[ChainRow], head_seq: int | None = None, head_hash: str | None = None
) -> Break | None:
    """The first row (in sequence order) where the chain does not hold, or None.

    Edited content fails its own hash; a deleted row leaves a gap in the sequence and a
    broken link; reordered rows break the links; a deleted tail disagrees with the head.
    """
    expected_prev = GENESIS
    expected_seq = 1
    for row in rows:
        if row.seq != expected_seq:
            what = "missing (deleted?)" if row.seq > expected_seq else "out of order"
            return Break(row.id, row.seq, f"sequence {expected_seq} expected: row {what}")
        if row.prev_hash != expected_prev:
            return Break(row.id, row.seq, "previous-hash link broken (deleted or reordered)")
        if row_hash(row.prev_hash, row.content) != row.hash:
            return Break(row.id, row.seq, "content does not match its hash (edited)")
        expected_prev = row.hash
        expected_seq += 1
    if head_seq is not None and head_seq != expected_seq - 1:
        return Break(
            None, expected_seq, f"chain head records {head_seq} rows, {expected_seq - 1} found"
        )
    if head_hash is not None and head_hash != expected_prev:
        return Break(None, expected_seq, "chain head hash differs from the last row's hash")
    return None
