"""Export to Locust: one self-contained locustfile that replays the learned sessions.

WESSBAS-style: the behaviour model is the per-persona Markov chain of :class:`ExportModel`
(START row, END column), the workload mix is the persona weights, and think times sit on the
edges. The file imports only ``locust`` (tested with :data:`LOCUST_VERSION`) and the standard
library, so it runs wherever Locust runs.

**Flow.** One ``MarkovTaskSet`` per persona with one task per endpoint, decorated with
``@transitions`` whose integer weights are the persona's transition row times ``scale``,
apportioned by largest remainder so every row sums to exactly ``scale``: each weight is within
1 of ``p·scale`` (so every transition with ``p ≥ 1/scale`` keeps a weight ≥ 1 and Locust's draw
``w/scale`` is within ``1/scale`` of ``p``). Locust starts a ``MarkovTaskSet`` at its first
declared task, so that task is ``start``: it sends nothing, opens a new session (a fresh
``X-Session-Id``) and moves by the START row. END is the task ``stop``, which calls
``self.interrupt()``: the ``HttpUser`` re-schedules its task set at once, a new instance
starts from ``start``, so each Locust user runs sessions back to back — a closed loop of
concurrent sessions, which is what Little's law counts below. Every request carries the
persona header and the session header; ``{param}`` segments get random values that
driftbayes' templating maps back to the same template (digits for ``{id}``, a UUID for
``{uuid}``, a fake JWT for ``{jwt}`` …: :mod:`driftbayes.export.fakes`) and the template is the
stats ``name``.

**Think times.** driftbayes learns the gap between the *starts* of consecutive requests of a
session, log-normal per source endpoint (``think_median_ms``, ``think_sigma``). After a request
to endpoint ``e`` the user waits a draw from that log-normal minus the time the request took,
so the start-to-start gap is ``max(think, latency)``; the first request of a session and the
step to END wait nothing. ``THINK_SCALE`` (environment) multiplies every think time, e.g.
``0.001`` to exercise the flow quickly.

**Arrival rate.** The model's session arrival rate ``λ_p`` (``session_rate_per_s``) and the
mean session duration ``D_p`` (expected visits × expected start-to-start gap, from the learned
latency and think times) give the expected number of concurrent sessions by Little's law,
``U_p = λ_p·D_p``; the file states both, and ``-u ΣU_p`` users reproduce the learned request
rate. The persona ``weight`` of each ``HttpUser`` is ``∝ U_p`` (not ∝ the request share
``persona_share``): a closed-loop user of persona ``p`` sends ``L_p/D_p`` requests per second
(``L_p`` requests per session), so ``U_p`` users send ``λ_p·L_p`` — the persona's request rate —
and the request mix comes out ∝ ``persona_share``. With ``THINK_SCALE ≠ 1`` durations shrink
unevenly and the mix shifts; that mode is for checking flows, not load shape.

What is lost: Locust users are a closed loop (a new session starts the moment one ends) where
real arrivals are open (Poisson); latency feedback changes the request rate, not the arrival
rate; and think times are log-normal (the Student-t's heavier tails are dropped, see
:mod:`driftbayes.export.model`).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
from scipy import stats

from driftbayes.export import fakes
from driftbayes.export.model import ExportModel, largest_remainder

#: The Locust release the generated files are tested with (``pip install locust==…``).
LOCUST_VERSION = "2.47.0"
#: Task names every generated task set defines besides the endpoint tasks.
START_TASK = "start"
STOP_TASK = "stop"
#: Quantile points used for the expected start-to-start gap ``E[max(think, latency)]``.
_GRID = 256


# --------------------------------------------------------------------------------------------
# numbers


def row_weights(model: ExportModel, p: int, src: int, total: int) -> np.ndarray:
    """(E+1,) integer ``@transitions`` weights of one row (persona ``p``, source ``src``,
    START = E): its next-state probabilities apportioned to exactly ``total`` (END last).

    A row with no mass (never the case for a Dirichlet mean) goes to END.
    """
    w = largest_remainder(model.next_probs(p, src), total)
    if w.sum() == 0:
        w[-1] = total
    return w


def transition_weights(model: ExportModel, scale: float = 1000) -> np.ndarray:
    """(P, E+1, E+1) integer ``@transitions`` weights, every row (:func:`row_weights`; dense:
    for small vocabularies and tests)."""
    total = _scale(scale)
    P, S = len(model.personas), len(model.endpoints) + 1
    return np.array([[row_weights(model, p, s, total) for s in range(S)] for p in range(P)])


def _latency_probs(model: ExportModel, e: int, p: int) -> np.ndarray | None:
    """Served latency histogram of a cell; a cell never seen borrows its endpoint's average."""
    endpoint, persona = model.endpoints[e], model.personas[p]
    same = model.cells_by_endpoint.get(endpoint, [])
    for c in same:
        if c.persona == persona:
            return c.latency_p
    if same:
        return np.mean([c.latency_p for c in same], axis=0)
    return None


