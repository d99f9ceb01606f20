"""Fitted hierarchical priors as the learner keeps them: each group's population, per kind,
as the synthetic prior's own fields, and how much each endpoint's prior is worth.

How a cell uses them (:meth:`GroupPriors.synthetic`): its endpoint's prior is its group's
population — median and log-scale spread of latency and think time, error rate, request rate —
in place of the synthetic defaults, worth ``w`` pseudo-observations per kind with

``w = min(group weight, endpoint cap, synthetic prior_strength)``, at least
:data:`MIN_WEIGHT` (1, or ``prior_strength`` if that is smaller):

* the **group weight** is what the fit says the group's population is worth: ``min(κ, 2α)``
  for the log-normal kinds (the location's and the scale's pseudo-observations), the Beta's
  concentration for errors, the Gamma's shape for the request rate — a heterogeneous group is
  worth little;
* the **endpoint cap** keeps pooling honest: the prior may not move an endpoint's estimate
  (location, spread, error rate, rate) by more than one of its own standard errors at fit time,
  ``k ≤ own · se / (|d| − se)`` as in persona pooling
  (:func:`driftbayes.pooling.consistent_borrowing`); a cold endpoint is uncapped, a
  well-observed one that differs from its group keeps its own data;
* the synthetic ``prior_strength`` bounds it, so a gate never opens later than under the
  synthetic prior.

Endpoints that appear after the fit get their group's prior uncapped (they are cold); under
``persona`` grouping, or in a group the fit never saw, they get the population's.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np

from driftbayes.priors.groups import POPULATION, group_of

#: The smallest weight a prior gets (pseudo-observations). Below one observation a
#: log-normal kind's prior is a Student-t with less than one degree of freedom: its credible
#: intervals overflow, and the gate's confidence (contraction against the prior's width) would
#: be 1 from the first observation. The honest cap can be overridden by this only for an
#: endpoint whose data lie more than √n of its own standard deviations from its group.
MIN_WEIGHT = 1.0
STATS = ("median", "lower", "upper")
#: The synthetic field each kind's prior takes from the fit: (field, parameter).
FIELDS = {
    "latency": (("latency_median_ms", "median_ms"), ("latency_sigma", "sigma")),
    "think_time": (("think_time_median_ms", "median_ms"), ("think_time_sigma", "sigma")),
    "errors": (("error_rate", "rate"),),
    "frequency": (("rate_per_s", "rate"),),
}


@dataclass
class GroupPriors:
    """Fitted population priors per group (plus the population row ``*``).

    ``values[name]`` is ``(groups, 3)``: posterior median and the 90% interval of each
    parameter ``<kind>_<param>`` (``latency_median_ms``, ``latency_sigma``, ``latency_kappa``,
    ``latency_alpha``, ``latency_weight``, ``errors_rate``, ``errors_concentration``,
    ``errors_weight``, ``frequency_rate``, ``frequency_shape``, ``frequency_weight``, …).
    ``endpoints`` are the endpoints at fit time with their group (``endpoint_group``) and
    capped weight per kind (``endpoint_weight[kind]``).
    """

    group_by: str
    depth: int
    groups: list[str]
    kinds: list[str]
    values: dict[str, np.ndarray]
    endpoints: list[str]
    endpoint_group: np.ndarray
    endpoint_weight: dict[str, np.ndarray]
    info: dict = field(default_factory=dict)

    def value(self, name: str, group: int) -> float:
        return float(self.values[name][group, 0])

    def synthetic(self, endpoints: list[str], base: list) -> dict[str, list]:
        """Per fitted kind, each endpoint's ``SyntheticPrior``: ``base`` (its synthetic
        defaults) with the group's fields and weight (the learner builds that kind's prior
        from it)."""
        fit = {e: i for i, e in enumerate(self.endpoints)}
        rows = {name: i for i, name in enumerate(self.groups)}
        pop = rows[POPULATION]
        out = {kind: [] for kind in self.kinds}
        for endpoint, syn in zip(endpoints, base):
            j = fit.get(endpoint)
            if j is not None:
                g = int(self.endpoint_group[j])
            else:
                g = rows.get(group_of(endpoint, None, self.group_by, self.depth), pop)
            for kind in self.kinds:
                cap = float(self.endpoint_weight[kind][j]) if j is not None else math.inf
                w = min(self.value(f"{kind}_weight", g), cap, float(syn.prior_strength))
                fields = {f: self.value(f"{kind}_{p}", g) for f, p in FIELDS[kind]}
                floor = min(MIN_WEIGHT, float(syn.prior_strength))
                out[kind].append(syn.replace(prior_strength=max(w, floor), **fields))
        return out

    def summary(self):
        """One row per group and kind: the fitted fields with their 90% intervals."""
        import pandas as pd

        rows = []
        for kind in self.kinds:
            params = sorted({n[len(kind) + 1:] for n in self.values if n.startswith(kind + "_")})
            for i, g in enumerate(self.groups):
                row = {"group": g, "kind": kind}
                for p in params:
                    med, lo, hi = self.values[f"{kind}_{p}"][i]
                    row[p] = med
                    row[f"{p}_90"] = f"[{lo:.4g}, {hi:.4g}]"
                rows.append(row)
        return pd.DataFrame(rows)

    # ---- the state's part (driftbayes.state)
    def to_dataset(self):
        """The priors as variables of the state dataset (``hprior_*``)."""
        import xarray as xr

        names = sorted(self.values)
        return xr.Dataset(
            {"hprior_value": (("prior_group", "hprior_param", "prior_stat"),
                              np.stack([self.values[n] for n in names], axis=1)),
             "hprior_endpoint_group": ("prior_endpoint", self.endpoint_group.astype(np.int64)),
             "hprior_endpoint_weight": (("prior_endpoint", "hprior_kind"),
                                        np.stack([self.endpoint_weight[k] for k in self.kinds],
                                                 axis=1).reshape(len(self.endpoints),
                                                                 len(self.kinds))),
             "hprior_info": ((), json.dumps({"group_by": self.group_by, "depth": self.depth,
                                             **self.info}))},
            coords={"prior_group": np.array(self.groups, dtype=object),
                    "hprior_param": np.array(names, dtype=object),
                    "prior_stat": list(STATS),
                    "prior_endpoint": np.array(self.endpoints, dtype=object),
                    "hprior_kind": np.array(self.kinds, dtype=object)})

    @classmethod
    def from_dataset(cls, ds) -> GroupPriors | None:
        """The priors a state dataset holds, None when it holds none."""
        if "hprior_info" not in ds:
            return None
        info = json.loads(str(np.asarray(ds["hprior_info"].values).item()))
        kinds = [str(k) for k in ds["hprior_kind"].values]
        value = np.asarray(ds["hprior_value"].values, dtype=float)
        weight = np.asarray(ds["hprior_endpoint_weight"].values, dtype=float)
        return cls(group_by=info.pop("group_by"), depth=int(info.pop("depth")),
                   groups=[str(g) for g in ds["prior_group"].values], kinds=kinds,
                   values={str(n): value[:, i] for i, n in enumerate(ds["hprior_param"].values)},
                   endpoints=[str(e) for e in ds["prior_endpoint"].values],
                   endpoint_group=np.asarray(ds["hprior_endpoint_group"].values, dtype=np.int64),
                   endpoint_weight={k: weight[:, i] for i, k in enumerate(kinds)}, info=info)
