"""Posterior-predictive draws: single responses and whole sessions (traffic mirroring)."""

from __future__ import annotations

import numpy as np

from driftbayes import conjugate as cj
from driftbayes.kinds import REGISTRY
from driftbayes.learner import DriftLearner, split_endpoint


def _cells(learner: DriftLearner, endpoint: str | None, persona: str | None, rate: np.ndarray):
    """Candidate (endpoint, persona) cells and their weights (the layer's request rates)."""
    E, P = rate.shape
    e_mask = np.ones(E, bool)
    p_mask = np.ones(P, bool)
    if endpoint is not None:
        e_mask[:] = False
        e_mask[learner.resolve_endpoint(endpoint)] = True
    if persona is not None:
        p_mask[:] = False
        p_mask[learner.resolve_persona(persona)] = True
    w = rate * e_mask[:, None] * p_mask[None, :]
    ei, pi = np.nonzero(w > 0)
    return ei, pi, w[ei, pi]


def sample(
    learner: DriftLearner,
    n: int,
    *,
    endpoint: str | None = None,
    persona: str | None = None,
    layer: str = "applied",
    seed: int | None = None,
) -> dict[str, np.ndarray]:
    """Draw ``n`` responses from a layer's posterior predictive.

    The cell is drawn by the layer's request rate unless ``endpoint``/``persona`` fix it;
    status from the Dirichlet-categorical predictive, latency from the Dirichlet latency
    histogram (a bin, then log-uniform inside it).

    Returns
    -------
    dict of arrays ``endpoint``, ``method``, ``persona``, ``status``, ``latency_ms`` (and one
    per registered extra kind that draws a value, named by its ``observable``).
    """
    snap = learner.snapshot()
    if not snap.endpoints_:
        raise ValueError("nothing learned yet: no endpoints in this state")
    rng = np.random.default_rng(seed)
    prm = snap.layer(layer)
    rate = prm.rate_a / prm.rate_b
    ei, pi, w = _cells(snap, endpoint, persona, rate)
    pick = cj.sample_categorical(np.broadcast_to(w / w.sum(), (n, len(w))), rng)
    e, p = ei[pick], pi[pick]
    names = [split_endpoint(x) for x in snap.endpoints_]
    out = {
        "endpoint": np.array([names[i][1] for i in e], dtype=object),
        "method": np.array([names[i][0] for i in e], dtype=object),
        "persona": np.array(snap.personas_, dtype=object)[p],
    }
    # each kind's predictive: status, latency, then any registered kind that draws a value
    drawn = ["errors", "latency"] + [k for k, kind in REGISTRY.items()
                                     if kind.observable and k not in ("errors", "latency")]
    for name in drawn:
        kind = REGISTRY[name]
        out[kind.observable] = kind.predictive(prm[name], e, p, rng, snap.statuses_)
    out["status"] = out["status"].astype(int)
    return out


def sample_sessions(
    learner: DriftLearner,
    k: int,
    *,
    persona: str | None = None,
    layer: str = "applied",
    seed: int | None = None,
    max_steps: int = 50,
) -> list[dict]:
    """Generate ``k`` whole sessions from the behavioural models.

    Persona by its share of the layer's request rate; first endpoint from the START row;
    each next endpoint (or END) from the transition row; think time before each later request
    from the source endpoint's think-time histogram (its posterior mean); status and latency
    per request as in :func:`sample`.

    Returns
    -------
    list of dict, one per request: ``session``, ``step``, ``endpoint``, ``method``, ``persona``,
    ``think_ms``, ``status``, ``latency_ms``.
    """
    snap = learner.snapshot()
    if not snap.endpoints_:
        raise ValueError("nothing learned yet: no endpoints in this state")
    rng = np.random.default_rng(seed)
    prm = snap.layer(layer)
    E = len(snap.endpoints_)
    rate = prm.rate_a / prm.rate_b
    if persona is None:
        share = rate.sum(0)
        p = cj.sample_categorical(np.broadcast_to(share / share.sum(), (k, len(share))), rng)
    else:
        p = np.full(k, snap.resolve_persona(persona))
    names = [split_endpoint(x) for x in snap.endpoints_]
    state = np.full(k, E)  # START
    alive = np.ones(k, bool)
    out: list[dict] = []
    for step in range(max_steps):
        idx = np.flatnonzero(alive)
        if not len(idx):
            break
        nxt = prm.transitions.sample_next(p[idx], state[idx], rng)
        ended = nxt == E
        alive[idx[ended]] = False
        idx, nxt = idx[~ended], nxt[~ended]
        if not len(idx):
            break
        if step == 0:
            think = np.zeros(len(idx))
        else:
            think = REGISTRY["think_time"].predictive(prm["think_time"], state[idx], p[idx],
                                                      rng, snap.statuses_)
        status = REGISTRY["errors"].predictive(prm["errors"], nxt, p[idx], rng, snap.statuses_)
        lat = REGISTRY["latency"].predictive(prm["latency"], nxt, p[idx], rng, snap.statuses_)
        for j, i in enumerate(idx):
            out.append({
                "session": int(i), "step": step, "endpoint": names[nxt[j]][1],
                "method": names[nxt[j]][0], "persona": snap.personas_[p[i]],
                "think_ms": float(think[j]), "status": int(status[j]),
                "latency_ms": float(lat[j]),
            })
        state[idx] = nxt
    out.sort(key=lambda r: (r["session"], r["step"]))
    return out
