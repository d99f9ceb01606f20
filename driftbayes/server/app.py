"""The mock server: learned endpoints served from the applied layer's posterior predictive.

:class:`MockEngine` is the pure part (no HTTP): it matches a concrete request to a learned
endpoint, picks the persona from a request header and draws a status and latency exactly as
:func:`driftbayes.sampling.sample` does (status: the Dirichlet-mean categorical over the known
status codes; latency: a bin of the Dirichlet-mean latency histogram, then log-uniform inside
it). Per cell the status and latency-bin CDFs are precomputed, so one draw is a binary search.

:func:`create_app` wraps an engine in a Starlette app: a catch-all route serves the mock (it
sleeps the drawn latency with ``asyncio.sleep``, so slow responses never block others) and
``/__driftbayes/`` holds the admin API (``health``, ``patterns``, ``reset``, ``config``,
``metrics``), guarded by a bearer token when one is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from driftbayes import conjugate as cj
from driftbayes.bodies import response_example
from driftbayes.config import Config
from driftbayes.kinds.transitions import TransitionParams
from driftbayes.learner import DriftLearner, split_endpoint
from driftbayes.redact import RedactionPolicy
from driftbayes.server.sessions import SessionFlows, session_id
from driftbayes.templates import OpenApiTemplates, template_path

#: Every method the catch-all route accepts (anything else gets Starlette's 405).
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE")
#: Upper bounds (ms) of the served-latency histogram in ``/__driftbayes/metrics``.
LATENCY_BUCKETS_MS = (1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0,
                      5000.0, 10000.0, 30000.0, 60000.0)
ADMIN_PREFIX = "/__driftbayes"
LAYERS = ("applied", "posterior", "prior")
_NO_BODY = frozenset({204, 205, 304})
#: What the server does with the flow of a session (``traffic_mirroring``): ``enforce`` answers
#: a step the transition posterior rules out with 409, ``annotate`` only reports the step's
#: probability in headers, ``off`` ignores sessions.
FLOW_MODES = ("enforce", "annotate", "off")
#: A step is ruled out when, with this credibility, its transition probability is below
#: :data:`FLOW_MIN_PROBABILITY`: the upper credible bound of the Jeffreys Beta(c + ½, n − c + ½)
#: on the applied layer's transition counts (c of the row's n went to this step). The synthetic
#: prior says nothing about flows, so it takes no part: an unseen step needs n ≳ 95.
FLOW_CREDIBILITY = 0.95
FLOW_MIN_PROBABILITY = 0.02
FLOW_STATUS = 409


# --------------------------------------------------------------------------------------------
# engine


@dataclass
class ServedStats:
    """Counters of what the mock served (for ``/__driftbayes/metrics``)."""

    requests: int = 0
    unmatched: dict[int, int] = field(default_factory=dict)
    status: dict[int, int] = field(default_factory=dict)
    latency_buckets: np.ndarray = field(
        default_factory=lambda: np.zeros(len(LATENCY_BUCKETS_MS) + 1, dtype=np.int64))
    latency_sum_ms: float = 0.0
    latency_count: int = 0
    out_of_flow: int = 0

    def record(self, status: int, latency_ms: float) -> None:
        self.status[status] = self.status.get(status, 0) + 1
        self.latency_buckets[np.searchsorted(LATENCY_BUCKETS_MS, latency_ms, side="left")] += 1
        self.latency_sum_ms += latency_ms
        self.latency_count += 1


@dataclass(frozen=True)
class Planned:
    """One mock response, decided before the latency is slept."""

    status: int
    latency_ms: float | None  # None for 404/405 (no draw)
    body: bytes
    headers: dict[str, str]
    endpoint: int | None = None
    persona: int | None = None
    content_type: str = "application/json"


@dataclass(frozen=True)
class _Tables:
    """Everything one draw needs, rebuilt as a whole on :meth:`MockEngine.reload`."""

    endpoints: list[str]
    endpoint_index: dict[str, int]
    personas: list[str]
    persona_index: dict[str, int]
    statuses: np.ndarray  # (S,) int
    routes: dict[str, dict[str, int]]  # template -> method ("" = any) -> endpoint index
    status_p: np.ndarray  # (E, P, S) Dirichlet-mean status probabilities
    status_cdf: np.ndarray  # (E, P, S) their cumulative sums
    lat_p: np.ndarray  # (E, P, B) Dirichlet-mean latency-bin probabilities
    lat_cdf: np.ndarray  # (E, P, B) their cumulative sums
    default_persona: int  # -1 when no persona is known
    confidence: np.ndarray  # (E, P) the latency gate's confidence (NaN: no latency data)
    pattern_header: list[list[str]]  # (E, P) X-Driftbayes-Pattern values
    recorded: dict[tuple[int, int], tuple[str, bytes]]  # (e, status) -> (type, redacted body)
    transitions: TransitionParams  # applied transition rows (src START = E), sparse
    flow_rows: dict = field(default_factory=dict)  # (p, src) -> _FlowRow, filled on demand


@dataclass(frozen=True)
class _FlowRow:
    """One transition row of the applied layer, as the flow check needs it."""

    prob: np.ndarray  # (E+1,) Dirichlet mean over destinations (END last)
    ruled_out: np.ndarray  # (E,) bool: upper credible bound < FLOW_MIN_PROBABILITY
    next_header: str  # the most likely next steps, for X-Driftbayes-Next


def _header_safe(text: str) -> str:
    """A header value HTTP/1.1 can carry: anything outside printable ASCII percent-encoded.

    Control characters (CR, LF, NUL, …) from a learned name — a persona or endpoint in the
    state — never reach the wire raw, so they can neither split a header nor make the server
    drop the response.
    """
    if all(" " <= c <= "~" for c in text):
        return text
    return "".join(c if " " <= c <= "~" else quote(c, safe="") for c in text)


def _content_type_safe(value: str | None) -> str | None:
    """A media type safe to send: printable ASCII only, else ``application/octet-stream``."""
    if value is None or all(" " <= c <= "~" for c in value):
        return value
    return "application/octet-stream"


class MockEngine:
    """Matching, persona choice and posterior-predictive draws for the mock server (no HTTP).

    Parameters
    ----------
    learner : DriftLearner
        The learned state; its ``applied`` layer is what is served (cached, see :meth:`reload`).
    config : Config
        Server-side knobs: ``persona_header``, ``synthetic.status`` and ``redact`` (request
        paths are templated with its detectors, as when learning).
    seed : int, optional
        Seed of the engine's ``numpy.random.default_rng``.
    openapi : OpenApiTemplates or dict, optional
        Path templates to match requests with (default: :func:`template_path`). A parsed
        OpenAPI document (dict) also supplies response bodies from its examples and schemas.
    flow : {"enforce", "annotate", "off"}, optional
        Session flows (see :data:`FLOW_MODES`); default ``enforce`` when the config's
        ``traffic_mirroring`` is on, else ``off``.
    """

    def __init__(self, learner: DriftLearner, config: Config, *, seed: int | None = None,
                 openapi: OpenApiTemplates | Mapping | None = None, flow: str | None = None,
                 posterior=None):
        if flow is None:
            flow = "enforce" if config.traffic_mirroring else "off"
        if flow not in FLOW_MODES:
            raise ValueError(f"flow must be one of {', '.join(FLOW_MODES)}, got {flow!r}")
        self.flow = flow
        self.sessions = SessionFlows(float(config.session_gap))
        self.config = config
        self.policy = RedactionPolicy.from_config(config)
        from driftbayes.io.enrich import Enricher

        rules = Enricher(config)
        self._rules = rules if rules.assigns_personas else None
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.openapi_doc: Mapping | None = None
        if isinstance(openapi, Mapping):
            self.openapi_doc = openapi
            openapi = OpenApiTemplates.from_dict(openapi, "<openapi>")
        self.openapi: OpenApiTemplates | None = openapi
        self._doc_paths = self._openapi_path_map()
        self.served = ServedStats()
        self.reloads = 0
        self.n_windows = 0
        self._lock = threading.Lock()
        self._bodies: dict[tuple[int, int], bytes] = {}
        self.reload(learner, posterior)

    # ---------------------------------------------------------------- tables
    def reload(self, learner: DriftLearner, posterior=None) -> MockEngine:
        """Re-read the learner's applied layer (after learning or a reset) through its
        posterior dataset (:func:`driftbayes.posterior.posterior`; pass one already computed
        as ``posterior``). The tables are a cache of that dataset's predictive."""
        from driftbayes.posterior import layer_params
        from driftbayes.posterior import posterior as posterior_of

        snap = learner.snapshot()
        ds = posterior if posterior is not None else posterior_of(snap, "applied")
        endpoints = [str(x) for x in ds["endpoint"].values]
        personas = [str(x) for x in ds["persona"].values]
        E, P = len(endpoints), len(personas)
        prm = layer_params(ds)
        status_p = cj.dirichlet_mean(prm.status_alpha)
        lat_p = cj.dirichlet_mean(prm.lat_alpha)
        routes: dict[str, dict[str, int]] = {}
        for i, key in enumerate(endpoints):
            method, tmpl = split_endpoint(key)
            routes.setdefault(tmpl, {})[method] = i
        # the latency gate's confidence, where the cell has seen latencies
        conf = np.where(ds["frequency_seen"].values & ds["latency_seen"].values,
                        ds["latency_confidence"].values, np.nan)
        if "default" in personas:
            default = personas.index("default")
        elif P:
            rate = (prm.rate_a / prm.rate_b).sum(0)
            default = int(np.argmax(rate))
        else:
            default = -1
        header = [[_header_safe(f"{endpoints[e]}; persona={personas[p]}; "
                                f"confidence={0.0 if np.isnan(conf[e, p]) else conf[e, p]:.2f}")
                   for p in range(P)] for e in range(E)]
        endpoint_index = {k: i for i, k in enumerate(endpoints)}
        recorded = {(endpoint_index[k], status): (_content_type_safe(ct),
                                                       text.encode("utf-8"))
                    for (k, status), (ct, text) in snap.bodies_.items()
                    if k in endpoint_index}
        self._t = _Tables(
            endpoints=endpoints, endpoint_index=endpoint_index, personas=personas,
            persona_index={k: i for i, k in enumerate(personas)},
            statuses=np.asarray(ds["status"].values, dtype=np.int64), routes=routes,
            status_p=status_p, status_cdf=np.cumsum(status_p, axis=-1),
            lat_p=lat_p, lat_cdf=np.cumsum(lat_p, axis=-1),
            default_persona=default, confidence=conf, pattern_header=header,
            recorded=recorded, transitions=prm.transitions,
        )
        self._bodies = {}
        self.n_windows = int(learner.n_windows_)
        self.reloads += 1
        return self

    @property
    def endpoints(self) -> list[str]:
        """Endpoint keys (``METHOD /template``) in index order."""
        return self._t.endpoints

    @property
    def personas(self) -> list[str]:
        return self._t.personas

    def status_probs(self, e: int, p: int) -> np.ndarray:
        """Predictive status probabilities of a cell, aligned with :attr:`statuses`."""
        return self._t.status_p[e, p]

    @property
    def statuses(self) -> np.ndarray:
        return self._t.statuses

    def latency_probs(self, e: int, p: int) -> np.ndarray:
        """Predictive latency-bin probabilities of a cell (bins of ``LATENCY_EDGES_MS``)."""
        return self._t.lat_p[e, p]

    # ---------------------------------------------------------------- matching
    def template(self, path: str) -> str:
        """Endpoint template of a concrete request path (secret segments typed by the
        config's redaction policy, as when learning)."""
        found = self.openapi.match(path) if self.openapi is not None else None
        return found if found is not None else template_path(path, self.policy)

    def match(self, method: str, path: str) -> tuple[int | None, int]:
        """``(endpoint index, 200)``, ``(None, 404)`` (unknown template) or ``(None, 405)``
        (the template is known for other methods only; see :meth:`allowed`)."""
        return self._match(self._t, method, path)

    def _methods(self, t: _Tables, path: str) -> dict[str, int] | None:
        methods = t.routes.get(self.template(path))
        if methods is None and self.openapi is not None:
            # a state learned without the document: its heuristic templates
            methods = t.routes.get(template_path(path, self.policy))
        return methods

    def _match(self, t: _Tables, method: str, path: str) -> tuple[int | None, int]:
        methods = self._methods(t, path)
        if not methods:
            return None, 404
        method = method.upper()
        for m in (method, "GET" if method == "HEAD" else None, ""):
            if m is not None and m in methods:
                return methods[m], 200
        return None, 405

    def allowed(self, path: str) -> list[str]:
        """Methods learned for a path's template (the ``Allow`` header of a 405)."""
        out = set(self._methods(self._t, path) or {}) - {""}
        if "GET" in out:
            out.add("HEAD")
        return sorted(out)

    def persona(self, headers: Mapping[str, str] | Any, method: str = "GET", path: str = "/",
                client: str | None = None) -> int:
        """Persona index: the ``persona_header`` when it names a known persona, else the
        config's ``persona_map`` / ``persona_rules`` applied to the request (as when learning:
        ``path``, ``method``, ``user_agent``, ``client``, ``query``, headers), else ``default``
        when known, else the persona with the highest request rate."""
        return self._persona(self._t, headers, method, path, client)

    def _persona(self, t: _Tables, headers: Any, method: str = "GET", path: str = "/",
                 client: str | None = None) -> int:
        wanted = self.config.persona_header.lower()
        for k, v in headers.items():
            if k.lower() == wanted:
                hit = t.persona_index.get(v.strip())
                if hit is not None:
                    return hit
        if self._rules is not None:
            hit = t.persona_index.get(self._rule_persona(headers, method, path, client))
            if hit is not None:
                return hit
        return t.default_persona

    def _rule_persona(self, headers: Any, method: str, path: str, client: str | None) -> str:
        """The persona the config's map / rules give a request (one-event batch, as learnt)."""
        from driftbayes.events import DEFAULT_PERSONA, EventBatch

        path, _, query = path.partition("?")
        extra = {f"header:{k.lower()}": v for k, v in headers.items()}
        extra.update(path=path, query=query or None, client=client,
                     user_agent=extra.get("header:user-agent"))
        batch = EventBatch.from_records([{
            "ts": time.time(), "method": method.upper(), "endpoint": self.template(path),
            "status": 0, "latency_ms": float("nan"), "persona": DEFAULT_PERSONA,
        }])
        batch.extra = {k: np.array([v], dtype=object) for k, v in extra.items()}
        return str(self._rules.personas(batch)[0])

    # ---------------------------------------------------------------- draws
    def draw(self, e: int, p: int) -> tuple[int, float]:
        """One ``(status, latency_ms)`` from the applied layer's predictive of cell (e, p)."""
        status, lat = self.draw_many(e, p, 1)
        return int(status[0]), float(lat[0])

    def draw_many(self, e: int, p: int, n: int,
                  rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``n`` draws ``(status, latency_ms)`` of one cell, vectorised.

        Uses the random stream in :func:`driftbayes.sampling.sample`'s order (statuses, then
        latency bins, then positions inside the bins), so with the same generator state the
        draws are identical to ``sample(learner, n, endpoint=..., persona=...)``'s after its
        cell pick.
        """
        return self._draw_many(self._t, e, p, n, rng)

    def _draw_many(self, t: _Tables, e: int, p: int, n: int,
                   rng: np.random.Generator | None) -> tuple[np.ndarray, np.ndarray]:
        with self._lock:
            r = rng if rng is not None else self.rng
            u_s = r.random(n)
            u_l = r.random(n)
            v = r.random(n)
        # the kinds' predictives (errors, then latency) on cached CDFs: one implementation
        scdf = t.status_cdf[e, p]
        if len(t.statuses) == 0 or scdf[-1] <= 0:
            status = np.full(n, int(self.config.synthetic.status), dtype=np.int64)
        else:
            status = t.statuses[cj.categorical_from_cdf(scdf, u_s)]
        return status, cj.histogram_from_cdf(t.lat_cdf[e, p], u_l, v)

    # ---------------------------------------------------------------- bodies
    def _openapi_path_map(self) -> dict[str, str]:
        """Matched template (base path included, normalised) → the document's path key."""
        doc, tpl = self.openapi_doc, self.openapi
        if doc is None or tpl is None:
            return {}
        out: dict[str, str] = {}
        for key in doc.get("paths", {}):
            segs = [s for s in str(key).split("/") if s]
            out.setdefault("/" + "/".join(segs), str(key))
            for base in tpl.base_paths:
                full = (base.split("/")[1:] if base else []) + segs
                out.setdefault("/" + "/".join(full), str(key))
        return out

    def body(self, e: int, status: int) -> bytes:
        """Response body of endpoint ``e`` for ``status`` (see :meth:`body_and_type`)."""
        return self._body(self._t, e, status)[1]

    def body_and_type(self, e: int, status: int) -> tuple[str, bytes]:
        """``(content type, body)``: the recorded (redacted) body of this endpoint × status when
        one was learned, else the OpenAPI example — or an instance of the response schema —
        for this path, method and status, else ``{"endpoint": ..., "status": ...,
        "mock": "driftbayes"}``."""
        return self._body(self._t, e, status)

    def _body(self, t: _Tables, e: int, status: int) -> tuple[str, bytes]:
        hit = t.recorded.get((e, status))
        if hit is not None:
            return hit
        cached = self._bodies.get((e, status))
        if cached is not None:
            return cached
        example = self._example(t.endpoints[e], status)
        if example is not None:
            data = json.dumps(example).encode()
        else:
            data = json.dumps({"endpoint": t.endpoints[e], "status": int(status),
                               "mock": "driftbayes"}).encode()
        self._bodies[(e, status)] = ("application/json", data)
        return self._bodies[(e, status)]

    def _example(self, endpoint: str, status: int) -> Any:
        if not self._doc_paths:
            return None
        doc = self.openapi_doc
        method, tmpl = split_endpoint(endpoint)
        key = self._doc_paths.get(tmpl)
        if key is None:  # learned without the document: re-template ({id} fits {userId})
            key = self._doc_paths.get(self.openapi.match(tmpl) or "")
        item = doc.get("paths", {}).get(key) if key is not None else None
        if not isinstance(item, Mapping):
            return None
        ops = [item.get(method.lower())] if method else [item.get(m) for m in
                                                          ("get", "post", "put", "patch", "delete")]
        for op in ops:
            responses = op.get("responses") if isinstance(op, Mapping) else None
            if not isinstance(responses, Mapping):
                continue
            for code in (str(status), f"{status // 100}XX", f"{status // 100}xx", "default"):
                found = response_example(responses.get(code, responses.get(_int_or(code))), doc)
                if found is not None:
                    return found
        return None

    # ---------------------------------------------------------------- flows
    def _flow_row(self, t: _Tables, p: int, src: int) -> _FlowRow:
        """Transition row (persona ``p``, source ``src``; START = E) of the applied layer."""
        row = t.flow_rows.get((p, src))
        if row is None:
            from scipy.special import betaincinv

            alpha = t.transitions.row(p, src)
            total = alpha.sum()
            prob = alpha / total if total > 0 else np.full(len(alpha), 1.0 / len(alpha))
            c = t.transitions.row_counts(p, src)
            upper = betaincinv(c[:-1] + 0.5, c.sum() - c[:-1] + 0.5, FLOW_CREDIBILITY)
            ruled_out = upper < FLOW_MIN_PROBABILITY
            names = t.endpoints + ["END"]
            top = np.argsort(-prob, kind="stable")[:3]
            nxt = _header_safe(", ".join(f"{names[i]};p={prob[i]:.3f}" for i in top))
            row = t.flow_rows[(p, src)] = _FlowRow(prob, ruled_out, nxt)
        return row

    def flow_step(self, e: int, p: int, previous: str | None) -> tuple[float, bool, str]:
        """``(probability, ruled out, X-Driftbayes-Next)`` of stepping to endpoint ``e`` after
        the endpoint named ``previous`` (None: the session's first request) for persona ``p``.

        The probability is the applied transition row's Dirichlet mean; a step is ruled out
        when the upper :data:`FLOW_CREDIBILITY` bound of its Jeffreys Beta on the row's counts
        is below :data:`FLOW_MIN_PROBABILITY` (so rows with little evidence rule nothing out).
        """
        return self._flow_step(self._t, e, p, previous)

    def _flow_step(self, t: _Tables, e: int, p: int, previous: str | None
                   ) -> tuple[float, bool, str]:
        src = len(t.endpoints) if previous is None else t.endpoint_index.get(previous)
        if src is None:  # unknown since a reset: start again
            src = len(t.endpoints)
        row = self._flow_row(t, p, src)
        return float(row.prob[e]), bool(row.ruled_out[e]), row.next_header

    # ---------------------------------------------------------------- one request
    def handle(self, method: str, path: str, headers: Mapping[str, str] | Any,
               client: str | None = None) -> Planned:
        """Match, choose the persona, draw and build the response (counted in :attr:`served`).

        With a session (a session header or cookie, see :mod:`driftbayes.server.sessions`) and
        ``flow`` not ``off``, the step from the session's previous endpoint is judged by the
        transition model (``X-Driftbayes-Flow``, ``X-Driftbayes-Next``); under ``enforce`` a
        ruled-out step answers 409 after the drawn latency and does not move the session on.
        Uses one consistent set of tables even if :meth:`reload` runs meanwhile.
        """
        t = self._t
        self.served.requests += 1
        e, code = self._match(t, method, path)
        if e is None:
            self.served.unmatched[code] = self.served.unmatched.get(code, 0) + 1
            tmpl = self.template(path)
            msg = (f"no learned endpoint for {method.upper()} {tmpl}" if code == 404
                   else f"method {method.upper()} not learned for {tmpl}")
            hdrs = {"Allow": _header_safe(", ".join(self.allowed(path)))} if code == 405 else {}
            body = json.dumps({"error": msg, "status": code, "mock": "driftbayes"}).encode()
            return Planned(code, None, body, hdrs)
        p = self._persona(t, headers, method, path, client)
        status, lat = self._draw_many(t, e, p, 1, None)
        status, lat = int(status[0]), float(lat[0])
        hdrs = {"X-Driftbayes-Latency-Ms": f"{lat:.3f}",
                "X-Driftbayes-Pattern": t.pattern_header[e][p]}
        sid = session_id(headers) if self.flow != "off" else ""
        if sid:
            previous = self.sessions.previous(sid)
            prob, ruled_out, expected = self._flow_step(t, e, p, previous)
            hdrs["X-Driftbayes-Flow"] = _header_safe(
                f"after={previous or 'START'}; p={prob:.3f}; "
                f"{'ruled-out' if ruled_out else 'in-flow'}")
            if ruled_out and self.flow == "enforce":
                self.served.record(FLOW_STATUS, lat)
                self.served.out_of_flow += 1
                body = json.dumps({
                    "error": f"{t.endpoints[e]} is not expected "
                             f"{'after ' + previous if previous else 'to start a session'}",
                    "status": FLOW_STATUS, "mock": "driftbayes", "expected": expected}).encode()
                return Planned(FLOW_STATUS, lat, body, hdrs, e, p)
            self.sessions.step(sid, t.endpoints[e])
            hdrs["X-Driftbayes-Next"] = self._flow_row(t, p, e).next_header
        self.served.record(status, lat)
        ctype, body = ("application/json", b"")
        if status not in _NO_BODY and status >= 200:
            ctype, body = self._body(t, e, status)
        return Planned(status, lat, body, hdrs, e, p, ctype)


