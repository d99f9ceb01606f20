"""Export to MockForge: a ``mockforge.yaml`` fragment and the behavioural-cloning table.

Written against MockForge's serde config types as read at v0.3.213 (``ServerConfig`` loaded by
``serde_yaml`` 0.9, ``routes[]`` from ``mockforge-core/src/config/routes.rs``, executed by
``mockforge-route-chaos``) and its recorder's ``endpoint_probabilities`` SQLite table. MockForge
(a Rust workspace) cannot be built here, so :func:`validate_mockforge` checks a written file
against that schema instead — the YAML parses with the ``!normal`` tag, every required key has the
right type, ``reality`` is disabled, ``failure_config`` has all five fields — rather than
starting MockForge on it.

**One persona.** MockForge keys no latency or fault config by persona, so one persona is
exported: ``default`` when learned, else the one with the largest ``persona_share`` (or the
``persona`` argument); the YAML says which in a comment.

**Routes.** One ``routes[]`` entry per endpoint (templates such as ``/api/users/{id}`` are
MockForge path patterns; fewer parameters first, as matching is first-match-wins):

- ``response``: the most likely non-error status with its body (the recorded one, or the stub
  ``driftbayes serve`` answers with). Other non-error statuses (e.g. 200 beside 201) have no
  place in MockForge's route model and are merged into it; a comment gives their share.
- ``latency``: ``distribution: !normal {mean_ms, std_dev_ms}`` (MockForge has no log-normal;
  ``serde_yaml`` 0.9 wants the struct variant as a YAML tag) with the log-normal fit's mean
  ``median·exp(σ²/2)`` and sd ``mean·sqrt(exp(σ²)−1)``. What that loses: the skew — the normal is
  symmetric, so its median sits at the mean instead of below it and the right tail is thin
  (p99 too low) — and MockForge clamps negative draws to 0 ms (a share ``Φ(−mean/sd)`` of the
  responses, given per route) and truncates to whole ms. ``probability: 1.0``, no jitter.
- ``fault_injection``: ``probability`` = the error share (statuses ≥ 400) and ``fault_types``
  ``http_error`` entries repeated in proportion to the error mix, largest remainder out of
  ``fault_entries`` (20): MockForge picks one entry uniformly, so each status's share of the
  errors is within ``1/fault_entries`` of the learned one (a status under that resolution may
  get no entry; the total error share is kept exactly).

**Global blocks.** ``reality: {enabled: false}`` (required: the enabled default overwrites
latencies and chaos with presets); ``core.failure_config`` (all five fields) holds the
traffic-weighted error mix of all routes for paths no route matches, with ``failures_enabled``
off unless ``global_failures=True`` (the routes already inject their own faults); a
``drift_learning`` block with the driftbayes config fields MockForge has (``enabled``, ``mode``,
``sensitivity``, ``decay``, ``min_samples``, ``persona_adaptation``, ``endpoint_learning``,
``persona_learning``; ``update_interval`` and ``traffic_mirroring`` are not fields there).

**Behavioural cloning.** ``endpoint_probabilities.json`` (the serde form of MockForge's
``EndpointProbabilityModel``) and ``endpoint_probabilities.sqlite`` (the recorder's table,
same columns and JSON text) with, per endpoint of the exported persona: the full status mix,
``latency_distribution`` from the served histogram predictive (p50/p95/p99, mean and sd,
min/max = its 0.1% / 99.9% quantiles, integer ms where MockForge has ``u64``), error patterns
per status ≥ 400 with the sample body, payload variations per other status, ``sample_count`` =
predictive rate × data span, ``updated_at`` = end of the data. The middleware reading it
(cargo feature ``behavioral-cloning``, ``BEHAVIORAL_CLONING_ENABLED=true``,
``RECORDER_DATABASE_PATH``) matches the exact request path, so templated endpoints only match
requests that use the literal template.
"""

from __future__ import annotations

