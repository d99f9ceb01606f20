"""driftbayes: Bayesian drift learning for API mocks.

Recorded traffic → per endpoint × persona conjugate models (latency, status mix, flows, think
times, request rate) with decay-weighted priors, credible-interval confidence gating and an
``applied`` layer that the mock serves.
"""

from __future__ import annotations

__version__ = "0.1.0"
