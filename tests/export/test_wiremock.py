"""``--to wiremock``: the mapping JSON, and the real WireMock (npm ``wiremock@3.13.2``) serving
the export — latency quantiles and status shares under concurrent load, persona routing, the
weighted-status extension and the deterministic scenario ring.

Load and overhead. On a shared 2-core machine the Python client, not WireMock, limits the
request rate (a few ms of CPU per request, WireMock closes every connection), so each route is
hammered at ~:data:`RATE` requests/s (concurrency = rate × the route's mean latency; two routes
in parallel) rather than at a fixed concurrency of 50, which would queue requests in the client
and measure that. A zero-delay probe hammered at the same concurrency would saturate the client
and overstate the overhead (~30 ms against ~5–10 ms), so it is only reported, sequentially;
the overhead of a route is measured right after it by a copy of its exported stub (same body
file, transformer and headers) matched by a probe persona, with a *fixed* delay equal to the
route's mean latency, at the route's concurrency: overhead = probe latency − that delay; it is
reported, not asserted: on a loaded machine it grows without bound and changes between the
route's run and the probes'. So what the client measures is checked from below only
(:func:`check_not_faster`), and WireMock's request journal gives the delays it drew
(``timing.addedDelay``), checked against the same quantiles on both sides (no overhead, no
timing).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest
from scipy import stats

from driftbayes.export import runtimes
from driftbayes.export.model import default_persona, largest_remainder, lognormal_fit_error
from driftbayes.export.wiremock import (
    EXTENSION_JAR,
    EXTENSION_NAME,
    FALLBACK_PRIORITY,
    MARKER,
    PERSONA_PRIORITY,
    WIREMOCK_VERSION,
    RuntimeFallbackWarning,
    WireMockExportError,
    path_template,
    ring_order,
    write_wiremock,
)
from tests.export.conftest import (
    check_not_faster,
    check_quantile,
    check_share,
    free_port,
    hammer,
    npm_package,
    running,
)
from tests.helpers import LOADED

N = 1000  # requests per checked route
PROBES = 150  # overhead probes per route
RATE = 40.0  # target requests/s per route (concurrency = RATE × mean latency)
Z90 = float(stats.norm.ppf(0.9))  # 1.2816


# --------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def jar() -> Path:
    """The standalone jar of npm ``wiremock@3.13.2``; skips without java or npm."""
    if shutil.which("java") is None:
        pytest.skip("java not installed: WireMock cannot run")
    build = npm_package("wiremock", WIREMOCK_VERSION) / "wiremock" / "build"
    return build / f"wiremock-standalone-{WIREMOCK_VERSION}.jar"


@pytest.fixture(scope="module")
def ext_export(model, jar, tmp_path_factory) -> Path:
    if shutil.which("javac") is None:
        pytest.skip("javac not installed: the weighted-status extension cannot be built")
    return write_wiremock(model, tmp_path_factory.mktemp("wm") / "ext", wiremock_jar=jar)


@pytest.fixture(scope="module")
def ring_export(model, tmp_path_factory) -> Path:
    return write_wiremock(model, tmp_path_factory.mktemp("wm") / "ring", statuses="ring",
                          ring_size=100)


def stubs(root: Path) -> list[dict]:
    out = []
    for f in sorted((root / "mappings").glob("*.json")):
        out += json.loads(f.read_text())["mappings"]
    return out


def non_primary(cell) -> float:
    return 1.0 - cell.status_p[0]


def checked_cells(model):
    """Two routes to load: the cell with the largest non-primary status share (ties: the faster
    one), and the most erratic cell of another persona whose median differs by ≥ 1.5×."""
    ranked = sorted(model.cells, key=lambda c: (-round(non_primary(c), 6), c.median_ms))
    a = ranked[0]
    b = next((c for c in ranked[1:] if c.persona != a.persona
              and max(c.median_ms, a.median_ms) / min(c.median_ms, a.median_ms) >= 1.5),
             ranked[1])
    return a, b


def concrete(template: str) -> str:
    """A request path for a template (every ``{param}`` → ``42``)."""
    return re.sub(r"\{[^{}/]*\}", "42", template)


def mean_ms(cell) -> float:
    return cell.median_ms * math.exp(cell.sigma ** 2 / 2)


# --------------------------------------------------------------------------------------------
# pure pieces


def test_path_template_keeps_params_and_dedupes_names():
    assert path_template("/api/users/{id}") == "/api/users/{id}"
    assert path_template("/v2/{hash}/d/{date}/{email}") == "/v2/{hash}/d/{date}/{email}"
    assert path_template("/a/{id}/b/{id}/c/{id}") == "/a/{id}/b/{id_2}/c/{id_3}"
    assert path_template("/files/{name}.json") == "/files/{name}.json"
    assert path_template("/x/{}/{a-b}") == "/x/{param}/{a_b}"


@pytest.mark.parametrize("p", [[0.9903, 0.0042, 0.0037, 0.0018], [0.7646, 0.2203, 0.0077, 0.0073],
                               [0.5, 0.5], [1.0], [0.34, 0.33, 0.33]])
@pytest.mark.parametrize("size", [1, 7, 100])
def test_ring_allots_largest_remainder_and_interleaves(p, size):
    counts = largest_remainder(p, size)
    assert counts.sum() == size
    assert np.all(np.abs(counts - np.asarray(p) / np.sum(p) * size) < 1)
    order = ring_order(p, size)
    assert np.array_equal(np.bincount(order, minlength=len(p)), counts)
    for k, n in enumerate(counts):  # evenly spread: copy j within len(p) slots of (j + ½)·size/n
        pos = np.flatnonzero(np.asarray(order) == k)
        assert np.all(np.abs(pos - (np.arange(n) + 0.5) * size / n) <= len(p)), (k, pos)


# --------------------------------------------------------------------------------------------
# the mapping JSON


@pytest.mark.parametrize("which", ["ext_export", "ring_export"])
def test_mappings_route_personas_with_fallback_and_model_delays(model, request, which):
    root = request.getfixturevalue(which)
    ring = which == "ring_export"
    all_stubs = stubs(root)
    header = model.persona_header
    fallback = default_persona(model)
    assert fallback == model.personas[int(np.argmax(model.persona_share))]
    assert (root / "start-wiremock.sh").stat().st_mode & 0o111
    info = json.loads((root / "driftbayes-export.json").read_text())
    assert info["provenance"] == model.provenance
    assert info["statuses"] == ("ring" if ring else "extension")
    assert "README.md" in os.listdir(root)
    for endpoint in model.endpoints:
        cells = [c for c in model.cells if c.endpoint == endpoint]
        for cell in cells + [None]:
            mine = [s for s in all_stubs if s["request"]["method"] == cells[0].method
                    and s["request"]["urlPathTemplate"] == path_template(cells[0].template)
                    and (s["request"].get("headers") or {}).get(header)
                    == (None if cell is None else {"equalTo": cell.persona})]
            served = cell or model.cell(endpoint, fallback)
            assert len(mine) == (100 if ring else 1), (endpoint, cell)
            want_priority = FALLBACK_PRIORITY if cell is None else PERSONA_PRIORITY
            assert {s["priority"] for s in mine} == {want_priority}
            meta = mine[0]["metadata"]["driftbayes"]
            assert (meta["persona"], meta["role"]) == (
                served.persona, "fallback" if cell is None else "persona")
            assert meta["latency"]["fit_error"] == {
                str(q): e for q, e in lognormal_fit_error(served).items()}
            for s in mine:
                r = s["response"]
                assert r["delayDistribution"] == {"type": "lognormal",
                                                  "median": served.median_ms,
                                                  "sigma": served.sigma}
                assert f"persona={served.persona};" in r["headers"]["X-Driftbayes-Pattern"]
                body_type, body = served.bodies[r["status"]]
                assert (root / "__files" / r["bodyFileName"]).read_text() == body
                assert r["headers"]["Content-Type"] == body_type
            if ring:
                order = ring_order(served.status_p, 100)
                assert [s["response"]["status"] for s in mine] == [
                    served.statuses[k] for k in order]
                assert len({s["scenarioName"] for s in mine}) == 1
                assert [s["requiredScenarioState"] for s in mine][:2] == ["Started", "ring-1"]
                assert mine[-1]["newScenarioState"] == "Started"
                continue
            r = mine[0]["response"]
            assert r["status"] == served.statuses[0]
            alts = r.get("transformerParameters", {}).get("alternatives", [])
            assert [(a["status"], a["p"]) for a in alts] == list(
                zip(served.statuses[1:], served.status_p[1:]))
            assert r.get("transformers", []) == ([EXTENSION_NAME] if alts else [])
            for a in alts:
                assert (root / "__files" / a["bodyFileName"]).read_text() == \
                    served.bodies[a["status"]][1]
    scenarios = {s.get("scenarioName") for s in all_stubs}
    assert len(scenarios) == (len(model.cells) + len(model.endpoints) if ring else 1)


@pytest.fixture
def no_runtime(tmp_path, monkeypatch):
    """An empty runtimes cache and a registry that cannot be reached (npm, pip exit 1)."""
    monkeypatch.delenv("WIREMOCK_JAR", raising=False)
    monkeypatch.delenv("DRIFTBAYES_OFFLINE", raising=False)
    monkeypatch.setenv("DRIFTBAYES_RUNTIMES", str(tmp_path / "empty-cache"))

    def unreachable(cmd, **kw):
        raise subprocess.CalledProcessError(1, cmd, stderr="npm error code ENOTFOUND")

    monkeypatch.setattr(runtimes.subprocess, "run", unreachable)


def test_extension_needs_a_jar_and_says_ring(model, tmp_path, no_runtime):
    with pytest.raises(WireMockExportError, match='statuses="ring"'):
        write_wiremock(model, tmp_path / "x", statuses="extension")
    assert not (tmp_path / "x").exists()
    with pytest.raises(WireMockExportError, match="not found"):
        write_wiremock(model, tmp_path / "x", wiremock_jar=tmp_path / "nope.jar")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "mine.txt").write_text("keep")
    with pytest.raises(ValueError, match="not empty"):
        write_wiremock(model, tmp_path / "busy", statuses="ring")
    with pytest.raises(ValueError, match="statuses"):
        write_wiremock(model, tmp_path / "y", statuses="random")


def test_default_falls_back_to_the_ring_with_a_one_line_notice(model, tmp_path, no_runtime):
    notes: list[str] = []
    out = write_wiremock(model, tmp_path / "wm", notify=notes.append)
    assert notes and all("\n" not in n for n in notes)
    assert "scenario ring" in notes[-1] and "no WireMock jar" in notes[-1], notes
    assert json.loads((out / MARKER).read_text())["statuses"] == "ring"
    assert not (out / "extensions").exists()
    assert all("scenarioName" in s for s in stubs(out))
    assert len(stubs(out)) == 100 * (len(model.cells) + len(model.endpoints))
    # no jar known: the start script asks for one
    assert "runtimes cache" not in (out / "start-wiremock.sh").read_text()
    with pytest.warns(RuntimeFallbackWarning, match="scenario ring"):  # the library default
        write_wiremock(model, tmp_path / "wm2")


def test_offline_setting_never_installs(tmp_path, monkeypatch):
    monkeypatch.setenv("DRIFTBAYES_RUNTIMES", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("DRIFTBAYES_OFFLINE", "1")
    monkeypatch.setattr(runtimes.subprocess, "run", lambda *a, **k: pytest.fail("installed"))
    with pytest.raises(runtimes.RuntimeUnavailable, match="DRIFTBAYES_OFFLINE"):
        runtimes._install("npm wiremock", [["npm", "install"]], None, 10)
    monkeypatch.setenv("DRIFTBAYES_OFFLINE", "0")
    assert not runtimes.offline()


def test_default_builds_the_extension_against_the_cached_jar(model, jar, tmp_path,
                                                             monkeypatch):
    if shutil.which("javac") is None:
        pytest.skip("javac not installed: the weighted-status extension cannot be built")
    monkeypatch.delenv("WIREMOCK_JAR", raising=False)  # `jar` is in the runtimes cache
    notes: list[str] = []
    out = write_wiremock(model, tmp_path / "wm", notify=notes.append)
    assert notes == []
    assert json.loads((out / MARKER).read_text())["statuses"] == "extension"
    assert (out / EXTENSION_JAR).is_file()
    assert f'WIREMOCK_JAR:-{jar.resolve()}' in (out / "start-wiremock.sh").read_text()


def test_reexport_replaces_the_previous_export(model, tmp_path):
    out = write_wiremock(model, tmp_path / "wm", statuses="ring", ring_size=3)
    (out / "mappings" / "stale.json").write_text('{"mappings": []}')
    write_wiremock(model, out, statuses="ring", ring_size=5)
    assert not (out / "mappings" / "stale.json").exists()
    assert len(stubs(out)) == 5 * (len(model.cells) + len(model.endpoints))


def test_start_script_needs_wiremock_jar(ring_export):
    env = {k: v for k, v in os.environ.items() if k != "WIREMOCK_JAR"}
    run = subprocess.run(["sh", str(ring_export / "start-wiremock.sh"), "8080"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert "WIREMOCK_JAR is not set" in run.stderr


# --------------------------------------------------------------------------------------------
# the real WireMock


def _post_stub(base: str, stub: dict) -> None:
    httpx.post(f"{base}/__admin/mappings", json=stub, trust_env=False,
               timeout=LOADED).raise_for_status()


def _in_parallel(jobs: dict) -> dict:
    """Run ``{key: (fn, args, kwargs)}`` in threads (hammer runs its own event loop)."""
    out, errors = {}, []

    def run(key, fn, args, kwargs):
        try:
            out[key] = fn(*args, **kwargs)
        except Exception as exc:  # re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(k, *job)) for k, job in jobs.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return out


def _served_delays(base: str, header: str) -> dict[tuple[str, str, str], np.ndarray]:
    """WireMock's request journal: the delay it drew for each request (``timing.addedDelay``,
    whole ms), by (method, path, persona header)."""
    events = httpx.get(f"{base}/__admin/requests", trust_env=False,
                       timeout=LOADED).json()["requests"]
    out: dict[tuple[str, str, str], list[float]] = {}
    for ev in events:
        req = ev["request"]
        persona = next((v for k, v in req.get("headers", {}).items()
                        if k.lower() == header.lower()), "")
        key = (req["method"], req["url"].split("?")[0], persona)
        out.setdefault(key, []).append(float(ev["timing"]["addedDelay"]))
    return {k: np.asarray(v) for k, v in out.items()}


@pytest.mark.slow
def test_wiremock_serves_latency_and_status_mix(model, jar, ext_export):
    cells = checked_cells(model)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with running([ext_export / "start-wiremock.sh", str(port)], f"{base}/__admin/health",
                 env={"WIREMOCK_JAR": str(jar)}):
        # persona routing: header → the persona's stub; none / unknown → the fallback stub
        c0 = cells[0]
        fallback = default_persona(model)
        have = {c.persona for c in model.cells if c.endpoint == c0.endpoint}
        for persona, want in [(p, p) for p in sorted(have)] + [(None, fallback),
                                                               ("nobody", fallback)]:
            r = httpx.request(c0.method, base + concrete(c0.template), trust_env=False,
                              timeout=LOADED,
                              headers={model.persona_header: persona} if persona else {})
            assert f"persona={want};" in r.headers["X-Driftbayes-Pattern"], (persona, r.headers)
            assert r.status_code in model.cell(c0.endpoint, want).statuses
        # probes added at runtime: a zero-delay stub (reported), and per route a copy of its
        # exported stub (same body file, transformer, headers) for the persona "__probe" with a
        # fixed delay equal to the route's mean latency, hammered at the route's concurrency
        _post_stub(base, {"priority": 1, "request": {"method": "GET", "urlPath": "/__probe/0"},
                          "response": {"status": 200, "body": "probe"}})
        delays = [round(mean_ms(c)) for c in cells]
        exported = stubs(ext_export)
        for i, (c, d) in enumerate(zip(cells, delays)):
            stub = next(s for s in exported if s["metadata"]["driftbayes"]["role"] == "persona"
                        and s["name"] == f"{c.endpoint} [{c.persona}]")
            probe = json.loads(json.dumps(stub))
            probe.pop("id")
            probe["name"] = f"probe {i + 1}"
            probe["request"]["headers"] = {model.persona_header: {"equalTo": f"__probe{i + 1}"}}
            probe["response"].pop("delayDistribution")
            probe["response"]["fixedDelayMilliseconds"] = d
            _post_stub(base, probe)
        hammer(f"{base}/__probe/0", 100, concurrency=4)  # JIT warm-up
        zero, _ = hammer(f"{base}/__probe/0", 60, concurrency=1)
        httpx.delete(f"{base}/__admin/requests", trust_env=False,
                     timeout=LOADED).raise_for_status()
        conc = [max(2, math.ceil(RATE * mean_ms(c) / 1000.0)) for c in cells]
        routes = _in_parallel({
            i: (hammer, (base + concrete(c.template), N),
                {"method": c.method, "headers": {model.persona_header: c.persona},
                 "concurrency": k})
            for i, (c, k) in enumerate(zip(cells, conc))})
        probes = _in_parallel({
            i: (hammer, (base + concrete(c.template), PROBES),
                {"method": c.method, "headers": {model.persona_header: f"__probe{i + 1}"},
                 "concurrency": k})
            for i, (c, k) in enumerate(zip(cells, conc))})
        journal = _served_delays(base, model.persona_header)
    lines = [f"zero-delay probe, sequential: median {np.median(zero):.1f} ms"]
    failures = []
    for i, c in enumerate(cells):
        lat, status = routes[i]
        overhead = probes[i][0] - delays[i]
        drawn = journal[(c.method, concrete(c.template), c.persona)]
        x50, x90 = c.median_ms, c.median_ms * math.exp(Z90 * c.sigma)
        shares = {s: float(np.mean(status == s)) for s in c.statuses}
        lines.append(
            f"{c.endpoint} × {c.persona} (concurrency {conc[i]}): exported p50/p90 {x50:.1f} / "
            f"{x90:.1f} ms; observed {np.quantile(lat, .5):.1f} / {np.quantile(lat, .9):.1f} "
            f"with overhead median {np.median(overhead):.1f} (10–90% "
            f"{np.quantile(overhead, .1):.1f}–{np.quantile(overhead, .9):.1f}); WireMock drew "
            f"{np.quantile(drawn, .5):.1f} / {np.quantile(drawn, .9):.1f}; shares "
            + ", ".join(f"{s}: {shares[s]:.4f} vs {p:.4f}" for s, p in zip(c.statuses, c.status_p)))
        try:
            assert len(drawn) == N
            assert set(np.unique(status)) <= set(c.statuses), np.unique(status)
            for q, x in ((0.5, x50), (0.9, x90)):
                check_not_faster(lat, x, q)  # as the client sees it (plus any overhead)
                check_quantile(drawn, x, q)  # as WireMock drew it (no overhead)
            rare = [s for s, p in zip(c.statuses, c.status_p) if p < 0.01]
            for s, p in zip(c.statuses, c.status_p):
                if p >= 0.01:
                    check_share(status, s, p)
            if rare:
                p_rare = sum(p for s, p in zip(c.statuses, c.status_p) if s in rare)
                check_share(np.where(np.isin(status, rare), -1, status), -1, p_rare)
        except AssertionError as exc:
            failures.append(f"{c.endpoint} × {c.persona}: {exc}")
    print("\n" + "\n".join(lines))
    assert not failures, "\n".join(failures + lines)


def test_wiremock_ring_serves_exact_shares(model, jar, tmp_path):
    size = 100
    # the fastest cell whose ring holds ≥ 3 statuses (else the fastest); only its endpoint is
    # exported (the full ring JSON is checked above) so WireMock starts and matches quickly
    cell = min(model.cells, key=lambda c: (len(set(ring_order(c.status_p, size))) < 3,
                                           c.median_ms))
    small = dataclasses.replace(model, endpoints=[cell.endpoint],
                                cells=[c for c in model.cells if c.endpoint == cell.endpoint])
    out = write_wiremock(small, tmp_path / "ring", statuses="ring", ring_size=size)
    order = [cell.statuses[k] for k in ring_order(cell.status_p, size)]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with running([out / "start-wiremock.sh", str(port)], f"{base}/__admin/health",
                 env={"WIREMOCK_JAR": str(jar)}):
        httpx.post(f"{base}/__admin/scenarios/reset", trust_env=False,
                   timeout=LOADED).raise_for_status()
        served, lat = [], []
        with httpx.Client(base_url=base, trust_env=False, timeout=LOADED) as client:
            for _ in range(size + 3):
                r = client.request(cell.method, concrete(cell.template),
                                   headers={model.persona_header: cell.persona})
                served.append(r.status_code)
                lat.append(r.elapsed.total_seconds() * 1000.0)
            fallback = client.request(cell.method, concrete(cell.template))
    assert served[:size] == order  # the exact ring, in order
    assert served[size:] == order[:3]  # …and round again
    counts = largest_remainder(cell.status_p, size)
    for s, n in zip(cell.statuses, counts):
        assert served[:size].count(s) == n
    print(f"\nring {cell.endpoint} × {cell.persona}: " + ", ".join(
        f"{s}: {served[:size].count(s)}/{size} (p {p:.4f})"
        for s, p in zip(cell.statuses, cell.status_p)) + f"; median latency {np.median(lat):.1f} ms"
        f" (exported median {cell.median_ms:.1f})")
    assert cell.median_ms * 0.5 <= np.median(lat)  # the delay is served (load only adds)
    assert f"persona={default_persona(model)};" in fallback.headers["X-Driftbayes-Pattern"]


# --------------------------------------------------------------------------------------------
# `driftbayes learn traffic.jsonl && driftbayes export --to wiremock --out wm`, no flags

ROOT = Path(__file__).resolve().parents[2]


def _cli(cwd: Path, *args: str, env: dict) -> subprocess.CompletedProcess:
    """The ``driftbayes`` CLI of this checkout in a fresh process."""
    return subprocess.run([sys.executable, "-c", "from driftbayes.cli import app; app()", *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def _learned_here(tmp_path: Path, env: dict) -> Path:
    """500 events in ``traffic.jsonl`` learned into the default state of ``tmp_path/work``."""
    from tests.helpers import traffic

    work = tmp_path / "work"
    work.mkdir()
    b = traffic(500, seed=4)
    (work / "traffic.jsonl").write_bytes(b"".join(
        orjson.dumps({"ts": float(t), "method": m, "path": e.replace("{id}", str(i)),
                      "status": int(s), "latency_ms": float(x), "persona": p},
                     option=orjson.OPT_APPEND_NEWLINE)
        for i, (t, m, e, s, x, p) in enumerate(zip(b.ts, b.method, b.endpoint, b.status,
                                                   b.latency_ms, b.persona))))
    r = _cli(work, "learn", "traffic.jsonl", "--no-progress", env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    return work


def _env(**extra: str) -> dict:
    drop = {"WIREMOCK_JAR", "DRIFTBAYES_OFFLINE", "DRIFTBAYES_RUNTIMES"}
    return {**{k: v for k, v in os.environ.items() if k not in drop},
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
            **extra}


def test_cli_export_without_any_runtime_writes_the_ring(tmp_path):
    """A fresh HOME (no runtimes cache) and no registry: exit 0, one notice, the ring."""
    home = tmp_path / "home"
    home.mkdir()
    env = _env(HOME=str(home), DRIFTBAYES_OFFLINE="1")
    work = _learned_here(tmp_path, env)
    r = _cli(work, "export", "--to", "wiremock", "--out", "wm", env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    notes = [line for line in r.stderr.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "scenario ring" in notes[0], r.stderr
    info = json.loads((work / "wm" / MARKER).read_text())
    assert info["statuses"] == "ring" and info["ring_size"] == 100
    assert not (work / "wm" / "extensions").exists()
    assert list((work / "wm" / "mappings").glob("*.json"))


def test_cli_export_with_no_flags_builds_the_extension_and_serves(jar, tmp_path, monkeypatch):
    """With the runtimes cache present: the extension is built against its jar, and the start
    script runs WireMock with that jar without any WIREMOCK_JAR."""
    if shutil.which("javac") is None:
        pytest.skip("javac not installed: the weighted-status extension cannot be built")
    env = _env(DRIFTBAYES_RUNTIMES=str(runtimes.cache_dir()))
    work = _learned_here(tmp_path, env)
    r = _cli(work, "export", "--to", "wiremock", "--out", "wm", env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "note:" not in r.stderr, r.stderr
    wm = work / "wm"
    assert json.loads((wm / MARKER).read_text())["statuses"] == "extension"
    assert (wm / EXTENSION_JAR).is_file()
    fallbacks = [s for s in stubs(wm) if s["metadata"]["driftbayes"]["role"] == "fallback"]
    assert len(fallbacks) == 3  # the three endpoints of the traffic
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    monkeypatch.delenv("WIREMOCK_JAR", raising=False)  # the script finds the jar by itself
    with running([wm / "start-wiremock.sh", str(port)], f"{base}/__admin/health", env=env):
        for stub in fallbacks:
            meta = stub["metadata"]["driftbayes"]
            r = httpx.request(stub["request"]["method"],
                              base + concrete(stub["request"]["urlPathTemplate"]),
                              trust_env=False, timeout=LOADED)
            assert str(r.status_code) in meta["status_p"], (meta, r.status_code)
            assert r.headers["X-Driftbayes-Pattern"].startswith(meta["endpoint"] + ";")
