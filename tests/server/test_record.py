"""Record mode: the proxy relays byte for byte, survives upstream failures, learns, redacts."""

from __future__ import annotations

import asyncio
import gzip
import importlib
import math
import time

import numpy as np
import orjson
import pytest

pytest.importorskip("starlette")
httpx = pytest.importorskip("httpx")

from starlette.applications import Starlette  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import JSONResponse, Response, StreamingResponse  # noqa: E402
from starlette.routing import Route  # noqa: E402

from driftbayes.config import Config  # noqa: E402
from driftbayes.events import EventBatch  # noqa: E402
from driftbayes.learner import DriftLearner  # noqa: E402
from driftbayes.patterns import patterns  # noqa: E402
from driftbayes.server.record import create_record_app  # noqa: E402
from driftbayes.state import load_state  # noqa: E402
from tests.helpers import LOADED  # noqa: E402

from .conftest import run_dropper, run_uvicorn  # noqa: E402

SECRET = "s3cr3t-XYZ"
BINARY = np.random.default_rng(3).bytes(200_000)
GZIPPED = gzip.compress(b'{"compressed": true}' * 50, mtime=0)
#: The proxies' upstream timeout: long enough for every quick upstream answer on a loaded
#: machine (the upstream runs in this process, beside a second test process and other work),
#: short against /slow's :data:`SLOW_S`.
PROXY_TIMEOUT = 5.0
SLOW_S = 30.0


# ------------------------------------------------------------------------------ upstream


async def user(request: Request) -> Response:
    body = orjson.dumps({"id": request.path_params["uid"], "name": "Ada"})
    return Response(body, media_type="application/json",
                    headers={"X-Custom": "kept", "Cache-Control": "no-store"})


async def account(request: Request) -> Response:
    body = gzip.compress(orjson.dumps({"id": 7, "plan": "pro", "token": SECRET,
                                       "nested": [{"password": SECRET, "ok": True}]}), mtime=0)
    return Response(body, media_type="application/json; charset=utf-8",
                    headers={"Content-Encoding": "gzip"})


async def binary(request: Request) -> Response:
    return Response(BINARY, media_type="application/octet-stream")


async def gz(request: Request) -> Response:
    return Response(GZIPPED, media_type="application/json",
                    headers={"Content-Encoding": "gzip"})


async def redirect(request: Request) -> Response:
    return Response(status_code=302, headers={"Location": "http://elsewhere.invalid/landing"})


async def boom(request: Request) -> Response:
    return Response(b"upstream broke", status_code=500, media_type="text/plain")


async def slow(request: Request) -> Response:
    # answers long after any proxy timeout; stops early once the proxy hung up
    for _ in range(int(SLOW_S / 0.05)):
        if await request.is_disconnected():
            break
        await asyncio.sleep(0.05)
    return Response(b"too late")


async def drop_mid_body(request: Request) -> Response:
    async def chunks():
        yield b"partial"
        await asyncio.sleep(0.05)
        raise RuntimeError("upstream dies mid-body")

    return StreamingResponse(chunks(), media_type="text/plain")


async def echo(request: Request) -> Response:
    body = await request.body()
    return JSONResponse({"body": body.decode(), "headers": dict(request.headers),
                         "query": request.url.query})


def cookies(request: Request) -> Response:
    r = Response(b"ok")
    r.raw_headers += [(b"set-cookie", b"a=1"), (b"set-cookie", b"b=2")]
    return r


UPSTREAM = Starlette(routes=[
    Route("/api/users/{uid}", user),
    Route("/account", account),
    Route("/bin", binary),
    Route("/gz", gz),
    Route("/redirect", redirect),
    Route("/boom", boom, methods=["GET", "POST"]),
    Route("/slow", slow),
    Route("/drop", drop_mid_body),
    Route("/echo", echo, methods=["GET", "POST", "PUT"]),
    Route("/cookies", cookies),
])


@pytest.fixture(scope="module")
def upstream():
    with run_uvicorn(UPSTREAM) as url:
        yield url


@pytest.fixture()
def client():
    # idle connections expire before uvicorn's 5 s keep-alive closes them under the client
    with httpx.Client(timeout=LOADED, trust_env=False,
                      limits=httpx.Limits(keepalive_expiry=1.0)) as c:
        yield c


def _proxy(upstream_url, learner=None, **kw):
    learner = learner or DriftLearner(kw.pop("config", None))
    kw.setdefault("timeout_s", PROXY_TIMEOUT)
    # tests flush by hand (or at shutdown) and count what was buffered: no background flush
    # may slip in between on a slow machine (test_periodic_learning_and_save sets its own)
    kw.setdefault("flush_every", 3600.0)
    return create_record_app(upstream_url, learner, learner.config, **kw), learner


