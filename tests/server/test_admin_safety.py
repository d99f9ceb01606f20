"""Admin API safety (cross-site requests, DNS rebinding), safe header values, and a reset that
re-reads the state file instead of saving a stale copy over newer learning."""

from __future__ import annotations

import copy

import httpx
import numpy as np
import pytest

from driftbayes.config import Config
from driftbayes.learner import DriftLearner
from driftbayes.server.app import MockEngine, create_app, serving
from driftbayes.state import load_state, save_state
from tests.helpers import LOADED, concat, learn_in_time_order, traffic

CFG = Config(update_interval=60, sensitivity=1, min_samples=1)
RESET = "/__driftbayes/reset"


def _learn(*batches) -> DriftLearner:
    return learn_in_time_order(CFG, *batches)


@pytest.fixture(scope="module")
def learner() -> DriftLearner:
    return _learn(traffic(400, seed=1, personas=("web",)),
                  traffic(400, seed=2, personas=("batch",)))


def _app(learner, state=None, **kw):
    lrn = copy.deepcopy(learner)
    return create_app(MockEngine(lrn, CFG, seed=1), learner=lrn, config=CFG, state_path=state,
                      **kw), lrn


def _port(url: str) -> str:
    return url.rsplit(":", 1)[1]


def test_cross_site_reset_is_refused_and_same_origin_json_is_accepted(learner, tmp_path):
    state = tmp_path / "s.nc"
    save_state(learner, state)
    before = state.read_bytes()
    app, lrn = _app(learner, state)
    with serving(app) as url, httpx.Client(trust_env=False, timeout=LOADED) as c:
        port = _port(url)
        # the request: foreign Origin and Host, a text/plain body
        r = c.post(url + RESET, content=b"x", headers={
            "Origin": "http://evil.example", "Host": "evil.example:8000",
            "Content-Type": "text/plain"})
        assert r.status_code == 403
        # a foreign Host alone (DNS rebinding: the page's own name resolves to 127.0.0.1)
        assert c.post(url + RESET, json={}, headers={"Host": f"evil.example:{port}"}
                      ).status_code == 403
        assert c.get(url + "/__driftbayes/patterns", headers={"Host": "evil.example"}
                     ).status_code == 403
        # loopback Host, but a cross-site Origin
        assert c.post(url + RESET, json={}, headers={"Origin": "http://evil.example"}
                      ).status_code == 403
        assert c.post(url + RESET, json={}, headers={"Origin": "null"}).status_code == 403
        assert c.post(url + RESET, json={}, headers={"Sec-Fetch-Site": "cross-site"}
                      ).status_code == 403
        # same origin, but a body a form or a no-preflight fetch can send
        for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data"):
            r = c.post(url + RESET, content=b"x", headers={
                "Content-Type": ctype, "Origin": f"http://127.0.0.1:{port}"})
            assert r.status_code == 415, ctype
        assert c.post(url + RESET).status_code == 415  # no Content-Type at all
        assert state.read_bytes() == before and lrn.n_events_ == 800
        # loopback names with any port are accepted, same-origin JSON resets
        for host in (f"localhost:{port}", f"[::1]:{port}", "127.0.0.1"):
            assert c.get(url + "/__driftbayes/health", headers={"Host": host}
                         ).status_code == 200, host
        r = c.post(url + RESET, json={"persona": "batch"},
                   headers={"Origin": f"http://localhost:{port}", "Host": f"localhost:{port}"})
        assert r.status_code == 200, r.text
        assert r.json()["reset_cells"] == len(learner.endpoints_)
    saved = load_state(state)
    assert saved.evidence_["lat_n"][:, saved.resolve_persona("batch")].sum() == 0
    assert saved.evidence_["lat_n"][:, saved.resolve_persona("web")].sum() > 0


def test_token_replaces_the_loopback_host_rule(learner):
    app, _ = _app(learner, admin_token="tok")
    with serving(app) as url, httpx.Client(trust_env=False, timeout=LOADED) as c:
        auth = {"Authorization": "Bearer tok", "Host": "mock.internal:80"}
        assert c.get(url + "/__driftbayes/health", headers=auth).status_code == 200
        assert c.get(url + "/__driftbayes/health",
                     headers={"Host": "mock.internal"}).status_code == 401
        # the token does not make a cross-origin or non-JSON reset acceptable
        assert c.post(url + RESET, json={}, headers={**auth, "Origin": "http://evil.example"}
                      ).status_code == 403
        assert c.post(url + RESET, content=b"x", headers={**auth, "Content-Type": "text/plain"}
                      ).status_code == 415
        assert c.post(url + RESET, json={}, headers=auth).status_code == 200


def test_reset_rereads_the_state_and_keeps_newer_learning(tmp_path):
    state = tmp_path / "s.nc"
    old = _learn(traffic(100, seed=1, personas=("web",)))
    save_state(old, state)
    app, _ = _app(load_state(state), state)
    # meanwhile, another writer learns 2,000 more events into the file
    newer = load_state(state)
    more = concat(traffic(1000, seed=2, t0=3600, personas=("web",)),
                  traffic(1000, seed=3, t0=3600, personas=("batch",)))
    newer.learn_many(more.take(np.argsort(more.ts, kind="stable")))
    save_state(newer, state)
    assert load_state(state).n_events_ == 2100
    with serving(app) as url, httpx.Client(trust_env=False, timeout=LOADED) as c:
        r = c.post(url + RESET, json={"persona": "batch"})
        assert r.status_code == 200, r.text
        assert r.json()["events"] == 2100
        health = c.get(url + "/__driftbayes/health").json()
        assert health["events"] == 2100  # serve now serves the newer learning
    saved = load_state(state)
    assert saved.n_events_ == 2100
    web = saved.resolve_persona("web")
    np.testing.assert_array_equal(saved.evidence_["lat_n"][:, web],
                                  newer.evidence_["lat_n"][:, web])
    assert saved.evidence_["lat_n"][:, saved.resolve_persona("batch")].sum() == 0


def test_crlf_persona_in_a_state_is_served_with_safe_headers(tmp_path):
    evil = "evil\r\nSet-Cookie: x=1"
    state = tmp_path / "s.nc"
    save_state(_learn(traffic(300, seed=4, personas=(evil,))), state)
    lrn = load_state(state)  # a state can still hold such a persona
    assert lrn.personas_ == [evil]
    app = create_app(MockEngine(lrn, CFG, seed=1), learner=lrn, config=CFG)
    with serving(app) as url, httpx.Client(trust_env=False, timeout=LOADED) as c:
        for _ in range(5):
            r = c.get(url + "/api/cart")
            assert r.status_code in (200, 500)
            assert "set-cookie" not in r.headers
            pattern = r.headers["x-driftbayes-pattern"]
            assert "persona=evil%0D%0ASet-Cookie: x=1" in pattern
            assert all(" " <= ch <= "~" for ch in pattern)
