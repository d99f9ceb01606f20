"""Export to WireMock 3: a self-contained root folder (``mappings/``, ``__files/``, a start
script) that serves every endpoint × persona cell of an :class:`ExportModel`.

**Layout.** One stub per cell: the request's ``method`` + ``urlPathTemplate`` (driftbayes
templates such as ``/api/users/{id}``, ``/v2/{hash}/servers`` or ``/files/{name}.json`` are
WireMock path templates as they are; a repeated parameter name gets a suffix, ``{id}``,
``{id_2}``) + a header matcher ``{persona_header: {"equalTo": persona}}`` at priority
:data:`PERSONA_PRIORITY`; and per endpoint one stub without a header matcher at the lower
priority :data:`FALLBACK_PRIORITY` that serves the default persona's cell (``default`` when
learned, else the persona with the largest share of the requests), so a request without the
header, or naming an unknown persona, is answered as ``driftbayes serve`` answers it. Each
response carries ``X-Driftbayes-Pattern: <endpoint>; persona=<p>; confidence=<c>`` like the
driftbayes mock.

**Exact.** Persona routing by the header; the bodies (the recorded, redacted body per status
or the stub / OpenAPI example ``driftbayes serve`` answers with, in ``__files/``, with their
Content-Type; none for 204/205/304); and the status mix:

* ``statuses="auto"`` (default): ``extension`` when it can be built here, else ``ring``
  with a one-line notice (see :func:`write_wiremock`).
* ``statuses="extension"``: the stub's own response is the most likely status and
  the bundled transformer ``driftbayes-weighted`` (``java/WeightedResponses.java``, compiled
  into ``extensions/driftbayes-weighted.jar`` against the WireMock jar) swaps in each other
  status with its probability, independently per request: the shares are exact in
  expectation (binomial noise around ``status_p``).
* ``statuses="ring"`` (pure JSON, no Java build): per cell a WireMock scenario with
  ``ring_size`` states, one stub each, that the requests step through; the statuses are
  allotted by largest-remainder rounding of ``status_p × ring_size`` and interleaved evenly,
  so every ``ring_size`` consecutive requests of a cell carry exactly those counts (a status
  below ``1/(2·ring_size)`` may get none). It is deterministic, not random, and scenario state
  is **global to the server, not per client**: clients that share a cell share its ring, and
  concurrent requests can race for the same state, so the counts are exact for sequential
  requests.

**Approximated.** Latency: WireMock's ``delayDistribution`` is a log-normal, so each cell gets
the log-normal ``(median_ms, σ)`` fitted to the histogram predictive the driftbayes mock draws
from (median and ±1 σ quantiles matched, see :mod:`driftbayes.export.model`); the tails beyond
are what is lost, :func:`~driftbayes.export.model.lognormal_fit_error` measures it (stored per
stub in ``metadata.driftbayes.latency.fit_error``). WireMock adds its own overhead (loopback,
matching) on top. The latency is the cell's, whatever the status.

**Not expressible.** Flows and think times: WireMock scenarios are server-global, so the
per-session transition model (``X-Driftbayes-Flow``, ``enforce``) is not exported (replay the
flows with the Locust export instead); persona rules other than the header (``persona_map``,
``persona_rules`` on paths or clients) fall back to the default persona; rates, drift and
learning (WireMock serves a frozen layer).

Start: ``out/start-wiremock.sh PORT``; the script runs the jar in ``$WIREMOCK_JAR``, else the one
the extension was compiled against (the runtimes cache's, see
:mod:`driftbayes.export.runtimes`; the npm package ``wiremock@3.13.2`` bundles the jar in
``node_modules/wiremock/build/``). The script runs
WireMock with ``--async-response-enabled true``: by default every delayed response holds one of
25 Jetty threads, which caps a mock with 100 ms delays near 170 requests/s.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import tempfile
import uuid
import warnings
import zipfile
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from urllib.parse import quote

import numpy as np

from driftbayes.export.model import (
    CellModel,
    ExportModel,
    default_persona,
    largest_remainder,
    lognormal_fit_error,
)

#: The WireMock release the exports are tested with (npm ``wiremock@…`` bundles its jar).
WIREMOCK_VERSION = "3.13.2"
#: Name, class and jar of the bundled weighted-status transformer.
EXTENSION_NAME = "driftbayes-weighted"
EXTENSION_CLASS = "driftbayes.WeightedResponses"
EXTENSION_JAR = f"extensions/{EXTENSION_NAME}.jar"
#: Stub priorities (1 = tried first): the persona's own stub, then the header-less fallback.
PERSONA_PRIORITY = 1
FALLBACK_PRIORITY = 5
STATUS_MODES = ("auto", "extension", "ring")
#: Statuses answered without a body (as ``driftbayes serve``).
NO_BODY = frozenset({204, 205, 304})
#: Marks a folder as written by :func:`write_wiremock` (safe to overwrite).
MARKER = "driftbayes-export.json"
_SOURCE = "WeightedResponses.java"
_NS = uuid.UUID("6f7c1a52-3f4e-4d7b-9a55-1c8e2f0b7d31")  # stub ids: uuid5(_NS, name)
_PARAM = re.compile(r"\{([^{}/]*)\}")


class WireMockExportError(RuntimeError):
    """The weighted-status extension cannot be built here (no WireMock jar or no javac)."""


class RuntimeFallbackWarning(UserWarning):
    """An export fell back to a form that needs no missing runtime (e.g. the scenario ring)."""


# --------------------------------------------------------------------------------------------
# pieces


def path_template(template: str) -> str:
    """A driftbayes template as a WireMock ``urlPathTemplate``: every ``{name}`` stays a path
    parameter; a repeated (or empty) name gets a numeric suffix so names are unique."""
    seen: dict[str, int] = {}

    def rename(m: re.Match) -> str:
        name = re.sub(r"[^A-Za-z0-9_]", "_", m.group(1)) or "param"
        seen[name] = seen.get(name, 0) + 1
        return "{" + (name if seen[name] == 1 else f"{name}_{seen[name]}") + "}"

    return _PARAM.sub(rename, template)


def ring_order(status_p, ring_size: int) -> list[int]:
    """Indices into ``status_p`` for the ``ring_size`` positions of a scenario ring: counts by
    largest remainder, each status spread evenly (its ``j``-th copy near
    ``(j + ½)·ring_size/n``)."""
    counts = largest_remainder(status_p, ring_size)
    slots = [((j + 0.5) * ring_size / n, k) for k, n in enumerate(counts) for j in range(n)]
    return [k for _, k in sorted(slots)]


def _fallback_cell(model: ExportModel, cells: list[CellModel]) -> CellModel:
    """The endpoint's cell of the default persona; when that persona never called it, the cell
    of the persona with the largest share."""
    share = dict(zip(model.personas, np.asarray(model.persona_share, dtype=float)))
    want = default_persona(model)
    return max(cells, key=lambda c: (c.persona == want, share.get(c.persona, 0.0)))


def _slug(text: str, limit: int = 60) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit] or "root"


def _header_safe(text: str) -> str:
    return text if text.isascii() else quote(text, safe=" !\"#$%&'()*+,-./:;<=>?@[]^_`{|}~")


def _extension_of(content_type: str) -> str:
    ct = content_type.split(";")[0].strip().lower()
    if ct.endswith("json"):
        return "json"
    if ct.endswith("xml"):
        return "xml"
    return {"text/html": "html", "text/csv": "csv"}.get(ct, "txt")


class _Files:
    """``__files/``: one file per distinct body of an endpoint × status."""

    def __init__(self, root: Path):
        self.root = root / "__files"
        self.root.mkdir(parents=True, exist_ok=True)

    def body(self, cell: CellModel, status: int) -> dict:
        """The response fields for ``status``'s body: ``bodyFileName`` + Content-Type, or
        nothing (no-body statuses, empty bodies)."""
        ctype, text = cell.bodies.get(status, ("", ""))
        if status in NO_BODY or status < 200 or not text:
            return {}
        data = text.encode("utf-8")
        digest = hashlib.sha256(data).hexdigest()[:10]
        name = f"{_slug(cell.endpoint)}/{status}-{digest}.{_extension_of(ctype)}"
        path = self.root / name
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        return {"bodyFileName": name,
                "headers": {"Content-Type": ctype or "application/octet-stream"}}


def _metadata(cell: CellModel, role: str) -> dict:
    return {"driftbayes": {
        "endpoint": cell.endpoint, "persona": cell.persona, "role": role,
        "status_p": {str(s): p for s, p in zip(cell.statuses, cell.status_p)},
        "rate_per_s": cell.rate_per_s, "confidence": cell.confidence,
        "latency": {"median_ms": cell.median_ms, "sigma": cell.sigma, "p50_ms": cell.p50_ms,
                    "p90_ms": cell.p90_ms, "p99_ms": cell.p99_ms,
                    "fit_error": {str(q): e for q, e in lognormal_fit_error(cell).items()}}}}


def _response(cell: CellModel, status: int, files: _Files) -> dict:
    body = files.body(cell, status)
    pattern = _header_safe(f"{cell.endpoint}; persona={cell.persona}; "
                           f"confidence={cell.confidence:.2f}")
    return {"status": int(status), **({"bodyFileName": body["bodyFileName"]} if body else {}),
            "headers": {**body.get("headers", {}), "X-Driftbayes-Pattern": pattern},
            "delayDistribution": {"type": "lognormal", "median": cell.median_ms,
                                  "sigma": cell.sigma}}


def _request(model: ExportModel, cell: CellModel, persona: str | None) -> dict:
    req = {"method": cell.method.upper(), "urlPathTemplate": path_template(cell.template)}
    if persona is not None:
        req["headers"] = {model.persona_header: {"equalTo": persona}}
    return req


def _stubs(model: ExportModel, cell: CellModel, role: str, files: _Files, mode: str,
           ring_size: int) -> list[dict]:
    """The stub (``extension``) or the scenario ring (``ring``) of one cell; ``role`` is
    ``persona`` (header matcher, priority 1) or ``fallback`` (no header, priority 5)."""
    persona = cell.persona if role == "persona" else None
    label = f"{cell.endpoint} [{cell.persona if persona else 'no ' + model.persona_header}]"
    base = {"priority": PERSONA_PRIORITY if persona else FALLBACK_PRIORITY,
            "request": _request(model, cell, persona)}
    meta = _metadata(cell, role)
    if mode == "extension":
        response = _response(cell, cell.statuses[0], files)
        alternatives = []
        for code, p in zip(cell.statuses[1:], cell.status_p[1:]):
            alt = {"p": p, "status": int(code), **files.body(cell, code)}
            alternatives.append(alt)
        if alternatives:
            response["transformers"] = [EXTENSION_NAME]
            response["transformerParameters"] = {"alternatives": alternatives}
        return [{"id": str(uuid.uuid5(_NS, label)), "name": label, **base,
                 "response": response, "metadata": meta}]
    order = ring_order(cell.status_p, ring_size)
    states = ["Started"] + [f"ring-{i}" for i in range(1, ring_size)]
    scenario = f"driftbayes {label}"
    out = []
    for i, k in enumerate(order):
        name = f"{label} ring {i + 1}/{ring_size}"
        out.append({"id": str(uuid.uuid5(_NS, name)), "name": name, **base,
                    "scenarioName": scenario, "requiredScenarioState": states[i],
                    "newScenarioState": states[(i + 1) % ring_size],
                    "response": _response(cell, cell.statuses[k], files),
                    **({"metadata": meta} if i == 0 else {})})
    return out


# --------------------------------------------------------------------------------------------
# the extension and the start script


def extension_source() -> str:
    """The Java source of the ``driftbayes-weighted`` transformer (shipped with driftbayes)."""
    return (resources.files("driftbayes.export") / "java" / _SOURCE).read_text("utf-8")


def build_extension(wiremock_jar: str | Path, dest: str | Path) -> Path:
    """Compile the transformer against ``wiremock_jar`` (``javac --release 11``) into the jar
    ``dest``; raises :class:`WireMockExportError` when javac or the jar is missing or javac
    fails."""
    jar = Path(wiremock_jar)
    if not jar.is_file():
        raise WireMockExportError(
            f"WireMock jar {jar} not found: the weighted-status extension is compiled against "
            f"it. Pass wiremock_jar= (--wiremock-jar) or set WIREMOCK_JAR, or export with "
            f'statuses="ring" (--wiremock-statuses ring, pure JSON).')
    javac = shutil.which("javac")
    if javac is None:
        raise WireMockExportError(
            "javac not found: the weighted-status extension needs a JDK (11+) to compile. "
            'Install one, or export with statuses="ring" (--wiremock-statuses ring, pure '
            "JSON, no Java build).")
    dest = Path(dest)
    with tempfile.TemporaryDirectory(prefix="driftbayes-wiremock-") as tmp:
        src = Path(tmp) / _SOURCE
        src.write_text(extension_source(), encoding="utf-8")
        classes = Path(tmp) / "classes"
        run = subprocess.run([javac, "--release", "11", "-nowarn", "-encoding", "UTF-8",
                              "-cp", str(jar), "-d", str(classes), str(src)],
                             capture_output=True, text=True)
        if run.returncode != 0:
            raise WireMockExportError(
                f"javac failed building the weighted-status extension against {jar} (a "
                f"WireMock 3 jar is needed):\n{run.stderr.strip()}\nOr export with "
                f'statuses="ring".')
        dest.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\r\n"
                       "Created-By: driftbayes\r\n\r\n")
            for f in sorted(classes.rglob("*.class")):
                z.write(f, f.relative_to(classes).as_posix())
    return dest


def start_script(mode: str, default_jar: str | Path | None = None) -> str:
    """``start-wiremock.sh PORT [WireMock options]``: WireMock on 127.0.0.1:PORT serving the
    script's own folder (it can be moved), the jar from ``$WIREMOCK_JAR``, else
    ``default_jar`` (when given)."""
    if mode == "extension":
        java = (f'exec java -cp "$WIREMOCK_JAR:$DIR/{EXTENSION_JAR}" wiremock.Run '
                f"--extensions {EXTENSION_CLASS} \\\n")
    else:
        java = 'exec java -jar "$WIREMOCK_JAR" \\\n'
    jar_name = f"wiremock-standalone-{WIREMOCK_VERSION}.jar"
    default = ""
    if default_jar is not None:
        default = ("# the jar this export was built against (driftbayes' runtimes cache)\n"
                   f'WIREMOCK_JAR="${{WIREMOCK_JAR:-{_sh_path(default_jar)}}}"\n')
    return f"""#!/bin/sh