import datetime as _dt
import io
import json
import math
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)
from ruamel.yaml import YAML
from ruamel.yaml.constructor import ConstructorError, SafeConstructor
from ruamel.yaml.error import YAMLError
from ruamel.yaml.nodes import MappingNode
from ruamel.yaml.representer import SafeRepresenter
from scipy import stats

from driftbayes import conjugate as cj
from driftbayes import yamlio
from driftbayes.export.model import (
    CellModel,
    ExportModel,
    default_persona,
    largest_remainder,
)

#: The MockForge release whose config schema this exporter follows.
MOCKFORGE_VERSION = "0.3.213"
#: ``fault_types`` entries per route: the resolution of the error mix.
FAULT_ENTRIES = 20
#: Statuses from this code on are faults.
ERROR_STATUS = 400
TABLE = "endpoint_probabilities"
TABLE_SQL = f"""CREATE TABLE IF NOT EXISTS {TABLE} (
    endpoint TEXT NOT NULL,
    method TEXT NOT NULL,
    status_code_distribution TEXT NOT NULL,
    latency_distribution TEXT NOT NULL,
    error_patterns TEXT,
    payload_variations TEXT,
    sample_count INTEGER NOT NULL,
    updated_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (endpoint, method)
)"""
TABLE_COLUMNS = ("endpoint", "method", "status_code_distribution", "latency_distribution",
                 "error_patterns", "payload_variations", "sample_count", "updated_at")
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT")


# --------------------------------------------------------------------------------------------
# YAML with MockForge's tagged latency variants


class NormalLatency(BaseModel):
    """``LatencyDistribution::Normal`` — written as ``!normal {mean_ms, std_dev_ms}``."""

    model_config = ConfigDict(frozen=True, strict=True, revalidate_instances="always")
    mean_ms: float = Field(ge=0)
    std_dev_ms: float = Field(ge=0)


class ExponentialLatency(BaseModel):
    """``LatencyDistribution::Exponential`` (read by the validator only; MockForge's sampler
    for it is wrong, so nothing is exported as exponential)."""

    model_config = ConfigDict(frozen=True, strict=True, revalidate_instances="always")
    lambda_: float  # YAML key ``lambda``


class MockForgeRepresenter(SafeRepresenter):
    """Safe representer that writes :class:`NormalLatency` as a ``!normal`` mapping."""


class MockForgeConstructor(SafeConstructor):
    """Safe constructor that reads ``!normal`` / ``!exponential`` (and rejects other tags)."""


def _represent_normal(representer: SafeRepresenter, value: NormalLatency):
    return representer.represent_mapping(
        "!normal", {"mean_ms": float(value.mean_ms), "std_dev_ms": float(value.std_dev_ms)})


def _tagged_fields(constructor: SafeConstructor, node, fields: set[str]) -> dict:
    data = constructor.construct_mapping(node, deep=True) if isinstance(node, MappingNode) else {}
    if set(data) != fields:
        raise ConstructorError(None, None, f"{node.tag} needs exactly {', '.join(sorted(fields))}"
                               f" (got {', '.join(map(str, data)) or 'nothing'})",
                               node.start_mark)
    return data


def _construct_normal(constructor: SafeConstructor, node) -> NormalLatency:
    # model_construct: the values are checked by validate_mockforge, with their path
    return NormalLatency.model_construct(**_tagged_fields(constructor, node,
                                                          {"mean_ms", "std_dev_ms"}))


def _construct_exponential(constructor: SafeConstructor, node) -> ExponentialLatency:
    data = _tagged_fields(constructor, node, {"lambda"})
    return ExponentialLatency.model_construct(lambda_=data["lambda"])


def _represent_str(representer: SafeRepresenter, value: str):
    style = "|" if "\n" in value else None
    return representer.represent_scalar("tag:yaml.org,2002:str", value, style=style)


MockForgeRepresenter.add_representer(NormalLatency, _represent_normal)
MockForgeRepresenter.add_representer(str, _represent_str)
MockForgeConstructor.add_constructor("!normal", _construct_normal)
MockForgeConstructor.add_constructor("!exponential", _construct_exponential)


