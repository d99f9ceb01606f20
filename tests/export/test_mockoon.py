"""The Mockoon export: the environment JSON (schema keys, persona blocks, cascade arithmetic)
and the real ``mockoon-cli`` (pinned :data:`MOCKOON_CLI_VERSION`, 9.9.0, the version npm
resolves here) validating and serving it.

Live check. ``mockoon-cli validate`` (the strict schema) must accept the file; then one CLI
process serves it with two test-only twins on other ports: a *zero* twin (the same JSON with
every ``latency`` 0, so its responses cost Node the same rule evaluations and body rendering)
and a *levels* twin (also answering status ``200 + Q·block + level``, no body).

* Two cells, two personas (``web``: first block, ``partner``: second block; p50 43 vs 24 ms) get
  1,000 requests each, :data:`CONCURRENCY` at a time. Meanwhile a second client samples the
  zero twin's same route and persona now and then: the runtime's overhead under the same load,
  reported beside the observed p50/p90; those are checked from below only
  (:func:`check_not_faster`: a loaded machine adds any amount of overhead), the exact latency
  levels on both sides by the levels twin. :func:`check_share` (4 binomial SE) judges every
  status with p ≥ 0.01 and the pooled non-primary share.
* The levels twin is hammered 50 at a time per persona header value (each persona, none, an
  unknown one): every answer must come from the right block, and the latency levels the rules
  picked must have the mixture's quantiles (no timing involved, so no overhead).

Why not 50 in flight for the timed part: on the test machine Mockoon spends ~18–33 ms of Node
CPU per request on these routes (see :mod:`driftbayes.export.mockoon`) and the httpx client
~10 ms per request at 50 connections, so 50 concurrent requests measure queueing (observed p50
0.7–1.2 s for a 43 ms mixture p50) and the overhead a second client sees is not the one the
first one's event loop adds. At 4 the server is busy but not swamped, and the overhead sampled
alongside is the one the checked requests pay.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
import subprocess
import threading
import time
import uuid

import numpy as np
import pytest

from driftbayes.export.mockoon import (
    DEFAULT_QUANTILES,
    LAST_MIGRATION,
    MOCKOON_CLI_VERSION,
    cascade,
    latency_levels,
    mixture_error,
    mixture_quantiles,
    mockoon_environment,
    mockoon_path,
    write_mockoon,
)
from driftbayes.export.model import default_persona
from tests.export.conftest import (
    check_not_faster,
    check_quantile,
    check_share,
    free_port,
    hammer,
    npm_package,
    running,
    wait_http,
)

#: Cells timed through the real CLI: two personas (first and second block of their routes), two
#: routes (one with a path parameter), mixture p50 43 vs 24 ms; each has a status above 1% besides
#: the primary one or a pooled non-primary share near 1%.
CHECKED = (("GET /api/products", "web"), ("GET /api/products/{id}", "partner"))
N_REQUESTS = 1000
CONCURRENCY = 4
#: Persona header values sent to the levels twin (None: no header) and requests per value.
LEVEL_CHECKS = (("web", 80), ("partner", 80), ("mobile", 50), (None, 30), ("nobody", 30))

# The keys @mockoon/commons 9.9.0 requires (environment-schema.constants.js, no failover).
ENV_KEYS = {"uuid", "lastMigration", "name", "endpointPrefix", "latency", "port", "hostname",
            "folders", "routes", "rootChildren", "proxyMode", "proxyHost", "proxyRemovePrefix",
            "tlsOptions", "cors", "headers", "proxyReqHeaders", "proxyResHeaders", "data",
            "callbacks"}
TLS_KEYS = {"enabled", "type", "pfxPath", "certPath", "keyPath", "caPath", "passphrase"}
ROUTE_KEYS = {"uuid", "type", "documentation", "method", "endpoint", "responses", "responseMode",
              "streamingMode", "streamingInterval"}
RESPONSE_KEYS = {"uuid", "body", "latency", "statusCode", "label", "headers", "bodyType",
                 "filePath", "databucketID", "sendFileAsBody", "rules", "rulesOperator",
                 "disableTemplating", "fallbackTo404", "default", "crudKey", "callbacks"}
RULE_KEYS = {"target", "modifier", "value", "invert", "operator"}

_DRAW = re.compile(r"^\{\{#if \(lt \(faker 'number\.float'\) ([0-9.]+)\)\}\}"
                   r"\{\{else\}\}-\{\{/if\}\}$")
_BRANCH = re.compile(r"\{\{(?:#if|else if) \(lt \(faker 'number\.float'\) ([0-9.]+)\)\}\}"
                     r"\{\{status (\d+)\}\}|\{\{else\}\}\{\{status (\d+)\}\}")


def _threshold(response: dict) -> float:
    """The response's draw threshold (1 when it has no draw rule)."""
    draws = [r for r in response["rules"] if r["target"] == "templating"]
    if not draws:
        return 1.0
    (rule,) = draws
    assert rule["operator"] == "null" and rule["value"] == ""
    m = _DRAW.match(rule["modifier"])
    assert m, rule["modifier"]
    return float(m.group(1))


