"""Produce a stream's next items in a background thread while the caller consumes this one.

The publish reads the week from the warehouse, validates it and encodes it as CSV (Arrow and
DuckDB release the GIL), while PostgreSQL parses what it was sent. Done one after the other,
either side waits for the other; overlapped, the slower side (PostgreSQL) sets the pace.
"""

from __future__ import annotations

import queue
import threading
from typing import Iterator, TypeVar

T = TypeVar("T")
_END = object()


def prefetched(items: Iterator[T], depth: int = 2) -> Iterator[T]:
    """The items of `items`, in order, produced by a background thread at most `depth` ahead
    of the caller (so memory holds at most depth + 2 items). An exception in the producer is
    raised here, in the caller, at the point of the stream where it happened. If the caller
    stops early (an exception, or it closes this generator), the producer stops after the
    item it is making and `items` is closed in the producer's thread, which released
    whatever it held (a warehouse connection)."""
    if depth < 1:
        raise ValueError(f"depth must be at least 1, got {depth}")
    handoff: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(entry: tuple) -> bool:
        while not stop.is_set():
            try:
                handoff.put(entry, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((None, item)):
                    return
                del item
            put((None, _END))
        except BaseException as exc:  # handed to the caller, raised there
            put((exc, None))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=produce, name="nbp-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            error, item = handoff.get()
            if error is not None:
                raise error
            if item is _END:
                return
            yield item
            del item
    finally:
        stop.set()
        worker.join()