def _yaml() -> YAML:
    yaml = YAML(typ="safe", pure=True)
    yaml.Representer, yaml.Constructor = MockForgeRepresenter, MockForgeConstructor
    yaml.default_flow_style, yaml.sort_base_mapping_type_on_output, yaml.width = None, False, 100
    return yaml


def load_mockforge_yaml(text: str) -> Any:
    """Parse MockForge YAML (``!normal`` → :class:`NormalLatency`); raises ``YAMLError``."""
    return _yaml().load(text)


def dump_mockforge_yaml(data: Any) -> str:
    """MockForge YAML of ``data`` (:class:`NormalLatency` → ``!normal``), keys in their order."""
    out = io.StringIO()
    _yaml().dump(data, out)
    return out.getvalue()


# --------------------------------------------------------------------------------------------
# numbers


def lognormal_moments(median_ms: float, sigma: float) -> tuple[float, float]:
    """Mean and sd (ms) of a log-normal with this median and log-scale σ."""
    mean = float(median_ms) * math.exp(float(sigma) ** 2 / 2.0)
    return mean, mean * math.sqrt(math.expm1(float(sigma) ** 2))


def histogram_moments(latency_p: np.ndarray) -> tuple[float, float]:
    """Mean and sd (ms) of the served latency histogram (log-uniform inside each bin)."""
    p = np.asarray(latency_p, dtype=float)
    p = p / p.sum()
    a, b = cj.LATENCY_EDGES_MS[:-1], cj.LATENCY_EDGES_MS[1:]
    dlog = np.log(b) - np.log(a)
    m1 = float((p * (b - a) / dlog).sum())
    m2 = float((p * (b * b - a * a) / (2.0 * dlog)).sum())
    return m1, math.sqrt(max(m2 - m1 * m1, 0.0))


def export_persona(model: ExportModel, persona: str | None = None) -> str:
    """The persona a persona-blind runtime gets: ``persona`` if given, else ``default`` when
    learned, else the one with the largest ``persona_share``."""
    if persona is not None:
        if persona not in model.personas:
            raise ValueError(f"unknown persona {persona!r}; learned: {', '.join(model.personas)}")
        return persona
    return default_persona(model)


@dataclass(frozen=True)
class StatusSplit:
    """How one cell's status mix maps onto a MockForge route."""

    primary: int  # the route's response status
    error_share: float  # fault_injection.probability
    fault_statuses: tuple[int, ...]  # one entry per fault_types entry (repeats = weight)
    merged: dict[int, float]  # non-error statuses folded into ``primary`` -> their share


def status_split(cell: CellModel, entries: int = FAULT_ENTRIES) -> StatusSplit:
    """Primary status, error share and the repeated ``fault_types`` statuses of a cell."""
    codes = np.asarray(cell.statuses, dtype=np.int64)
    probs = np.asarray(cell.status_p, dtype=float)
    ok = codes < ERROR_STATUS
    primary = int(codes[ok][0]) if ok.any() else int(codes[0])  # statuses are most likely first
    faults = (codes >= ERROR_STATUS) & (codes != primary)
    share = float(probs[faults].sum())
    counts = largest_remainder(probs[faults], entries) if share > 0 else np.zeros(0, np.int64)
    fault_statuses = tuple(int(c) for c, k in zip(codes[faults], counts) for _ in range(int(k)))
    merged = {int(c): float(q) for c, q in zip(codes, probs)
              if c != primary and c < ERROR_STATUS}
    return StatusSplit(primary, share, fault_statuses, merged)


def _cells_for(model: ExportModel, persona: str) -> list[tuple[CellModel, bool]]:
    """One cell per endpoint: the persona's, else (flagged) the endpoint's busiest cell."""
    out = []
    for ep in model.endpoints:
        mine = [c for c in model.cells if c.endpoint == ep and c.persona == persona]
        if mine:
            out.append((mine[0], False))
            continue
        others = [c for c in model.cells if c.endpoint == ep]
        if others:
            out.append((max(others, key=lambda c: c.rate_per_s), True))
    return out


