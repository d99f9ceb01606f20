from __future__ import annotations

import contextvars
import threading

import pytest

from driftbayes.io.prefetch import prefetched

VAR: contextvars.ContextVar[str] = contextvars.ContextVar("VAR", default="unset")


def test_items_in_order_and_produced_in_another_thread():
    threads = []

    def items():
        for i in range(100):
            threads.append(threading.current_thread().name)
            yield i

    assert list(prefetched(items(), depth=3)) == list(range(100))
    assert set(threads) == {"driftbayes-prefetch"}


def test_error_arrives_after_the_items_before_it():
    def items():
        yield 1
        yield 2
        raise ValueError("line 3 is bad")

    got = []
    with pytest.raises(ValueError, match="line 3 is bad"):
        for x in prefetched(items()):
            got.append(x)
    assert got == [1, 2]


def test_early_stop_closes_the_source_and_stops_the_thread():
    closed = threading.Event()
    produced = []

    def items():
        try:
            for i in range(10_000):
                produced.append(i)
                yield i
        finally:
            closed.set()

    it = prefetched(items(), depth=2)
    assert next(it) == 0
    it.close()
    assert closed.wait(60)  # generous: returns as soon as the producer closed
    assert len(produced) <= 5  # depth 2 ahead, plus one in hand on each side
    for t in threading.enumerate():  # the producer thread ends (join, not a fixed sleep)
        if t.name == "driftbayes-prefetch":
            t.join(60)
    assert not any(t.name == "driftbayes-prefetch" for t in threading.enumerate())


def test_the_producer_sees_the_callers_context():
    def items():
        yield VAR.get()

    token = VAR.set("caller")
    try:
        assert list(prefetched(items())) == ["caller"]
    finally:
        VAR.reset(token)


def test_depth_must_be_positive():
    with pytest.raises(ValueError, match="depth"):
        prefetched(iter([]), depth=0)
