"""Reading ahead in a thread: the next items made while the caller works on this one."""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterator
from typing import TypeVar

T = TypeVar("T")

_END = object()


class _Raised:
    """An error of the reader, handed over (items may be anything, exceptions too)."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


def read_ahead(items: Iterator[T], *, depth: int, name: str) -> Generator[T, None, None]:
    """`items` in order, drawn by a thread of their own (`name`) at most `depth` ahead of the
    caller: while one waits on a database or a file (the GIL released), the other makes
    objects. An error raised by `items` is raised here, after the items before it. The
    thread starts with the first item asked for, and is stopped and joined once the items
    are read or the caller stops (closes this generator, or leaves a loop over it): what it
    read from, a connection say, is then the caller's again."""
    handoff: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(item: object) -> bool:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for item in items:
                if not offer(item):
                    return
        except BaseException as error:  # handed over, raised by the caller
            offer(_Raised(error))
            return
        offer(_END)

    reader = threading.Thread(target=read, name=name, daemon=True)
    reader.start()
    try:
        while (item := handoff.get()) is not _END:
            if isinstance(item, _Raised):
                raise item.error
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        reader.join()