def _health(client, base):
    r = client.get(base + "/__driftbayes/health")
    assert r.status_code == 200
    return r.json()


# ------------------------------------------------------------------------------ relaying


def test_relay_byte_for_byte(upstream, client):
    app, _ = _proxy(upstream)
    with run_uvicorn(app) as proxy:
        for path in ("/api/users/42", "/bin", "/redirect", "/boom", "/cookies"):
            direct = client.get(upstream + path)
            via = client.get(proxy + path)
            assert via.status_code == direct.status_code, path
            assert via.content == direct.content, path
            for h in ("content-type", "x-custom", "cache-control", "location"):
                assert via.headers.get(h) == direct.headers.get(h), (path, h)
        # the redirect went back to the client, not followed
        r = client.get(proxy + "/redirect")
        assert r.status_code == 302
        assert r.headers["location"] == "http://elsewhere.invalid/landing"
        assert r.content == b""
        # duplicate headers survive
        assert client.get(proxy + "/cookies").headers.get_list("set-cookie") == ["a=1", "b=2"]
        # content encoding is not undone: the raw (compressed) bytes come through
        with client.stream("GET", proxy + "/gz", headers={"Accept-Encoding": "gzip"}) as r:
            raw = b"".join(r.iter_raw())
        assert raw == GZIPPED
        assert r.headers["content-encoding"] == "gzip"
        assert _health(client, proxy)["forwarded"] == 8


def test_request_forwarding(upstream, client):
    app, _ = _proxy(upstream)
    with run_uvicorn(app) as proxy:

        def body():
            yield b"hello "
            yield b"streamed world"

        r = client.post(proxy + "/echo?x=1&y=%2F", content=body(),
                        headers={"X-Custom-In": "v", "Keep-Alive": "timeout=5",
                                 "Connection": "keep-alive, X-Drop-Me", "X-Drop-Me": "1",
                                 "TE": "trailers", "Upgrade": "h2c"})
        assert r.status_code == 200
        echoed = r.json()
        assert echoed["body"] == "hello streamed world"
        assert echoed["query"] == "x=1&y=%2F"
        seen = echoed["headers"]
        assert seen["x-custom-in"] == "v"
        assert seen["host"] == upstream.removeprefix("http://")  # Host rewritten
        for hop in ("keep-alive", "x-drop-me", "te", "upgrade"):
            assert hop not in seen, hop
        assert seen["x-forwarded-for"] == "127.0.0.1"
        assert seen["x-forwarded-host"] == proxy.removeprefix("http://")
        # a bodiless GET is sent without a body
        echoed = client.get(proxy + "/echo").json()
        assert echoed["body"] == ""
        assert "transfer-encoding" not in echoed["headers"]


def test_upstream_failures(upstream, client):
    app, learner = _proxy(upstream)
    with run_uvicorn(app) as proxy:
        r = client.get(proxy + "/slow")
        assert r.status_code == 504
        assert r.json()["error"] == "upstream timeout"
        # the connection drops mid-body: the client sees a broken response, not a clean one
        with pytest.raises(httpx.HTTPError):
            client.get(proxy + "/drop")
        assert client.get(proxy + "/api/users/1").status_code == 200  # still serving
        h = _health(client, proxy)
        assert h["upstream_errors"] == 2
        assert h["recorded"] == 3
        assert app.flush() == 3
    ev = learner.snapshot()
    assert sorted(ev.statuses_) == [200, 500, 502, 504]
    assert ev.n_events_ == 3


def test_reset_and_refused(client):
    with run_dropper() as dropper:
        app, learner = _proxy(dropper)
        with run_uvicorn(app) as proxy:
            for _ in range(3):
                r = client.get(proxy + "/api/orders/7")
                assert r.status_code == 502
                assert r.json()["error"] == "upstream unreachable"
            assert _health(client, proxy)["upstream_errors"] == 3
    # nothing listens here any more: connection refused is a 502 too
    app, learner2 = _proxy(dropper)
    with run_uvicorn(app) as proxy:
        assert client.get(proxy + "/x").status_code == 502
        assert _health(client, proxy) == {"status": "ok", "recorded": 1, "forwarded": 0,
                                          "mocked": 0, "upstream_errors": 1,
                                          "bad_records": 0}
    # the lifespan's shutdown learned what was buffered
    assert learner.n_events_ == 3 and learner2.n_events_ == 1
    assert learner.endpoints_ == ["GET /api/orders/{id}"]


def test_admin_is_never_forwarded(upstream, client):
    app, _ = _proxy(upstream)
    with run_uvicorn(app) as proxy:
        assert client.post(proxy + "/__driftbayes/health").status_code == 405
        assert client.get(proxy + "/__driftbayes/nope").status_code == 404
        assert _health(client, proxy)["recorded"] == 0


