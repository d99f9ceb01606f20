"""The mock server: engine draws match the applied predictive; HTTP behaviour and admin API.

Statistical tolerances (used throughout). With ``n`` independent draws ``X_i`` from a
predictive with CDF ``F`` and ``q``-quantile ``x_q`` (``cj.histogram_quantiles``), the count
``#{X_i ≤ x_q}`` is Binomial(n, q) exactly, so the empirical CDF at ``x_q`` has standard error
``sqrt(q(1-q)/n)``; equivalently the empirical ``q``-quantile lies between ``x_{q-δ}`` and
``x_{q+δ}`` for ``δ = 4·sqrt(q(1-q)/n)`` except with probability ~6e-5 (4 SE, two-sided).
(On the latency scale that is ``δ / f(x_q)`` by the delta method, f the predictive density.)
For n = 20,000 and q = 0.5 that is δ = 0.014; for q = 0.9, δ = 0.0085. A share with predictive
probability ``p`` has binomial SE ``sqrt(p(1-p)/n)``; we allow 4 SE. Engine draws are seeded;
over HTTP the arrival order (hence which draw goes to which request) varies, so the 4 SE bound
is what keeps the HTTP checks from flaking (each fails with probability ~6e-5).
"""

from __future__ import annotations

import asyncio
import copy
import json
import time

import httpx
import numpy as np
import pytest

from driftbayes import conjugate as cj
from driftbayes.config import Config
from driftbayes.learner import DriftLearner
from driftbayes.patterns import patterns
from driftbayes.sampling import sample
from driftbayes.server.app import MockEngine, create_app, serving
from driftbayes.state import load_state
from tests.helpers import LOADED, learn_in_time_order, traffic

CFG = Config(update_interval=60, sensitivity=1, min_samples=1)
USERS = "GET /api/users/{id}"


def _learn(*batches) -> DriftLearner:
    return learn_in_time_order(CFG, *batches)


@pytest.fixture(scope="module")
def learner() -> DriftLearner:
    web = traffic(6000, seed=1, personas=("web",), median_ms=3, error_rate=0.02)
    batch = traffic(6000, seed=2, personas=("batch",), median_ms=60, error_rate=0.15)
    post = traffic(600, seed=3, personas=("web",), endpoints=("/api/cart",), median_ms=4)
    post.method[:] = "POST"
    return _learn(web, batch, post)


@pytest.fixture(scope="module")
def engine(learner) -> MockEngine:
    return MockEngine(learner, CFG, seed=11)


def _predictive(learner: DriftLearner, endpoint: str, persona: str):
    """The applied layer's predictive of one cell, computed independently of the engine."""
    snap = learner.snapshot()
    prm = snap.layer("applied")
    e, p = snap.resolve_endpoint(endpoint), snap.resolve_persona(persona)
    status_p = cj.dirichlet_mean(prm.status_alpha)[e, p]
    lat_p = cj.dirichlet_mean(prm.lat_alpha)[e, p]
    statuses = np.asarray(snap.statuses_)
    return {"status_p": dict(zip(statuses.tolist(), status_p)),
            "p5xx": float(status_p[statuses >= 500].sum()),
            "q": dict(zip((0.5, 0.9), cj.histogram_quantiles(lat_p, [0.5, 0.9])))}


def _check_latency(lat: np.ndarray, quantiles: dict[float, float], slack: float = 0.0) -> None:
    """#{X ≤ x_q}/n within 4 binomial SE of q (see the module docstring)."""
    n = len(lat)
    for q, x_q in quantiles.items():
        below = float(np.mean(lat <= x_q + slack))
        se = np.sqrt(q * (1 - q) / n)
        assert abs(below - q) <= 4 * se, (q, x_q, below, se, np.quantile(lat, q))


def _check_share(observed: float, p: float, n: int) -> None:
    se = max(np.sqrt(p * (1 - p) / n), 1.0 / n)
    assert abs(observed - p) <= 4 * se, (observed, p, se)


