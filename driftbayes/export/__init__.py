"""Exports of a learned state to the mock runtimes and load generators people already run.

:func:`export` is the one entry point (``driftbayes export --to FORMAT`` calls it):

============ ===============================================================================
format       writes
============ ===============================================================================
wiremock     a WireMock root folder (``mappings/``, ``__files/``, ``start-wiremock.sh``;
             with the weighted-status extension jar where it can be built, compiled
             against the WireMock jar of the runtimes cache; else the scenario ring)
mockoon      one Mockoon environment JSON (``mockoon-cli start --data FILE``)
mockforge    a ``mockforge.yaml`` fragment plus ``endpoint_probabilities`` rows (SQLite)
locust       one locustfile: a Markov task set per persona (traffic mirroring)
netcdf       ArviZ data (NetCDF groups): posterior draws + the full state (reloadable)
============ ===============================================================================

Every runtime format is written from the same :class:`~driftbayes.export.model.ExportModel`
of the chosen layer (``applied``: what ``driftbayes serve`` serves; ``posterior``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from driftbayes.learner import DriftLearner

FORMATS = ("wiremock", "mockoon", "mockforge", "locust", "netcdf")


def export(learner: DriftLearner, to: str, out: str | Path, *, layer: str = "applied",
           openapi: Any = None, notify: Callable[[str], None] | None = None,
           **options: Any) -> Path:
    """Write ``learner``'s ``layer`` in format ``to`` at ``out``; returns the written path.

    ``options`` go to the format's writer: ``wiremock`` (``statuses="auto"|"extension"|
    "ring"``, ``wiremock_jar``), ``mockoon`` (``port``, ``quantiles``), ``locust`` (``host``),
    ``netcdf`` (``draws``, ``seed``). ``openapi`` (a parsed document) shapes the bodies no
    recording supplied, as in ``driftbayes serve --openapi``. ``notify`` receives one-line
    notices (a runtime installed, a fallback taken); default: a warning. No export fails only
    because a runtime is missing: only ``wiremock`` uses one (to build its extension), and it
    falls back to the pure-JSON scenario ring.
    """
    if to not in FORMATS:
        raise ValueError(f"unknown export format {to!r}; choose one of {', '.join(FORMATS)}")
    out = Path(out)
    if to == "netcdf":
        from driftbayes.export.netcdf import write_netcdf

        return write_netcdf(learner, out, layer=layer, **options)
    from driftbayes.export.model import export_model

    model = export_model(learner, layer, openapi=openapi)
    if to == "wiremock":
        from driftbayes.export.wiremock import write_wiremock

        return write_wiremock(model, out, notify=notify, **options)
    if to == "mockoon":
        from driftbayes.export.mockoon import write_mockoon as write
    elif to == "mockforge":
        from driftbayes.export.mockforge import write_mockforge as write
    else:
        from driftbayes.export.locust import write_locust as write
    return write(model, out, **options)


__all__ = ["FORMATS", "export"]
