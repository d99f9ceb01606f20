"""driftbayes: Bayesian drift learning for API mocks.

Recorded traffic → per endpoint × persona conjugate models (latency, status mix, flows, think
times, request rate) with decay-weighted priors, credible-interval confidence gating and an
``applied`` layer that the mock serves.
"""

from __future__ import annotations

__version__ = "0.1.0"

#: The notebook API (``import driftbayes as db``), loaded on first use so that importing the
#: package stays light.
_API = {"learn": "driftbayes.api", "save": "driftbayes.api", "load": "driftbayes.api",
        "DriftLearner": "driftbayes.learner", "Config": "driftbayes.config",
        "load_config": "driftbayes.config", "EventBatch": "driftbayes.events",
        "read_events": "driftbayes.io.recordings", "plot_drift": "driftbayes.plots",
        "to_inference_data": "driftbayes.draws", "to_datatree": "driftbayes.draws",
        "posterior_draws": "driftbayes.draws"}
__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'driftbayes' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)  # tab completion in notebooks lists the lazy names