def _body_statuses(response: dict) -> dict[int, float]:
    """P(status | this response): its statusCode, or the cascade rendered by its body."""
    if response["disableTemplating"]:
        return {response["statusCode"]: 1.0}
    out, left = {}, 1.0
    for m in _BRANCH.finditer(response["body"]):
        c = float(m.group(1)) if m.group(1) else 1.0
        code = int(m.group(2) or m.group(3))
        out[code] = out.get(code, 0.0) + left * c
        left *= 1.0 - c
    assert abs(left) < 1e-12 and out, response["body"][:200]
    return out


def _blocks(route: dict) -> dict[str | None, list[dict]]:
    """Responses per persona (None: the block without header rules), in route order."""
    out: dict[str | None, list[dict]] = {}
    last = object()
    for resp in route["responses"]:
        personas = [r["value"] for r in resp["rules"] if r["target"] == "header"]
        key = personas[0] if personas else None
        assert key == last or key not in out, "persona blocks must be contiguous"
        out.setdefault(key, []).append(resp)
        last = key
    return out


def _served(block: list[dict]) -> tuple[dict[int, float], dict[float, float]]:
    """(status → probability, latency → probability) a request reaching ``block`` gets."""
    statuses: dict[int, float] = {}
    latencies: dict[float, float] = {}
    left = 1.0
    for resp in block:
        c = 1.0 if resp["default"] else _threshold(resp)
        p = left * c
        left *= 1.0 - c
        for code, q in _body_statuses(resp).items():
            statuses[code] = statuses.get(code, 0.0) + p * q
        latencies[resp["latency"]] = latencies.get(resp["latency"], 0.0) + p
    assert abs(left) < 1e-12
    return statuses, latencies


# ---------------------------------------------------------------- the JSON


def test_environment_keys_and_routes(model):
    env = mockoon_environment(model, port=3456)
    assert ENV_KEYS <= set(env) and "driftbayes" in env
    assert set(env["tlsOptions"]) == TLS_KEYS
    assert env["lastMigration"] == LAST_MIGRATION == 33
    assert env["hostname"] == "127.0.0.1" and env["port"] == 3456
    assert env["driftbayes"]["layer"] == model.layer == model.provenance["layer"]
    assert model.provenance["driftbayes_version"] in env["name"]
    assert [c["uuid"] for c in env["rootChildren"]] == [r["uuid"] for r in env["routes"]]
    ids = [r["uuid"] for r in env["routes"]] + [x["uuid"] for r in env["routes"]
                                                for x in r["responses"]]
    assert len(set(ids)) == len(ids) and all(uuid.UUID(i) for i in ids + [env["uuid"]])
    assert sorted(f"{r['method'].upper()} /{r['endpoint']}" for r in env["routes"]) == sorted(
        e.replace("{id}", ":id") for e in model.endpoints)
    for route in env["routes"]:
        assert set(route) == ROUTE_KEYS and route["type"] == "http"
        assert route["responseMode"] is None  # rules mode: RANDOM would ignore the personas
        assert not route["endpoint"].startswith("/")
        for resp in route["responses"]:
            assert set(resp) == RESPONSE_KEYS and resp["rulesOperator"] == "AND"
            assert resp["bodyType"] == "INLINE" and resp["callbacks"] == []
            assert resp["headers"] == [{"key": "Content-Type", "value": "application/json"}]
            assert all(set(r) == RULE_KEYS for r in resp["rules"])
        defaults = [x for x in route["responses"] if x["default"]]
        assert defaults == [route["responses"][-1]] and defaults[0]["rules"] == []
    json.dumps(env)  # JSON-ready


