"""Export to Mockoon: one environment JSON that ``mockoon-cli start --data FILE`` serves.

Tested with ``@mockoon/cli`` 9.9.0 (environment schema ``lastMigration`` 33; the CLI loads the
file as written, no migration or repair). One route per endpoint (``GET api/users/:id``, literal
segments ordered before parameters); per persona, the cell's latency predictive becomes a
``quantiles``-level mixture and its status mix a weighted draw.

**Why not ``responseMode: "RANDOM"``.** In @mockoon/commons-server 9.9.0
(``ResponseRulesInterpreter.chooseResponse``) RANDOM, SEQUENTIAL and DISABLE_RULES pick a
response before any rule is looked at, so a RANDOM route cannot tell personas apart. Routes here
stay in the default rules mode: the *first* response whose rules all hold (``rulesOperator:
"AND"``, evaluated left to right, stopping at the first failure) is served, else the one marked
``default``. A ``templating`` rule renders its modifier anew each time it is tried, so
``{{faker 'number.float'}}`` in it is a fresh U(0, 1) draw (53 random bits) per try, and a
cascade of responses with conditional thresholds ``c_k = p_k / (1 − Σ_{j<k} p_j)`` (the last has
``c = 1``: no draw) serves response ``k`` with probability ``p_k`` exactly.

**Layout of a route.** For every persona with a cell at the endpoint, busiest first (its
``rate_per_s`` there: the order that minimises the rules tried per request), a block of ``G·Q``
responses, one per (content-type group ``g``, latency level ``i``),
``P(g)/Q`` each. Every response but the block's last carries the draw rule (``operator:
"null"`` holds when the modifier renders empty)::

    {"target": "templating", "operator": "null", "value": "",
     "modifier": "{{#if (lt (faker 'number.float') c_k)}}{{else}}-{{/if}}"}

followed by ``{"target": "header", "modifier": persona_header, "value": persona, "operator":
"equals"}``. The draw comes first because Mockoon renders every rule it tries (modifier and
value), and a header rule costs two renders: in the request's own block a failed draw stops
after one. The response's ``latency`` is the cell's predictive quantile at ``(i + 0.5)/Q``
(:func:`latency_levels`); its body draws the status within the group: a one-status group is
served verbatim (``disableTemplating``), a larger one renders
``{{#if (lt (faker 'number.float') r_1)}}{{status 404}}…{{else}}{{status 200}}…{{/if}}`` (the
``status`` helper sets the code) with the same kind of conditional thresholds and each recorded
body inside a Handlebars raw block ``{{{{if true}}}}…{{{{/if}}}}`` that the parser leaves
untouched. A group is the statuses sharing a content type (``Content-Type`` is a fixed header
per response), except that a body a raw block cannot hold (one containing ``{{{{`` or a NUL, or
ending in ``{``) gets a group of its own. After the persona blocks comes the default persona's
block once more without header rules, for requests with no or an unknown persona header; its
last response has no rule and ``default: true``. The default persona is ``"default"`` when the
model has one, else the largest ``persona_share`` (an endpoint it never called falls back to its
busiest cell).

**Cost, and the choice of ``quantiles``.** Mockoon compiles every template it renders (each rule
tried, each response header, a templated body) with Handlebars, on Node's one thread. A request
of the ``j``-th block tries ``j·G·Q`` responses of the blocks before it and on average
``(Q + 1)/2`` of its own. Measured on this project's (slow, shared 2-core) test machine with the
``steady`` scenario, ``Q = 20``: ~6.5 ms fixed per request, +3 ms for the templated body, ~1 ms
per tried response, i.e. 18 / 33 / 51 ms of Node CPU for the first / second / third persona and
~63 ms without a header (``Q = 10``: 30–50% less); faster machines scale all of these down.
That is why the status is drawn in the body rather than in ``S`` times more responses (``S`` = 4–5
statuses per cell here would multiply the foreign blocks' length) and why ``quantiles``
defaults to 20, not 100: latency fidelity grows with ``Q``, the CPU per request linearly too.

**Exact.** Persona routing (the ``persona_header`` value, exact match; the header name is
case-insensitive; missing or unknown → the default persona); status shares (``status_p``, each
request an independent draw) with each status's recorded body and content type; independence of
status and latency; the mixture's levels are the predictive's own quantiles, each served with
probability ``1/Q``.

**Approximated.** Latency is a ``Q``-level mixture of point masses: its q-quantile is the
predictive's quantile at ``(⌈q·Q⌉ − 0.5)/Q`` (47.5% / 87.5% / 97.5% for p50 / p90 / p99 at
``Q = 20``), so the served quantiles sit below the predictive's and the tail is cut at the top
level (:func:`mixture_error`). For the 18 cells of the ``steady`` scenario at ``Q = 20``: p50
−2 to −4%, p90 −4 to −23% (median −7%), p99 −7 to −41% (median −20%); at ``Q = 100``: p50 −0.4
to −0.8%, p90 −1 to −7%. Node timers have 1 ms resolution, and Mockoon's processing time (above)
adds to every delay.

**Not expressible.** Session flows and think times (Mockoon's ``global_var`` state is
server-wide, not per client; the Locust export replays flows), request rates (a mock only
answers), and request-dependent bodies (recorded bodies are served verbatim).

**Provenance** is in the environment ``name``, each route's ``documentation`` (both kept by the
Mockoon app) and a ``driftbayes`` key holding the full provenance dict. Mockoon's schema strips
unknown keys when it loads a file, so the CLI ignores that key (it serves the file unchanged) and
the Mockoon app drops it if the environment is re-saved.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import numpy as np

from driftbayes.export.model import CellModel, ExportModel, default_persona

#: The Mockoon CLI this format is tested with and its environment migration id.
MOCKOON_CLI_VERSION = "9.9.0"
LAST_MIGRATION = 33
DEFAULT_QUANTILES = 20

_NAMESPACE = uuid.UUID("5b0e6f3c-4d2a-4f0e-9a57-2f1d7c1e8b10")
_METHODS = ("get", "post", "put", "patch", "delete", "head", "options", "propfind", "proppatch",
            "move", "copy", "mkcol", "lock", "unlock")
_DRAW = "(faker 'number.float')"


def latency_levels(cell: CellModel, quantiles: int = DEFAULT_QUANTILES) -> np.ndarray:
    """The ``quantiles`` latencies (ms) of the mixture: the predictive's quantiles at
    ``(i + 0.5)/quantiles``."""
    return cell.latency_quantiles((np.arange(quantiles) + 0.5) / quantiles)


def mixture_quantiles(cell: CellModel, qs, quantiles: int = DEFAULT_QUANTILES) -> np.ndarray:
    """Quantiles of the served mixture (equal-weight point masses at :func:`latency_levels`):
    the smallest level whose cumulative weight reaches ``q``."""
    levels = np.sort(latency_levels(cell, quantiles))
    k = np.ceil(np.asarray(qs, dtype=float) * quantiles - 1e-9).astype(int) - 1
    return levels[np.clip(k, 0, quantiles - 1)]


def mixture_error(cell: CellModel, quantiles: int = DEFAULT_QUANTILES,
                  qs=(0.5, 0.9, 0.99)) -> dict[float, float]:
    """Relative error of the mixture's quantiles against the cell's predictive quantiles."""
    got = mixture_quantiles(cell, qs, quantiles)
    want = cell.latency_quantiles(qs)
    return {float(q): float(g / w - 1.0) for q, g, w in zip(qs, got, want)}


def cascade(probs) -> list[float]:
    """Conditional thresholds that serve outcome ``k`` with probability ``probs[k]`` when the
    outcomes are tried in order, each with a fresh U(0, 1) draw: ``c_k = p_k / (1 − Σ_{j<k}
    p_j)``; the last threshold is 1 (the draw is skipped)."""
    p = np.asarray(probs, dtype=float)
    p = p / p.sum()
    out, left = [], 1.0
    for k, pk in enumerate(p):
        if k == len(p) - 1 or left <= 0.0:
            out.append(1.0)
        else:
            out.append(float(min(max(pk / left, 0.0), 1.0)))
        left -= pk
    return out


def mockoon_path(template: str) -> str:
    """``/api/users/{id}`` → ``api/users/:id`` (Mockoon stores endpoints without the leading
    slash; path-to-regexp v8 specials in literal text are escaped)."""
    out = []
    parts = re.split(r"(\{[^{}]*\})", template.lstrip("/"))
    for k, part in enumerate(parts):
        if part.startswith("{") and part.endswith("}"):
            name = re.sub(r"\W", "_", part[1:-1]) or f"p{k}"
            if not re.match(r"[A-Za-z_$]", name):
                name = f"p_{name}"
            nxt = parts[k + 1] if k + 1 < len(parts) else ""
            out.append(f':"{name}"' if re.match(r"[\w$]", nxt) else f":{name}")
        else:
            out.append(re.sub(r"([()\[\]{}?+*!:\\])", r"\\\1", part))
    return "".join(out)


def _num(x: float) -> str:
    return np.format_float_positional(float(x), unique=True, trim="-")


def _rules(threshold: float, header: str | None, persona: str) -> list[dict]:
    """The rules of a cascade response, all of which must hold: a fresh U(0, 1) draw below
    ``threshold`` (none when it is 1; the ``null`` operator holds when the modifier renders
    empty), then ``header`` equals ``persona`` (none when ``header`` is None). The draw comes
    first: Mockoon stops at the first failing rule, so a response of the request's own block
    costs one render instead of three, and the header is looked at only after a hit."""
    rules = []
    if threshold < 1.0:
        rules.append({"target": "templating",
                      "modifier": f"{{{{#if (lt {_DRAW} {_num(threshold)})}}}}{{{{else}}}}-"
                                  "{{/if}}",
                      "value": "", "invert": False, "operator": "null"})
    if header is not None:
        if "{{" in header + persona:
            raise ValueError(f"Mockoon would render {header!r}: {persona!r} as a template")
        rules.append({"target": "header", "modifier": header, "value": persona,
                      "invert": False, "operator": "equals"})
    return rules


def _raw_ok(body: str) -> bool:
    return "{{{{" not in body and "\x00" not in body and not body.endswith("{")


def _status_groups(cell: CellModel) -> list[tuple[str, list[int], list[float]]]:
    """(content type, statuses, their probabilities) per group, most likely group first."""
    groups: dict[tuple, tuple[str, list[int], list[float]]] = {}
    for code, p in zip(cell.statuses, cell.status_p):
        ctype, body = cell.bodies.get(code, ("application/json", ""))
        key = (ctype,) if _raw_ok(body) else (ctype, code)
        groups.setdefault(key, (ctype, [], []))
        groups[key][1].append(code)
        groups[key][2].append(p)
    return sorted(groups.values(), key=lambda g: -sum(g[2]))


def _body(cell: CellModel, codes: list[int], probs: list[float]) -> tuple[str, bool]:
    """(body, templated): the recorded body of a single status, or a status draw."""
    if len(codes) == 1:
        return cell.bodies.get(codes[0], ("", ""))[1], False
    parts = []
    for k, (code, c) in enumerate(zip(codes, cascade(probs))):
        body = cell.bodies.get(code, ("", ""))[1]
        raw = f"{{{{{{{{if true}}}}}}}}{body}{{{{{{{{/if}}}}}}}}" if body else ""
        if k == 0:
            parts.append(f"{{{{#if (lt {_DRAW} {_num(c)})}}}}")
        elif k < len(codes) - 1:
            parts.append(f"{{{{else if (lt {_DRAW} {_num(c)})}}}}")
        else:
            parts.append("{{else}}")
        parts.append(f"{{{{status {code}}}}}{raw}")
    parts.append("{{/if}}")
    return "".join(parts), True


def _block(cell: CellModel, quantiles: int, env_id: uuid.UUID, *, header: str | None,
           last_default: bool) -> list[dict]:
    """The responses of one persona block (see the module docstring)."""
    groups = _status_groups(cell)
    levels = latency_levels(cell, quantiles)
    probs = [sum(g[2]) / quantiles for g in groups for _ in range(quantiles)]
    thresholds = cascade(probs)
    who = cell.persona if header is not None else f"{cell.persona} (no/unknown header)"
    out = []
    for k, ((ctype, codes, sp), i) in enumerate(
            (g, i) for g in groups for i in range(quantiles)):
        body, templated = _body(cell, codes, sp)
        is_default = k == len(probs) - 1 and last_default
        key = f"{cell.endpoint}|{cell.persona}|{header is not None}|{k}"
        out.append({
            "uuid": str(uuid.uuid5(env_id, key)),
            "body": body,
            "latency": round(float(levels[i]), 3),
            "statusCode": int(codes[0]),
            "label": (f"{who} · {'/'.join(map(str, codes))} · latency level {i + 1}/"
                      f"{quantiles} (q={(i + 0.5) / quantiles:g})"),
            "headers": [{"key": "Content-Type", "value": ctype}] if ctype else [],
            "bodyType": "INLINE",
            "filePath": "",
            "databucketID": "",
            "sendFileAsBody": False,
            "rules": [] if is_default else _rules(thresholds[k], header, cell.persona),
            "rulesOperator": "AND",
            "disableTemplating": not templated,
            "fallbackTo404": False,
            "default": is_default,
            "crudKey": "id",
            "callbacks": [],
        })
    return out


def _route_order(path: str) -> list[int]:
    """Literal segments before parameters at the same depth (``…/featured`` before ``…/:id``)."""
    return [1 if seg.startswith(":") else 0 for seg in path.split("/")]


def mockoon_environment(model: ExportModel, *, port: int = 3000,
                        quantiles: int = DEFAULT_QUANTILES) -> dict:
    """The Mockoon environment (a JSON-ready dict) of ``model``; see the module docstring."""
    if quantiles < 1:
        raise ValueError("quantiles must be ≥ 1")
    prov = model.provenance
    env_id = uuid.uuid5(_NAMESPACE, json.dumps(
        {k: prov.get(k) for k in ("driftbayes_version", "layer", "created_at", "data_start",
                                  "data_end", "n_events")}, sort_keys=True, default=str))
    fallback = default_persona(model)
    routes, skipped = [], []
    for endpoint in model.endpoints:
        cells = [c for c in model.cells if c.endpoint == endpoint]
        if not cells:
            continue
        method = cells[0].method.lower()
        if method not in _METHODS:
            skipped.append(endpoint)
            continue
        cells.sort(key=lambda c: (-c.rate_per_s, model.personas.index(c.persona)))
        responses = []
        for cell in cells:
            responses += _block(cell, quantiles, env_id, header=model.persona_header,
                                last_default=False)
        base = next((c for c in cells if c.persona == fallback),
                    max(cells, key=lambda c: c.rate_per_s))
        responses += _block(base, quantiles, env_id, header=None, last_default=True)
        path = mockoon_path(cells[0].template)
        routes.append({
            "uuid": str(uuid.uuid5(env_id, endpoint)),
            "type": "http",
            "documentation": (
                f"driftbayes {prov.get('driftbayes_version', '')} export ({model.layer} layer, "
                f"data {prov.get('data_start', '')} – {prov.get('data_end', '')}): {endpoint}. "
                f"Personas by {model.persona_header}: "
                + ", ".join(f"{c.persona} (p50 {c.p50_ms:.0f} ms, "
                            + ", ".join(f"{s} {p:.2%}" for s, p in zip(c.statuses, c.status_p))
                            + ")" for c in cells)
                + f"; no/unknown header → {base.persona}. Latency: {quantiles} quantile levels."),
            "method": method,
            "endpoint": path,
            "responses": responses,
            "responseMode": None,
            "streamingMode": None,
            "streamingInterval": 0,
        })
    routes.sort(key=lambda r: _route_order(r["endpoint"]))
    name = (f"driftbayes {model.layer} export ({prov.get('data_start', '')} – "
            f"{prov.get('data_end', '')}, driftbayes {prov.get('driftbayes_version', '')})")
    return {
        "uuid": str(env_id),
        "lastMigration": LAST_MIGRATION,
        "name": name,
        "endpointPrefix": "",
        "latency": 0,
        "port": int(port),
        "hostname": "127.0.0.1",
        "folders": [],
        "routes": routes,
        "rootChildren": [{"type": "route", "uuid": r["uuid"]} for r in routes],
        "proxyMode": False,
        "proxyHost": "",
        "proxyRemovePrefix": False,
        "tlsOptions": {"enabled": False, "type": "CERT", "pfxPath": "", "certPath": "",
                       "keyPath": "", "caPath": "", "passphrase": ""},
        "cors": True,
        "headers": [],
        "proxyReqHeaders": [],
        "proxyResHeaders": [],
        "data": [],
        "callbacks": [],
        "driftbayes": {**prov, "format": "mockoon", "mockoon_cli": MOCKOON_CLI_VERSION,
                       "quantiles": quantiles, "persona_header": model.persona_header,
                       "default_persona": fallback, "skipped_endpoints": skipped},
    }


def write_mockoon(model: ExportModel, out: str | Path, *, port: int = 3000,
                  quantiles: int = DEFAULT_QUANTILES) -> Path:
    """Write ``model`` as one Mockoon environment JSON at ``out`` (a ``.json`` file, or a folder
    that gets ``mockoon.json``) for ``mockoon-cli start --data FILE``; returns its path."""
    out = Path(out)
    if out.suffix.lower() != ".json":
        out = out / "mockoon.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    env = mockoon_environment(model, port=port, quantiles=quantiles)
    out.write_text(json.dumps(env, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return out


__all__ = ["DEFAULT_QUANTILES", "LAST_MIGRATION", "MOCKOON_CLI_VERSION", "cascade",
           "default_persona", "latency_levels", "mixture_error", "mixture_quantiles",
           "mockoon_environment", "mockoon_path", "write_mockoon"]
