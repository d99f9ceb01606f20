"""Test order: the modules holding ``slow`` tests run first.

The suite runs in two processes (pytest-xdist, ``--dist worksteal``): the first takes the first
half of the collection, the second the rest, and an idle one steals from the end of the other's
queue. With the long tests first, what is left to steal at the end is short tests, so the two
processes end together instead of one waiting for a long test the other started last. Modules
stay whole (their module-scoped fixtures are made once).
"""

from __future__ import annotations


def pytest_collection_modifyitems(session, config, items):
    slow = {item.module.__name__ for item in items
            if getattr(item, "module", None) is not None and item.get_closest_marker("slow")}
    items.sort(key=lambda item: getattr(getattr(item, "module", None), "__name__", "") not in slow)
