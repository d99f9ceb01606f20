"""The Locust export: weights, the generated file, and a real headless run against
``driftbayes serve`` whose observed session flows must match the exported transition rows.

Locust is installed into its own venv (:func:`driftbayes.export.runtimes.locust_bin`), never
into driftbayes' environment: its gevent monkey-patching breaks other libraries.

Tolerances. The generated file makes Locust draw the next task from the integer weights
``w/scale``, which are within ``1/scale`` of the model's row (checked exactly below), so the run
is judged against ``w/scale``: each observed next-step count out of ``n`` transitions from a
source is Binomial(n, w/scale); an exact two-sided binomial test per cell at the 4σ level
(α = 6.3e-5) and a Pearson χ² per row (cells with expected count < 5 pooled, α = 1e-4) keep the
false-alarm rate of the whole test below 1%.
"""

from __future__ import annotations

import ast
import collections
import json
import os
import py_compile
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from driftbayes.conjugate import dirichlet_mean
from driftbayes.export import runtimes
from driftbayes.export.fakes import fake_segment
from driftbayes.export.locust import (
    LOCUST_VERSION,
    expected_users,
    persona_weights,
    session_durations,
    task_names,
    transition_weights,
    write_locust,
)
from driftbayes.export.model import largest_remainder
from driftbayes.redact import DETECTORS, card_ok, iban_ok
from driftbayes.templates import SEGMENT_RULES, template_path, template_paths

#: A source endpoint's row is checked once it has at least this many observed transitions.
MIN_TRANSITIONS = 200
#: Locust runs until the mock has logged this many requests (SIGTERM), not for a fixed time: on
#: a loaded machine a fixed-length run would send fewer. MAX_S caps a machine that stalls.
N_REQUESTS, MAX_S = 4000, 600
ALPHA_CELL = 2 * stats.norm.sf(4.0)  # 4σ two-sided
ALPHA_ROW = 1e-4


@pytest.fixture(scope="module")
def locust_bin() -> Path:
    """``locust`` of a venv holding only Locust (:func:`runtimes.locust_bin`, cached)."""
    try:
        exe = runtimes.locust_bin()
    except runtimes.RuntimeUnavailable as exc:
        pytest.skip(f"{exc}: Locust cannot run here")
    version = subprocess.run([str(exe), "--version"], capture_output=True, text=True,
                             timeout=120)
    assert LOCUST_VERSION in version.stdout + version.stderr, version
    return exe


@pytest.fixture(scope="module")
def locustfile(model, tmp_path_factory) -> Path:
    return write_locust(model, tmp_path_factory.mktemp("locust") / "locustfile.py")


# --------------------------------------------------------------------------------------------
# unit


def test_integer_weights_largest_remainder():
    w = largest_remainder([0.3333, 0.3333, 0.3334, 0.0], 1000)
    assert w.sum() == 1000 and list(w) == [333, 333, 334, 0]
    rng = np.random.default_rng(3)
    for _ in range(200):
        p = rng.dirichlet(np.full(7, 0.3))
        w = largest_remainder(p, 1000)
        assert w.sum() == 1000
        assert np.all(np.abs(w - p * 1000) < 1.0)
        assert np.all(w[p >= 1e-3] >= 1)
    assert largest_remainder([0.0, 0.0], 10).sum() == 0


@pytest.mark.parametrize("scale", [1000, 250])
def test_transition_weights_reproduce_rows(model, scale):
    W = transition_weights(model, scale)
    T = dirichlet_mean(model.transitions.dense())
    assert W.shape == T.shape and W.dtype.kind == "i"
    assert np.all(W.sum(-1) == scale)
    assert np.all(np.abs(W / scale - T) < 1.0 / scale)
    assert np.all(W[T >= 1.0 / scale] >= 1)  # every transition with p ≥ 1/scale survives


def test_generated_file_weights_match(model, locustfile):
    """The ``@transitions`` decorators in the file are exactly :func:`transition_weights`."""
    tree = ast.parse(locustfile.read_text(encoding="utf-8"))
    E = len(model.endpoints)
    dests = task_names(model) + ["stop"]
    W = transition_weights(model)
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    sessions = [n for n in classes.values() if n.name.endswith("Session")
                and n.name != "DriftbayesSession"]
    assert len(sessions) == len(model.personas)
    for node in sessions:
        persona = next(ast.literal_eval(s.value) for s in node.body
                       if isinstance(s, ast.Assign) and s.targets[0].id == "persona")
        p = model.personas.index(persona)
        funcs = [f for f in node.body if isinstance(f, ast.FunctionDef)]
        assert [f.name for f in funcs] == ["start", *task_names(model), "stop"]  # start first
        for f in funcs[:-1]:
            src = E if f.name == "start" else dests.index(f.name)
            (deco,) = f.decorator_list
            got = ast.literal_eval(deco.args[0])
            want = {dests[d]: int(W[p, src, d]) for d in range(E + 1) if W[p, src, d]}
            assert got == want, (persona, f.name)