# ------------------------------------------------------------------------------ engine


def test_match_404_405_and_allow(engine):
    e, code = engine.match("GET", "/api/users/42?x=1")
    assert code == 200 and engine.endpoints[e] == USERS
    e_post, code = engine.match("post", "/api/cart/")
    assert code == 200 and engine.endpoints[e_post] == "POST /api/cart"
    assert engine.endpoints[engine.match("GET", "/api/cart")[0]] == "GET /api/cart"
    assert engine.match("HEAD", "/api/users/7")[0] == e  # HEAD falls back to GET
    assert engine.match("GET", "/api/nothing/1") == (None, 404)
    assert engine.match("DELETE", "/api/cart") == (None, 405)
    assert engine.allowed("/api/cart") == ["GET", "HEAD", "POST"]
    assert engine.match("POST", "/api/users/9") == (None, 405)
    assert engine.allowed("/api/users/9") == ["GET", "HEAD"]


def test_persona_header(engine, learner):
    idx = {p: i for i, p in enumerate(engine.personas)}
    assert engine.persona({"X-Persona": "batch"}) == idx["batch"]
    assert engine.persona({"x-persona": "web"}) == idx["web"]
    assert engine.persona({"X-PERSONA": " batch "}) == idx["batch"]
    # no `default` persona: the one with the highest applied request rate (web: more traffic)
    prm = learner.snapshot().layer("applied")
    busiest = int(np.argmax((prm.rate_a / prm.rate_b).sum(0)))
    assert engine.personas[busiest] == "web"
    assert engine.persona({}) == busiest
    assert engine.persona({"X-Persona": "nobody"}) == busiest
    # a known `default` persona wins over the busiest one
    other = _learn(traffic(400, seed=4, personas=("default",)),
                   traffic(1200, seed=5, personas=("loud",)))
    eng = MockEngine(other, CFG, seed=0)
    assert eng.personas[eng.persona({"X-Persona": "?"})] == "default"
    assert eng.personas[eng.persona({"X-Persona": "loud"})] == "loud"
    # a custom header name
    eng = MockEngine(other, Config(persona_header="X-Tier"), seed=0)
    assert eng.personas[eng.persona({"x-tier": "loud", "X-Persona": "default"})] == "loud"


def test_draws_are_sampling_py_draws(engine, learner):
    """Same generator state → exactly the draws of driftbayes.sampling.sample for the cell."""
    n = 3000
    for persona in ("web", "batch"):
        rng = np.random.default_rng(7)
        rng.random(n)  # sample() first draws the cell (one uniform per draw)
        e = engine.endpoints.index(USERS)
        status, lat = engine.draw_many(e, engine.personas.index(persona), n, rng=rng)
        ref = sample(learner, n, endpoint=USERS, persona=persona, seed=7)
        np.testing.assert_array_equal(status, ref["status"])
        np.testing.assert_allclose(lat, ref["latency_ms"], rtol=1e-12)


def test_draw_quantiles_and_error_share_match_predictive(learner):
    eng = MockEngine(learner, CFG, seed=2024)
    e = eng.endpoints.index(USERS)
    n = 20_000
    medians = {}
    for persona in ("web", "batch"):
        p = eng.personas.index(persona)
        draws = [eng.draw(e, p) for _ in range(n)]
        status = np.array([d[0] for d in draws])
        lat = np.array([d[1] for d in draws])
        pred = _predictive(learner, USERS, persona)
        _check_latency(lat, pred["q"])
        _check_share(float(np.mean(status >= 500)), pred["p5xx"], n)
        medians[persona] = pred["q"][0.5]
        assert set(np.unique(status)) <= set(pred["status_p"])
    # the two personas really differ (3 ms vs 60 ms traffic)
    assert medians["batch"] > 10 * medians["web"]
    assert 2 < medians["web"] < 4.5 and 40 < medians["batch"] < 90


