"""Open sessions: each session's last request (endpoint, persona, time) until its gap runs out.

The learner reads a session's previous request to count a transition and a think time, and
ends the session (an END transition) in the window where ``session_gap`` of silence has passed.
The table is a set of parallel arrays indexed by row, with a dict from session id to row;
ended rows are dropped once they outnumber the open ones.
"""

from __future__ import annotations

from itertools import repeat
from typing import NamedTuple

import numpy as np
import pandas as pd


class OpenSession(NamedTuple):
    """One open session: its id, last endpoint and persona (vocabulary codes), last time."""

    session: str
    endpoint: int
    persona: int
    ts: float


class OpenSessions:
    """The open-session table."""

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}
        self._e = np.empty(0, dtype=np.int64)
        self._p = np.empty(0, dtype=np.int64)
        self._ts = np.empty(0, dtype=float)
        self._alive = np.empty(0, dtype=bool)

    @classmethod
    def from_open(cls, sessions: list[OpenSession]) -> OpenSessions:
        """A table holding exactly these open sessions."""
        table = cls()
        table._ids = {s.session: i for i, s in enumerate(sessions)}
        table._e = np.array([s.endpoint for s in sessions], dtype=np.int64)
        table._p = np.array([s.persona for s in sessions], dtype=np.int64)
        table._ts = np.array([s.ts for s in sessions], dtype=float)
        table._alive = np.ones(len(sessions), dtype=bool)
        return table

    def to_dataset(self):
        """The open sessions on an ``open_session`` dim (state schema part)."""
        import xarray as xr

        rows = self.open()
        return xr.Dataset({
            "open_session_id": ("open_session", np.array([s.session for s in rows], object)),
            "open_endpoint": ("open_session", np.array([s.endpoint for s in rows], np.int64)),
            "open_persona": ("open_session", np.array([s.persona for s in rows], np.int64)),
            "open_ts": ("open_session", np.array([s.ts for s in rows], dtype=float)),
        })

    @classmethod
    def from_dataset(cls, ds) -> OpenSessions:
        """Inverse of :meth:`to_dataset`."""
        return cls.from_open([
            OpenSession(str(sid), int(e), int(p), float(t)) for sid, e, p, t in zip(
                ds["open_session_id"].values, ds["open_endpoint"].values,
                ds["open_persona"].values, ds["open_ts"].values)])

    def __deepcopy__(self, memo) -> OpenSessions:
        out = OpenSessions()
        out._ids = dict(self._ids)  # str -> int: a shallow copy is a deep one
        out._e, out._p = self._e.copy(), self._p.copy()
        out._ts, out._alive = self._ts.copy(), self._alive.copy()
        return out

    def __len__(self) -> int:
        return int(self._alive.sum())

    def open(self) -> list[OpenSession]:
        """The open sessions, in row order."""
        ids = {row: sid for sid, row in self._ids.items()}
        return [OpenSession(ids[r], int(self._e[r]), int(self._p[r]), float(self._ts[r]))
                for r in np.flatnonzero(self._alive).tolist()]

    def rows(self, sessions: np.ndarray) -> np.ndarray:
        """Row of each event's session (new sessions get a row; ``""`` means none: -1)."""
        self._compact()
        codes, uniq = pd.factorize(sessions)
        uniq = uniq.tolist()
        rows = np.fromiter(map(self._ids.get, uniq, repeat(-1)), dtype=np.int64,
                           count=len(uniq))
        new = rows < 0
        no_session = uniq.index("") if "" in uniq else -1
        if no_session >= 0:
            new[no_session] = False
        new = np.flatnonzero(new)
        if new.size:
            start = len(self._ts)
            rows[new] = np.arange(start, start + new.size)
            self._ids.update(zip([uniq[i] for i in new.tolist()], rows[new].tolist()))
            pad = new.size
            self._e = np.r_[self._e, np.zeros(pad, np.int64)]
            self._p = np.r_[self._p, np.zeros(pad, np.int64)]
            self._ts = np.r_[self._ts, np.zeros(pad)]
            self._alive = np.r_[self._alive, np.zeros(pad, bool)]
        if no_session >= 0:
            rows[no_session] = -1
        return rows[codes]

    def previous(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Last endpoint, persona and time of these rows' sessions (-1, -1, NaN if ended)."""
        alive = self._alive[rows]
        return (np.where(alive, self._e[rows], -1), np.where(alive, self._p[rows], -1),
                np.where(alive, self._ts[rows], np.nan))

    def touch(self, rows: np.ndarray, endpoint: np.ndarray, persona: np.ndarray,
              ts: np.ndarray) -> None:
        """Record each row's latest request (rows distinct)."""
        self._e[rows], self._p[rows], self._ts[rows] = endpoint, persona, ts
        self._alive[rows] = True

    def end_before(self, t: float, gap: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """End the sessions silent for more than ``gap`` at time ``t``; their last
        ``(persona, endpoint, time)``."""
        dead = self._alive & (self._ts + gap < t)
        self._alive &= ~dead
        return self._p[dead], self._e[dead], self._ts[dead]

    def end_by_window(self, last: int, gap: float, interval: float):
        """End every session whose gap runs out by window ``last``: their last
        ``(persona, endpoint, time)``."""
        wend = np.floor((self._ts + gap) / interval).astype(np.int64)
        due = self._alive & (wend <= last)
        self._alive &= ~due
        return self._p[due], self._e[due], self._ts[due]

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The open sessions' last ``(endpoint, persona, time)``, in row order."""
        alive = self._alive
        return self._e[alive], self._p[alive], self._ts[alive]

    def next_due(self, gap: float, interval: float) -> int | None:
        """The window in which the next open session's gap runs out."""
        if not self._alive.any():
            return None
        return int(np.floor((self._ts[self._alive] + gap).min() / interval))

    def remapped(self, endpoints: np.ndarray, personas: np.ndarray) -> OpenSessions:
        """A copy with endpoint and persona codes translated through the given maps."""
        out = OpenSessions.from_open([])
        out._ids = dict(self._ids)
        out._e = endpoints[self._e] if len(self._e) else self._e.copy()
        out._p = personas[self._p] if len(self._p) else self._p.copy()
        out._ts, out._alive = self._ts.copy(), self._alive.copy()
        return out

    def merge(self, other: OpenSessions) -> None:
        """Take the other table's open sessions where they are more recent than ours."""
        theirs = np.flatnonzero(other._alive)
        if not theirs.size:
            return
        ids = {row: sid for sid, row in other._ids.items()}
        sessions = np.array([ids[r] for r in theirs.tolist()], dtype=object)
        ts = other._ts[theirs]
        mine = np.fromiter((self._ids.get(sid, -1) for sid in sessions.tolist()),
                           dtype=np.int64, count=len(sessions))
        known = mine >= 0
        take = ~known
        take[known] = ~self._alive[mine[known]] | (self._ts[mine[known]] < ts[known])
        if take.any():
            rows = self.rows(sessions[take])
            self.touch(rows, other._e[theirs[take]], other._p[theirs[take]], ts[take])

    def _compact(self) -> None:
        """Drop ended sessions from the table once they outnumber the open ones."""
        dead = len(self._alive) - int(self._alive.sum())
        if dead < 10_000 or dead < 2 * (len(self._alive) - dead):
            return
        keep = np.flatnonzero(self._alive)
        ids = {row: sid for sid, row in self._ids.items()}
        self._ids = {ids[r]: i for i, r in enumerate(keep)}
        self._e, self._p = self._e[keep], self._p[keep]
        self._ts, self._alive = self._ts[keep], self._alive[keep]


def censored_end_weights(e, p, ts, *, now: float, think, p_end, interval: float,
                         decay: float) -> np.ndarray:
    """Provisional END mass of open sessions (censored session ends).

    A session whose last request, at ``ts`` on endpoint ``e`` by persona ``p``, is followed by
    silence until ``now`` has ended with probability
    ``P(END | silent t) = π / (π + (1 − π)·S(t))``: ``π`` is the row's END probability
    (``p_end[p, e]``) and ``S(t)`` the survival of the think time after ``e`` (the Student-t
    predictive of log ms of the NIG ``think``, arrays ``(E, P)``). Each weight carries the decay
    since the window of ``ts`` (the last closed window being the one ending at ``now``), as
    the END will when it is confirmed.

    Examples
    --------
    >>> from driftbayes.conjugate import nig_prior
    >>> think = nig_prior(median_ms=[[1000.0]], sigma=[[1.0]], strength=[[1e6]])
    >>> w = censored_end_weights([0, 0], [0, 0], [59.0, 0.0], now=60.0, think=think,
    ...                          p_end=[[0.2]], interval=60.0, decay=0.0)
    >>> [round(float(x), 3) for x in w]  # silent 1 s (the median): π/(π + (1-π)/2); 60 s: sure
    [0.333, 1.0]
    """
    from scipy import special

    from driftbayes.conjugate import normal_nig_predictive

    e, p = np.asarray(e, dtype=np.int64), np.asarray(p, dtype=np.int64)
    ts = np.asarray(ts, dtype=float)
    df, loc, scale = normal_nig_predictive(mu=np.asarray(think.mu)[e, p],
                                           kappa=np.asarray(think.kappa)[e, p],
                                           alpha=np.asarray(think.alpha)[e, p],
                                           beta=np.asarray(think.beta)[e, p])
    x = np.log(np.maximum((now - ts) * 1000.0, 1.0))
    survival = special.stdtr(df, (loc - x) / scale)
    pi = np.asarray(p_end, dtype=float)[p, e]
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(pi > 0, pi / (pi + (1.0 - pi) * survival), 0.0)
    age = np.maximum(np.round(now / interval) - 1 - np.floor(ts / interval), 0.0)
    return q * (1.0 - decay) ** age