# WireMock serving this driftbayes export on 127.0.0.1:PORT (see README.md).
# Usage: WIREMOCK_JAR=/path/to/{jar_name} ./start-wiremock.sh PORT [options]
# Extra arguments go to WireMock (e.g. --verbose, --no-request-journal).
set -eu
{default}if [ "$#" -lt 1 ]; then
  echo "usage: WIREMOCK_JAR=/path/to/wiremock-standalone.jar $0 PORT [WireMock options]" >&2
  exit 2
fi
if [ -z "${{WIREMOCK_JAR:-}}" ]; then
  echo "WIREMOCK_JAR is not set: point it at a WireMock 3 standalone jar, e.g. after" >&2
  echo "  npm install wiremock@{WIREMOCK_VERSION}" >&2
  echo "  export WIREMOCK_JAR=$PWD/node_modules/wiremock/build/{jar_name}" >&2
  exit 2
fi
if [ ! -f "$WIREMOCK_JAR" ]; then
  echo "WIREMOCK_JAR=$WIREMOCK_JAR: no such file" >&2
  exit 2
fi
DIR=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)
PORT=$1
shift
{java}  --port "$PORT" --bind-address 127.0.0.1 --root-dir "$DIR" --disable-banner \\
  --async-response-enabled true "$@"