# ------------------------------------------------------------------------------ learning


def test_learns_saves_and_redacts(upstream, client, tmp_path):
    state = tmp_path / "state.nc"
    app, learner = _proxy(upstream, state_path=state)
    n = 0
    with run_uvicorn(app) as proxy:
        for i in range(12):
            headers = {"X-Persona": "premium" if i % 3 == 0 else "basic",
                       "Authorization": f"Bearer {SECRET}",
                       "Cookie": f"session={SECRET}; theme=dark",
                       "X-Api-Key": SECRET}
            assert client.get(f"{proxy}/api/users/{100 + i}?api_key={SECRET}&page=2",
                              headers=headers).status_code == 200
            n += 1
        assert client.get(proxy + "/boom", headers={"Authorization": SECRET}).status_code == 500
        assert client.get(proxy + f"/slow?token={SECRET}").status_code == 504
        n += 2
        assert app.flush() == n
        assert learner.n_events_ == n
        assert state.exists()
    assert set(learner.endpoints_) == {"GET /api/users/{id}", "GET /boom", "GET /slow"}
    assert {"premium", "basic"} <= set(learner.personas_)
    # one session (from the hashed session cookie) holds the user requests
    sessions = [s.session for s in learner.sessions.open() if s.session.startswith("s-")]
    assert len(sessions) == 1 and SECRET not in sessions[0]
    reloaded = load_state(state)
    assert reloaded.n_events_ == n
    assert reloaded.endpoints_ == learner.endpoints_
    raw = state.read_bytes()
    assert SECRET.encode() not in raw and b"s3cr3t" not in raw
    pats = orjson.dumps(patterns(reloaded), option=orjson.OPT_SERIALIZE_NUMPY)
    assert b"s3cr3t" not in pats
    assert b"s3cr3t" not in orjson.dumps(patterns(learner), option=orjson.OPT_SERIALIZE_NUMPY)


def test_event_fields(upstream, client):
    app, learner = _proxy(upstream)
    rec = app.state.recorder
    with run_uvicorn(app) as proxy:
        client.get(proxy + "/api/users/5?api_key=" + SECRET,
                   headers={"Authorization": "Bearer " + SECRET, "User-Agent": "UA/1"})
        client.get(proxy + "/slow")
        rows = list(rec._buffer)
    assert [r["endpoint"] for r in rows] == ["/api/users/{id}", "/slow"]
    ok, slow_row = rows
    assert ok["status"] == 200 and slow_row["status"] == 504
    # the timeout's own wait is recorded, and the proxy gave up long before /slow answered
    assert 0 < ok["latency_ms"] < slow_row["latency_ms"]
    assert PROXY_TIMEOUT * 1000 <= slow_row["latency_ms"] < SLOW_S * 1000
    assert ok["ts"] <= slow_row["ts"] and abs(ok["ts"] - time.time()) < 60
    assert ok["extra"]["client"] == "127.0.0.1"
    assert ok["extra"]["user_agent"] == "UA/1"
    assert ok["extra"]["header:authorization"] == "[REDACTED]"
    assert SECRET not in ok["extra"]["query"]
    assert SECRET not in repr(rows)


def test_periodic_learning_and_save(upstream, client, tmp_path):
    state = tmp_path / "s.nc"
    cfg = Config(update_interval=0.2)
    app, learner = _proxy(upstream, config=cfg, state_path=state, flush_every=0.05)
    with run_uvicorn(app) as proxy:
        for i in range(5):
            client.get(f"{proxy}/api/users/{i}")
        deadline = time.monotonic() + 60  # generous: the loop ends as soon as it learned
        while not (state.exists() and learner.n_events_ == 5):
            assert time.monotonic() < deadline, "background learning stalled"
            time.sleep(0.05)
        time.sleep(0.3)
        for i in range(3):
            client.get(f"{proxy}/api/users/{i}")
    # shutdown learned and saved the rest
    assert load_state(state).n_events_ == 8


# ------------------------------------------------------------------------------ mix


def _engine_available() -> str | None:
    try:
        mod = importlib.import_module("driftbayes.server.app")
    except Exception as exc:  # noqa: BLE001
        return f"driftbayes.server.app is not importable yet ({type(exc).__name__}: {exc})"
    return None if hasattr(mod, "MockEngine") else "driftbayes.server.app has no MockEngine"


