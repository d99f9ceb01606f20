"""Secrets without telling names, planted in HAR, JSONL and record-mode traffic, never reach any
output: state bytes and variables, ``patterns``, ``sample``, every export, served headers and
bodies, admin responses, metrics and logs."""

from __future__ import annotations

import logging
import sys
import threading
import time
from pathlib import Path

import numpy as np
import orjson
import pytest
import xarray as xr
from typer.testing import CliRunner

from driftbayes.cli import app as cli
from driftbayes.config import Config
from driftbayes.events import EventBatch
from driftbayes.io.recordings import read_events
from driftbayes.redact import find_secrets, hash_session
from tests.helpers import LOADED

sys.path.insert(0, str(Path(__file__).parent / "io"))
from ingest_samples import Rec, har_bytes, har_entry  # noqa: E402

runner = CliRunner()

JWT = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJwbGFudGVkIn0."
       "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c")
#: kind -> a value with no telling name; each is found by exactly that detector.
PLANTED = {
    "jwt": JWT,
    "aws_key": "AKIAPLANTED0EXAMPLE7",
    "github_token": "ghp_PLANTEDx0123456789abcdefghijklmnopqr",
    "slack_token": "xoxb-1234567890-PLANTEDslack0token",
    "stripe_key": "sk_live_PLANTEDstripe0key1234",
    "card": "4929-7312-8465-9018",  # not one of the export fakes
    "email": "planted.user@example.org",
    "iban": "GB82WEST12345698765432",
    "ssn": "536-22-8711",  # not one of the export fakes
    "entropy": "Zq8Xv3Lm9Rt2Wp7Ks4Nd6Hy1Bc5Fg0Jx",
}
#: Raw bytes searched for in every output (the card without dashes too).
NEEDLES = [v.encode() for v in PLANTED.values()] + [b"4929731284659018", b"PLANTED"]
SESSION = "sess-PLANTED-session-id-0042"  # a session id: stored hashed


def test_planted_values_are_what_their_detector_finds():
    for kind, value in PLANTED.items():
        spans = find_secrets(f"x {value} y")
        assert [k for _, _, k in spans] == [kind], kind


def assert_clean(data: str | bytes, where: str) -> None:
    data = data.encode() if isinstance(data, str) else data
    for needle in NEEDLES:
        assert needle not in data, f"{needle!r} leaked into {where}"
    assert SESSION.encode() not in data, f"the raw session id leaked into {where}"


def our_logs(caplog) -> str:
    """Messages logged by driftbayes and its servers (not the test's own HTTP client)."""
    return "\n".join(r.getMessage() for r in caplog.records
                     if not r.name.startswith(("httpx", "httpcore", "numba", "h5py")))


def _body(kind: str) -> dict:
    value = PLANTED[kind]
    return {"note": f"see {value} here", "items": [{"ref": value}], "ok": True}


def planted_har(path: Path) -> Path:
    entries = []
    for i, (kind, value) in enumerate(PLANTED.items()):
        for j in range(3):
            e = har_entry(Rec(3 * i + j, i, j, 200, 10 + j),
                          headers={"X-Note": value, "Referer": f"https://h/r/{value}"},
                          url=f"https://api.example.com/api/things/{value}/detail"
                              f"?ref={value}&page=2")
            e["response"]["content"] = {"size": 10, "mimeType": "application/json",
                                        "text": orjson.dumps(_body(kind)).decode()}
            entries.append(orjson.dumps(e))
    doc, _ = har_bytes(entries)
    path.write_bytes(doc)
    return path


def planted_jsonl(path: Path) -> Path:
    lines = []
    for i, value in enumerate(PLANTED.values()):
        for j in range(3):
            lines.append(orjson.dumps({
                "ts": 1_700_000_000 + 30 * i + 7 * j, "method": "GET",
                "path": f"/api/things/{value}/detail?ref={value}", "status": 200,
                "latency_ms": 5 + j, "session": SESSION if j else value,
            }))
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def run(*args) -> str:
    res = runner.invoke(cli, [str(a) for a in args])
    assert res.exit_code == 0, res.output
    return res.output


def strings_of(ds: xr.Dataset):
    for name, var in ds.variables.items():
        yield str(name)
        if var.dtype.kind in "OSU":
            yield from (str(v) for v in np.asarray(var.values).ravel())
        yield from (f"{k}={v}" for k, v in var.attrs.items())
    yield from (f"{k}={v}" for k, v in ds.attrs.items())


def check_outputs(state: Path, tmp: Path) -> None:
    """Grep the state, patterns, sample, all exports, served responses, admin and metrics."""
    assert_clean(state.read_bytes(), "the state file bytes")
    with xr.open_dataset(state, engine="h5netcdf") as ds:
        texts = "\n".join(strings_of(ds.load()))
    assert "/api/things/{jwt}/detail" in texts  # typed parameters, not the secrets
    assert "{email}" in texts and "{token}" in texts
    assert_clean(texts, "the state's variables and attributes")
    rows = orjson.loads(run("patterns", "--state", state, "--format", "json"))
    endpoints = {r["endpoint"] for r in rows}
    typed = {"entropy": "token"}
    assert {f"/api/things/{{{typed.get(k, k)}}}/detail" for k in PLANTED} <= endpoints
    assert_clean(orjson.dumps(rows), "patterns --format json")
    assert_clean(run("patterns", "--state", state), "patterns table")
    assert_clean(run("sample", "--state", state, "-n", "100", "--seed", "1"), "sample")
    assert_clean(run("sample", "--state", state, "--sessions", "3", "--seed", "2"),
                 "sample --sessions")
    for fmt, extra in (("wiremock", ["--wiremock-statuses", "ring"]), ("mockoon", []),
                       ("mockforge", []), ("locust", []), ("netcdf", ["--draws", "20"])):
        out = tmp / f"export-{fmt}" / ("out" if fmt in ("wiremock", "mockforge") else "f")
        out.parent.mkdir()
        assert_clean(run("export", "--to", fmt, "--out", out, "--state", state, *extra),
                     f"export {fmt} output")
        files = [p for p in out.parent.rglob("*") if p.is_file()]
        assert files, fmt
        for f in files:
            assert_clean(f.read_bytes(), f"export {fmt}: {f.name}")
            if fmt == "netcdf":
                with xr.open_dataset(f, engine="h5netcdf") as ds:
                    assert_clean("\n".join(strings_of(ds.load())), "export netcdf strings")
    serve_and_grep(state)