def _body_value(cell: CellModel, status: int) -> tuple[str | None, Any]:
    hit = cell.bodies.get(status)
    if hit is None or status in (204, 205, 304):
        return None, None
    ctype, text = hit
    if "json" in ctype.lower():
        try:
            return ctype, json.loads(text)
        except ValueError:
            pass
    return ctype, text


def _one_line(text: Any) -> str:
    return " ".join(str(text).split())


def _pattern_key(path: str) -> tuple:
    segs = [s for s in path.split("/") if s]
    return (sum(s.startswith("{") for s in segs), len(segs))


# --------------------------------------------------------------------------------------------
# the config


def mockforge_route(cell: CellModel, *, fault_entries: int = FAULT_ENTRIES) -> dict:
    """The ``routes[]`` entry of one cell (see the module docstring)."""
    split = status_split(cell, fault_entries)
    ctype, body = _body_value(cell, split.primary)
    mean, sd = lognormal_moments(cell.median_ms, cell.sigma)
    response: dict[str, Any] = {"status": split.primary,
                                "headers": {"Content-Type": ctype} if ctype else {}}
    if body is not None:
        response["body"] = body
    return {
        "path": cell.template,
        "method": cell.method.upper() or "GET",
        "response": response,
        "latency": {"enabled": True, "probability": 1.0, "jitter_percent": 0.0,
                    "distribution": NormalLatency(mean_ms=round(mean, 3),
                                                  std_dev_ms=round(sd, 3))},
        "fault_injection": {
            "enabled": split.error_share > 0 and bool(split.fault_statuses),
            "probability": round(split.error_share, 6),
            "fault_types": [{"type": "http_error", "status_code": c}
                            for c in split.fault_statuses],
        },
    }


def _drift_learning_block(model: ExportModel) -> dict | None:
    text = model.provenance.get("config_yaml")
    if not text:
        return None
    data = yamlio.load(text) or {}
    block = data.get("drift_learning", data) if isinstance(data, dict) else {}
    out = {k: block[k] for k in DRIFT_LEARNING_FIELDS if k in block}
    for k in ("endpoint_learning", "persona_learning"):
        if k in out:
            out[k] = {str(g): bool(v) for g, v in (out[k] or {}).items()}
    return out or None


def mockforge_config(model: ExportModel, *, persona: str | None = None,
                     fault_entries: int = FAULT_ENTRIES, global_failures: bool = False) -> dict:
    """The ``mockforge.yaml`` document as data (``!normal`` as :class:`NormalLatency`)."""
    persona = export_persona(model, persona)
    cells = sorted(_cells_for(model, persona), key=lambda cb: _pattern_key(cb[0].template))
    routes = [mockforge_route(c, fault_entries=fault_entries) for c, _ in cells]
    rates = np.array([c.rate_per_s for c, _ in cells])
    codes: dict[int, float] = {}
    for (c, _), r in zip(cells, rates):
        for code, q in zip(c.statuses, c.status_p):
            if code >= ERROR_STATUS:
                codes[code] = codes.get(code, 0.0) + r * q
    total = float(rates.sum())
    err = sum(codes.values()) / total if total > 0 else 0.0
    order = sorted(codes, key=lambda k: -codes[k])
    counts = largest_remainder(np.array([codes[k] for k in order]), fault_entries)
    default_codes = [int(k) for k, n in zip(order, counts) for _ in range(int(n))] or [500]
    doc: dict[str, Any] = {
        "reality": {"enabled": False},
        "core": {
            "failures_enabled": bool(global_failures),
            "failure_config": {"global_error_rate": round(float(err), 6),
                               "default_status_codes": default_codes, "tag_configs": {},
                               "include_tags": [], "exclude_tags": []},
        },
    }
    dl = _drift_learning_block(model)
    if dl is not None:
        doc["drift_learning"] = dl
    doc["routes"] = routes
    return doc