def session_durations(model: ExportModel, think_scale: float = 1.0) -> np.ndarray:
    """(P,) mean session duration in seconds, first request sent → last response received.

    Each visit to endpoint ``e`` is followed, with probability ``1 − P(e→END)``, by a
    start-to-start gap ``max(think, latency)`` (the locustfile waits the think time minus the
    request's duration), else by the request's latency alone. ``E[max(T, L)]`` is averaged
    over a grid of quantiles of the think-time log-normal and the latency histogram.
    """
    from driftbayes import conjugate as cj

    E, P = len(model.endpoints), len(model.personas)
    u = (np.arange(_GRID) + 0.5) / _GRID
    z = stats.norm.ppf(u)
    out = np.zeros(P)
    for p in range(P):
        visits = model.visits(p)
        total = 0.0
        for e in range(E):
            if visits[e] <= 0:
                continue
            lat_p = _latency_probs(model, e, p)
            lat = (cj.histogram_quantiles(lat_p, u) / 1000.0 if lat_p is not None
                   else np.zeros(_GRID))
            think = (think_scale * model.think_median_ms[e, p] / 1000.0
                     * np.exp(model.think_sigma[e, p] * z))
            gap = float(np.maximum(think[:, None], lat[None, :]).mean())
            p_end = float(model.next_probs(p, e)[E])
            total += visits[e] * ((1.0 - p_end) * gap + p_end * float(lat.mean()))
        out[p] = total
    return out


def expected_users(model: ExportModel) -> np.ndarray:
    """(P,) expected concurrent sessions per persona by Little's law, ``λ_p · D_p``."""
    return np.asarray(model.session_rate_per_s, dtype=float) * session_durations(model)


def persona_weights(model: ExportModel, scale: float = 1000) -> np.ndarray:
    """(P,) integer ``HttpUser.weight`` ∝ expected concurrent sessions (sum ``round(scale)``),
    at least 1 for every persona with sessions; falls back to ``persona_share`` when the model
    has no session rate."""
    users = expected_users(model)
    base = users if users.sum() > 0 else np.asarray(model.persona_share, dtype=float)
    w = largest_remainder(base, _scale(scale))
    w[(w == 0) & (base > 0)] = 1
    return w


def _scale(scale: float) -> int:
    total = int(round(float(scale)))
    if total < 1:
        raise ValueError(f"scale must be at least 1, got {scale!r}")
    return total


# --------------------------------------------------------------------------------------------
# names


def _slug(text: str) -> str:
    return re.sub(r"[^0-9A-Za-z]+", "_", text).strip("_").lower()


def task_names(model: ExportModel) -> list[str]:
    """Python names of the endpoint tasks, in endpoint order (``e0_get_api_products`` …)."""
    return [f"e{i}_{_slug(ep)[:48]}".rstrip("_") for i, ep in enumerate(model.endpoints)]


