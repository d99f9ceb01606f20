"""Pattern kinds, one module each, behind a registry.

``REGISTRY`` maps a kind's name to its :class:`~driftbayes.kinds.base.Kind`; the state's
statistics (:data:`driftbayes.stats.STAT_DIMS`), the prior and posterior parameters, pooling,
gating, changepoint tests, patterns, predictive draws and the state file are built from it.
Adding a kind is one module defining a ``Kind`` plus one line: in the tuple below, or
:func:`register` at run time (as the test suite does for its response-size kind).
"""

from __future__ import annotations

from collections.abc import Callable

from driftbayes.kinds import errors, frequency, latency, think_time, transitions
from driftbayes.kinds.base import Kind

REGISTRY: dict[str, Kind] = {
    k.name: k for k in (latency.KIND, errors.KIND, frequency.KIND, think_time.KIND,
                        transitions.KIND)
}
#: Called after the registry changes (the tables derived from it rebuild themselves).
_LISTENERS: list[Callable[[], None]] = []


def on_change(fn: Callable[[], None]) -> None:
    """Call ``fn`` whenever a kind is registered or removed."""
    _LISTENERS.append(fn)


def register(kind: Kind) -> None:
    """Add a pattern kind (learners created afterwards learn it)."""
    if kind.name in REGISTRY:
        raise ValueError(f"a pattern kind named {kind.name!r} is already registered")
    REGISTRY[kind.name] = kind
    for fn in _LISTENERS:
        fn()


def unregister(name: str) -> None:
    """Remove a pattern kind added with :func:`register`."""
    del REGISTRY[name]
    for fn in _LISTENERS:
        fn()


__all__ = ["REGISTRY", "Kind", "on_change", "register", "unregister"]