def test_generated_file_compiles_and_is_self_contained(model, locustfile):
    py_compile.compile(str(locustfile), doraise=True)
    r = subprocess.run([sys.executable, "-m", "py_compile", str(locustfile)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    tree = ast.parse(locustfile.read_text(encoding="utf-8"))
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import)
                for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree)
                 if isinstance(n, ast.ImportFrom) and n.module}
    allowed = {"__future__", "base64", "os", "random", "re", "time", "uuid", "locust"}
    assert imported <= allowed, imported
    text = locustfile.read_text(encoding="utf-8")
    prov = model.provenance
    for needle in (prov["driftbayes_version"], prov["layer"], prov["data_start"],
                   prov["data_end"], "SESSION_RATE_PER_S", "EXPECTED_USERS", "locust -f",
                   " -u ", " -r "):
        assert needle in text, needle


#: Every parameter name the templater produces: rule placeholders and value detectors.
PARAMETERS = sorted({r.placeholder[1:-1] for r in SEGMENT_RULES if r.placeholder}
                    | {"token" if d == "entropy" else d for d in DETECTORS})


def _generated_segment(locustfile: Path):
    """``_segment`` of a generated locustfile: its imports and runtime up to the task set,
    executed without Locust."""
    src = locustfile.read_text(encoding="utf-8")
    imports = [ln for ln in src.split("\n") if ln.startswith("import ")]
    runtime = "THINK_SCALE =" + src.split("THINK_SCALE =", 1)[1].split(
        "class DriftbayesSession", 1)[0]
    ns: dict = {}
    exec(compile("\n".join(imports) + "\n" + runtime, str(locustfile), "exec"), ns)
    return ns["_segment"]


def test_segments_template_back_to_their_parameter(locustfile):
    """For every parameter the templater can produce, the locustfile's ``_segment`` gives
    values that template back to the same parameter (per path and vectorised)."""
    generated = _generated_segment(locustfile)
    assert {"id", "uuid", "email", "jwt", "card", "iban", "token"} <= set(PARAMETERS)
    for name in PARAMETERS:
        paths = [f"/a/{seg(name)}/b" for seg in (generated, fake_segment) for _ in range(200)]
        want = f"/a/{{{name}}}/b"
        assert [template_path(p) for p in paths] == [want] * len(paths), name
        assert template_paths(np.array(paths, dtype=object)).tolist() == [want] * len(paths)
        assert len(set(paths)) > 1, name  # random, not one constant
    assert template_path(f"/u/{generated('userId')}") == "/u/{id}"


def test_fake_secrets_are_fakes():
    """Fakes are well-formed but never real: test card numbers, ``EXAMPLE`` AWS key ids,
    Stripe test keys, mock JWT claims, the ``TEST`` bank code."""
    import base64

    for _ in range(100):
        card = fake_segment("card").replace("-", "")
        assert card_ok(card) and card in {"4111111111111111", "4242424242424242",
                                          "4012888888881881", "5555555555554444",
                                          "5105105105105100", "378282246310005",
                                          "6011111111111117"}
        iban = fake_segment("iban")
        assert iban_ok(iban) and iban[4:8] == "TEST"
        assert fake_segment("aws_key").endswith("EXAMPLE")
        assert fake_segment("stripe_key").startswith("sk_test_")
        header, payload, _ = fake_segment("jwt").split(".")
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        assert claims["mock"] == "driftbayes"
        typ = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["typ"]
        assert typ == "JWT"