def class_names(model: ExportModel) -> list[str]:
    """CamelCase stems of the per-persona classes (``Web`` → ``WebSession``, ``WebUser``)."""
    out: list[str] = []
    for i, persona in enumerate(model.personas):
        stem = "".join(w[:1].upper() + w[1:] for w in re.split(r"[^0-9A-Za-z]+", persona) if w)
        if not stem or not stem[0].isalpha():
            stem = f"Persona{i}{stem}"
        while stem in out or stem in ("Driftbayes", "Http"):
            stem = f"{stem}{i}"
        out.append(stem)
    return out


def _one_line(text: str) -> str:
    """Text safe inside a ``#`` comment or a docstring line."""
    return " ".join(str(text).replace("\\", "/").replace('"""', "'''").split())


# --------------------------------------------------------------------------------------------
# the file

_RUNTIME = '''
THINK_SCALE = float(os.environ.get("THINK_SCALE", "1"))

_PARAM = re.compile(r"\\{([^{}/]*)\\}")


@@FAKES@@

def _segment(name):
    """A concrete value for a ``{name}`` path parameter that driftbayes templates back to it."""
    return fake_segment(name)


def concrete_path(template):
    """``/api/users/{id}`` -> ``/api/users/48151``."""
    return _PARAM.sub(lambda m: _segment(m.group(1)), template)


class DriftbayesSession(MarkovTaskSet):
    """One session of a persona: ``start`` (START) -> endpoint tasks -> ``stop`` (END).

    ``start`` opens a session (a new ``X-Session-Id``) without a request; ``stop`` interrupts
    the task set so the user begins the next session at ``start``. Between requests the user
    waits the source endpoint's log-normal think time minus the request's own duration.
    """

    abstract = True
    persona = ""
    think = ()  # (mu of log seconds, sigma) of the think time after each endpoint
    last = None  # endpoint index of the session's last request (None: none yet)
    t0 = 0.0
    session_id = ""

    def _begin_session(self):
        user = self.user
        if not getattr(user, "driftbayes_uid", None):
            user.driftbayes_uid = uuid.uuid4().hex[:16]
            user.driftbayes_sessions = 0
        user.driftbayes_sessions += 1
        self.session_id = "%s-%d" % (user.driftbayes_uid, user.driftbayes_sessions)
        self.last = None

    def _request(self, i):
        method, template = ENDPOINTS[i]
        self.t0 = time.perf_counter()
        self.client.request(method, concrete_path(template), name=template,
                            headers={PERSONA_HEADER: self.persona,
                                     SESSION_HEADER: self.session_id})
        self.last = i

    def _end_session(self):
        self.interrupt(reschedule=True)

    def wait_time(self):
        upcoming = getattr(self.current, "__name__", "")
        if self.last is None or upcoming == "stop":
            return 0.0
        mu, sigma = self.think[self.last]
        gap = random.lognormvariate(mu, sigma) * THINK_SCALE
        return max(0.0, gap - (time.perf_counter() - self.t0))
'''


def fakes_runtime() -> str:
    """The code of :mod:`driftbayes.export.fakes` below its ``runtime`` marker (the
    ``_segment`` generators of the locustfile; they need ``base64``, ``random``, ``uuid``)."""
    src = Path(fakes.__file__).read_text(encoding="utf-8")
    return src.split("# ---- runtime:", 1)[1].split("\n", 1)[1].strip("\n") + "\n"