def test_body_and_openapi_examples(learner):
    eng = MockEngine(learner, CFG, seed=0)
    e = eng.endpoints.index(USERS)
    assert json.loads(eng.body(e, 500)) == {"endpoint": USERS, "status": 500, "mock": "driftbayes"}
    doc = {"openapi": "3.0.0", "servers": [{"url": "https://x.test/api"}], "paths": {
        "/users/{userId}": {"get": {"responses": {
            "200": {"content": {"application/json": {"example": {"id": 1, "name": "Ada"}}}},
            "5XX": {"content": {"application/json": {
                "examples": {"boom": {"value": {"error": "down"}}}}}}}}},
        "/cart": {"get": {"responses": {"200": {"description": "no example"}}}},
    }}
    eng = MockEngine(learner, CFG, seed=0, openapi=doc)
    e, code = eng.match("GET", "/api/users/5")
    assert code == 200 and eng.endpoints[e] == USERS
    assert json.loads(eng.body(e, 200)) == {"id": 1, "name": "Ada"}
    assert json.loads(eng.body(e, 503)) == {"error": "down"}
    e_cart = eng.match("GET", "/api/cart")[0]
    assert json.loads(eng.body(e_cart, 200))["mock"] == "driftbayes"


def test_reload_picks_up_reset(learner):
    lrn = copy.deepcopy(learner)
    eng = MockEngine(lrn, CFG, seed=0)
    before = eng.latency_probs(eng.endpoints.index(USERS), eng.personas.index("web")).copy()
    lrn.reset(persona="web")
    eng.reload(lrn)
    after = eng.latency_probs(eng.endpoints.index(USERS), eng.personas.index("web"))
    # (the reset cell's applied layer is what the snapshot's closing window makes of it:
    # with persona_adaptation it borrows from the endpoint's other persona)
    want = cj.dirichlet_mean(lrn.snapshot().layer("applied").lat_alpha)[
        lrn.resolve_endpoint(USERS), lrn.resolve_persona("web")]
    assert not np.allclose(before, after)
    np.testing.assert_allclose(after, want)
    lrn.reset()
    eng.reload(lrn)
    assert eng.match("GET", "/api/users/1") == (None, 404)


# ------------------------------------------------------------------------------ HTTP


async def _load(url: str, n_per_persona: int, concurrency: int = 50, n_clients: int = 10):
    """``2·n_per_persona`` GETs, ``concurrency`` in flight. The connections are spread over
    several clients: one httpx.AsyncClient's pool slows down with many connections
    (encode/httpx#3215), which would make the test slow, not wrong."""
    sem = asyncio.Semaphore(concurrency)
    per = concurrency // n_clients
    # keepalive_expiry well under uvicorn's 5 s keep-alive: a starved client never reuses a
    # connection the server is closing ("Server disconnected without sending a response")
    limits = httpx.Limits(max_connections=per, max_keepalive_connections=per,
                          keepalive_expiry=1.0)
    clients = [httpx.AsyncClient(base_url=url, limits=limits, timeout=LOADED)
               for _ in range(n_clients)]

    async def one(i: int, persona: str):
        async with sem:
            t0 = time.perf_counter()
            r = await clients[i % n_clients].get(f"/api/users/{i}", headers={"X-Persona": persona})
            wall_ms = (time.perf_counter() - t0) * 1000
        return (persona, r.status_code, float(r.headers["x-driftbayes-latency-ms"]), wall_ms,
                r.headers["x-driftbayes-pattern"])

    jobs = [one(i, persona) for i in range(n_per_persona) for persona in ("web", "batch")]
    try:
        t0 = time.perf_counter()
        rows = await asyncio.gather(*jobs)
        return rows, time.perf_counter() - t0
    finally:
        for c in clients:
            await c.aclose()


class _InFlight:
    """ASGI middleware: the most HTTP requests the app was handling at once (a server that
    blocks its event loop while it waits out a delay never has more than one)."""

    def __init__(self, app):
        self.app, self.now, self.most = app, 0, 0

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        self.now += 1
        self.most = max(self.most, self.now)
        try:
            await self.app(scope, receive, send)
        finally:
            self.now -= 1