def test_constants_and_persona_weights(model, locustfile):
    """Header constants are the model's; persona weights ∝ expected users (Little's law), so
    the request mix the users produce is ``persona_share``."""
    ns: dict = {}
    src = locustfile.read_text(encoding="utf-8")
    head = src.split("THINK_SCALE =")[0].split("from locust import")[1].split("\n", 1)[1]
    exec(compile(head, "constants", "exec"), ns)  # the constants block only (no locust here)
    rate = np.asarray(model.session_rate_per_s)
    assert ns["SESSION_RATE_PER_S"] == pytest.approx(rate.sum())
    assert ns["SCALE"] == 1000 and ns["PERSONA_HEADER"] == model.persona_header
    users = expected_users(model)
    assert ns["EXPECTED_USERS"] == pytest.approx(users.sum())
    durations = session_durations(model)
    assert np.all(durations > 0)
    # Little's law per persona, and the file's per-persona constants
    for p, persona in enumerate(model.personas):
        assert ns["MEAN_SESSION_S"][persona] == pytest.approx(durations[p])
        assert ns["SESSION_RATE_PER_S_BY_PERSONA"][persona] == pytest.approx(rate[p])
    w = persona_weights(model)
    assert w.sum() == 1000
    assert np.all(np.abs(w / 1000 - users / users.sum()) < 1e-3)
    # closed-loop users: a persona-p user sends L_p / D_p requests per second
    req = w * model.session_lengths() / durations
    np.testing.assert_allclose(req / req.sum(), model.persona_share, atol=5e-3)
    weights = {}
    for node in ast.parse(src).body:
        if isinstance(node, ast.ClassDef) and node.name.endswith("User"):
            body = {s.targets[0].id: s.value for s in node.body if isinstance(s, ast.Assign)}
            weights[node.name] = ast.literal_eval(body["weight"])
    assert sorted(weights.values()) == sorted(int(x) for x in w)


def test_session_duration_is_visits_times_gap(model):
    """Think times far above latency: duration ≈ Σ visits × (1 − P(END)) × E[think]."""
    E = len(model.endpoints)
    d = session_durations(model)
    for p in range(len(model.personas)):
        T = dirichlet_mean(model.transitions.dense())  # dense reference for the sparse solve
        q = T[p, :E, :E]
        visits = np.linalg.solve(np.eye(E) - q.T, T[p, E, :E])
        np.testing.assert_allclose(model.visits(p), visits, rtol=1e-9)
        think = model.think_median_ms[:, p] / 1000 * np.exp(model.think_sigma[:, p] ** 2 / 2)
        approx = float((visits * (1 - T[p, :E, E]) * think).sum())
        assert d[p] == pytest.approx(approx, rel=0.05)  # latency adds a little, grid a little
    faster = session_durations(model, think_scale=0.001)
    assert np.all(faster < d / 50)


def test_write_locust_into_folder(model, tmp_path):
    path = write_locust(model, tmp_path / "out", host="http://example.test:9", scale=100)
    assert path == tmp_path / "out" / "locustfile.py"
    text = path.read_text(encoding="utf-8")
    assert "host = 'http://example.test:9'" in text and "SCALE = 100" in text
    with pytest.raises(ValueError):
        write_locust(model, tmp_path / "x.py", scale=0)


# --------------------------------------------------------------------------------------------
# integration: a real Locust run against driftbayes serve


class _Recorder:
    """ASGI middleware logging (session header, persona header, method, path) per request."""

    def __init__(self, app, persona_header: str):
        self.app = app
        self.persona_header = persona_header.lower().encode()
        self.log: list[tuple[str, str, str, str]] = []

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            h = dict(scope["headers"])
            self.log.append((h.get(b"x-session-id", b"").decode(),
                             h.get(self.persona_header, b"").decode(),
                             scope["method"], scope["path"]))
        await self.app(scope, receive, send)


def _observed_transitions(log, engine, model):
    """(P, E+1, E+1) observed counts (START row / END column last). Session ids are
    ``<user>-<k>``: a user's sessions before its last one ended at END; the last one was cut
    by the end of the run, so its final step is unknown and not counted."""
    E, P = len(model.endpoints), len(model.personas)
    persona_index = {x: i for i, x in enumerate(model.personas)}
    sessions: dict[str, list[tuple[int, int]]] = collections.defaultdict(list)
    unmatched = 0
    for sid, persona, method, path in log:
        e, code = engine.match(method, path)
        if e is None or not sid or persona not in persona_index:
            unmatched += 1
            continue
        key = model.endpoints.index(engine.endpoints[e])
        sessions[sid].append((persona_index[persona], key))
    last: dict[str, int] = {}
    for sid in sessions:
        user, k = sid.rsplit("-", 1)
        last[user] = max(last.get(user, 0), int(k))
    counts = np.zeros((P, E + 1, E + 1), dtype=np.int64)
    for sid, steps in sessions.items():
        user, k = sid.rsplit("-", 1)
        personas = {p for p, _ in steps}
        assert len(personas) == 1, f"session {sid} changed persona"
        p = personas.pop()
        seq = [E] + [e for _, e in steps]
        for a, b in zip(seq[:-1], seq[1:]):
            counts[p, a, b] += 1
        if int(k) < last[user]:
            counts[p, seq[-1], E] += 1
    return counts, unmatched, len(sessions)


