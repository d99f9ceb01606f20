"""Pattern kinds, one module each, behind a registry.

``REGISTRY`` maps a kind's name to its :class:`~driftbayes.kinds.base.Kind`; the state's
statistics (:data:`driftbayes.stats.STAT_DIMS`), pooling, gating and changepoint tests are
built from it.
"""

from __future__ import annotations

from driftbayes.kinds import errors, frequency, latency, think_time, transitions
from driftbayes.kinds.base import Kind

REGISTRY: dict[str, Kind] = {
    k.name: k for k in (latency.KIND, errors.KIND, frequency.KIND, think_time.KIND,
                        transitions.KIND)
}

__all__ = ["REGISTRY", "Kind"]
