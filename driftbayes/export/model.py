"""What every exporter writes, computed once from a layer: :class:`ExportModel`.

Per endpoint × persona cell (:class:`CellModel`): the request rate, the status mix (the
Dirichlet-mean categorical the driftbayes mock draws from), the latency predictive (the
Dirichlet-mean histogram the mock draws from: its bin probabilities, its quantiles, and the
log-normal (median, σ) fitted to it for runtimes that only have a log-normal), and the response
body per status (the recorded, redacted one when learned, else the same stub or OpenAPI example
``driftbayes serve`` answers with). Per persona: its share of traffic, the transition matrix
(START row last, END column last), log-normal think times per source endpoint, and the session
arrival rate. Plus provenance (version, config, data span, layer, created_at).

**The log-normal fit.** The served latency predictive is a histogram on a log grid; a runtime
with a log-normal delay gets ``median`` = the predictive median and ``σ`` = half the log
distance between the predictive's 15.87% and 84.13% quantiles (±1 σ of a normal), a quantile
match that ignores the tails beyond: a heavy right tail (p99 far above ``median·e^{2.33σ}``)
is what is lost, and :func:`lognormal_fit_error` measures it. Think times come from the
Student-t predictive of the log think time (NIG posterior): the median is its location, σ its
scale times the t quantile at 84.13% (so ±1 σ matches the t's central 68%); what is lost is the
t's heavier tails, small once a source has tens of observations (df = 2α).
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from scipy import special, stats

from driftbayes import __version__
from driftbayes import conjugate as cj
from driftbayes.kinds.transitions import TransitionParams
from driftbayes.learner import END, START, DriftLearner, split_endpoint

#: Normal quantile of +1 σ (84.13%).
_Z1 = float(stats.norm.cdf(1.0))
LAYERS = ("applied", "posterior")


@dataclass(frozen=True)
class CellModel:
    """One endpoint × persona cell as the exporters need it."""

    endpoint: str  # "GET /api/users/{id}"
    method: str
    template: str  # "/api/users/{id}"
    persona: str
    rate_per_s: float  # predictive mean request rate
    statuses: tuple[int, ...]  # codes with probability > 0, most likely first
    status_p: tuple[float, ...]  # their probabilities (sum 1)
    latency_p: np.ndarray  # (B,) bin probabilities on cj.LATENCY_EDGES_MS
    median_ms: float  # log-normal fit (see the module docstring)
    sigma: float
    p50_ms: float  # quantiles of the histogram predictive itself
    p90_ms: float
    p99_ms: float
    confidence: float  # the latency gate's confidence (0 when no latency data)
    bodies: dict[int, tuple[str, str]] = field(default_factory=dict)  # status -> (type, text)

    def latency_quantiles(self, qs) -> np.ndarray:
        """Quantiles (ms) of the served latency predictive."""
        return cj.histogram_quantiles(self.latency_p, np.asarray(qs, dtype=float))


@dataclass(frozen=True)
class ExportModel:
    """A layer of a learned state, ready to be written in another runtime's format."""

    layer: str
    persona_header: str
    endpoints: list[str]  # "METHOD /template", state order
    personas: list[str]
    cells: list[CellModel]
    persona_share: np.ndarray  # (P,) share of the request rate
    transitions: TransitionParams  # Dirichlet rows, src START = E, dst END = E (sparse)
    think_median_ms: np.ndarray  # (E, P) log-normal think time after each source endpoint
    think_sigma: np.ndarray  # (E, P)
    session_rate_per_s: np.ndarray  # (P,) new sessions per second
    provenance: dict

    @cached_property
    def cells_by_endpoint(self) -> dict[str, list[CellModel]]:
        """The exported cells of each endpoint key."""
        out: dict[str, list[CellModel]] = {}
        for c in self.cells:
            out.setdefault(c.endpoint, []).append(c)
        return out

    def cell(self, endpoint: str, persona: str) -> CellModel:
        for c in self.cells_by_endpoint.get(endpoint, []):
            if c.persona == persona:
                return c
        raise KeyError(f"no exported cell {endpoint!r} × {persona!r}")

    def next_probs(self, p: int, src: int) -> np.ndarray:
        """(E+1,) next-state probabilities of persona ``p`` after ``src`` (START = E)."""
        return self.transitions.mean_row(p, src)

    def visits(self, p: int) -> np.ndarray:
        """(E,) expected visits of each endpoint per session of persona ``p``."""
        return self.transitions.visits(p)

    def session_lengths(self) -> np.ndarray:
        """(P,) expected requests per session (absorbing chain from START)."""
        return np.array([self.visits(p).sum() for p in range(len(self.personas))])


def default_persona(model: ExportModel) -> str:
    """The persona a request without (or with an unknown) persona header gets, as in
    ``driftbayes serve``: ``default`` when learned, else the largest ``persona_share``."""
    if "default" in model.personas:
        return "default"
    return model.personas[int(np.argmax(model.persona_share))]


def largest_remainder(p, total: int) -> np.ndarray:
    """Integers summing to ``total``, each within 1 of ``p·total`` (``p`` normalised; ties go to
    the earlier entry); all zeros when ``p`` or ``total`` is zero."""
    p = np.clip(np.asarray(p, dtype=float), 0.0, None)
    s = p.sum()
    if total <= 0 or s <= 0:
        return np.zeros(p.shape, dtype=np.int64)
    exact = p / s * total
    counts = np.floor(exact).astype(np.int64)
    counts[np.argsort(-(exact - counts), kind="stable")[: int(total - counts.sum())]] += 1
    return counts


#: Quantiles of the latency histogram an export needs: ±1 σ (the log-normal fit), p50, p90, p99.
_EXPORT_QS = np.array([1 - _Z1, 0.5, _Z1, 0.9, 0.99])