"""


def _sh_path(path: str | Path) -> str:
    """``path`` for inside a double-quoted sh word (``$``, backquote, ``"``, ``\\`` escaped)."""
    return re.sub(r'([$`"\\])', r"\\\1", str(Path(path).resolve()))


def _readme(model: ExportModel, mode: str, ring_size: int, fallback: str) -> str:
    version = model.provenance.get("driftbayes_version", "")
    extras = ", `extensions/` (the transformer jar and source)" if mode == "extension" else ""
    worst = max(model.cells, key=lambda c: abs(lognormal_fit_error(c)[0.99]))
    err99 = lognormal_fit_error(worst)[0.99]
    if mode == "extension":
        status = (f"Status mix: each stub answers its most likely status; the `{EXTENSION_NAME}` "
                  f"transformer (`{EXTENSION_JAR}`, source `extensions/{_SOURCE}`) swaps in "
                  "each other status with its learned probability, independently per request "
                  "(exact in expectation).")
    else:
        status = (f"Status mix: a scenario ring of {ring_size} stubs per cell, statuses allotted "
                  f"by largest remainder and interleaved; every {ring_size} consecutive requests "
                  "of a cell carry exactly those counts. Deterministic, and scenario state is "
                  "global to the server (not per client): clients share a cell's ring, and "
                  f"concurrent requests may race for a state. Reset: "
                  "`POST /__admin/scenarios/reset`.")
    return f"""# driftbayes → WireMock {WIREMOCK_VERSION}

Learned API traffic ({model.layer} layer, driftbayes {version}): \
{len(model.endpoints)} endpoints × {len(model.personas)} personas, {len(model.cells)} cells.

- `mappings/`: one stub per endpoint × persona (header `{model.persona_header}: <persona>`, \
priority {PERSONA_PRIORITY}) and per endpoint one stub without the header (priority \
{FALLBACK_PRIORITY}) serving persona `{fallback}`. `metadata.driftbayes` holds the learned numbers.
- `__files/`: the response bodies (recorded and redacted, or driftbayes' stub/OpenAPI example).
- `start-wiremock.sh`, this README, `{MARKER}` (provenance){extras}.

Start: `WIREMOCK_JAR=/path/to/wiremock-standalone-{WIREMOCK_VERSION}.jar ./start-wiremock.sh 8080` \
(`npm install wiremock@{WIREMOCK_VERSION}` bundles the jar in `node_modules/wiremock/build/`), \
then e.g. `curl -H '{model.persona_header}: {model.cells[0].persona}' \
http://127.0.0.1:8080{model.cells[0].template}`.

{status}

Latency: a log-normal `delayDistribution` per stub, (median, σ) fitted to the latency \
predictive's median and ±1 σ quantiles. The tails are approximated (worst p99 error \
{err99:+.0%}: {worst.endpoint} × {worst.persona}; per stub in \
`metadata.driftbayes.latency.fit_error`); WireMock's own overhead comes on top.

Not exported: session flows and think times (WireMock scenarios are server-global; replay \
flows with the Locust export), persona rules other than the `{model.persona_header}` header \
(such requests get `{fallback}`), drift and learning (a frozen snapshot).
"""


# --------------------------------------------------------------------------------------------
# entry point


def _prepare(out: Path) -> None:
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).exists():
            raise ValueError(f"{out} is not empty and not a driftbayes WireMock export: "
                             "choose a new or empty folder")
        for sub in ("mappings", "__files", "extensions"):
            shutil.rmtree(out / sub, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)


