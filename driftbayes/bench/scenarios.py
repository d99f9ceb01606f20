"""Seeded synthetic API traffic with known ground truth, for the realism benchmark.

A scenario is a shop-like API (five to seven endpoints) used by three personas (``web``,
``mobile``, ``partner``). Sessions arrive per persona as a (possibly time-varying) Poisson
process, started by thinning; each session walks its persona's first-order Markov chain
``START → endpoint → … → END`` with log-normal think times (the gap between the starts of two
consecutive requests, per source endpoint). Every request draws its latency from its endpoint ×
persona cell's true distribution at the request's time (a base distribution times a scale
profile) and its status from the cell's true 5xx rate (plus a small 4xx share).

Everything the generator uses is kept on the :class:`Scenario` (``cells``, ``arrivals``,
``transitions``), and :attr:`Scenario.truth` tabulates it exactly at each window start, so a
benchmark can score a mock prequentially against the truth rather than against noisy windows.

Examples
--------
>>> sc = make_scenario("latency_regression", seed=1)
>>> sc.changes[0].kind, sc.changes[0].endpoint
('latency', '/api/products/{id}')
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import optimize, special

from driftbayes.events import EventBatch

__all__ = [
    "SCENARIOS",
    "Arrivals",
    "Cell",
    "Change",
    "FlowPhase",
    "LatencyDist",
    "Profile",
    "Scenario",
    "build_scenario",
    "make_scenario",
]

#: 2024-03-04 00:00:00 UTC (a Monday): a multiple of every usual window length.
T0 = 1709510400.0
HOUR = 3600.0
DAY = 86400.0
#: Sessions start this long before ``t0`` so that traffic at ``t0`` is already stationary.
BURN_IN_S = 1800.0
START, END = "START", "END"
THINK_SIGMA = 0.9  # log-normal sigma of every think time; P(gap > 30 min) < 1e-5

SCENARIOS: dict[str, str] = {
    "steady": "stationary traffic: no change at all",
    "latency_regression": "abrupt x3 median latency on GET /api/products/{id} halfway",
    "gradual_drift": "POST /api/checkout median latency grows linearly x1 -> x3 over ~8 h",
    "reversal": "GET /api/products latency x2.5 for the middle third, then back to the old level",
    "error_burst": "POST /api/cart 5xx rate jumps from ~1% to 30% for 1 h, then back",
    "daily_seasonality": "session arrival rate follows a 24 h sinusoid (peak 14:00 UTC, x0.2-x1.8)",
    "new_endpoint": "GET /api/recommendations appears halfway (linked from product pages)",
    "persona_mix_change": "session share of personas changes halfway: mobile 20% -> 70%",
    "flow_change": "checkout flow changes halfway: cart -> checkout becomes cart -> shipping"
    " -> checkout",
    "bimodal_latency": "GET /api/products/{id} latency is a cache hit/miss log-normal mixture",
    "heavy_tail_latency": "POST /api/checkout latency: log-normal body with a 5% Pareto tail",
}

# default duration (h) and mean total session arrival rate (sessions/s) per scenario
_DEFAULT_HOURS = {name: 12.0 for name in SCENARIOS} | {
    "gradual_drift": 18.0, "daily_seasonality": 48.0}
_SESSION_RATE = {name: 0.22 for name in SCENARIOS} | {
    "gradual_drift": 0.18, "daily_seasonality": 0.07}

# alias: (method, template, median_ms, sigma, P(5xx), P(4xx | not 5xx), think median ms)
_ENDPOINTS = {
    "P": ("GET", "/api/products", 45.0, 0.45, 0.010, 0.005, 8000.0),
    "D": ("GET", "/api/products/{id}", 30.0, 0.40, 0.005, 0.020, 15000.0),
    "U": ("GET", "/api/users/{id}", 25.0, 0.35, 0.005, 0.020, 4000.0),
    "C": ("POST", "/api/cart", 60.0, 0.50, 0.010, 0.015, 10000.0),
    "S": ("POST", "/api/shipping", 90.0, 0.50, 0.015, 0.015, 20000.0),
    "K": ("POST", "/api/checkout", 220.0, 0.55, 0.020, 0.015, 5000.0),
    "R": ("GET", "/api/recommendations", 70.0, 0.50, 0.010, 0.005, 6000.0),
}
# persona: (session share, latency x, extra sigma, error x, think x)
_PERSONAS = {
    "web": (0.6, 1.0, 0.0, 1.0, 1.0),
    "mobile": (0.2, 1.6, 0.1, 1.5, 1.3),
    "partner": (0.2, 0.8, 0.0, 0.7, 0.25),
}
# first-order chains over endpoint aliases; every row sums to 1
_CHAINS = {
    "web": {
        START: {"P": 0.55, "D": 0.25, "U": 0.20},
        "P": {"P": 0.10, "D": 0.60, "U": 0.05, "C": 0.05, END: 0.20},
        "D": {"P": 0.25, "D": 0.20, "C": 0.30, END: 0.25},
        "U": {"P": 0.60, "D": 0.20, END: 0.20},
        "C": {"P": 0.10, "D": 0.10, "C": 0.05, "S": 0.10, "K": 0.45, END: 0.20},
        "S": {"K": 0.80, END: 0.20},
        "K": {"P": 0.05, END: 0.95},
        "R": {"D": 0.50, "C": 0.20, "P": 0.10, END: 0.20},
    },
    "mobile": {
        START: {"P": 0.50, "D": 0.40, "U": 0.10},
        "P": {"P": 0.05, "D": 0.55, "C": 0.05, END: 0.35},
        "D": {"P": 0.20, "D": 0.15, "C": 0.25, END: 0.40},
        "U": {"P": 0.50, "D": 0.20, END: 0.30},
        "C": {"P": 0.10, "S": 0.05, "K": 0.45, END: 0.40},
        "S": {"K": 0.75, END: 0.25},
        "K": {END: 1.0},
        "R": {"D": 0.40, "C": 0.20, END: 0.40},
    },
    "partner": {
        START: {"P": 0.70, "U": 0.30},
        "P": {"P": 0.10, "D": 0.70, END: 0.20},
        "D": {"P": 0.10, "D": 0.60, "C": 0.02, END: 0.28},
        "U": {"P": 0.50, END: 0.50},
        "C": {"S": 0.05, "K": 0.50, END: 0.45},
        "S": {"K": 0.80, END: 0.20},
        "K": {END: 1.0},
        "R": {"D": 0.60, END: 0.40},
    },
}


# --------------------------------------------------------------------------- building blocks


@dataclass(frozen=True)
class LatencyDist:
    """A latency distribution (ms): a log-normal mixture, optionally with a Pareto tail.

    ``F(x) = (1 - tail_weight) · Σ_i w_i Φ((ln x - ln m_i) / σ_i)
    + tail_weight · (1 - (tail_xm_ms / x)^tail_alpha)₊``.

    Parameters
    ----------
    weights, medians_ms, sigmas : tuple of float
        Log-normal components (weights sum to 1).
    tail_weight, tail_xm_ms, tail_alpha : float
        Weight, scale and shape of the Pareto tail component (0 = none).
    """

    weights: tuple[float, ...]
    medians_ms: tuple[float, ...]
    sigmas: tuple[float, ...]
    tail_weight: float = 0.0
    tail_xm_ms: float = 1.0
    tail_alpha: float = 1.5

    @classmethod
    def lognormal(cls, median_ms: float, sigma: float) -> LatencyDist:
        return cls((1.0,), (float(median_ms),), (float(sigma),))

    def scaled(self, factor: float) -> LatencyDist:
        """The distribution of ``factor · X``."""
        return LatencyDist(self.weights, tuple(m * factor for m in self.medians_ms), self.sigmas,
                           self.tail_weight, self.tail_xm_ms * factor, self.tail_alpha)

    def cdf(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        lx = np.log(np.maximum(x, 1e-300))
        body = sum(w * special.ndtr((lx - math.log(m)) / s)
                   for w, m, s in zip(self.weights, self.medians_ms, self.sigmas, strict=True))
        out = (1.0 - self.tail_weight) * body
        if self.tail_weight:
            tail = 1.0 - (self.tail_xm_ms / np.maximum(x, self.tail_xm_ms)) ** self.tail_alpha
            out = out + self.tail_weight * tail
        return np.where(x > 0, out, 0.0)

    def pdf(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        xs = np.maximum(x, 1e-300)
        body = sum(w * np.exp(-0.5 * ((np.log(xs) - math.log(m)) / s) ** 2)
                   / (xs * s * math.sqrt(2 * math.pi))
                   for w, m, s in zip(self.weights, self.medians_ms, self.sigmas, strict=True))
        out = (1.0 - self.tail_weight) * body
        if self.tail_weight:
            a, xm = self.tail_alpha, self.tail_xm_ms
            out = out + self.tail_weight * np.where(x >= xm, a * xm**a / xs ** (a + 1), 0.0)
        return np.where(x > 0, out, 0.0)

    def ppf(self, q: float) -> float:
        """Quantile: closed form for one log-normal, else Brent's method on ``ln x``."""
        if len(self.weights) == 1 and not self.tail_weight:
            return float(self.medians_ms[0] * math.exp(self.sigmas[0] * special.ndtri(q)))
        return float(math.exp(optimize.brentq(lambda y: float(self.cdf(math.exp(y))) - q,
                                              math.log(1e-6), math.log(1e12), xtol=1e-13,
                                              rtol=1e-14, maxiter=500)))

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` independent draws."""
        k = len(self.weights)
        comp = np.zeros(n, dtype=np.int64) if k == 1 else rng.choice(k, size=n, p=self.weights)
        mu = np.log(np.asarray(self.medians_ms))[comp]
        x = np.exp(mu + np.asarray(self.sigmas)[comp] * rng.standard_normal(n))
        if self.tail_weight:
            tail = rng.random(n) < self.tail_weight
            x[tail] = self.tail_xm_ms * rng.random(int(tail.sum())) ** (-1.0 / self.tail_alpha)
        return x


@dataclass(frozen=True)
class Profile:
    """A function of event time: piecewise constant (``step``) or piecewise linear (``linear``).

    Before the first knot it takes the first value, after the last knot the last value.
    """

    t: tuple[float, ...]
    v: tuple[float, ...]
    kind: str = "step"

    @classmethod
    def constant(cls, value: float) -> Profile:
        return cls((0.0,), (float(value),))

    def __call__(self, t) -> np.ndarray:
        t = np.asarray(t, dtype=float)
        if self.kind == "linear":
            return np.interp(t, self.t, self.v)
        i = np.searchsorted(np.asarray(self.t), t, side="right") - 1
        return np.asarray(self.v, dtype=float)[np.maximum(i, 0)]

    @property
    def max(self) -> float:
        return float(max(self.v))


@dataclass(frozen=True)
class Arrivals:
    """Session arrival rate per persona: ``rate · (1 + amplitude·cos(2π(t - peak_t)/period))``
    times the persona's share at ``t``."""

    rate_per_s: float
    shares: dict[str, Profile]
    amplitude: float = 0.0
    period_s: float = DAY
    peak_t: float = 0.0

    def total(self, t) -> np.ndarray:
        t = np.asarray(t, dtype=float)
        wave = np.cos(2 * np.pi * (t - self.peak_t) / self.period_s) if self.amplitude else 0.0
        return self.rate_per_s * (1.0 + self.amplitude * wave)

    def __call__(self, persona: str, t) -> np.ndarray:
        """Sessions/s of ``persona`` at time(s) ``t``."""
        return self.total(t) * self.shares[persona](t)

    def bound(self, persona: str) -> float:
        return self.rate_per_s * (1.0 + abs(self.amplitude)) * self.shares[persona].max


@dataclass(frozen=True)
class Cell:
    """The true generating model of one endpoint × persona cell.

    Latency at time ``t`` is ``scale(t) · X`` with ``X ~ latency``; a request fails with 5xx
    with probability ``error_rate(t)``, else is 4xx with probability ``p4xx``; the think time
    after it (when the session goes on) is log-normal(``think_median_ms``, ``think_sigma``).
    """

    method: str
    endpoint: str
    persona: str
    latency: LatencyDist
    scale: Profile
    error_rate: Profile
    p4xx: float
    think_median_ms: float
    think_sigma: float = THINK_SIGMA

    def quantile(self, q: float, t) -> np.ndarray:
        """True latency quantile (ms) at time(s) ``t``."""
        return self.scale(t) * self.latency.ppf(q)


@dataclass
class FlowPhase:
    """The true session chain of ``persona`` on ``[t_start, t_end)``.

    ``matrix`` has rows ``START`` + endpoints and columns endpoints + ``END``; each row sums to 1.
    A transition follows the phase in force at the time of its source request.
    """

    t_start: float
    t_end: float
    persona: str
    matrix: pd.DataFrame


@dataclass
class Change:
    """A change point: ``kind`` is one of latency, errors, rate, flow, persona_mix,
    new_endpoint; ``endpoint``/``persona`` are ``None`` when it concerns all of them."""

    t: float
    kind: str
    endpoint: str | None
    persona: str | None
    description: str


@dataclass
class Scenario:
    """A generated scenario: events plus the exact truth that generated them.

    Attributes
    ----------
    events : EventBatch
        Sorted by ``ts``; ``endpoint`` is the template, ``line`` is 1..n.
    window_s, t0, n_windows : float, float, int
        Windows are ``[t0 + k·window_s, t0 + (k+1)·window_s)``.
    truth : pandas.DataFrame
        One row per window × endpoint × persona with a positive request rate: ``window``,
        ``t_start``, ``method``, ``endpoint``, ``persona``, ``p50_ms``, ``p99_ms``,
        ``error_rate`` (P(status ≥ 500)), ``rate_per_s`` (session rate × expected visits per
        session, from the chain's fundamental matrix), ``think_p50_ms`` — all at ``t_start``.
    transitions : list of FlowPhase
        Session chains per persona over time.
    changes : list of Change
    steady : list of (float, float)
        ``[t_a, t_b)`` segments with no change in progress (warm-up and ramps excluded).
    cells : dict
        ``(endpoint, persona)`` → :class:`Cell`, the generating model.
    arrivals : Arrivals
        Session arrival rates.
    """

    name: str
    description: str
    events: EventBatch
    window_s: float
    t0: float
    n_windows: int
    truth: pd.DataFrame
    transitions: list[FlowPhase]
    changes: list[Change]
    steady: list[tuple[float, float]]
    cells: dict[tuple[str, str], Cell] = field(default_factory=dict, repr=False)
    arrivals: Arrivals | None = field(default=None, repr=False)
    endpoints: list[tuple[str, str]] = field(default_factory=list)  # (method, template)
    personas: list[str] = field(default_factory=list)
    seed: int = 0
    scale: float = 1.0

    @property
    def t_end(self) -> float:
        return self.t0 + self.n_windows * self.window_s

    def phase(self, persona: str, t: float) -> FlowPhase:
        """The flow phase of ``persona`` in force at ``t``."""
        phases = [f for f in self.transitions if f.persona == persona and f.t_start <= t]
        return phases[-1] if phases else next(f for f in self.transitions if f.persona == persona)


# --------------------------------------------------------------------------- scenario specs


@dataclass
class _Spec:
    name: str
    t0: float
    window_s: float
    n_windows: int
    aliases: list[str]
    personas: list[str]
    cells: dict[tuple[str, str], Cell]
    arrivals: Arrivals
    phases: list[tuple[float, dict[str, dict]]]  # (t_start, persona -> chain dict)
    changes: list[Change] = field(default_factory=list)
    steady: list[tuple[float, float]] = field(default_factory=list)
    warmup_s: float = HOUR

    @property
    def t_end(self) -> float:
        return self.t0 + self.n_windows * self.window_s

    def at(self, frac: float) -> float:
        """The window boundary nearest ``frac`` of the run."""
        return self.t0 + round(frac * self.n_windows) * self.window_s

    def template(self, alias: str) -> str:
        return _ENDPOINTS[alias][1]

    def cell(self, alias: str, persona: str) -> Cell:
        return self.cells[(self.template(alias), persona)]

    def set_cell(self, alias: str, persona: str, **changes) -> None:
        old = self.cell(alias, persona)
        fields = {k: getattr(old, k) for k in old.__dataclass_fields__} | changes
        self.cells[(old.endpoint, persona)] = Cell(**fields)

    def segments(self, *cuts: float) -> list[tuple[float, float]]:
        """Steady segments between ``cuts`` (after the warm-up)."""
        edges = [self.t0 + self.warmup_s, *cuts, self.t_end]
        return [(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]


def _base_spec(name: str, hours: float, scale: float, window_s: float,
               aliases: str = "PDUCSK", session_rate: float | None = None) -> _Spec:
    n_windows = max(1, round(hours * HOUR / window_s))
    personas = list(_PERSONAS)
    cells = {}
    for a in aliases:
        method, tmpl, med, sig, err, p4, think = _ENDPOINTS[a]
        for p in personas:
            _, lx, dsig, ex, tx = _PERSONAS[p]
            cells[(tmpl, p)] = Cell(method, tmpl, p, LatencyDist.lognormal(med * lx, sig + dsig),
                                    Profile.constant(1.0), Profile.constant(err * ex), p4,
                                    think * tx)
    shares = {p: Profile.constant(_PERSONAS[p][0]) for p in personas}
    rate = _SESSION_RATE[name] if session_rate is None else session_rate
    arrivals = Arrivals(rate * scale, shares)
    chains = {p: {k: dict(v) for k, v in _CHAINS[p].items()} for p in personas}
    spec = _Spec(name, T0, window_s, n_windows, list(aliases), personas, cells, arrivals,
                 [(T0, chains)])
    spec.warmup_s = min(HOUR, spec.n_windows * window_s / 4)
    spec.steady = spec.segments()
    return spec


def _latency_regression(s: _Spec) -> None:
    tc = s.at(0.5)
    for p in s.personas:
        s.set_cell("D", p, scale=Profile((s.t0, tc), (1.0, 3.0)))
    s.changes.append(Change(tc, "latency", s.template("D"), None,
                            "median latency x3 (abrupt regression)"))
    s.steady = s.segments(tc)


def _gradual_drift(s: _Spec) -> None:
    ta, tb = s.at(2 / 9), s.at(2 / 3)  # 4 h and 12 h of the default 18 h
    for p in s.personas:
        s.set_cell("K", p, scale=Profile((ta, tb), (1.0, 3.0), "linear"))
    k = s.template("K")
    s.changes.append(Change(ta, "latency", k, None, "median latency starts growing linearly"))
    s.changes.append(Change(tb, "latency", k, None, "median latency stops growing at x3"))
    s.steady = [seg for seg in s.segments(ta, tb) if seg != (ta, tb)]


def _reversal(s: _Spec) -> None:
    ta, tb = s.at(1 / 3), s.at(2 / 3)
    for p in s.personas:
        s.set_cell("P", p, scale=Profile((s.t0, ta, tb), (1.0, 2.5, 1.0)))
    tmpl = s.template("P")
    s.changes.append(Change(ta, "latency", tmpl, None, "median latency x2.5"))
    s.changes.append(Change(tb, "latency", tmpl, None, "median latency back to the old level"))
    s.steady = s.segments(ta, tb)


def _error_burst(s: _Spec) -> None:
    ta = s.at(0.5)
    tb = min(ta + HOUR, s.t_end)
    for p in s.personas:
        base = float(s.cell("C", p).error_rate(s.t0))
        s.set_cell("C", p, error_rate=Profile((s.t0, ta, tb), (base, 0.30, base)))
    tmpl = s.template("C")
    s.changes.append(Change(ta, "errors", tmpl, None, "5xx rate jumps to 30%"))
    s.changes.append(Change(tb, "errors", tmpl, None, "5xx rate back to its old level"))
    s.steady = s.segments(ta, tb)


def _daily_seasonality(s: _Spec) -> None:
    a = s.arrivals
    s.arrivals = Arrivals(a.rate_per_s, a.shares, amplitude=0.8, period_s=DAY,
                          peak_t=s.t0 + 14 * HOUR)


def _new_endpoint(s: _Spec) -> None:
    tc = s.at(0.5)
    after = {}
    for p, chain in s.phases[0][1].items():
        chain = {k: dict(v) for k, v in chain.items()}
        chain["D"] = {k: 0.8 * v for k, v in chain["D"].items()} | {"R": 0.2}
        after[p] = chain
    s.phases.append((tc, after))
    s.changes.append(Change(tc, "new_endpoint", s.template("R"), None,
                            "new endpoint, reached from product pages with P = 0.2"))
    s.steady = s.segments(tc)


def _persona_mix_change(s: _Spec) -> None:
    tc = s.at(0.5)
    after = {"web": 0.2, "mobile": 0.7, "partner": 0.1}
    shares = {p: Profile((s.t0, tc), (_PERSONAS[p][0], after[p])) for p in s.personas}
    s.arrivals = Arrivals(s.arrivals.rate_per_s, shares)
    s.changes.append(Change(tc, "persona_mix", None, None,
                            "session shares web/mobile/partner 60/20/20% -> 20/70/10%"))
    s.steady = s.segments(tc)


def shipping_detour(phase: dict) -> dict:
    """A flow phase's chains with cart → checkout rerouted through shipping
    (cart → shipping → checkout, shipping ending a tenth of sessions)."""
    after = {}
    for p, chain in phase.items():
        chain = {k: dict(v) for k, v in chain.items()}
        cart = chain["C"]
        cart["S"] = cart.get("S", 0.0) + cart.pop("K")
        chain["S"] = {"K": 0.9, END: 0.1}
        after[p] = chain
    return after


def _flow_change(s: _Spec) -> None:
    tc = s.at(0.5)
    s.phases.append((tc, shipping_detour(s.phases[0][1])))
    s.changes.append(Change(tc, "flow", s.template("C"), None,
                            "cart -> checkout becomes cart -> shipping -> checkout"))
    s.steady = s.segments(tc)


def _bimodal_latency(s: _Spec) -> None:
    for p in s.personas:
        lx = _PERSONAS[p][1]
        s.set_cell("D", p, latency=LatencyDist((0.75, 0.25), (6.0 * lx, 140.0 * lx), (0.3, 0.35)))


def _heavy_tail_latency(s: _Spec) -> None:
    for p in s.personas:
        lx = _PERSONAS[p][1]
        s.set_cell("K", p, latency=LatencyDist((1.0,), (200.0 * lx,), (0.5,), tail_weight=0.05,
                                               tail_xm_ms=600.0 * lx, tail_alpha=1.3))


_MODIFIERS = {
    "steady": None,
    "latency_regression": _latency_regression,
    "gradual_drift": _gradual_drift,
    "reversal": _reversal,
    "error_burst": _error_burst,
    "daily_seasonality": _daily_seasonality,
    "new_endpoint": _new_endpoint,
    "persona_mix_change": _persona_mix_change,
    "flow_change": _flow_change,
    "bimodal_latency": _bimodal_latency,
    "heavy_tail_latency": _heavy_tail_latency,
}


# --------------------------------------------------------------------------- generation


def _matrix(chain: dict, aliases: list[str]) -> np.ndarray:
    """(E+1, E+1) matrix: rows endpoints + START, columns endpoints + END."""
    E = len(aliases)
    col = {a: i for i, a in enumerate(aliases)} | {END: E}
    m = np.zeros((E + 1, E + 1))
    for r, row in enumerate([*aliases, START]):
        for dst, pr in chain.get(row, {END: 1.0}).items():
            if dst in col:
                m[r, col[dst]] += pr
        m[r] /= m[r].sum()
    return m


def _visits(m: np.ndarray) -> np.ndarray:
    """Expected visits per session to each endpoint: ``start · (I - Q)⁻¹``."""
    E = m.shape[0] - 1
    return m[E, :E] @ np.linalg.inv(np.eye(E) - m[:E, :E])


def make_scenario(name: str, *, seed: int = 0, scale: float = 1.0,
                  hours: float | None = None) -> Scenario:
    """Generate scenario ``name`` (see :data:`SCENARIOS`).

    Parameters
    ----------
    name : str
        A key of :data:`SCENARIOS`.
    seed : int
        Seed of ``numpy.random.default_rng``; same seed, same events.
    scale : float
        Multiplies every session arrival rate.
    hours : float, optional
        Duration of event time (default 12 h; 18 h for ``gradual_drift``, 48 h for
        ``daily_seasonality``). Change times are at fixed fractions of the run.

    Returns
    -------
    Scenario
    """
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r}; choose one of {', '.join(SCENARIOS)}")
    if scale <= 0 or (hours is not None and hours <= 0):
        raise ValueError("scale and hours must be positive")
    aliases = "PDUCSKR" if name == "new_endpoint" else "PDUCSK"
    return build_scenario(name, SCENARIOS[name], _MODIFIERS[name], seed=seed, scale=scale,
                          hours=_DEFAULT_HOURS[name] if hours is None else float(hours),
                          aliases=aliases, session_rate=_SESSION_RATE[name])


def build_scenario(name: str, description: str, modify=None, *, seed: int = 0,
                   scale: float = 1.0, hours: float = 12.0, window_s: float = 300.0,
                   aliases: str = "PDUCSK", session_rate: float = 0.22) -> Scenario:
    """Generate a custom scenario: the base shop API changed by ``modify``.

    Parameters
    ----------
    name, description : str
    modify : callable, optional
        Called with the scenario spec before simulating; it changes cells
        (``spec.set_cell(alias, persona, scale=Profile(...), error_rate=Profile(...))``), adds
        flow phases (``spec.phases.append((t, chains))``) and records ``spec.changes`` and
        ``spec.steady``. ``spec.at(frac)`` is the window boundary nearest ``frac`` of the run.
    seed, scale, hours, window_s
        As for :func:`make_scenario`; ``window_s`` is the truth's window length (s).
    aliases : str
        Endpoint aliases of the API (``P``, ``D``, ``U``, ``C``, ``S``, ``K``, ``R``).
    session_rate : float
        Mean total session arrival rate (sessions/s) before ``scale``.

    Returns
    -------
    Scenario
    """
    if scale <= 0 or hours <= 0 or window_s <= 0:
        raise ValueError("scale, hours and window_s must be positive")
    spec = _base_spec(name, float(hours), scale, window_s, aliases, session_rate)
    if modify is not None:
        modify(spec)
    rng = np.random.default_rng(seed)
    events = _simulate(spec, rng)
    return Scenario(
        name=name, description=description, events=events, window_s=window_s, t0=spec.t0,
        n_windows=spec.n_windows, truth=_truth(spec), transitions=_flow_phases(spec),
        changes=sorted(spec.changes, key=lambda c: c.t), steady=spec.steady, cells=spec.cells,
        arrivals=spec.arrivals, endpoints=[_ENDPOINTS[a][:2] for a in spec.aliases],
        personas=list(spec.personas), seed=seed, scale=scale,
    )


def _phase_arrays(spec: _Spec) -> tuple[np.ndarray, np.ndarray]:
    """Phase start times and matrices of shape (phase, persona, E+1, E+1)."""
    starts = np.array([t for t, _ in spec.phases])
    mats = np.array([[_matrix(chains[p], spec.aliases) for p in spec.personas]
                     for _, chains in spec.phases])
    return starts, mats


def _simulate(spec: _Spec, rng: np.random.Generator) -> EventBatch:
    aliases, personas = spec.aliases, spec.personas
    E = len(aliases)
    t_lo, t_hi = spec.t0 - BURN_IN_S, spec.t_end
    # session starts: thinned homogeneous Poisson process per persona
    s_t, s_p = [], []
    for pi, p in enumerate(personas):
        lam = spec.arrivals.bound(p)
        n = rng.poisson(lam * (t_hi - t_lo))
        t = np.sort(rng.uniform(t_lo, t_hi, n))
        keep = rng.random(n) * lam < spec.arrivals(p, t)
        s_t.append(t[keep])
        s_p.append(np.full(int(keep.sum()), pi))
    s_t, s_p = np.concatenate(s_t), np.concatenate(s_p)
    order = np.argsort(s_t, kind="stable")
    s_t, s_p = s_t[order], s_p[order]

    phase_t, mats = _phase_arrays(spec)
    cum = np.cumsum(mats, axis=-1)
    cum[..., -1] = np.inf  # guards against rounding: u < 1 always lands in a column
    think_mu = np.log([[spec.cell(a, p).think_median_ms / 1000.0 for a in aliases]
                       for p in personas])  # (P, E), seconds

    def step(cur, p, t):
        ph = np.maximum(np.searchsorted(phase_t, t, side="right") - 1, 0)
        u = rng.random(len(cur))
        return (cum[ph, p, cur] <= u[:, None]).sum(axis=1)

    sid = np.arange(len(s_t))
    cur = step(np.full(len(s_t), E), s_p, s_t)  # START row
    t, p = s_t, s_p
    out_t, out_e, out_p, out_s = [], [], [], []
    while len(sid):
        out_t.append(t)
        out_e.append(cur)
        out_p.append(p)
        out_s.append(sid)
        nxt = step(cur, p, t)
        t = t + np.exp(think_mu[p, cur] + THINK_SIGMA * rng.standard_normal(len(cur)))
        alive = (nxt < E) & (t < t_hi)
        cur, t, p, sid = nxt[alive], t[alive], p[alive], sid[alive]
    ts, e, p, sid = (np.concatenate(x) for x in (out_t, out_e, out_p, out_s))
    keep = ts >= spec.t0
    ts, e, p, sid = ts[keep], e[keep], p[keep], sid[keep]
    order = np.argsort(ts, kind="stable")
    ts, e, p, sid = ts[order], e[order], p[order], sid[order]
    n = len(ts)

    latency = np.empty(n)
    status = np.empty(n, dtype=np.int32)
    methods = np.array([_ENDPOINTS[a][0] for a in aliases], dtype=object)
    cell_id = e * len(personas) + p
    for c in range(E * len(personas)):
        idx = np.flatnonzero(cell_id == c)
        if not len(idx):
            continue
        cell = spec.cell(aliases[c // len(personas)], personas[c % len(personas)])
        tt = ts[idx]
        latency[idx] = cell.scale(tt) * cell.latency.sample(rng, len(idx))
        err = cell.error_rate(tt)
        u = rng.random(len(idx))
        code5 = np.where(rng.random(len(idx)) < 0.3, 503, 500)
        ok, bad = (201, 400) if cell.method == "POST" else (200, 404)
        is4 = u < err + (1.0 - err) * cell.p4xx
        status[idx] = np.where(u < err, code5, np.where(is4, bad, ok))
    names = np.char.mod("s%06d", np.arange(len(s_t))).astype(object)
    return EventBatch(
        ts=ts, method=methods[e],
        endpoint=np.array([_ENDPOINTS[a][1] for a in aliases], dtype=object)[e],
        status=status, latency_ms=latency, persona=np.array(personas, dtype=object)[p],
        session=names[sid], line=np.arange(1, n + 1), source=f"<scenario {spec.name}>",
    )


def _truth(spec: _Spec) -> pd.DataFrame:
    win = np.arange(spec.n_windows)
    t = spec.t0 + win * spec.window_s
    phase_t, mats = _phase_arrays(spec)
    ph = np.maximum(np.searchsorted(phase_t, t, side="right") - 1, 0)
    visits = np.array([[_visits(m) for m in per_p] for per_p in mats])  # (phase, P, E)
    frames = []
    for ei, a in enumerate(spec.aliases):
        for pi, p in enumerate(spec.personas):
            cell = spec.cell(a, p)
            frames.append(pd.DataFrame({
                "window": win, "t_start": t, "method": cell.method, "endpoint": cell.endpoint,
                "persona": p, "p50_ms": cell.quantile(0.5, t), "p99_ms": cell.quantile(0.99, t),
                "error_rate": cell.error_rate(t),
                "rate_per_s": spec.arrivals(p, t) * visits[ph, pi, ei],
                "think_p50_ms": cell.think_median_ms, "_order": ei * len(spec.personas) + pi,
            }))
    df = pd.concat(frames, ignore_index=True)
    df = df[df["rate_per_s"] > 0].sort_values(["window", "_order"], kind="stable")
    return df.drop(columns="_order").reset_index(drop=True)


def _flow_phases(spec: _Spec) -> list[FlowPhase]:
    phase_t, mats = _phase_arrays(spec)
    ends = [*phase_t[1:], spec.t_end]
    index = [START] + [_ENDPOINTS[a][1] for a in spec.aliases]
    columns = [_ENDPOINTS[a][1] for a in spec.aliases] + [END]
    out = []
    for k, (ta, tb) in enumerate(zip(phase_t, ends, strict=True)):
        for pi, p in enumerate(spec.personas):
            m = mats[k, pi]
            m = np.vstack([m[-1:], m[:-1]])  # START first
            out.append(FlowPhase(float(ta), float(tb), p, pd.DataFrame(m, index=index,
                                                                        columns=columns)))
    return out