def render_mockforge_yaml(model: ExportModel, *, persona: str | None = None,
                          fault_entries: int = FAULT_ENTRIES,
                          global_failures: bool = False) -> str:
    """The text of ``mockforge.yaml``: :func:`mockforge_config` with explanatory comments."""
    persona = export_persona(model, persona)
    doc = mockforge_config(model, persona=persona, fault_entries=fault_entries,
                           global_failures=global_failures)
    prov = model.provenance
    share = float(model.persona_share[model.personas.index(persona)])
    others = [p for p in model.personas if p != persona]
    lines = [
        f"# MockForge config (schema of MockForge {MOCKFORGE_VERSION}) exported by driftbayes "
        f"{_one_line(prov.get('driftbayes_version', ''))} from the "
        f"{_one_line(prov.get('layer', model.layer))!r} layer.",
        f"# Data {_one_line(prov.get('data_start', ''))} -> {_one_line(prov.get('data_end', ''))}"
        f" ({prov.get('n_events', 0)} events); exported {_one_line(prov.get('created_at', ''))}.",
        "# MockForge keys no latency or faults by persona: this file serves persona "
        f"{_one_line(persona)!r} ({share:.1%} of requests)"
        + (f"; not exported: {', '.join(_one_line(p) for p in others)}." if others else "."),
        "# Latency: MockForge has no log-normal; each route's !normal has the learned "
        "log-normal's mean and sd",
        "# (symmetric: the skew and the right tail are lost; negative draws are clamped to 0 ms).",
        f"# Faults: probability = error share (status >= {ERROR_STATUS}); fault_types repeat "
        f"each status in proportion, out of {fault_entries}.",
        "",
        "# REQUIRED: an enabled reality slider overwrites latencies and chaos with presets.",
    ]
    lines.append(dump_mockforge_yaml({"reality": doc["reality"]}).rstrip())
    lines += [
        "",
        "# Traffic-weighted error mix of all routes, for paths no route matches; off by default "
        "because the",
        "# routes below inject their own faults (turn on with failures_enabled: true).",
        dump_mockforge_yaml({"core": doc["core"]}).rstrip(),
    ]
    if "drift_learning" in doc:
        lines += [
            "",
            "# The driftbayes config fields MockForge has (update_interval and traffic_mirroring "
            "are not fields there).",
            dump_mockforge_yaml({"drift_learning": doc["drift_learning"]}).rstrip(),
        ]
    lines += ["", "routes:"]
    cells = sorted(_cells_for(model, persona), key=lambda cb: _pattern_key(cb[0].template))
    for (cell, borrowed), route in zip(cells, doc["routes"]):
        split = status_split(cell, fault_entries)
        mean, sd = lognormal_moments(cell.median_ms, cell.sigma)
        clamp = float(stats.norm.cdf(-mean / sd)) if sd > 0 else 0.0
        note = (f"# {_one_line(cell.endpoint)}: log-normal median {cell.median_ms:.1f} ms, "
                f"sigma {cell.sigma:.3f} -> normal(mean {mean:.1f}, sd {sd:.1f}), "
                f"{clamp:.1%} of draws clamped to 0 ms; errors {split.error_share:.2%}")
        lines.append(note)
        if split.merged:
            lines.append("#   merged into " + str(split.primary) + ": " + ", ".join(
                f"{c} ({q:.2%})" for c, q in split.merged.items()))
        if borrowed:
            lines.append(f"#   persona {_one_line(persona)!r} never called it: cell of persona "
                         f"{_one_line(cell.persona)!r}")
        lines.append(dump_mockforge_yaml([route]).rstrip())
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# behavioural cloning


def _span_seconds(prov: dict) -> float:
    try:
        a = _dt.datetime.fromisoformat(prov["data_start"])
        b = _dt.datetime.fromisoformat(prov["data_end"])
    except (KeyError, TypeError, ValueError):
        return 0.0
    return max((b - a).total_seconds(), 0.0)