def test_persona_blocks_reproduce_every_cell(model):
    """Every cell's block serves status_p (cascade products, within 1e-9) and its latency
    levels with mass 1/Q each; the block without header rules is the default persona's."""
    Q = DEFAULT_QUANTILES
    env = mockoon_environment(model)
    fallback = default_persona(model)
    assert fallback == "web"  # largest persona_share; no persona named "default"
    by_path = {f"{r['method'].upper()} /{r['endpoint']}": r for r in env["routes"]}
    for endpoint in model.endpoints:
        route = by_path[endpoint.replace("{id}", ":id")]
        blocks = _blocks(route)
        cells = [c for c in model.cells if c.endpoint == endpoint]
        assert list(blocks)[-1] is None and set(blocks) - {None} == {c.persona for c in cells}
        rates = [model.cell(endpoint, p).rate_per_s for p in blocks if p]
        assert rates == sorted(rates, reverse=True)  # the endpoint's busiest persona first
        for persona, block in blocks.items():
            cell = model.cell(endpoint, persona or fallback)
            assert len(block) == Q  # one content type, one response per latency level
            for resp in block[:-1]:
                assert [r["target"] for r in resp["rules"]] == (
                    ["templating", "header"] if persona else ["templating"])
            if persona:
                assert block[-1]["rules"] == [{
                    "target": "header", "modifier": model.persona_header, "value": persona,
                    "invert": False, "operator": "equals"}]
            statuses, latencies = _served(block)
            assert set(statuses) == set(cell.statuses)
            for code, p in zip(cell.statuses, cell.status_p):
                assert abs(statuses[code] - p) < 1e-9, (endpoint, persona, code)
            np.testing.assert_allclose(sorted(latencies), latency_levels(cell, Q), atol=5e-4)
            np.testing.assert_allclose(list(latencies.values()), 1.0 / Q, atol=1e-12)
            np.testing.assert_allclose(
                sorted(latencies), cell.latency_quantiles((np.arange(Q) + 0.5) / Q), atol=5e-4)


def test_cascade_and_mixture_helpers(model):
    p = np.array([0.5, 0.3, 0.15, 0.05])
    c = cascade(p)
    served = [c[k] * np.prod([1 - x for x in c[:k]]) for k in range(len(c))]
    np.testing.assert_allclose(served, p, atol=1e-15)
    assert c[-1] == 1.0
    cell = model.cell("GET /api/products", "web")
    lv = latency_levels(cell, 20)
    assert np.all(np.diff(lv) > 0)
    # the q-quantile of 20 equal point masses: level ceil(20 q) (1-based)
    np.testing.assert_allclose(mixture_quantiles(cell, [0.5, 0.9, 0.99], 20), lv[[9, 17, 19]])
    err = mixture_error(cell, 20)
    assert -0.10 < err[0.5] <= 0 and -0.15 < err[0.9] <= 0 and err[0.99] < 0  # tail cut
    with pytest.raises(ValueError):
        mockoon_environment(model, quantiles=0)