def serve_and_grep(state: Path) -> None:
    from starlette.testclient import TestClient

    from driftbayes.server.app import MockEngine, create_app
    from driftbayes.state import load_state

    learner = load_state(state)
    app = create_app(MockEngine(learner, learner.config, seed=1), learner=learner,
                     config=learner.config)
    with TestClient(app, base_url="http://127.0.0.1") as client:  # a loopback Host
        served = 0
        for value in PLANTED.values():  # a client sends the secret path again
            r = client.get(f"/api/things/{value}/detail?ref={value}",
                           headers={"X-Note": value})
            served += r.status_code != 404
            where = f"served response to /api/things/{value[:8]}…"
            assert_clean(b"".join(f"{k}: {v}\n".encode() for k, v in r.headers.items()),
                         where + " headers")
            assert_clean(r.content, where + " body")
        assert served == len(PLANTED)  # every secret path matched its typed template
        for admin in ("health", "patterns", "config", "metrics"):
            r = client.get(f"/__driftbayes/{admin}")
            assert r.status_code == 200, admin
            assert_clean(r.content, f"admin {admin}")
            assert_clean(str(r.headers), f"admin {admin} headers")


@pytest.mark.parametrize("kind", ["har", "jsonl"])
def test_secrets_by_value_never_reach_outputs(tmp_path, kind, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    rec = (planted_har if kind == "har" else planted_jsonl)(tmp_path / f"traffic.{kind}")
    assert all(n in rec.read_bytes() for n in NEEDLES[:-2] if n != b"4929731284659018")
    state = tmp_path / "state.nc"
    assert_clean(run("learn", rec, "--state", state, "--no-progress"), "learn output")
    check_outputs(state, tmp_path)
    if kind == "jsonl":  # session ids stored hashed, like record mode's
        b = EventBatch.concat(list(read_events(rec, config=Config())))
        assert hash_session(SESSION) in set(b.session.tolist())
        assert not {SESSION, *PLANTED.values()} & set(b.session.tolist())
    assert_clean(our_logs(caplog), "log records")
    out, err = capfd.readouterr()
    assert_clean(out + err, "captured stdout/stderr")


# ------------------------------------------------------------------------------ record mode


def test_record_mode_secrets_and_access_log(tmp_path, caplog):
    pytest.importorskip("uvicorn")
    import httpx
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from driftbayes.learner import DriftLearner
    from driftbayes.server.record import create_record_app

    from .server.conftest import run_uvicorn

    async def thing(request: Request) -> Response:
        value = request.path_params["v"]
        kind = next(k for k, v in PLANTED.items() if v == value)
        return Response(orjson.dumps(_body(kind)), media_type="application/json",
                        headers={"X-Echo-Note": "fine"})

    upstream = Starlette(routes=[Route("/api/things/{v}/detail", thing)])
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record):
            lines.append(self.format(record))

    handler = Collect()
    caplog.set_level(logging.DEBUG)
    state = tmp_path / "state.nc"
    learner = DriftLearner()
    with run_uvicorn(upstream) as up:
        proxy = create_record_app(up, learner, state_path=state)
        # uvicorn as `driftbayes record` runs it: its default logging config, access log on
        config = uvicorn.Config(proxy, host="127.0.0.1", port=0, log_level="info",
                                lifespan="on")
        server = uvicorn.Server(config)
        for name in ("uvicorn.access", "uvicorn.error", "driftbayes.record"):
            logging.getLogger(name).addHandler(handler)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        try:
            deadline = time.monotonic() + 60  # generous: the loop ends as soon as it listens
            while not server.started:
                assert thread.is_alive() and time.monotonic() < deadline
                time.sleep(0.01)
            base = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
            with httpx.Client(timeout=LOADED, trust_env=False) as client:
                for value in PLANTED.values():
                    for _ in range(2):
                        r = client.get(f"{base}/api/things/{value}/detail",
                                       params={"api_key": "k-PLANTED-1", "ref": value},
                                       headers={"X-Note": value, "X-Session-Id": SESSION})
                        assert r.status_code == 200 and value.encode() in r.content  # relayed
            proxy.flush()
        finally:
            server.should_exit = True
            thread.join(timeout=15)
            for name in ("uvicorn.access", "uvicorn.error", "driftbayes.record"):
                logging.getLogger(name).removeHandler(handler)
    access = [ln for ln in lines if "/api/things/" in ln]
    assert len(access) >= 2 * len(PLANTED)  # the access log did print every request …
    assert any("api_key=%5BREDACTED%5D" in ln or "api_key=[REDACTED]" in ln for ln in access)
    assert any("/api/things/{jwt}/detail" in ln for ln in access)
    log_text = "\n".join(lines) + our_logs(caplog)
    assert_clean(log_text, "record-mode logs")  # … but never a raw query string or secret
    assert learner.n_events_ == 2 * len(PLANTED)
    check_outputs(state, tmp_path)
