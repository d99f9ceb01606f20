"""Session flows in the mock server (traffic_mirroring): steps judged by the transition model."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
from scipy import stats

from driftbayes import conjugate as cj
from driftbayes.config import Config
from driftbayes.events import EventBatch
from driftbayes.learner import DriftLearner
from driftbayes.server.app import (
    FLOW_CREDIBILITY,
    FLOW_MIN_PROBABILITY,
    MockEngine,
    create_app,
    serving,
)
from tests.helpers import LOADED

CFG = Config(update_interval=60, sensitivity=1, min_samples=1, decay=0)  # all evidence kept
FLOW = [("GET", "/products"), ("POST", "/cart"), ("POST", "/checkout")]


def _sessions(n: int = 800, seed: int = 0) -> EventBatch:
    """Shop sessions: browse, then (2 in 3) add to the cart, then (1 in 2) check out."""
    rng = np.random.default_rng(seed)
    rows, t = [], 1_000_000.0
    for s in range(n):
        depth = 1 + (rng.random() < 2 / 3) * (1 + (rng.random() < 0.5))
        for k in range(depth):
            method, path = FLOW[k]
            rows.append({"ts": t + 20 * k, "method": method, "endpoint": path, "status": 200,
                         "latency_ms": 10.0, "persona": "web", "session": f"s{s}"})
        t += 20.0
    rows.sort(key=lambda r: r["ts"])
    return EventBatch.from_records(rows)


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


@pytest.fixture(scope="module")
def learner() -> DriftLearner:
    return DriftLearner(CFG).learn_many(_sessions())


def _engine(learner, flow="enforce"):
    eng = MockEngine(learner, CFG, seed=3, flow=flow)
    eng.sessions.clock = Clock()
    return eng


def _go(eng, method, path, sid="abc", persona="web"):
    headers = {"X-Persona": persona}
    if sid:
        headers["X-Session-Id"] = sid
    return eng.handle(method, path, headers)


def test_flow_probabilities_and_rule_match_the_transition_posterior(learner):
    eng = _engine(learner)
    snap = learner.snapshot()
    web = snap.resolve_persona("web")
    alpha = snap.layer("applied").transitions.dense()[web]
    counts = snap.applied_["trans_count"].to_dense()[web]
    E = len(snap.endpoints_)
    for previous, src in [(None, E)] + [(k, i) for i, k in enumerate(snap.endpoints_)]:
        row, c = alpha[src], counts[src]
        for e in range(E):
            prob, ruled_out, _ = eng.flow_step(e, web, previous)
            assert prob == pytest.approx(cj.dirichlet_mean(row)[e], rel=1e-12)
            # Jeffreys interval on the counts (scipy, independently of the engine)
            upper = stats.beta(c[e] + 0.5, c.sum() - c[e] + 0.5).ppf(FLOW_CREDIBILITY)
            assert ruled_out == (upper < FLOW_MIN_PROBABILITY)
    # the learned flow: sessions start at /products, /checkout only follows /cart
    starts = [eng.flow_step(snap.resolve_endpoint(f"{m} {p}"), 0, None)[1] for m, p in FLOW]
    assert starts == [False, True, True]
    after_cart = eng.flow_step(snap.resolve_endpoint("POST /checkout"), 0, "POST /cart")
    assert after_cart[1] is False and after_cart[0] > 0.3


def test_enforce_answers_ruled_out_steps_409_without_moving_the_session(learner):
    eng = _engine(learner)
    plan = _go(eng, "POST", "/checkout")
    assert plan.status == 409 and plan.latency_ms > 0
    assert "ruled-out" in plan.headers["X-Driftbayes-Flow"]
    assert "GET /products" in plan.body.decode()  # names the expected first step
    statuses = [_go(eng, m, p).status for m, p in FLOW]
    assert statuses == [200, 200, 200]
    assert eng.served.out_of_flow == 1
    # /cart again right after /checkout was never seen: ruled out
    assert _go(eng, "POST", "/cart").status == 409
    # after the session gap the session starts again from START
    eng.sessions.clock.now += CFG.session_gap + 1
    assert _go(eng, "POST", "/cart").status == 409
    assert _go(eng, "GET", "/products").status == 200


def test_annotate_off_and_sessionless_requests_never_409(learner):
    annotate = _engine(learner, "annotate")
    plan = _go(annotate, "POST", "/checkout")
    assert plan.status == 200 and "ruled-out" in plan.headers["X-Driftbayes-Flow"]
    off = _engine(learner, "off")
    plan = _go(off, "POST", "/checkout")
    assert plan.status == 200 and "X-Driftbayes-Flow" not in plan.headers
    enforce = _engine(learner)
    assert all(_go(enforce, "POST", "/checkout", sid=None).status == 200 for _ in range(20))
    assert len(enforce.sessions) == 0


def test_traffic_mirroring_sets_the_default_and_bad_modes_fail(learner):
    assert MockEngine(learner, CFG).flow == "enforce"
    assert MockEngine(learner, Config(traffic_mirroring=False)).flow == "off"
    with pytest.raises(ValueError, match="flow must be one of"):
        MockEngine(learner, CFG, flow="strict")


def test_flow_over_http_with_a_session_cookie(learner):
    eng = MockEngine(learner, CFG, seed=5)
    app = create_app(eng, learner=learner, config=CFG)
    with serving(app) as url, httpx.Client(base_url=url, trust_env=False,
                                         timeout=LOADED) as client:
        jar = {"Cookie": "theme=dark; sessionid=u-1", "X-Persona": "web"}
        r = client.post("/checkout", headers=jar)
        assert r.status_code == 409 and r.json()["error"].startswith("POST /checkout")
        codes = [client.request(m, p, headers=jar).status_code for m, p in FLOW]
        assert codes == [200, 200, 200]
        r = client.get("/products", headers={**jar, "Cookie": "sessionid=u-2"})
        assert r.status_code == 200
        assert r.headers["X-Driftbayes-Next"].startswith(("POST /cart", "END"))
        metrics = client.get("/__driftbayes/metrics").text
        assert "driftbayes_out_of_flow_total 1" in metrics
        assert "driftbayes_sessions 2" in metrics


def test_persona_rules_and_map_pick_the_persona_when_no_header_does(tmp_path, learner):
    from driftbayes.learner import DriftLearner

    personas = _sessions(60)
    personas.persona[::2] = "mobile"
    learnt = DriftLearner(CFG).learn_many(personas)
    (tmp_path / "map.yaml").write_text("mobile: [10.0.0.7]\nops: [10.0.0.8]\n")
    cfg = Config.from_dict({
        "update_interval": 60, "persona_map": str(tmp_path / "map.yaml"),
        "persona_rules": [{"persona": "mobile", "when": {"user_agent": "*Mobile*"}},
                          {"persona": "web", "when": {"query": "re:(^|&)web=1"}}]}, warn=False)
    eng = MockEngine(learnt, cfg, seed=0)
    idx = {name: eng.personas.index(name) for name in ("web", "mobile")}
    assert eng.persona({"User-Agent": "Shop/2 (iPhone; Mobile)"}, "GET", "/products") == idx[
        "mobile"]
    assert eng.persona({"User-Agent": "Mobile", "X-Persona": "web"}) == idx["web"]  # header wins
    assert eng.persona({}, "GET", "/products?a=1&web=1") == idx["web"]
    plan = eng.handle("GET", "/products", {"User-Agent": "x Mobile y"})
    assert plan.persona == idx["mobile"]
    assert eng.persona({}, "GET", "/products", client="10.0.0.7") == idx["mobile"]
    # a map hit naming a persona the state never learned falls back to the default persona
    assert eng.persona({}, "GET", "/products", client="10.0.0.8") == eng._t.default_persona