def test_paths_and_unembeddable_bodies(model, tmp_path):
    assert mockoon_path("/api/users/{id}") == "api/users/:id"
    assert mockoon_path("/a/{user-id}/b") == "a/:user_id/b"
    assert mockoon_path("/files/{name}.json") == "files/:name.json"
    assert mockoon_path("/x/{id}abc") == 'x/:"id"abc'
    assert mockoon_path("/v1/(legacy)") == r"v1/\(legacy\)"
    # a body a Handlebars raw block cannot hold is served on its own, verbatim
    cell = model.cell("GET /api/products", "web")
    odd = dict(cell.bodies)
    odd[cell.statuses[1]] = ("application/json", '{"tpl": "{{{{x}}}}"}')
    odd[cell.statuses[2]] = ("text/plain", "down")
    patched = dataclasses.replace(model, cells=[
        dataclasses.replace(c, bodies=odd) if c is cell else c for c in model.cells])
    env = mockoon_environment(patched, quantiles=5)
    route = next(r for r in env["routes"] if r["endpoint"] == "api/products")
    block = _blocks(route)["web"]
    assert len(block) == 3 * 5  # groups: json (templated), the odd json, text/plain
    statuses, _ = _served(block)
    for code, p in zip(cell.statuses, cell.status_p):
        assert abs(statuses[code] - p) < 1e-9
    verbatim = [x for x in block if x["disableTemplating"]]
    assert {x["body"] for x in verbatim} == {'{"tpl": "{{{{x}}}}"}', "down"}
    assert {x["headers"][0]["value"] for x in verbatim} == {"application/json", "text/plain"}
    out = write_mockoon(model, tmp_path / "sub", port=4000, quantiles=4)
    assert out == tmp_path / "sub" / "mockoon.json"
    assert json.loads(out.read_text())["port"] == 4000


# ---------------------------------------------------------------- the real runtime


def _twins(env: dict, quantiles: int) -> tuple[dict, dict]:
    """(overhead twin, levels twin) of an exported environment. The overhead twin is the same
    JSON with every latency 0. The levels twin also answers with status ``200 + Q·b + i`` for
    the response of latency level ``i`` in persona block ``b`` (and no body), so a client that
    only sees statuses sees which block and level the rules picked."""
    zero = copy.deepcopy(env)
    for route in zero["routes"]:
        for resp in route["responses"]:
            resp["latency"] = 0
    levels = copy.deepcopy(zero)
    for route in levels["routes"]:
        for b, block in enumerate(_blocks(route).values()):
            for k, resp in enumerate(block):
                resp.update(statusCode=200 + quantiles * b + k % quantiles, body="",
                            disableTemplating=True)
    return zero, levels


def _with_overhead(fn, url: str, method: str, headers: dict) -> tuple:
    """``fn()`` while a second client samples ``url`` (the zero-latency twin): 3 sequential
    requests (the first, which opens the connection, dropped) every 200 ms, so the samples see
    the queue ``fn``'s load builds without adding much to it."""
    stop, samples = threading.Event(), []

    def probe():
        while not stop.is_set():
            samples.append(hammer(url, 3, method=method, headers=headers, concurrency=1)[0][1:])
            stop.wait(0.2)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    try:
        result = fn()
    finally:
        stop.set()
        thread.join(timeout=60)
    return result, np.concatenate(samples) if samples else np.empty(0)