def endpoint_probability_rows(model: ExportModel, *, persona: str | None = None) -> list[dict]:
    """MockForge ``EndpointProbabilityModel`` records (serde form, nested JSON) of the export
    persona's cells, one per endpoint (see the module docstring)."""
    persona = export_persona(model, persona)
    prov = model.provenance
    span = _span_seconds(prov)
    updated = prov.get("data_end") or prov.get("created_at") or _dt.datetime.now(
        _dt.UTC).isoformat(timespec="seconds")
    rows = []
    for cell, _ in _cells_for(model, persona):
        q = cell.latency_quantiles([0.001, 0.5, 0.95, 0.99, 0.999])
        mean, sd = histogram_moments(cell.latency_p)
        errors, payloads = [], []
        for code, p in zip(cell.statuses, cell.status_p):
            _, body = _body_value(cell, code)
            if code >= ERROR_STATUS:
                errors.append({"error_type": str(code), "probability": float(p),
                               "conditions": None,
                               "sample_responses": [] if body is None else [body],
                               "status_code": int(code)})
            elif body is not None:
                payloads.append({"id": f"status_{code}", "probability": float(p),
                                 "sample_payload": body, "conditions": None})
        rows.append({
            "endpoint": cell.template,
            "method": cell.method.upper() or "GET",
            "status_code_distribution": {str(c): float(p)
                                         for c, p in zip(cell.statuses, cell.status_p)},
            "latency_distribution": {
                "p50": int(round(q[1])), "p95": int(round(q[2])), "p99": int(round(q[3])),
                "mean": round(mean, 3), "std_dev": round(sd, 3),
                "min": int(math.floor(q[0])), "max": int(math.ceil(q[4]))},
            "error_patterns": errors,
            "payload_variations": payloads,
            "sample_count": int(round(cell.rate_per_s * span)),
            "updated_at": updated,
        })
    return rows


