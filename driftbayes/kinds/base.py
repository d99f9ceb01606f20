"""What a pattern kind is: its sufficient statistics and the maths the learner runs on them.

A kind owns, for every cell:

* its statistics (names and dims: its part of the state schema) and how events add to them
  (:meth:`Kind.accumulate`, or :meth:`Kind.accumulate_steps` for consecutive requests of a
  session);
* its prior from config (:meth:`Kind.prior`) and its posterior parameters, a typed dataclass
  (:meth:`Kind.params`);
* the effective sample count ``n_eff`` (:meth:`Kind.count`), the key quantity with its credible
  interval (:meth:`Kind.key`) and that interval's width on a variance-stabilising scale
  (:meth:`Kind.width`; the gate's confidence is its contraction);
* the distance between a persona's estimate and its endpoint's other personas' (how much
  pooling may borrow), the changepoint test of a closing window, and the predictive sampler.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class PriorContext:
    """What a kind's prior is built from: the synthetic defaults of every endpoint."""

    synthetic: list  # one ``SyntheticDefaults`` per endpoint, in code order
    default: object  # the global ``SyntheticDefaults``
    statuses: list[int]
    status_codes: dict  # status code → its code in the status dim

    def col(self, attr: str) -> np.ndarray:
        """One synthetic attribute for every endpoint."""
        return np.array([getattr(s, attr) for s in self.synthetic], dtype=float)


@dataclass(frozen=True)
class EventCells:
    """One window's events, encoded: what :meth:`Kind.accumulate` reads."""

    endpoint: np.ndarray  # (n,) endpoint codes
    persona: np.ndarray  # (n,) persona codes
    status: np.ndarray  # (n,) status codes, -1 where the event has none
    ts: np.ndarray  # (n,) seconds
    latency_ms: np.ndarray  # (n,)
    extra: dict  # further event columns (e.g. ``response_bytes``), already sliced
    sizes: Any  # the vocabulary sizes (:class:`driftbayes.stats.Sizes`)

    @property
    def cell(self) -> np.ndarray:
        """Flat cell index ``endpoint · P + persona``."""
        return self.endpoint * self.sizes.persona + self.persona


@dataclass(frozen=True)
class SessionSteps:
    """Consecutive requests of a session within the session gap: what
    :meth:`Kind.accumulate_steps` reads."""

    source: np.ndarray  # (n,) endpoint of the earlier request
    target: np.ndarray  # (n,) endpoint of the later request
    persona: np.ndarray  # (n,)
    gap_s: np.ndarray  # (n,) seconds between them
    sizes: Any


def add_bincount(pend, name: str, index: np.ndarray, weights=None) -> None:
    """Add per-index counts (or weights) to a dense statistic, in place; the cost follows the
    events, not the statistic's size (a window touches few of many cells)."""
    arr = pend[name]
    if arr.size <= 4 * len(index) + 4096:
        arr += np.bincount(index, weights=weights, minlength=arr.size).reshape(arr.shape)
        return
    touched, inverse = np.unique(index, return_inverse=True)
    arr.reshape(-1)[touched] += np.bincount(inverse.ravel(), weights=weights)