@pytest.mark.slow
def test_mockoon_cli_serves_the_export(model, tmp_path):
    modules = npm_package("@mockoon/cli", MOCKOON_CLI_VERSION)
    cli = modules / ".bin" / "mockoon-cli"
    Q = DEFAULT_QUANTILES
    ports: list[int] = []
    while len(ports) < 3:
        ports += [p for p in [free_port()] if p not in ports]
    path = write_mockoon(model, tmp_path / "mockoon.json", port=ports[0])
    written = path.read_text()
    env = json.loads(written)
    check = subprocess.run([str(cli), "validate", "--data", str(path)], capture_output=True,
                           text=True, timeout=120)  # the strict schema (no failover)
    assert check.returncode == 0 and "Valid environment" in check.stdout, check
    files = [path]
    for name, twin, port in zip(("zero", "levels"), _twins(env, Q), ports[1:]):
        twin.update(uuid=str(uuid.uuid4()), port=port, name=f"{env['name']} ({name} twin)")
        files.append(tmp_path / f"{name}.json")
        files[-1].write_text(json.dumps(twin))
    base, zero, levels = (f"http://127.0.0.1:{p}" for p in ports)
    cmd = [str(cli), "start", "--data", *map(str, files), "--disable-log-to-file",
           "--disable-admin-api"]
    t0 = time.monotonic()
    with running(cmd, f"{base}/api/products"):
        wait_http(f"{zero}/api/products", timeout=90)  # the same process: up by now
        wait_http(f"{levels}/api/products", timeout=90)
        for endpoint, persona in CHECKED:
            cell = model.cell(endpoint, persona)
            method, tmpl = endpoint.split(" ", 1)
            tmpl = tmpl.replace("{id}", "42")
            headers = {model.persona_header: persona}
            hammer(base + tmpl, 20, method=method, headers=headers)  # warm-up (JIT)
            (lat, st), overhead = _with_overhead(
                lambda: hammer(base + tmpl, N_REQUESTS, method=method, headers=headers,
                               concurrency=CONCURRENCY),
                zero + tmpl, method, headers)
            assert len(overhead) > 0
            want = mixture_quantiles(cell, [0.5, 0.9], Q)
            print(f"\n{endpoint} × {persona}: observed p50/p90 "
                  f"{np.quantile(lat, 0.5):.1f}/{np.quantile(lat, 0.9):.1f} ms, exported "
                  f"mixture {want[0]:.1f}/{want[1]:.1f} ms, overhead p10/p50/p90 "
                  + "/".join(f"{x:.1f}" for x in np.quantile(overhead, [0.1, 0.5, 0.9]))
                  + " ms; shares " + ", ".join(f"{s} {np.mean(st == s):.4f} (exported {p:.4f})"
                                               for s, p in zip(cell.statuses, cell.status_p)))
            assert set(np.unique(st)) <= set(cell.statuses)
            for q, x_q in zip((0.5, 0.9), want):
                check_not_faster(lat, x_q, q)  # the levels twin below checks both sides
            for code, p in zip(cell.statuses, cell.status_p):
                if p >= 0.01:
                    check_share(st, code, p)
            check_share(np.where(st == cell.statuses[0], 0, 1), 1, 1.0 - cell.status_p[0])
        # which block and latency level the rules pick, per persona header (exact, no timing)
        route = next(r for r in env["routes"] if r["endpoint"] == "api/products")
        order = list(_blocks(route))
        for sent, n in LEVEL_CHECKS:
            served = sent if sent in model.personas else None
            cell = model.cell("GET /api/products", served or default_persona(model))
            _, st = hammer(levels + "/api/products", n, concurrency=50,
                           headers={model.persona_header: sent} if sent else None)
            block, level = np.divmod(st - 200, Q)
            assert np.all(block == order.index(served)), (sent, np.unique(block))
            scheduled = latency_levels(cell, Q)[level]
            print(f"levels, {model.persona_header}: {sent}: served p50/p90 "
                  f"{np.quantile(scheduled, 0.5):.1f}/{np.quantile(scheduled, 0.9):.1f} ms, "
                  f"exported {cell.persona} mixture "
                  + "/".join(f"{x:.1f}" for x in mixture_quantiles(cell, [0.5, 0.9], Q)))
            for q, x_q in zip((0.1, 0.5, 0.9), mixture_quantiles(cell, [0.1, 0.5, 0.9], Q)):
                check_quantile(scheduled, x_q, q)
    print(f"live part: {time.monotonic() - t0:.1f} s")
    assert path.read_text() == written  # the CLI served the file as written
