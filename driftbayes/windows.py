"""The event clock: ``update_interval`` windows, exposure per hour of day, and the global series
that let a silent cell be advanced over many windows in closed form.

Every cell gains the same exposure in a window (the window's seconds, split by UTC hour of
day), so a cell's decayed exposure after a silence of ``k`` windows is a global series plus
its own offset::

    X(w) = G(w) + (1-λ)^k · (X(d) − G(d)),        G(w) = (1-λ)·G(w-1) + h(w)

and the applied layer of a cell whose frequency gate stays open follows
``A(w) = (1-s)·A(w-1) + s·X(w)``, whose global part is ``H(w) = (1-s)·H(w-1) + s·G(w)``.
:class:`ExposureClock` keeps ``G`` and ``H`` for every window since its origin: the only work
done per window for cells that saw nothing (24 numbers each).
"""

from __future__ import annotations

import math

import numpy as np

N_HOURS = 24


def hour_seconds_before(t: np.ndarray) -> np.ndarray:
    """Seconds of ``[0, t)`` that fall in each UTC hour of day: shape ``t.shape + (24,)``."""
    t = np.asarray(t, dtype=float)[..., None]
    days = np.floor(t / 86400.0)
    in_day = t - days * 86400.0
    hours = np.arange(N_HOURS) * 3600.0
    return days * 3600.0 + np.clip(in_day - hours, 0.0, 3600.0)


def hour_exposure(t0, t1) -> np.ndarray:
    """Seconds of ``[t0, t1)`` in each UTC hour of day."""
    return hour_seconds_before(t1) - hour_seconds_before(t0)


def window_exposure(first: int, count: int, interval: float) -> np.ndarray:
    """Per-hour exposure of windows ``first … first+count-1``: shape ``(count, 24)``."""
    idx = np.arange(first, first + count, dtype=float)
    return hour_exposure(idx * interval, (idx + 1) * interval)


def follow_sum(q: float, r: float, n, offset) -> np.ndarray:
    """``Σ_{i=0}^{n-1} q^(n-1-i) · r^(offset+i)``, elementwise, without cancellation.

    The weight a geometric decay ``r`` leaves on a follower that moves a share ``1-q`` of the
    way each step (an open gate's applied layer chasing decaying evidence).
    """
    n = np.asarray(n, dtype=float)
    offset = np.asarray(offset, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if r == 0.0:
            return np.where((offset == 0) & (n >= 1), q ** (n - 1), 0.0)
        if q == 0.0:
            return np.where(n >= 1, r ** (offset + n - 1), 0.0)
        # Σ_i q^(n-1-i)·r^i is symmetric in q and r: factor out the larger base m, so the
        # ratio ρ = smaller/m ≤ 1 and nothing overflows over long silences (a closed form
        # with ρ > 1 gave 0·inf = NaN after a few thousand windows)
        m, small = max(q, r), min(q, r)
        log_rho = math.log(small / m)
        ratio = n if log_rho == 0.0 else np.expm1(n * log_rho) / math.expm1(log_rho)
        return np.where(n >= 1, m ** (n - 1) * r**offset * ratio, 0.0)


def first_order(x: np.ndarray, a: float, y0: np.ndarray) -> np.ndarray:
    """``y[n] = a·y[n-1] + x[n]`` along axis 0, from ``y[-1] = y0`` (``0 ≤ a ≤ 1``).

    Closed form per block, ``y[k] = a^(k+1)·(y0 + Σ_{j≤k} x[j]·a^-(j+1))``, with blocks short
    enough that ``a^-block`` stays below e^200.
    """
    if a == 0.0:
        return x.copy()
    out = np.empty_like(x, dtype=float)
    block = len(x) if a == 1.0 else max(1, int(200.0 / -math.log(a)))
    prev = np.asarray(y0, dtype=float)
    for lo in range(0, len(x), block):
        chunk = x[lo:lo + block]
        pw = a ** np.arange(1, len(chunk) + 1, dtype=float)[:, None]
        out[lo:lo + block] = pw * (prev + np.cumsum(chunk / pw, axis=0))
        prev = out[lo + len(chunk) - 1]
    return out


class ExposureClock:
    """The global exposure series ``G`` and its applied-layer follower ``H``, per window.

    Parameters
    ----------
    interval : float
        ``update_interval`` in seconds.
    decay, sensitivity : float
        λ and s of the drift-learning knobs.
    origin : int
        The window before the first one tracked; ``G`` and ``H`` are zero there.
    """

    def __init__(self, interval: float, decay: float, sensitivity: float, origin: int):
        self.interval = float(interval)
        self.r = 1.0 - float(decay)
        self.q = 1.0 - float(sensitivity)
        self.s = float(sensitivity)
        self.origin = int(origin)
        self._g = np.zeros((1, N_HOURS))
        self._h = np.zeros((1, N_HOURS))

    @property
    def last(self) -> int:
        """The last window whose ``G`` and ``H`` are known."""
        return self.origin + len(self._g) - 1

    def extend_to(self, window: int) -> None:
        """Compute ``G`` and ``H`` up to ``window`` (a few numbers per window)."""
        count = int(window) - self.last
        if count <= 0:
            return
        h = window_exposure(self.last + 1, count, self.interval)
        g = first_order(h, self.r, self._g[-1])
        hh = first_order(self.s * g, self.q, self._h[-1])
        self._g = np.concatenate([self._g, g])
        self._h = np.concatenate([self._h, hh])

    def exposure(self, window: int) -> np.ndarray:
        """Per-hour exposure of one window."""
        return hour_exposure(float(window) * self.interval, (float(window) + 1) * self.interval)

    def g(self, window) -> np.ndarray:
        """``G`` at ``window`` (an int or an array of them): shape ``(..., 24)``."""
        return self._g[np.asarray(window) - self.origin]

    def h(self, window) -> np.ndarray:
        """``H`` at ``window``: shape ``(..., 24)``."""
        return self._h[np.asarray(window) - self.origin]