def test_http_load_matches_predictive_and_never_blocks(learner):
    lrn = copy.deepcopy(learner)
    eng = MockEngine(lrn, CFG, seed=5)
    app = _InFlight(create_app(eng, learner=lrn, config=CFG))
    n = 1000
    with serving(app) as url:
        assert url.startswith("http://127.0.0.1:")
        rows, elapsed = asyncio.run(_load(url, n))
    assert len(rows) == 2 * n
    conf = {(r["persona"]): r["confidence"] for r in patterns(lrn, "applied")
            if r["kind"] == "latency" and f"{r['method']} {r['endpoint']}" == USERS}
    for persona in ("web", "batch"):
        mine = [r for r in rows if r[0] == persona]
        pred = _predictive(lrn, USERS, persona)
        status = np.array([r[1] for r in mine])
        for code, p in pred["status_p"].items():
            _check_share(float(np.mean(status == code)), p, n)
        _check_share(float(np.mean(status >= 500)), pred["p5xx"], n)
        # the header is rounded to 3 decimals: widen x_q by half a unit of the last place
        _check_latency(np.array([r[2] for r in mine]), pred["q"], slack=5e-4)
        assert {r[4] for r in mine} == {f"{USERS}; persona={persona}; "
                                        f"confidence={conf[persona]:.2f}"}
    drawn = np.array([r[2] for r in rows])
    wall = np.array([r[3] for r in rows])
    # each response took at least its drawn latency (header rounding: ±0.0005 ms)
    assert np.all(wall >= drawn - 1e-3), (wall - drawn).min()
    # concurrency 50: the server waits out delays side by side (a blocking one would hold one
    # request at a time). Counted in the app, not timed: the wall time depends on the machine.
    assert app.most > 1, app.most
    print(f"\n{2 * n} requests in {elapsed:.1f} s (drawn latency {drawn.sum() / 1000:.1f} s), "
          f"at most {app.most} in the app at once")
    assert eng.served.requests == 2 * n
    assert sum(eng.served.status.values()) == 2 * n


def _get(url, path, **kw):
    return httpx.get(url + path, timeout=LOADED, **kw)


def test_http_routes_admin_and_metrics(learner):
    lrn = copy.deepcopy(learner)
    eng = MockEngine(lrn, CFG, seed=1)
    app = create_app(eng, learner=lrn, config=CFG)
    with serving(app) as url:
        r = _get(url, "/api/nothing/here")
        assert r.status_code == 404 and r.json()["status"] == 404
        r = httpx.delete(url + "/api/cart", timeout=LOADED)
        assert r.status_code == 405
        assert r.headers["allow"] == "GET, HEAD, POST"
        assert "x-driftbayes-latency-ms" not in r.headers
        r = httpx.post(url + "/api/cart", headers={"X-Persona": "web"}, timeout=LOADED)
        assert r.status_code in (200, 500)
        assert r.headers["x-driftbayes-pattern"].startswith("POST /api/cart; persona=web;")
        assert r.json() == {"endpoint": "POST /api/cart", "status": r.status_code,
                            "mock": "driftbayes"}
        statuses = [_get(url, f"/api/orders/{i}").status_code for i in range(20)]

        h = _get(url, "/__driftbayes/health").json()
        assert h["status"] == "ok" and h["endpoints"] == 4 and h["personas"] == 2

        got = _get(url, "/__driftbayes/patterns").json()
        assert got == json.loads(json.dumps(patterns(lrn, "applied")))
        lat = _get(url, "/__driftbayes/patterns", params={"kind": "latency",
                                                          "layer": "posterior"}).json()
        assert lat and {r["kind"] for r in lat} == {"latency"}
        assert {r["layer"] for r in lat} == {"posterior"}
        assert _get(url, "/__driftbayes/patterns", params={"layer": "nope"}).status_code == 400

        assert _get(url, "/__driftbayes/config").json() == json.loads(json.dumps(CFG.to_dict()))

        m = _get(url, "/__driftbayes/metrics")
        assert m.headers["content-type"].startswith("text/plain")
        metrics = {}
        for line in m.text.splitlines():
            if line and not line.startswith("#"):
                k, v = line.rsplit(" ", 1)
                metrics[k] = float(v)
        assert metrics["driftbayes_requests_total"] == 23
        assert metrics['driftbayes_unmatched_total{status="404"}'] == 1
        assert metrics['driftbayes_unmatched_total{status="405"}'] == 1
        served = {k: v for k, v in metrics.items() if k.startswith("driftbayes_served_status")}
        assert sum(served.values()) == 21
        assert served.get('driftbayes_served_status_total{status="500"}', 0) == (
            statuses.count(500) + (r.status_code == 500))
        assert metrics['driftbayes_served_latency_ms_bucket{le="+Inf"}'] == 21
        assert metrics["driftbayes_served_latency_ms_count"] == 21
        assert metrics["driftbayes_served_latency_ms_sum"] > 0
        buckets = [v for k, v in metrics.items() if "_bucket" in k]
        assert buckets == sorted(buckets)
        assert metrics["driftbayes_learning_updates_total"] == lrn.n_windows_