def lognormal_fit(latency_p: np.ndarray) -> tuple[float, float]:
    """``(median_ms, σ)`` of the log-normal matching a latency histogram's median and ±1 σ
    quantiles (15.87%, 84.13%)."""
    lo, med, hi = cj.histogram_quantiles(latency_p, np.array([1 - _Z1, 0.5, _Z1]))
    return _fit(lo, med, hi)


def _fit(lo, med, hi) -> tuple[float, float]:
    return float(med), float(max((np.log(hi) - np.log(lo)) / 2.0, 1e-6))


def lognormal_fit_error(cell: CellModel, qs=(0.5, 0.9, 0.99)) -> dict[float, float]:
    """Relative error of the fitted log-normal's quantiles against the histogram predictive's."""
    want = cell.latency_quantiles(qs)
    got = cell.median_ms * np.exp(cell.sigma * stats.norm.ppf(qs))
    return {float(q): float(g / w - 1.0) for q, g, w in zip(qs, got, want)}


def export_model(learner: DriftLearner, layer: str = "applied", *, openapi=None) -> ExportModel:
    """The :class:`ExportModel` of a learner's ``applied`` (what the mock serves) or
    ``posterior`` layer, computed from its posterior dataset
    (:func:`driftbayes.posterior.posterior`). Cells are those that have seen traffic."""
    from driftbayes.server.app import MockEngine

    if layer not in LAYERS:
        raise ValueError(f"unknown layer {layer!r}; choose one of {', '.join(LAYERS)}")
    from driftbayes.posterior import layer_params, posterior

    snap = learner.snapshot()
    if not snap.endpoints_:
        raise ValueError("nothing learned yet: no endpoints to export")
    ds = posterior(snap, layer)
    endpoints = [str(x) for x in ds["endpoint"].values]
    personas = [str(x) for x in ds["persona"].values]
    P = len(personas)
    prm = layer_params(ds)
    status_p = cj.dirichlet_mean(prm.status_alpha)
    lat_p = cj.dirichlet_mean(prm.lat_alpha)
    rate = prm.rate_a / prm.rate_b
    statuses = np.asarray(ds["status"].values)
    seen = ds["frequency_seen"].values
    conf = np.where(seen & ds["latency_seen"].values, ds["latency_confidence"].values, 0.0)
    engine = MockEngine(snap, snap.config, openapi=openapi, flow="off", posterior=ds)
    cells = []
    ei, pi = np.nonzero(seen)
    quantiles = cj.histogram_quantiles(lat_p[ei, pi], _EXPORT_QS)  # all cells at once
    for (e, p), (q_lo, q50, q_hi, q90, q99) in zip(zip(ei, pi), quantiles):
        method, tmpl = split_endpoint(endpoints[e])
        order = np.argsort(-status_p[e, p], kind="stable")
        keep = order[status_p[e, p, order] > 1e-9]
        sp = status_p[e, p, keep] / status_p[e, p, keep].sum()
        codes = tuple(int(statuses[k]) for k in keep)
        median, sigma = _fit(q_lo, q50, q_hi)
        bodies = {}
        for code in codes:
            ctype, body = engine.body_and_type(int(e), code)
            bodies[code] = (ctype, body.decode("utf-8", "replace"))
        cells.append(CellModel(
            endpoint=endpoints[e], method=method or "GET", template=tmpl,
            persona=personas[p], rate_per_s=float(rate[e, p]), statuses=codes,
            status_p=tuple(float(x) for x in sp), latency_p=lat_p[e, p].copy(),
            median_ms=median, sigma=sigma, p50_ms=float(q50), p90_ms=float(q90),
            p99_ms=float(q99), confidence=float(conf[e, p]), bodies=bodies))
    share = (rate * seen).sum(0)
    share = share / share.sum() if share.sum() > 0 else np.full(P, 1.0 / P)
    tmu, tk, ta, tb = prm.think_nig
    df, loc, scale = cj.normal_nig_predictive(mu=tmu, kappa=tk, alpha=ta, beta=tb)
    think_sigma = scale * special.stdtrit(df, _Z1)
    model = ExportModel(
        layer=layer, persona_header=snap.config.persona_header,
        endpoints=endpoints, personas=personas, cells=cells,
        persona_share=share, transitions=prm.transitions,
        think_median_ms=np.exp(loc), think_sigma=np.asarray(think_sigma),
        session_rate_per_s=np.zeros(P), provenance=provenance(snap, layer))
    per_persona = (rate * seen).sum(0)
    lengths = model.session_lengths()
    model.session_rate_per_s[:] = np.where(lengths > 0, per_persona / np.maximum(lengths, 1e-12),
                                           0.0)
    return model


def provenance(learner: DriftLearner, layer: str) -> dict:
    """Where an export came from: driftbayes version, config, data span, layer, created_at."""
    def iso(t: float) -> str:
        if not np.isfinite(t):
            return ""
        try:
            return _dt.datetime.fromtimestamp(t, _dt.UTC).isoformat(timespec="seconds")
        except (OverflowError, OSError, ValueError):  # past year 9999: the learner API takes it
            return f"{t:.6g} s since 1970-01-01T00:00:00+00:00"

    return {
        "driftbayes_version": __version__,
        "layer": layer,
        "created_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "data_start": iso(learner.t_first_),
        "data_end": iso(learner.t_last_),
        "n_events": int(learner.n_events_),
        "n_windows": int(learner.n_windows_),
        "config_yaml": learner.config.to_yaml(),
    }


__all__ = ["END", "START", "CellModel", "ExportModel", "default_persona", "export_model",
           "largest_remainder", "lognormal_fit",
           "lognormal_fit_error", "provenance"]