def test_mix_serves_a_share_from_the_mock(upstream, client):
    reason = _engine_available()
    if reason:
        pytest.skip(reason)
    cfg = Config.from_dict({"synthetic": {"latency_median_ms": 1.0, "latency_sigma": 0.2,
                                          "error_rate": 0.0}})
    learner = DriftLearner(cfg)
    learner.learn_many(EventBatch.from_records(
        [{"ts": time.time() - 60.0 + i, "path": f"/api/users/{i}", "status": 200, "latency_ms": 1.0}
         for i in range(50)]))
    n_before = learner.n_events_
    app, _ = _proxy(upstream, learner=learner, mix=0.5, seed=11)
    n = 200
    with run_uvicorn(app) as proxy:
        sources = [client.get(f"{proxy}/api/users/{i}").headers.get("x-driftbayes-source")
                   for i in range(n)]
        h = _health(client, proxy)
        app.flush()
    mocked = sources.count("mock")
    assert h["mocked"] == mocked and h["forwarded"] == n - mocked
    se = math.sqrt(n * 0.25)
    assert abs(mocked - n / 2) <= 4 * se, mocked
    assert learner.n_events_ == n_before + (n - mocked)  # mocked requests are not learned


def test_records_redacted_bodies_the_mock_serves(upstream, client, tmp_path):
    from driftbayes.server.app import MockEngine

    state = tmp_path / "state.nc"
    app, learner = _proxy(upstream, state_path=state)
    with run_uvicorn(app) as proxy:
        wire = client.get(proxy + "/account", headers={"Accept-Encoding": "gzip"})
        assert SECRET.encode() in wire.content  # the client gets the upstream's answer as is
        client.get(proxy + "/bin")
        client.get(proxy + "/api/users/3")
        client.get(proxy + "/boom")
        app.flush()
    kept = learner.bodies_
    assert set(kept) == {("GET /account", 200), ("GET /api/users/{id}", 200), ("GET /boom", 500)}
    ctype, text = kept[("GET /account", 200)]
    assert ctype == "application/json" and SECRET not in text
    assert orjson.loads(text) == {"id": 7, "plan": "pro", "token": "[REDACTED]",
                                  "nested": [{"password": "[REDACTED]", "ok": True}]}
    assert kept[("GET /boom", 500)] == ("text/plain", "upstream broke")
    assert SECRET.encode() not in state.read_bytes()
    served = MockEngine(load_state(state), learner.config, seed=0)
    e, _ = served.match("GET", "/account")
    assert served.body_and_type(e, 200) == ("application/json", text.encode())
    e, _ = served.match("GET", "/bin")  # binary: never kept, so the stub is served
    assert orjson.loads(served.body(e, 200))["mock"] == "driftbayes"


# ------------------------------------------------------------------------------ writers


def test_nul_path_is_a_bad_record_and_never_breaks_a_save(upstream, client, tmp_path):
    state = tmp_path / "state.nc"
    app, _ = _proxy(upstream, state_path=state)
    rec = app.state.recorder
    with run_uvicorn(app) as proxy:
        assert client.get(proxy + "/a%00b").status_code == 404  # relayed, not learned
        assert client.get(proxy + "/api/users/1", headers={"X-Persona": "p\tq"}
                          ).status_code == 200
        for i in range(3):
            assert client.get(f"{proxy}/api/users/{i}").status_code == 200
        assert app.flush() == 3
        assert _health(client, proxy)["bad_records"] == 2
        assert client.get(proxy + "/api/users/9").status_code == 200
        assert app.flush() == 1
    # every save succeeded, and the exit figure is what the file holds
    assert rec.save_error is None
    assert rec.saved_events == load_state(state).n_events_ == 4
    saved = load_state(state)
    assert all("\x00" not in e for e in saved.endpoints_) and "p\tq" not in saved.personas_


def test_record_save_rereads_newer_learning(upstream, client, tmp_path):
    from driftbayes.state import save_state
    from tests.helpers import traffic

    state = tmp_path / "state.nc"
    now = time.time()  # recorded events carry wall-clock times: keep the clock near them
    save_state(DriftLearner().learn_many(traffic(100, seed=1, t0=now - 7200)), state)
    app, _ = _proxy(upstream, learner=load_state(state), state_path=state)
    rec = app.state.recorder
    with run_uvicorn(app) as proxy:
        for i in range(3):
            assert client.get(f"{proxy}/api/users/{i}").status_code == 200
        app.flush()
        assert load_state(state).n_events_ == 103
        # another writer (`driftbayes learn`) saves 2,000 more events meanwhile
        newer = load_state(state)
        newer.learn_many(traffic(2000, seed=2, t0=now - 3600))
        save_state(newer, state)
        for i in range(2):
            assert client.get(f"{proxy}/api/users/{i}").status_code == 200
        app.flush()
        assert load_state(state).n_events_ == 2105
        # a reset by another writer is not undone either
        reset = load_state(state)
        reset.reset()
        save_state(reset, state)
        assert client.get(f"{proxy}/api/users/7").status_code == 200
    # (the shutdown flush saved the last exchange on top of the reset state)
    assert load_state(state).n_events_ == 1 == rec.saved_events
    assert rec.learner.n_events_ == 1