def test_http_reset_persists_state(learner, tmp_path):
    lrn = copy.deepcopy(learner)
    state = tmp_path / "state.nc"
    eng = MockEngine(lrn, CFG, seed=1)
    app = create_app(eng, learner=lrn, config=CFG, state_path=state)
    with serving(app) as url:
        r = httpx.post(url + "/__driftbayes/reset", params={"persona": "nobody"}, json={},
                       timeout=LOADED)
        assert r.status_code == 400 and "nobody" in r.json()["error"]
        assert not state.exists()
        r = httpx.post(url + "/__driftbayes/reset",
                       json={"persona": "batch", "endpoint": "/api/users/*"}, timeout=LOADED)
        assert r.status_code == 200, r.text
        assert r.json()["reset_cells"] == 1 and r.json()["saved"] == str(state)
        assert eng.reloads == 2
    saved = load_state(state)
    e, p = saved.resolve_endpoint(USERS), saved.resolve_persona("batch")
    assert saved.evidence_["lat_n"][e, p] == 0 and saved.applied_["lat_n"][e, p] == 0
    assert saved.evidence_["lat_n"][e, saved.resolve_persona("web")] > 0
    assert saved.evidence_["lat_n"][saved.resolve_endpoint("/api/orders/{id}"), p] > 0
    # the engine now serves the reset learner's applied layer
    want = cj.dirichlet_mean(saved.snapshot().layer("applied").lat_alpha)[e, p]
    np.testing.assert_allclose(eng.latency_probs(e, eng.personas.index("batch")), want)


def test_admin_token_and_no_headers(learner):
    lrn = copy.deepcopy(learner)
    app = create_app(MockEngine(lrn, CFG, seed=1), learner=lrn, config=CFG, headers=False,
                     admin_token="s3cret")
    with serving(app) as url:
        for path in ("health", "patterns", "config", "metrics"):
            r = _get(url, f"/__driftbayes/{path}")
            assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
        assert _get(url, "/__driftbayes/health",
                    headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert httpx.post(url + "/__driftbayes/reset", timeout=LOADED).status_code == 401
        ok = _get(url, "/__driftbayes/health", headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200 and ok.json()["status"] == "ok"
        r = _get(url, "/api/users/3", headers={"X-Persona": "web"})  # the mock needs no token
        assert r.status_code in (200, 500)
        assert not [h for h in r.headers if h.lower().startswith("x-driftbayes")]
        assert r.json()["endpoint"] == USERS
    assert lrn.n_events_ == learner.n_events_  # the rejected reset did nothing