def render_locustfile(model: ExportModel, *, host: str = "http://127.0.0.1:8000",
                      scale: float = 1000, filename: str = "locustfile.py") -> str:
    """The text of the locustfile :func:`write_locust` writes."""
    total = _scale(scale)
    E, P = len(model.endpoints), len(model.personas)
    if E == 0 or P == 0:
        raise ValueError("nothing to export: the model has no endpoints or no personas")
    pw = persona_weights(model, total)
    durations = session_durations(model)
    users = np.asarray(model.session_rate_per_s, dtype=float) * durations
    lengths = model.session_lengths()
    rate = np.asarray(model.session_rate_per_s, dtype=float)
    share = np.asarray(model.persona_share, dtype=float)
    tasks = task_names(model)
    stems = class_names(model)
    dests = tasks + [STOP_TASK]
    prov = model.provenance
    n_users = max(1, math.ceil(float(users.sum())))
    spawn = max(1, math.ceil(float(rate.sum())))
    mean_d = float((rate * durations).sum() / rate.sum()) if rate.sum() > 0 else 0.0
    mean_l = float((rate * lengths).sum() / rate.sum()) if rate.sum() > 0 else 0.0
    span = f"{prov.get('data_start', '')} -> {prov.get('data_end', '')}"
    version = prov.get("driftbayes_version", "")
    layer = prov.get("layer", model.layer)
    fname = _one_line(filename)

    L: list[str] = []
    add = L.append
    add('"""Locust load profile exported by driftbayes: the learned sessions, replayed.')
    add("")
    add(f"One MarkovTaskSet per persona ({', '.join(_one_line(x) for x in model.personas)}),")
    add("one task per endpoint with @transitions weights = transition probability x "
        f"{total},")
    add("plus a `start` task (START, no request) and a `stop` task (END: the session ends and")
    add("the user starts the next one). Think times are log-normal per source endpoint.")
    add("")
    add(f"Frequency model: {float(rate.sum()):.4g} new sessions/s, {mean_l:.3g} requests and "
        f"{mean_d:.3g} s per session;")
    add(f"Little's law: {float(rate.sum()):.4g}/s x {mean_d:.3g} s = "
        f"{float(users.sum()):.3g} concurrent users. Suggested run:")
    add("")
    add(f"    locust -f {fname} --headless -u {n_users} -r {spawn} -t 30m "
        f"--host {_one_line(host)}")
    add("")
    add("(-r is the session arrival rate, so the ramp lasts about one session.)")
    add("THINK_SCALE=0.001 in the environment shortens think times to check flows quickly.")
    add("Responses with status >= 400 are the mock's learned errors; Locust counts them as")
    add("failures.")
    add('"""')
    add(f"# Generated by driftbayes {_one_line(version)} from the {_one_line(layer)!r} layer; "
        "re-export rather than edit.")
    add(f"# Data span: {_one_line(span)} ({prov.get('n_events', 0)} events, "
        f"{prov.get('n_windows', 0)} windows); exported {_one_line(prov.get('created_at', ''))}.")
    add(f"# Session arrival rate {float(rate.sum()):.6g}/s; expected concurrent users "
        f"{float(users.sum()):.4g} (Little's law, lambda x mean session duration).")
    for p, persona in enumerate(model.personas):
        add(f"#   {_one_line(persona)}: {rate[p]:.6g} sessions/s x {durations[p]:.4g} s = "
            f"{users[p]:.4g} users (weight {pw[p]}), {lengths[p]:.3g} requests/session, "
            f"{share[p]:.1%} of requests")
    add("")
    add("from __future__ import annotations")
    add("")
    add("import base64")
    add("import os")
    add("import random")
    add("import re")
    add("import time")
    add("import uuid")
    add("")
    add("from locust import HttpUser, MarkovTaskSet, transitions")
    add("")
    add(f"DRIFTBAYES_VERSION = {str(version)!r}")
    add(f"LAYER = {str(layer)!r}")
    add(f"DATA_START = {str(prov.get('data_start', ''))!r}")
    add(f"DATA_END = {str(prov.get('data_end', ''))!r}")
    add(f"PERSONA_HEADER = {model.persona_header!r}")
    add('SESSION_HEADER = "X-Session-Id"')
    add(f"SCALE = {total}  # @transitions weights of a row sum to SCALE")
    add(f"SESSION_RATE_PER_S = {float(rate.sum())!r}  # new sessions per second, all personas")
    add("SESSION_RATE_PER_S_BY_PERSONA = {"
        + ", ".join(f"{x!r}: {float(r)!r}" for x, r in zip(model.personas, rate)) + "}")
    add("MEAN_SESSION_S = {"
        + ", ".join(f"{x!r}: {float(d)!r}" for x, d in zip(model.personas, durations)) + "}")
    add("REQUESTS_PER_SESSION = {"
        + ", ".join(f"{x!r}: {float(n)!r}" for x, n in zip(model.personas, lengths)) + "}")
    add("PERSONA_SHARE = {"
        + ", ".join(f"{x!r}: {float(s)!r}" for x, s in zip(model.personas, share)) + "}")
    add(f"EXPECTED_USERS = {float(users.sum())!r}  # Little's law: sum of rate x duration")
    add("")
    add("# (method, template) per endpoint task index")
    add("ENDPOINTS = [")
    for c_method, c_tmpl in (_method_template(ep) for ep in model.endpoints):
        add(f"    ({c_method!r}, {c_tmpl!r}),")
    add("]")
    add("")
    L.extend(_RUNTIME.strip("\n").replace("@@FAKES@@", fakes_runtime()).split("\n"))
    for p, persona in enumerate(model.personas):
        stem = stems[p]
        add("")
        add("")
        add(f"class {stem}Session(DriftbayesSession):")
        add(f'    """Persona {_one_line(persona)!r}: {share[p]:.1%} of requests, '
            f'{rate[p]:.4g} sessions/s, {lengths[p]:.3g} requests per session."""')
        add("")
        add(f"    persona = {persona!r}")
        add("    think = (")
        for e in range(E):
            mu = math.log(max(float(model.think_median_ms[e, p]), 1e-6) / 1000.0)
            sigma = float(model.think_sigma[e, p])
            add(f"        ({round(mu, 6) + 0.0!r}, {round(sigma, 6)!r}),  # after {tasks[e]}")
        add("    )")
        rows = [(START_TASK, E, "self._begin_session()")]
        rows += [(tasks[e], e, f"self._request({e})") for e in range(E)]
        for name, src, body in rows:
            w = row_weights(model, p, src, total)
            weights = {dests[d]: int(w[d]) for d in np.flatnonzero(w)}
            add("")
            add(f"    @transitions({weights!r})")
            add(f"    def {name}(self):")
            add(f"        {body}")
        add("")
        add(f"    @transitions({{{START_TASK!r}: 1}})")
        add(f"    def {STOP_TASK}(self):")
        add("        self._end_session()")
        add("")
        add("")
        add(f"class {stem}User(HttpUser):")
        add(f'    """Persona {_one_line(persona)!r}; weight proportional to its expected '
            f'concurrent sessions ({users[p]:.4g})."""')
        add("")
        if pw[p] <= 0:
            add("    abstract = True  # no sessions learned for this persona")
        add(f"    weight = {int(pw[p])}")
        add(f"    host = {host!r}")
        add(f"    tasks = [{stem}Session]")
    return "\n".join(L) + "\n"