@dataclass(frozen=True)
class Kind:
    """One pattern kind. Subclasses implement the maths; instances are registered by name."""

    name: str
    stats: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: ``behavioral`` kinds are applied in ``mode: behavioral``, the others in ``statistical``
    behavioral: bool = False
    #: whether persona cells borrow from their endpoint's other personas
    pooled: bool = True
    #: sizes of the kind's own dims (beyond endpoint, persona, status, src, dst)
    fixed_dims: dict[str, int] = field(default_factory=dict)
    #: whether a silent window only decays the statistics (closed form: ``(1-λ)^k``)
    silent_decay: bool = True
    #: unit of the key quantity (patterns)
    unit: str = ""
    #: name of the column the predictive draws (``sample``), None when it draws none
    observable: str | None = None
    #: name of the key quantity in the posterior dataset (default: the kind's name)
    quantity: str = ""
    #: whether changes are detected online by run length (:meth:`log_predictive`; see
    #: :mod:`driftbayes.changepoint`) rather than by the per-window test :meth:`changed`
    online_change: bool = False
    #: the statistics :meth:`log_predictive` reads (default: all of the kind's)
    change_stats: tuple[str, ...] = ()

    @property
    def cell_dims(self) -> tuple[str, ...]:
        """Dims of the kind's cells (its gate): ``(endpoint, persona)`` or, for rows,
        ``(persona, src)``."""
        return next(iter(self.stats.values()))[:2]

    @property
    def persona_axis(self) -> int:
        """Axis of the persona dim in the kind's statistics."""
        return next(iter(self.stats.values())).index("persona")

    # -- learning
    def accumulate(self, pend, events: EventCells) -> None:
        """Add one window's events to the pending statistics (vectorised, in place)."""

    def accumulate_steps(self, pend, steps: SessionSteps) -> None:
        """Add consecutive session requests to the pending statistics (in place)."""

    # -- prior and posterior
    def prior(self, ctx: PriorContext):
        """The prior's parameters per endpoint, from the synthetic defaults."""
        raise NotImplementedError

    def params(self, prior, ev, ends, weight=None):
        """Posterior parameters per cell: ``prior`` (of endpoints ``ends``) plus ``ev``; each
        cell keeps the share ``weight`` of the prior (power-prior fading, see
        :meth:`fade_count`; ``None``: all of it)."""
        raise NotImplementedError

    def fade_count(self, stats, statuses: list[int]):
        """The ``n_eff`` that fades the prior, per cell (the ``weight`` :meth:`params` takes,
        :func:`driftbayes.conjugate.prior_weight`); ``None`` when the prior never fades."""
        return self.count(stats)

    def count(self, stats) -> np.ndarray:
        """Effective (decay-weighted) sample count per cell."""
        raise NotImplementedError

    def key(self, prm, statuses: list[int], mass: float):
        """``(estimate, lower, upper)`` of the key quantity per cell (``prm``: this kind's
        parameters), in :attr:`unit`."""
        raise NotImplementedError

    def width(self, prm, statuses: list[int], mass: float) -> np.ndarray:
        """Width of the key quantity's credible interval on its variance-stabilising scale
        (``prm``: this kind's parameters)."""
        raise NotImplementedError

    def predictive(self, prm, e: np.ndarray, p: np.ndarray, rng: np.random.Generator,
                   statuses: list[int]) -> np.ndarray:
        """One draw of :attr:`observable` per cell ``(e[i], p[i])``."""
        raise NotImplementedError

    # -- the posterior dataset (driftbayes.posterior): parameters out, and back
    def variables(self, prm) -> dict[str, tuple[tuple[str, ...], np.ndarray]]:
        """This kind's posterior parameters as dataset variables ``{name: (dims, array)}``."""
        raise NotImplementedError

    def from_variables(self, ds):
        """This kind's typed parameters from a dataset holding :meth:`variables`."""
        raise NotImplementedError

    # -- pooling and change
    def borrow_terms(self, ev, statuses: list[int], split):
        """``(d, se, own)``: distance of each persona's estimate from its endpoint's other
        personas', its own standard error and sample count (``split(x)`` gives own, others)."""
        raise NotImplementedError

    def log_predictive(self, prior, e, before, window, weight, statuses: list[int]):
        """Log probability of each cell's window statistics ``window`` given statistics
        ``before`` under the prior (each cell keeping the share ``weight`` of it): the
        conjugate marginal likelihood of the window, up to terms equal for every ``before``.

        Cells are flat: ``e`` holds each one's endpoint; ``window[name]`` is ``(n, …)`` and
        ``before[name]`` and ``weight`` carry leading hypothesis dims (``(h, n, …)``, ``(h,
        n)``). Only kinds with :attr:`online_change` implement it."""
        raise NotImplementedError

    def changed(self, ev, pend, statuses: list[int], z: float):
        """Cells whose window ``pend`` contradicts their evidence ``ev``; ``None`` when the
        window cannot trigger the test (too few observations anywhere)."""
        return None

    # -- the kind's statistics, cell-wise (dense arrays here; sparse kinds override)
    def cells(self, gate: np.ndarray, x) -> np.ndarray:
        """A per-cell array broadcast to statistic ``x``'s shape."""
        return gate.reshape(gate.shape + (1,) * (np.ndim(x) - gate.ndim))

    def blend(self, x, name: str, w: np.ndarray):
        """``x + w · (all personas' total − x)``: a persona cell borrowing share ``w``."""
        total = x.sum(axis=self.persona_axis, keepdims=True)
        return x + self.cells(w, x) * (total - x)

    def share(self, x, name: str):
        """Every persona cell holds the all-persona total."""
        return np.broadcast_to(x.sum(axis=self.persona_axis, keepdims=True), x.shape).copy()

    def where(self, gate: np.ndarray, name: str, yes, no):
        """``yes`` in the cells where ``gate`` is true, else ``no``."""
        return np.where(self.cells(gate, yes), yes, no)


CELL = ("endpoint", "persona")


def cell_array(ds, name: str) -> np.ndarray:
    """A dataset variable as a NumPy array (what :meth:`Kind.from_variables` reads)."""
    return np.asarray(ds[name].values)


def split_by(axis: int):
    """``x → (x, sum over the other personas)`` along ``axis``."""
    def split(x):
        total = x.sum(axis=axis, keepdims=True)
        return x, total - x
    return split