def _int_or(code: str) -> int | str:
    return int(code) if code.isdigit() else code


def load_openapi(path: str | Path) -> dict:
    """A parsed OpenAPI document (YAML or JSON), validated like
    :meth:`OpenApiTemplates.from_file` (same errors)."""
    from driftbayes import yamlio

    OpenApiTemplates.from_file(path)  # raises FileNotFoundError / ValueError naming the file
    return yamlio.load(Path(path).read_text(encoding="utf-8"))


# --------------------------------------------------------------------------------------------
# ASGI app


def _metrics_text(engine: MockEngine, learner: DriftLearner) -> str:
    s = engine.served
    lines = [
        "# HELP driftbayes_requests_total Mock requests received (admin API excluded).",
        "# TYPE driftbayes_requests_total counter",
        f"driftbayes_requests_total {s.requests}",
        "# HELP driftbayes_served_status_total Mock responses by drawn status.",
        "# TYPE driftbayes_served_status_total counter",
    ]
    lines += [f'driftbayes_served_status_total{{status="{k}"}} {v}'
              for k, v in sorted(s.status.items())]
    lines += [
        "# HELP driftbayes_unmatched_total Requests no learned endpoint matched (404/405).",
        "# TYPE driftbayes_unmatched_total counter",
    ]
    lines += [f'driftbayes_unmatched_total{{status="{k}"}} {v}'
              for k, v in sorted(s.unmatched.items())]
    lines += [
        "# HELP driftbayes_served_latency_ms Drawn (and slept) mock latency in milliseconds.",
        "# TYPE driftbayes_served_latency_ms histogram",
    ]
    cum = np.cumsum(s.latency_buckets)
    for le, c in zip(LATENCY_BUCKETS_MS, cum[:-1]):
        lines.append(f'driftbayes_served_latency_ms_bucket{{le="{le:g}"}} {int(c)}')
    lines += [
        f'driftbayes_served_latency_ms_bucket{{le="+Inf"}} {int(cum[-1])}',
        f"driftbayes_served_latency_ms_sum {s.latency_sum_ms:.6f}",
        f"driftbayes_served_latency_ms_count {s.latency_count}",
        "# HELP driftbayes_out_of_flow_total Session steps answered 409 as ruled out by the "
        "transition model.",
        "# TYPE driftbayes_out_of_flow_total counter",
        f"driftbayes_out_of_flow_total {s.out_of_flow}",
        "# HELP driftbayes_sessions Live sessions the flow check remembers.",
        "# TYPE driftbayes_sessions gauge",
        f"driftbayes_sessions {len(engine.sessions)}",
        "# HELP driftbayes_learning_updates_total Learning windows closed by the learner.",
        "# TYPE driftbayes_learning_updates_total counter",
        f"driftbayes_learning_updates_total {int(learner.n_windows_)}",
        "# HELP driftbayes_engine_reloads_total Times the served layer was re-read.",
        "# TYPE driftbayes_engine_reloads_total counter",
        f"driftbayes_engine_reloads_total {engine.reloads}",
        "# HELP driftbayes_endpoints Learned endpoints being served.",
        "# TYPE driftbayes_endpoints gauge",
        f"driftbayes_endpoints {len(engine.endpoints)}",
    ]
    return "\n".join(lines) + "\n"


