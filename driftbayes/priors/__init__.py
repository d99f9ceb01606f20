"""Hierarchical empirical-Bayes priors for cold cells, fitted with PyMC.

A short recording leaves most cells with a few observations, on the synthetic defaults. Their
siblings know better: endpoints are grouped (:mod:`~driftbayes.priors.groups`: by path
prefix, method, persona or not at all), a hierarchical model is fitted on the cells' learned
sufficient statistics (:mod:`~driftbayes.priors.data`, :mod:`~driftbayes.priors.model`), and
each group's fitted population becomes the prior of its endpoints
(:mod:`~driftbayes.priors.stored`), worth as many pseudo-observations as the fit supports and
never more than an endpoint's own data allows. The synthetic mock stays the prior of the
population: the hyperpriors are centred on it.

>>> from driftbayes.priors import fit_priors            # doctest: +SKIP
>>> fit = fit_priors(learner, group_by="prefix")        # doctest: +SKIP
>>> if fit.ok:                                          # doctest: +SKIP
...     learner.set_group_priors(fit.priors)

PyMC is needed to fit (the ``pymc`` extra; nutpie, the ``nutpie`` extra, makes it faster);
stored priors are used without it.
"""

from driftbayes.priors.data import CellData, cell_data, simulate
from driftbayes.priors.fit import ESS_MIN, R_HAT_MAX, PriorFit, fit_cells, fit_priors
from driftbayes.priors.groups import GROUPINGS, group_of, prefix_of
from driftbayes.priors.stored import GroupPriors

__all__ = ["ESS_MIN", "GROUPINGS", "R_HAT_MAX", "CellData", "GroupPriors", "PriorFit",
           "cell_data", "fit_cells", "fit_priors", "group_of", "prefix_of", "simulate"]