def _warn(message: str) -> None:
    warnings.warn(message, RuntimeFallbackWarning, stacklevel=3)


def _runtime_jar(strict: bool, notify: Callable[[str], None] | None) -> Path | None:
    """The WireMock jar of driftbayes' runtimes cache, installed if missing; ``None`` (with a
    notice) where that fails, unless ``strict`` (then :class:`WireMockExportError`)."""
    from driftbayes.export import runtimes

    try:
        return runtimes.wiremock_jar(notify=notify)  # the install notice: only if asked for
    except runtimes.RuntimeUnavailable as exc:
        if strict:
            raise WireMockExportError(
                f"no WireMock jar to compile the weighted-status extension against ({exc}): "
                "pass wiremock_jar= (--wiremock-jar) or set WIREMOCK_JAR, or export with "
                'statuses="ring" (--wiremock-statuses ring: pure JSON).') from exc
        (notify or _warn)(f"no WireMock jar ({exc}): exporting the pure-JSON scenario ring "
                          "instead of the weighted-status extension")
        return None


def write_wiremock(model: ExportModel, out: str | Path, *, statuses: str = "auto",
                   wiremock_jar: str | Path | None = None, ring_size: int = 100,
                   notify: Callable[[str], None] | None = None) -> Path:
    """Write a WireMock root folder at ``out`` (see the module docstring); returns ``out``.

    Parameters
    ----------
    statuses : {"auto", "extension", "ring"}
        ``extension``: a random status per request through the bundled transformer, compiled
        here with ``javac`` against ``wiremock_jar``, else ``$WIREMOCK_JAR``, else the jar of
        driftbayes' runtimes cache (installed if missing); fails where it cannot be built.
        ``ring``: pure JSON scenario rings of ``ring_size`` requests with exact status counts.
        ``auto``: ``extension`` where it can be built, else ``ring`` with a notice.
    notify : callable, optional
        Receives one-line notices (a runtime being installed, a fallback taken); default: a
        :class:`RuntimeFallbackWarning` for a fallback only.

    ``out`` must be new, empty or an earlier export (whose stubs are replaced).
    """
    if statuses not in STATUS_MODES:
        raise ValueError(f"unknown statuses mode {statuses!r}; choose one of "
                         f"{', '.join(STATUS_MODES)}")
    if not isinstance(ring_size, int | np.integer) or ring_size < 1:
        raise ValueError(f"ring_size must be a positive integer, not {ring_size!r}")
    out = Path(out)
    given = wiremock_jar or (os.environ.get("WIREMOCK_JAR") if statuses != "ring" else None)
    jar = Path(given) if given else None
    if statuses != "ring" and jar is None:
        jar = _runtime_jar(statuses == "extension", notify)
    with tempfile.TemporaryDirectory(prefix="driftbayes-wiremock-") as tmp:
        built = None
        if jar is not None and statuses != "ring":
            if statuses == "auto" and not given and shutil.which("javac") is None:
                (notify or _warn)("javac not found (a JDK 11+ builds the weighted-status "
                                  "extension): exporting the pure-JSON scenario ring instead")
            else:
                built = build_extension(jar, Path(tmp) / "ext.jar")
        statuses = "extension" if built is not None else "ring"
        _prepare(out)  # only once the extension compiled: a failure leaves `out` untouched
        if built is not None:
            (out / "extensions").mkdir()
            shutil.copyfile(built, out / EXTENSION_JAR)
            (out / "extensions" / _SOURCE).write_text(extension_source(), encoding="utf-8")
    mappings = out / "mappings"
    mappings.mkdir()
    files = _Files(out)
    fallback = default_persona(model)
    n = 0
    for endpoint in model.endpoints:
        cells = [c for c in model.cells if c.endpoint == endpoint]
        if not cells:
            continue
        jobs = [(c, "persona") for c in cells] + [(_fallback_cell(model, cells), "fallback")]
        for cell, role in jobs:
            n += 1
            stubs = _stubs(model, cell, role, files, statuses, ring_size)
            who = cell.persona if role == "persona" else "fallback"
            name = f"{n:03d}-{_slug(endpoint)}--{_slug(who, 30)}.json"
            (mappings / name).write_text(json.dumps({"mappings": stubs}, indent=1) + "\n",
                                         encoding="utf-8")
    script = out / "start-wiremock.sh"
    script.write_text(start_script(statuses, jar), encoding="utf-8")
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    (out / "README.md").write_text(_readme(model, statuses, ring_size, fallback),
                                   encoding="utf-8")
    info = {"format": "wiremock", "wiremock_version": WIREMOCK_VERSION, "statuses": statuses,
            **({"ring_size": ring_size} if statuses == "ring" else {}),
            "persona_header": model.persona_header, "default_persona": fallback,
            "persona_priority": PERSONA_PRIORITY, "fallback_priority": FALLBACK_PRIORITY,
            "provenance": model.provenance}
    (out / MARKER).write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
    return out


__all__ = ["EXTENSION_NAME", "FALLBACK_PRIORITY", "PERSONA_PRIORITY", "WIREMOCK_VERSION",
           "RuntimeFallbackWarning", "WireMockExportError", "build_extension", "default_persona",
           "path_template", "ring_order", "start_script", "write_wiremock"]
