"""Reading ahead (`threads.read_ahead`; the reconciliation snapshot's cursor and the
statement import's batches): a thread makes the next items while the caller works on this
one; the items come in order, an error of the reader reaches the caller, and the thread ends
however the caller stops (what it read from, a connection say, is then free)."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator

import pytest

from premium_billing.threads import read_ahead

NAME = "test-read-ahead"


def _readers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == NAME]


def test_rows_come_in_order_and_the_thread_ends_with_them() -> None:
    chunks = [[1, 2, 3], [], [4], [5, 6]] + [list(range(7 + 3 * i, 10 + 3 * i)) for i in range(9)]
    ahead = read_ahead(iter(chunks), depth=2, name=NAME)
    assert [row for chunk in ahead for row in chunk] == list(range(1, 34))
    assert _readers() == []


def test_an_error_of_the_fetch_reaches_the_caller_after_the_rows_before_it() -> None:
    def failing() -> Iterator[list[int]]:
        yield [1, 2]
        yield [3]
        raise RuntimeError("connection lost")

    seen: list[int] = []
    with pytest.raises(RuntimeError, match="connection lost"):
        for chunk in read_ahead(failing(), depth=2, name=NAME):
            seen.extend(chunk)
    assert seen == [1, 2, 3]
    assert _readers() == []


def test_an_exception_as_an_item_is_an_item() -> None:
    items = [ValueError("a value"), KeyError("another")]
    assert list(read_ahead(iter(items), depth=1, name=NAME)) == items


def test_a_caller_that_stops_reading_stops_the_thread() -> None:
    fetched: list[int] = []

    def endless() -> Iterator[list[int]]:
        for n in itertools.count():
            fetched.append(n)
            yield [n]

    rows = read_ahead(endless(), depth=2, name=NAME)
    assert [next(rows) for _ in range(3)] == [[0], [1], [2]]
    rows.close()  # as a caller's loop that breaks, or an error in it, leaves the generator
    assert _readers() == []
    assert len(fetched) <= 3 + 2 + 1  # read: what the caller took, two waiting, one at hand