def _method_template(endpoint: str) -> tuple[str, str]:
    method, _, tmpl = endpoint.partition(" ")
    if not tmpl:  # "/path" without a method
        return "GET", method
    return method.upper(), tmpl


def write_locust(model: ExportModel, out: Path, *, host: str = "http://127.0.0.1:8000",
                 scale: float = 1000) -> Path:
    """Write the locustfile of ``model`` (see the module docstring) and return its path.

    Parameters
    ----------
    model : ExportModel
        What to replay (:func:`driftbayes.export.model.export_model`).
    out : Path
        The ``.py`` file to write, or a folder to write ``locustfile.py`` into.
    host : str
        Default ``host`` of the generated users (``--host`` overrides it).
    scale : float
        Sum of the integer ``@transitions`` weights of each row (and of the persona weights);
        Locust's transition probabilities are within ``1/scale`` of the model's.
    """
    out = Path(out)
    path = out if out.suffix == ".py" else out / "locustfile.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = render_locustfile(model, host=host, scale=scale, filename=path.name)
    compile(text, str(path), "exec")  # a generator bug fails here, not in Locust
    path.write_text(text, encoding="utf-8")
    return path


__all__ = ["LOCUST_VERSION", "class_names", "expected_users",
           "persona_weights", "render_locustfile", "session_durations", "task_names",
           "row_weights", "transition_weights", "write_locust"]
