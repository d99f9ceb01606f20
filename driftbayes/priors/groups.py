"""How endpoints are grouped for the hierarchical priors (``--group-by``).

========== ===========================================================================
structure  a cell's group
========== ===========================================================================
``prefix`` the first ``depth`` literal directory segments of its endpoint's URL template
           (the service or area): ``GET /shuttle/missions/{id}.html`` → ``/shuttle``,
           ``GET /v2/{tenant}/servers/detail`` → ``/v2``. Parameters (``{…}``) are skipped
           and the last segment (the resource itself) never counts, so files at the root
           (``/ksc.html``) share the group ``/``.
``method`` its endpoint's HTTP method (``GET``, ``POST``, …; ``-`` when it has none)
``persona`` its persona (cells, not endpoints, are grouped)
``none``   one group, ``all``: plain partial pooling of every endpoint
========== ===========================================================================
"""

from __future__ import annotations

GROUPINGS = ("prefix", "method", "persona", "none")
#: Name of the population row of the stored priors (what a cell of an unknown group gets).
POPULATION = "*"


def prefix_of(endpoint: str, depth: int = 1) -> str:
    """The directory prefix of an endpoint key (``"GET /a/b/c"`` → ``"/a"`` at depth 1).

    Examples
    --------
    >>> prefix_of("GET /shuttle/missions/{id}.html")
    '/shuttle'
    >>> prefix_of("GET /v2/{tenant}/servers/detail", depth=2)
    '/v2/servers'
    >>> prefix_of("GET /ksc.html")
    '/'
    """
    from driftbayes.learner import split_endpoint

    _, template = split_endpoint(endpoint)
    directories = [s for s in template.split("/") if s][:-1]
    literal = [s for s in directories if not (s.startswith("{") and s.endswith("}"))]
    return "/" + "/".join(literal[:max(int(depth), 1)])


def group_of(endpoint: str, persona: str | None, by: str, depth: int = 1) -> str:
    """The group of a cell (``persona`` None: an endpoint, whose persona is unknown; under
    ``persona`` grouping it has no group and gets the population's prior)."""
    from driftbayes.learner import split_endpoint

    if by == "prefix":
        return prefix_of(endpoint, depth)
    if by == "method":
        return split_endpoint(endpoint)[0] or "-"
    if by == "persona":
        return POPULATION if persona is None else str(persona)
    if by == "none":
        return "all"
    raise ValueError(f"unknown grouping {by!r}; choose one of {', '.join(GROUPINGS)}")