def test_locust_run_reproduces_transition_rows(learned, model, locustfile, locust_bin, tmp_path):
    from driftbayes.server.app import MockEngine, create_app, serving

    engine = MockEngine(learned, learned.config, seed=11, flow="annotate")
    app = create_app(engine, learner=learned, config=learned.config)
    rec = _Recorder(app, model.persona_header)
    summary = tmp_path / "locust.json"
    t0 = time.monotonic()
    log = tmp_path / "locust.log"
    with serving(rec) as url, log.open("w") as fh:
        proc = subprocess.Popen(
            [str(locust_bin), "-f", str(locustfile), "--headless", "-u", "40", "-r", "40",
             "-t", f"{MAX_S}s", "--host", url, "--only-summary", "--loglevel", "WARNING",
             "--exit-code-on-error", "0", "--json-file", str(summary.with_suffix(""))],
            env={**os.environ, "THINK_SCALE": "0.001"}, stdout=fh, stderr=subprocess.STDOUT,
            text=True, cwd=tmp_path)
        try:
            while proc.poll() is None and len(rec.log) < N_REQUESTS:
                time.sleep(0.2)
            proc.send_signal(signal.SIGTERM)  # Locust stops its users, writes the summary
            proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
    elapsed = time.monotonic() - t0
    out = log.read_text(errors="replace")
    assert proc.returncode == 0, out[-3000:]
    assert "Traceback" not in out, out[-3000:]

    counts, unmatched, n_sessions = _observed_transitions(rec.log, engine, model)
    assert unmatched == 0  # every concrete path maps back to its template, personas known
    assert engine.served.unmatched == {}
    n_requests = len(rec.log)
    assert n_requests >= N_REQUESTS, (n_requests, out[-2000:])
    # Locust's own count agrees with the server's (a request cut at shutdown may differ)
    sent = sum(s["num_requests"] for s in json.loads(summary.read_text()))
    assert abs(sent - n_requests) <= 60, (sent, n_requests)

    W = transition_weights(model)
    names = model.endpoints + ["END"]
    checked = []
    for p, persona in enumerate(model.personas):
        for src in range(len(names)):
            n = int(counts[p, src].sum())
            if n < MIN_TRANSITIONS:
                continue
            q = W[p, src] / W[p, src].sum()
            obs = counts[p, src]
            assert np.all(obs[q == 0] == 0), (persona, src, obs, q)
            for d in np.flatnonzero(q > 0):
                pv = stats.binomtest(int(obs[d]), n, float(q[d])).pvalue
                assert pv > ALPHA_CELL, (
                    f"{persona}: {('START' if src == len(names) - 1 else names[src])} -> "
                    f"{names[d]}: {obs[d]}/{n} = {obs[d] / n:.4f}, model {q[d]:.4f} "
                    f"(p={pv:.2g})")
            expected = q * n
            big = expected >= 5
            f_obs = np.r_[obs[big], obs[~big].sum()]
            f_exp = np.r_[expected[big], expected[~big].sum()]
            keep = f_exp > 0
            chi = stats.chisquare(f_obs[keep], f_exp[keep])
            assert chi.pvalue > ALPHA_ROW, (persona, src, obs, q, chi)
            se = np.sqrt(np.maximum(q * (1 - q), 1e-12) / n)
            checked.append((persona, "START" if src == len(names) - 1 else names[src], n,
                            float(np.max(np.abs(obs / n - q) / se)), float(chi.pvalue),
                            " ".join(f"{obs[d] / n:.3f}/{model.next_probs(p, src)[d]:.3f}"
                                     for d in range(len(names)))))
    assert len(checked) >= 6, checked
    # every persona's START row is among the checked ones (START has the most evidence)
    assert {c[0] for c in checked if c[1] == "START"} >= {
        x for x, n in zip(model.personas, counts[:, -1].sum(-1)) if n >= MIN_TRANSITIONS}
    print(f"\nlocust: {n_requests} requests, {n_sessions} sessions in {elapsed:.1f} s; "
          f"rows checked (persona, source, n, max |z|, chi2 p, observed/model per destination "
          f"{', '.join(names)}):")
    for row in checked:
        print("  ", row)