#: Host names the admin API answers without a token (any port): loopback only, so a page on a
#: foreign site that rebinds its DNS name to 127.0.0.1 is refused (its Host is its own name).
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def _split_host(value: str) -> tuple[str, int | None] | None:
    """``(name, port)`` of a Host header value (``[v6]:port`` too); None when malformed."""
    value = value.strip().lower()
    if value.startswith("["):
        name, sep, rest = value[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            return None
        port = rest[1:]
    else:
        name, _, port = value.partition(":")
    if not name or (port and not port.isdigit()):
        return None
    return name, int(port) if port else None


def _cross_origin(headers: Mapping[str, str], scheme: str) -> str | None:
    """Why a state-changing request is cross-origin (None when it is same-origin or not from a
    browser): ``Origin`` must name this server's ``Host``; ``Sec-Fetch-Site`` must be
    ``same-origin`` or ``none`` when present."""
    from urllib.parse import urlsplit

    site = headers.get("sec-fetch-site")
    if site is not None and site.lower() not in ("same-origin", "none"):
        return f"Sec-Fetch-Site is {site!r}"
    origin = headers.get("origin")
    if origin is None:
        return None
    default = {"http": 80, "https": 443}
    host = _split_host(headers.get("host", ""))
    try:
        o = urlsplit(origin.strip())
        o_port = o.port or default.get(o.scheme)
    except ValueError:
        return f"Origin {origin!r} is not a URL"
    if host is None or o.hostname is None:
        return f"Origin {origin!r} does not match Host"
    if (o.hostname, o_port) != (host[0], host[1] or default.get(scheme)):
        return f"Origin {origin!r} does not match Host {headers.get('host')!r}"
    return None


def create_app(engine: MockEngine, *, learner: DriftLearner, config: Config,
               state_path: str | Path | None = None, headers: bool = True,
               admin_token: str | None = None, state_config: Config | None = None,
               lock_wait: float = 10.0):
    """The mock server as a Starlette app.

    Every path outside ``/__driftbayes/`` is the mock: unknown template → 404, known template
    with another method → 405 with ``Allow``; else the persona (``config.persona_header``),
    a draw, ``await asyncio.sleep(latency)`` and the body, with ``X-Driftbayes-Latency-Ms`` and
    ``X-Driftbayes-Pattern`` headers unless ``headers=False``.

    Admin API: ``GET /__driftbayes/health``, ``GET patterns?layer=&kind=&endpoint=&persona=``
    (the JSON of ``driftbayes patterns --format json``), ``POST reset?endpoint=&persona=``
    (resets the learner, reloads the engine, saves ``state_path`` atomically when given),
    ``GET config``, ``GET metrics`` (Prometheus text). With ``admin_token`` every admin request
    needs ``Authorization: Bearer <token>``; without one, the admin API answers only requests
    whose ``Host`` is a loopback name (``127.0.0.1``, ``localhost``, ``[::1]``, any port), which
    stops DNS rebinding. ``reset`` changes state, so it also refuses cross-origin requests
    (``Origin`` not matching ``Host``, or ``Sec-Fetch-Site: cross-site``) and any body that is
    not ``Content-Type: application/json`` (a JSON object may carry ``endpoint``/``persona``).

    ``reset`` with a ``state_path`` takes the state's writer lock (waiting up to ``lock_wait``
    seconds, else 503), re-reads the file (with ``state_config``; None = the stored config),
    resets that, saves it and serves it: it never overwrites learning saved meanwhile.

    ``app.state`` holds ``engine``, ``learner``, ``config`` and ``state_path``.
    """
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse, Response
    from starlette.routing import Route

    lock = asyncio.Lock()

    def admin(handler, *, changes_state: bool = False):
        async def guarded(request: Request):
            if not admin_token:
                host = _split_host(request.headers.get("host", ""))
                if host is None or host[0] not in LOOPBACK_HOSTS:
                    return JSONResponse(
                        {"error": "admin API answers only loopback Host names (127.0.0.1, "
                                  "localhost, [::1]) without a token; set "
                                  "DRIFTBAYES_ADMIN_TOKEN and send Authorization: Bearer"},
                        status_code=403)
            if admin_token:
                auth = request.headers.get("authorization", "")
                scheme, _, token = auth.partition(" ")
                if scheme.lower() != "bearer" or not hmac.compare_digest(
                        token.strip().encode(), admin_token.encode()):
                    return JSONResponse({"error": "admin API needs Authorization: Bearer <token>"},
                                        status_code=401,
                                        headers={"WWW-Authenticate": 'Bearer realm="driftbayes"'})
            if changes_state:
                why = _cross_origin(request.headers, request.url.scheme)
                if why is not None:
                    return JSONResponse({"error": f"cross-origin request refused ({why})"},
                                        status_code=403)
                ctype = request.headers.get("content-type", "")
                if ctype.split(";")[0].strip().lower() != "application/json":
                    return JSONResponse(
                        {"error": "send Content-Type: application/json (a JSON object, "
                                  "or an empty body)"}, status_code=415)
            return await handler(request)
        return guarded

    async def mock(request: Request) -> Response:
        eng: MockEngine = request.app.state.engine
        plan = eng.handle(request.method, request.url.path, request.headers,
                          request.client.host if request.client else None)
        if plan.latency_ms is not None and plan.latency_ms > 0:
            target = plan.latency_ms / 1000.0
            start = time.perf_counter()
            await asyncio.sleep(target)
            while (left := target - (time.perf_counter() - start)) > 0:  # never wake early
                await asyncio.sleep(left)
        hdrs = plan.headers if headers or plan.latency_ms is None else {}
        return Response(plan.body, status_code=plan.status, headers=hdrs,
                        media_type=plan.content_type)

    async def health(request: Request) -> Response:
        st = request.app.state
        eng: MockEngine = st.engine
        return JSONResponse({
            "status": "ok", "endpoints": len(eng.endpoints), "personas": len(eng.personas),
            "windows": int(st.learner.n_windows_), "events": int(st.learner.n_events_),
            "requests": eng.served.requests, "state": str(st.state_path) if st.state_path else None,
        })

    async def get_patterns(request: Request) -> Response:
        from driftbayes.globs import match_glob
        from driftbayes.patterns import patterns

        q = request.query_params
        layer = q.get("layer", "applied")
        if layer not in LAYERS:
            return JSONResponse({"error": f"unknown layer {layer!r}; choose one of "
                                          f"{', '.join(LAYERS)}"}, status_code=400)
        async with lock:
            rows = await run_in_threadpool(patterns, request.app.state.learner, layer)
        if q.get("kind"):
            rows = [r for r in rows if r["kind"] == q["kind"]]
        if q.get("endpoint"):
            rows = [r for r in rows
                    if match_glob({q["endpoint"]: True}, f"{r['method']} {r['endpoint']}".strip())]
        if q.get("persona"):
            rows = [r for r in rows if r["persona"] == q["persona"]]
        # rendered like `driftbayes patterns --format json` (json.dumps, NaN allowed)
        return Response(json.dumps(rows), media_type="application/json")

    async def reset(request: Request) -> Response:
        from driftbayes.state import StateError
        from driftbayes.statefile import StateLockedError

        st = request.app.state
        q = dict(request.query_params)
        raw = await request.body()
        if raw.strip():
            try:
                doc = json.loads(raw)
            except ValueError:
                doc = None
            if not isinstance(doc, dict):
                return JSONResponse({"error": "body must be a JSON object like "
                                              '{"endpoint": "/api/*", "persona": "p"}'},
                                    status_code=400)
            q.update({k: v for k, v in doc.items() if k in ("endpoint", "persona")})
        endpoint, persona = q.get("endpoint") or None, q.get("persona") or None
        if not all(v is None or isinstance(v, str) for v in (endpoint, persona)):
            return JSONResponse({"error": "endpoint and persona must be strings"},
                                status_code=400)
        async with lock:
            try:
                learner, cells = await run_in_threadpool(
                    _reset_state, st.learner, st.state_path, endpoint, persona)
            except KeyError as exc:
                return JSONResponse({"error": str(exc.args[0] if exc.args else exc)},
                                    status_code=400)
            except StateLockedError as exc:
                return JSONResponse({"error": str(exc)}, status_code=503,
                                    headers={"Retry-After": "5"})
            except (StateError, OSError) as exc:
                return JSONResponse({"error": f"{exc}; the state file was not changed"},
                                    status_code=409 if isinstance(exc, StateError) else 500)
            st.learner = learner
            await run_in_threadpool(st.engine.reload, learner)
        return JSONResponse({"reset_cells": cells, "endpoint": endpoint, "persona": persona,
                             "saved": str(st.state_path) if st.state_path else None,
                             "events": int(learner.n_events_)})

    def _reset_state(current: DriftLearner, path: Path | None, endpoint, persona):
        """Reset under the state's writer lock, on the file as it is now (re-read)."""
        if path is None:
            return current, current.reset(endpoint, persona)
        from driftbayes.state import load_state, save_state
        from driftbayes.statefile import state_lock

        with state_lock(path, lock_wait):
            fresh = load_state(path, state_config) if path.exists() else current
            cells = fresh.reset(endpoint, persona)
            save_state(fresh, path)
        return fresh, cells

    async def get_config(request: Request) -> Response:
        return JSONResponse(request.app.state.config.to_dict())

    async def metrics(request: Request) -> Response:
        st = request.app.state
        return PlainTextResponse(_metrics_text(st.engine, st.learner),
                                 media_type="text/plain; version=0.0.4; charset=utf-8")

    routes = [
        Route(f"{ADMIN_PREFIX}/health", admin(health), methods=["GET"]),
        Route(f"{ADMIN_PREFIX}/patterns", admin(get_patterns), methods=["GET"]),
        Route(f"{ADMIN_PREFIX}/reset", admin(reset, changes_state=True), methods=["POST"]),
        Route(f"{ADMIN_PREFIX}/config", admin(get_config), methods=["GET"]),
        Route(f"{ADMIN_PREFIX}/metrics", admin(metrics), methods=["GET"]),
        Route("/{path:path}", mock, methods=list(HTTP_METHODS)),
    ]
    app = Starlette(routes=routes)
    app.state.engine = engine
    app.state.learner = learner
    app.state.config = config
    app.state.state_path = Path(state_path) if state_path else None
    return app


# --------------------------------------------------------------------------------------------
# running


def _uvicorn_config(app, host: str, port: int, **kw):
    import uvicorn

    return uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, **kw)


def run_server(app, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve ``app`` with uvicorn until interrupted (Ctrl-C)."""
    import gc

    import uvicorn

    # scipy/pandas/xarray leave ~130k long-lived objects: a full collection of them stalls the
    # event loop for 100+ ms (every in-flight response late); frozen, they are never rescanned
    gc.collect()
    gc.freeze()

    uvicorn.Server(_uvicorn_config(app, host, port)).run()


@contextlib.contextmanager
def serving(app, host: str = "127.0.0.1", port: int = 0,
            timeout: float = 60.0) -> Iterator[str]:
    """Run ``app`` with uvicorn in a background thread; yields the base URL (real port).

    For tests and embedding: waits until the server listens (at most ``timeout`` seconds,
    generous for a loaded machine: it returns as soon as the server listens), shuts it down
    on exit.
    """
    import uvicorn

    server = uvicorn.Server(_uvicorn_config(app, host, port, timeout_graceful_shutdown=2))
    thread = threading.Thread(target=server.run, name="driftbayes-serving", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"mock server did not start on {host}:{port}")
        time.sleep(0.01)
    real_port = server.servers[0].sockets[0].getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    try:
        yield f"http://{shown}:{real_port}"
    finally:
        server.should_exit = True
        thread.join(timeout)