def write_endpoint_probabilities_sqlite(rows: list[dict], path: Path) -> Path:
    """Write ``rows`` into the recorder's ``endpoint_probabilities`` table (created if absent,
    rows replaced by (endpoint, method) like MockForge's ``INSERT OR REPLACE``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path)
    try:
        with con:
            con.execute(TABLE_SQL)
            con.executemany(
                f"INSERT OR REPLACE INTO {TABLE} ({', '.join(TABLE_COLUMNS)}) "
                f"VALUES ({', '.join('?' * len(TABLE_COLUMNS))})",
                [(r["endpoint"], r["method"],
                  json.dumps(r["status_code_distribution"]),
                  json.dumps(r["latency_distribution"]), json.dumps(r["error_patterns"]),
                  json.dumps(r["payload_variations"]), int(r["sample_count"]), r["updated_at"])
                 for r in rows])
    finally:
        con.close()
    return path


def write_mockforge(model: ExportModel, out: Path, *, persona: str | None = None,
                    fault_entries: int = FAULT_ENTRIES, global_failures: bool = False) -> Path:
    """Write ``mockforge.yaml``, ``endpoint_probabilities.json`` and
    ``endpoint_probabilities.sqlite``; returns the YAML's path.

    Parameters
    ----------
    model : ExportModel
        What to export (:func:`driftbayes.export.model.export_model`).
    out : Path
        A folder, or the ``.yaml``/``.yml`` file to write (the others go next to it).
    persona : str, optional
        The persona to serve (default: ``default``, else the largest ``persona_share``).
    fault_entries : int
        ``fault_types`` entries per route (resolution of the error mix).
    global_failures : bool
        Turn ``core.failures_enabled`` on.
    """
    out = Path(out)
    path = out if out.suffix in (".yaml", ".yml") else out / "mockforge.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = render_mockforge_yaml(model, persona=persona, fault_entries=fault_entries,
                                 global_failures=global_failures)
    problems = _problems(load_mockforge_yaml(text))
    if problems:  # a generator bug: fail here, not in MockForge
        raise ValueError("exported MockForge config does not validate:\n" + "\n".join(problems))
    path.write_text(text, encoding="utf-8")
    rows = endpoint_probability_rows(model, persona=persona)
    (path.parent / f"{TABLE}.json").write_text(json.dumps(rows, indent=2) + "\n",
                                               encoding="utf-8")
    sqlite_path = path.parent / f"{TABLE}.sqlite"
    sqlite_path.unlink(missing_ok=True)
    write_endpoint_probabilities_sqlite(rows, sqlite_path)
    return path


# --------------------------------------------------------------------------------------------
# validation (MockForge cannot be built here: check against its serde schema)


# Strict like serde: no "1" for a number, no 200.0 for an integer, no "yes" for a bool. Keys
# MockForge does not know are ignored, as serde does, except in ``drift_learning``, where a
# driftbayes key would be dropped silently.

_Prob = Annotated[float, Field(ge=0, le=1)]
_UInt = Annotated[int, Field(ge=0)]  # u16 / u64
_Status = Annotated[int, Field(ge=100, le=599)]


class _Schema(BaseModel):
    model_config = ConfigDict(strict=True, frozen=True)


def _variant(value: Any) -> str | None:
    """The ``LatencyDistribution`` variant of a loaded value (None: not one)."""
    if isinstance(value, (NormalLatency, ExponentialLatency)):
        return type(value).__name__
    return "name" if value in ("fixed", "uniform") else None


class _Latency(_Schema):
    enabled: bool
    probability: _Prob
    jitter_percent: float = Field(ge=0, le=100)
    fixed_delay_ms: _UInt | None = None
    random_delay_range_ms: Annotated[list[_UInt], Field(min_length=2, max_length=2)] | None = None
    distribution: Annotated[
        Annotated[NormalLatency, Tag("NormalLatency")]
        | Annotated[ExponentialLatency, Tag("ExponentialLatency")]
        | Annotated[Literal["fixed", "uniform"], Tag("name")],
        Discriminator(_variant, custom_error_type="variant", custom_error_message=(
            "is not fixed, uniform, !normal {mean_ms, std_dev_ms} or !exponential {lambda} "
            "(struct variants need the YAML tag under serde_yaml 0.9)"))] = "fixed"


class _HttpError(_Schema):
    type: Literal["http_error"]
    status_code: _Status


class _ConnectionError(_Schema):
    type: Literal["connection_error"]


class _Timeout(_Schema):
    type: Literal["timeout"]
    duration_ms: _UInt


class _PartialResponse(_Schema):
    type: Literal["partial_response"]
    truncate_percent: Any


class _PayloadCorruption(_Schema):
    type: Literal["payload_corruption"]
    corruption_type: Any


class _FaultInjection(_Schema):
    enabled: bool
    probability: _Prob
    fault_types: list[Annotated[_HttpError | _ConnectionError | _Timeout | _PartialResponse
                                | _PayloadCorruption, Field(discriminator="type")]]

    @model_validator(mode="after")
    def _faults_to_inject(self) -> _FaultInjection:
        if self.enabled and self.probability > 0 and not self.fault_types:
            raise ValueError("enabled with no fault_types")
        return self


class _Response(_Schema):
    status: _Status
    headers: dict[str, str] = {}


class _Route(_Schema):
    path: str = Field(pattern="^/")
    method: str
    response: _Response
    latency: _Latency | None = None
    fault_injection: _FaultInjection | None = None

    @field_validator("method")
    @classmethod
    def _http_method(cls, method: str) -> str:
        if method.upper() not in _METHODS:
            raise ValueError(f"{method!r} is not an HTTP method ({', '.join(_METHODS)})")
        return method


class _Reality(_Schema):
    enabled: bool = Field(True, validate_default=True)  # MockForge's default, refused below

    @field_validator("enabled")
    @classmethod
    def _off(cls, enabled: bool) -> bool:
        if enabled:
            raise ValueError("must be false (the enabled default overwrites route latencies and "
                             "chaos with presets)")
        return enabled


class _FailureConfig(_Schema):
    global_error_rate: _Prob
    default_status_codes: list[_UInt]
    tag_configs: dict
    include_tags: list
    exclude_tags: list


class _Core(_Schema):
    failures_enabled: bool = False
    failure_config: _FailureConfig | None = None


class _DriftLearning(_Schema):
    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    mode: Literal["behavioral", "statistical", "hybrid"] = "hybrid"
    sensitivity: float = 0.2
    decay: float = 0.05
    min_samples: _UInt = 10
    persona_adaptation: bool = True
    endpoint_learning: dict = {}
    persona_learning: dict = {}


class _MockForgeFile(_Schema):
    """The part of MockForge's ``ServerConfig`` an export writes (as serde reads it)."""

    reality: _Reality = Field(default_factory=dict, validate_default=True)
    core: _Core | None = None
    drift_learning: _DriftLearning | None = None
    routes: list[_Route] = []


