"""Read ahead: run a batch iterator in a background thread while the consumer learns.

Parsing (Arrow, zlib, pandas' C readers) and learning (NumPy) release the GIL for much of their
work, so on two cores reading the next batch overlaps with learning the current one.
"""

from __future__ import annotations

import contextvars
import queue
import threading
from collections.abc import Iterator
from typing import TypeVar

T = TypeVar("T")

_END = object()


def prefetched(items: Iterator[T], depth: int = 2) -> Iterator[T]:
    """Yield the items of ``items``, produced up to ``depth`` ahead in a background thread.

    The thread runs in a copy of the caller's context (so context variables such as the
    redaction policy hold there too). An exception raised by ``items`` is re-raised to the
    consumer after the items produced before it, in order. When the consumer stops early,
    the producer stops after its current item and ``items`` is closed in its own thread.

    Parameters
    ----------
    items : iterator
        Produced in the background thread only.
    depth : int
        Items buffered ahead of the consumer (memory: ``depth + 2`` items at most).
    """
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    return _Prefetcher(items, depth).run()


class _Prefetcher:
    def __init__(self, items: Iterator, depth: int):
        self.items = items
        self.queue: queue.Queue = queue.Queue(maxsize=depth)
        self.stop = threading.Event()

    def _put(self, entry: tuple) -> bool:
        while not self.stop.is_set():
            try:
                self.queue.put(entry, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self) -> None:
        try:
            for item in self.items:
                if not self._put((True, item)):
                    return
            self._put((True, _END))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            self._put((False, exc))
        finally:
            close = getattr(self.items, "close", None)
            if close is not None:
                close()

    def run(self) -> Iterator:
        ctx = contextvars.copy_context()
        worker = threading.Thread(target=ctx.run, args=(self._produce,), daemon=True,
                                  name="driftbayes-prefetch")
        worker.start()
        try:
            while True:
                ok, item = self.queue.get()
                if not ok:
                    raise item
                if item is _END:
                    return
                yield item
        finally:
            self.stop.set()
            worker.join()