#: driftbayes config fields that exist in MockForge's ``DriftLearningConfig``.
DRIFT_LEARNING_FIELDS = tuple(_DriftLearning.model_fields)
#: The fields of ``core.failure_config`` (MockForge needs all five).
FAILURE_CONFIG_FIELDS = tuple(_FailureConfig.model_fields)
_WORDS = {"missing": "required", "extra_forbidden": "not a MockForge field (silently dropped)",
          "model_type": "must be a mapping", "model_attributes_type": "must be a mapping"}


def _problems(doc: Any) -> list[str]:
    """Every way ``doc`` breaks MockForge's schema, one ``path: problem`` line each."""
    try:
        _MockForgeFile.model_validate(doc)
    except ValidationError as exc:
        return [f"{_path(e['loc'])}: {_problem(e)}" for e in exc.errors(include_url=False)]
    return []


def _problem(err: dict) -> str:
    if err["type"] == "value_error":
        return str(err["ctx"]["error"])
    if err["type"] == "variant":
        return f"{err['input']!r} {err['msg']}"
    return _WORDS.get(err["type"], err["msg"])


def _path(loc: tuple) -> str:
    """``routes[0].latency.probability`` (the document itself: ``(document)``)."""
    text = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
    return text or "(document)"


def validate_mockforge(path: str | Path) -> dict:
    """Check a ``mockforge.yaml`` against MockForge's config schema; returns the parsed
    document, raises ``ValueError`` listing every problem.

    MockForge is not built here, so this stands in for ``mockforge config validate``: the YAML
    must parse with the ``!normal``/``!exponential`` tags (no other tags), ``reality.enabled``
    must be false, every route needs ``path``, ``method``, ``response.status``, all latency
    fields (``enabled``, ``probability``, ``jitter_percent``, a known ``distribution``) and all
    fault-injection fields (``enabled``, ``probability``, ``fault_types`` with the fields of
    their ``type``), ``core.failure_config`` all five fields, ``drift_learning`` only MockForge's
    fields, each with serde's type (integers where MockForge has ``u16``/``u64``).
    """
    path = Path(path)
    try:
        doc = load_mockforge_yaml(path.read_text(encoding="utf-8"))
    except YAMLError as exc:
        raise ValueError(f"{path}: not valid MockForge YAML: {exc}") from exc
    problems = _problems(doc)
    if problems:
        raise ValueError(f"{path}:\n" + "\n".join(problems))
    return doc


__all__ = ["DRIFT_LEARNING_FIELDS", "FAILURE_CONFIG_FIELDS", "FAULT_ENTRIES", "MOCKFORGE_VERSION",
           "ExponentialLatency", "MockForgeConstructor", "MockForgeRepresenter", "NormalLatency",
           "StatusSplit", "dump_mockforge_yaml", "endpoint_probability_rows", "export_persona",
           "histogram_moments", "load_mockforge_yaml", "lognormal_moments", "mockforge_config",
           "mockforge_route", "render_mockforge_yaml", "status_split", "validate_mockforge",
           "write_endpoint_probabilities_sqlite", "write_mockforge"]
