"""The ``driftbayes`` command line: learn, patterns, sample, reset, config, demo."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
import warnings
from contextlib import nullcontext
from pathlib import Path

import orjson
import typer
import typer.core
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from driftbayes.config import ConfigError, GateUnreachableWarning, load_config
from driftbayes.events import BadRecordError, BadRecordReport


def _one_line(exc: BaseException) -> str:
    """An exception as one line naming the file (for OS errors) and what to do."""
    if isinstance(exc, OSError) and exc.filename is not None:
        what = (exc.strerror or str(exc)).rstrip(".")
        if isinstance(exc, PermissionError):
            what += "; check the file's permissions or choose another path"
        elif isinstance(exc, (FileNotFoundError, NotADirectoryError, IsADirectoryError)) and (
                "; " not in what):
            what += "; check the path"
        return f"{exc.filename}: {what}"
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if isinstance(exc, (ValueError, OSError, RuntimeError)) else (
        f"{type(exc).__name__}: {text}")


class _OneLineErrors(typer.core.TyperGroup):
    """Any unexpected failure is one ``error:`` line, exit 2 (``DRIFTBAYES_DEBUG=1``: traceback)."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise
        except KeyboardInterrupt:
            err.print("interrupted", highlight=False)
            raise typer.Exit(130) from None
        except Exception as exc:
            if os.environ.get("DRIFTBAYES_DEBUG", "") not in ("", "0"):
                raise
            err.print(f"[bold red]error:[/] {_one_line(exc)} "
                      "(DRIFTBAYES_DEBUG=1 shows the traceback)", highlight=False)
            raise typer.Exit(2) from None


app = typer.Typer(
    cls=_OneLineErrors,
    help="Bayesian drift learning for API mocks: learn from recorded traffic, inspect patterns, "
    "sample mock responses.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Show, read or change the drift_learning config.",
                         no_args_is_help=True)
app.add_typer(config_app, name="config")
priors_app = typer.Typer(help="Hierarchical priors for cold cells, fitted with PyMC from the "
                         "learned state.", no_args_is_help=True)
app.add_typer(priors_app, name="priors")

out = Console()
if not out.is_terminal:  # piped or captured: keep table columns readable
    out = Console(width=160)
err = Console(stderr=True, soft_wrap=True)  # messages keep file:line intact

DEFAULT_CONFIG = "driftbayes.yaml"
DEFAULT_STATE = "driftbayes-state.nc"

StateOpt = typer.Option(DEFAULT_STATE, "--state", "-s", help="State file (NetCDF).")
ConfigOpt = typer.Option(None, "--config", "-c",
                         help=f"Config YAML (default: {DEFAULT_CONFIG} if present).")
LayerOpt = typer.Option("applied", "--layer", help="applied | posterior | prior")
WaitOpt = typer.Option(
    60.0, "--wait", help="Seconds to wait while another driftbayes process writes the same "
    "state (its lock file <state>.lock); 0 fails at once.")


def _fail(message: str, code: int = 2) -> None:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def _config_path(config: Path | None) -> Path | None:
    if config is not None:
        return config
    return Path(DEFAULT_CONFIG) if Path(DEFAULT_CONFIG).exists() else None


@contextlib.contextmanager
def _writing(state: Path, wait: float):
    """Hold the state's writer lock for a read–change–save cycle; one-line failures."""
    from driftbayes.statefile import StateLockedError, state_lock

    held = contextlib.ExitStack()
    try:
        held.enter_context(state_lock(state, wait))
    except StateLockedError as exc:
        _fail(str(exc))
    except OSError as exc:
        _fail(_one_line(exc))
    with held:
        yield


def _save(learner, state: Path) -> None:
    from driftbayes.state import save_state

    try:
        save_state(learner, state)
    except OSError as exc:
        _fail(f"{_one_line(exc)} (cannot save the state; nothing was written to {state})")


def _load_learner(state: Path, config: Path | None = None, *, must_exist: bool = True):
    from driftbayes.learner import DriftLearner
    from driftbayes.state import StateError, load_state

    cfg_path = _config_path(config)
    try:
        cfg = load_config(cfg_path) if cfg_path is not None else None
        if state.exists():
            return load_state(state, cfg)
        if must_exist:
            _fail(f"{state}: no such state file (run `driftbayes learn FILE` first)")
        return DriftLearner(cfg)
    except (ConfigError, StateError) as exc:
        _fail(str(exc))
    except OSError as exc:
        _fail(_one_line(exc))


def learn_files(learner, files: list[str], *, fmt: str | None = None, strict: bool = False,
                progress: bool = True, report: BadRecordReport | None = None,
                openapi=None) -> int:
    """Stream every file through the learner with a progress display; returns events learned.

    Every batch is enriched with the learner's config (personas, sessions, redaction) and the
    OpenAPI document ``openapi`` (a path or :class:`~driftbayes.templates.OpenApiTemplates`);
    one enricher spans all the files and continues the learner's open sessions. One
    :class:`~driftbayes.events.Screen` (the config's ``limits``) checks every record of every
    file against the learner's clock (``t_last_``), so no bad record reaches the learner.
    """
    from driftbayes.events import Screen, screening
    from driftbayes.io.enrich import Enricher
    from driftbayes.io.recordings import read_events

    report = report if report is not None else BadRecordReport()
    enricher = Enricher(learner.config, openapi=openapi).resume_from(learner)
    total = 0
    started = time.perf_counter()
    with Progress(
        SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(),
        TextColumn("{task.fields[events]:,} events · {task.fields[rate]}"), TimeElapsedColumn(),
        console=err, disable=not progress, transient=False,
    ) as bar, screening(Screen(learner.config.limits, clock=learner.t_last_)):
        for f in files:
            task = bar.add_task(f"learning {f}", total=None, events=0, rate="")
            n = 0
            for batch in read_events(f, fmt=fmt, strict=strict, report=report, enricher=enricher):
                learner.learn_many(batch)
                n += len(batch)
                rate = (total + n) / max(time.perf_counter() - started, 1e-9)
                bar.update(task, events=n, rate=f"{rate:,.0f} ev/s")
            bar.update(task, total=1, completed=1)
            total += n
    return total


def _partition_error() -> type[Exception]:
    """:class:`driftbayes.distributed.PartitionError` (defined without importing Dask)."""
    from driftbayes.distributed import PartitionError

    return PartitionError


def learn_files_distributed(learner, files: list[str], *, workers: int | None = None,
                            scheduler: str | None = None, fmt: str | None = None,
                            strict: bool = False, progress: bool = True,
                            report: BadRecordReport | None = None, openapi=None,
                            partition_bytes: int | None = None) -> int:
    """:func:`learn_files` on Dask: a local cluster of ``workers`` processes or the running
    cluster at ``scheduler`` (:func:`driftbayes.distributed.learn_distributed`); progress per
    partition read and per session group learned."""
    try:
        from dask.distributed import Client

        from driftbayes.distributed import PARTITION_BYTES, learn_distributed, local_cluster
    except ImportError as exc:
        raise ValueError(f"--workers/--scheduler need Dask ({exc}): "
                         "pip install 'driftbayes[distributed]'") from None
    if scheduler is not None:
        connect = contextlib.closing(Client(scheduler, timeout="30s"))
    else:
        connect = local_cluster(workers, silence_logs=40)
    with connect as client, Progress(
        SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(),
        TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
        console=err, disable=not progress, transient=False,
    ) as bar:
        tasks: dict[str, int] = {}

        def tick(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                what = "partitions read" if stage == "read" else "session groups learned"
                tasks[stage] = bar.add_task(what, total=total)
            bar.update(tasks[stage], completed=done)

        return learn_distributed(learner, files, client, fmt=fmt, strict=strict, report=report,
                                 openapi=openapi, progress=tick,
                                 partition_bytes=partition_bytes or PARTITION_BYTES)


#: ``--format`` values (driftbayes.io.recordings.FORMATS; kept literal so `--help` stays fast).
FORMAT_NAMES = ("jsonl", "har", "access-log", "combined", "common", "nasa-tsv", "otlp", "jaeger",
                "trainticket-spans", "openstack", "regex", "csv", "mockforge-sqlite")


def _format_help() -> str:
    return ("Force the input format (default: detect from the content): "
            + ", ".join(FORMAT_NAMES) + ".")


@app.command()
def learn(
    ctx: typer.Context,
    files: list[str] = typer.Argument(
        ..., help="Recordings (JSONL, HAR, access logs, OTLP/Jaeger JSON, MockForge SQLite, …; "
        ".gz ok; '-' for stdin) or a named real recording."),
    config: Path | None = ConfigOpt,
    state: Path = StateOpt,
    fmt: str | None = typer.Option(None, "--format", help=_format_help()),
    openapi: Path | None = typer.Option(
        None, "--openapi",
        help="OpenAPI document (YAML/JSON) whose path templates name the endpoints."),
    strict: bool = typer.Option(False, "--strict",
                                help="Stop at the first bad record (file:line and field)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
    wait: float = WaitOpt,
    workers: int | None = typer.Option(
        None, "--workers", min=1,
        help="Learn on a local Dask cluster of this many processes (same result as one "
        "process; pip install 'driftbayes[distributed]')."),
    scheduler: str | None = typer.Option(
        None, "--scheduler", help="Learn on the running Dask cluster of this scheduler "
        "(tcp://HOST:8786)."),
    partition_mb: float = typer.Option(
        64.0, "--partition-mb", min=0.001,
        help="With --workers/--scheduler: line files larger than this are read in ranges of "
        "about this many MiB."),
) -> None:
    """Learn from recordings, creating STATE or updating it incrementally.

    The state is locked (``<state>.lock``) from reading it to saving it: a second writer
    waits up to --wait seconds, then fails, so no run's events are ever lost.
    """
    from driftbayes.io.recordings import FormatUnavailableError
    from driftbayes.templates import OpenApiTemplates

    PartitionError = _partition_error()
    ctx.with_resource(_writing(state, wait))
    learner = _load_learner(state, config, must_exist=False)
    templates = None
    if openapi is not None:
        try:
            templates = OpenApiTemplates.from_file(openapi)
        except (FileNotFoundError, ValueError) as exc:
            _fail(str(exc))
    report = BadRecordReport()
    started = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            if workers is not None or scheduler is not None:
                if workers is not None and scheduler is not None:
                    _fail("give --workers or --scheduler, not both")
                n = learn_files_distributed(
                    learner, files, workers=workers, scheduler=scheduler, fmt=fmt,
                    strict=strict, progress=progress, report=report, openapi=templates,
                    partition_bytes=int(partition_mb * (1 << 20)))
            else:
                n = learn_files(learner, files, fmt=fmt, strict=strict, progress=progress,
                                report=report, openapi=templates)
        except BadRecordError as exc:
            _fail(f"{exc} (strict mode: nothing from this run was saved)")
        except (FileNotFoundError, ValueError, FormatUnavailableError) as exc:
            _fail(str(exc))
        except PartitionError as exc:
            _fail(f"{exc} (nothing from this run was saved)")
        except OSError as exc:
            _fail(f"{_one_line(exc)} (nothing from this run was saved)")
        learner.warn_unreachable()
    elapsed = time.perf_counter() - started
    _save(learner, state)
    _print_warnings(caught)
    err.print(
        f"learned {n:,} events in {elapsed:.2f} s ({n / max(elapsed, 1e-9):,.0f} ev/s) → {state}  "
        f"[{len(learner.endpoints_)} endpoints, {len(learner.personas_)} personas, "
        f"{learner.n_windows_} windows closed]", highlight=False)
    if report.count:
        err.print(f"[yellow]{report.summary()}[/]", highlight=False)


def _pattern_table(rows: list[dict], layer: str) -> Table:
    t = Table(title=f"learned patterns ({layer} layer)", header_style="bold")
    for col, just in [("endpoint", "left"), ("persona", "left"), ("kind", "left"),
                      ("n_eff", "right"), ("confidence", "right"), ("applied", "center"),
                      ("change", "right"), ("estimate", "right"), ("interval", "right"),
                      ("unit", "left")]:
        t.add_column(col, justify=just)
    for r in rows:
        ep = f"{r['method']} {r['endpoint']}".strip()
        if r["kind"] == "transitions":
            ep = f"{ep} → {r['next']}"
        iv = r["interval"]
        fmt = ((lambda v: f"{v:.4f}") if r["unit"] in ("probability", "req/s")
               else (lambda v: f"{v:,.1f}"))
        t.add_row(ep, r["persona"], r["kind"], f"{r['n_eff']:,.1f}", f"{r['confidence']:.2f}",
                  "[green]yes[/]" if r["applied"] else ("no" if r["enabled"] else "[dim]off[/]"),
                  _change_text(r.get("change_p")), fmt(r["estimate"]),
                  f"[{fmt(iv['lower'])}, {fmt(iv['upper'])}]", r["unit"])
    return t


def _change_text(p: float | None) -> str:
    """A change probability for the table: bold past one half, blank for kinds without one."""
    if p is None:
        return ""
    return f"[bold]{p:.2f}[/]" if p > 0.5 else f"{p:.2f}"


#: Beyond this many cells whose gate can never open, ``learn`` prints a summary, not a list.
_MAX_UNREACHABLE_LINES = 5


def _print_warnings(caught) -> None:
    """Warnings of a run; cells whose gate can never open are summarised past a few."""
    unreachable = [w for w in caught if issubclass(w.category, GateUnreachableWarning)
                   and str(w.message).startswith("gate can never open for ")]
    for w in caught:
        if w in unreachable and len(unreachable) > _MAX_UNREACHABLE_LINES:
            continue
        err.print(f"[yellow]warning:[/] {w.message}", highlight=False)
    if len(unreachable) > _MAX_UNREACHABLE_LINES:
        for w in unreachable[:3]:
            err.print(f"[yellow]warning:[/] {w.message}", highlight=False)
        err.print(f"[yellow]warning:[/] … and {len(unreachable) - 3:,} more cells whose gate can "
                  "never open at their observed request rate (`driftbayes patterns` shows each "
                  "cell's n_eff and confidence)", highlight=False)


@app.command()
def patterns(
    state: Path = StateOpt,
    config: Path | None = ConfigOpt,
    format: str = typer.Option("table", "--format", help="table | json"),
    layer: str = LayerOpt,
    kind: str | None = typer.Option(
        None, "--kind",
        help="Only this kind (latency, errors, transitions, think_time, frequency)."),
    endpoint: str | None = typer.Option(None, "--endpoint",
                                        help="Only endpoints matching this glob."),
    persona: str | None = typer.Option(None, "--persona", help="Only this persona."),
) -> None:
    """Show learned patterns with confidence, credible interval and whether they are applied."""
    from driftbayes.globs import match_glob
    from driftbayes.patterns import patterns as get_patterns

    if format not in ("table", "json"):
        _fail(f"--format must be table or json, not {format!r}")
    learner = _load_learner(state, config)
    try:
        rows = get_patterns(learner, layer)
    except ValueError as exc:
        _fail(str(exc))
    if kind:
        rows = [r for r in rows if r["kind"] == kind]
    if endpoint:
        rows = [r for r in rows
                if match_glob({endpoint: True}, f"{r['method']} {r['endpoint']}".strip())]
    if persona:
        rows = [r for r in rows if r["persona"] == persona]
    if format == "json":
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
    else:
        out.print(_pattern_table(rows, layer))


@app.command()
def sample(
    n: int = typer.Option(10, "--n", "-n", min=1, help="Number of responses."),
    state: Path = StateOpt,
    endpoint: str | None = typer.Option(
        None, "--endpoint",
        help="/tmpl or 'METHOD /tmpl' (default: drawn by learned frequency)."),
    persona: str | None = typer.Option(None, "--persona"),
    seed: int | None = typer.Option(None, "--seed"),
    layer: str = LayerOpt,
    sessions: int | None = typer.Option(None, "--sessions", min=1,
                                        help="Print K whole sessions instead."),
) -> None:
    """Print JSONL draws from a layer's posterior predictive (responses or whole sessions)."""
    from driftbayes.sampling import sample as draw
    from driftbayes.sampling import sample_sessions

    learner = _load_learner(state)
    try:
        if sessions is not None:
            rows = sample_sessions(learner, sessions, persona=persona, layer=layer, seed=seed)
        else:
            cols = draw(learner, n, endpoint=endpoint, persona=persona, layer=layer, seed=seed)
            rows = [
                {"endpoint": e, "method": m, "persona": str(p), "status": int(s),
                 "latency_ms": round(float(x), 3)}
                for e, m, p, s, x in zip(cols["endpoint"], cols["method"], cols["persona"],
                                         cols["status"], cols["latency_ms"])
            ]
    except (KeyError, ValueError) as exc:
        _fail(str(exc.args[0] if exc.args else exc))
    sys.stdout.buffer.write(
        b"".join(orjson.dumps(r, option=orjson.OPT_APPEND_NEWLINE) for r in rows))


@app.command()
def reset(
    ctx: typer.Context,
    state: Path = StateOpt,
    endpoint: str | None = typer.Option(None, "--endpoint", help="Glob of endpoints to reset."),
    persona: str | None = typer.Option(None, "--persona", help="Persona to reset."),
    wait: float = WaitOpt,
) -> None:
    """Forget learned patterns (all, or for matching endpoints / a persona)."""
    ctx.with_resource(_writing(state, wait))
    learner = _load_learner(state)
    try:
        cells = learner.reset(endpoint, persona)
    except KeyError as exc:
        _fail(str(exc.args[0]))
    _save(learner, state)
    what = ("everything" if endpoint is None and persona is None
            else f"{cells} endpoint × persona cell(s)")
    err.print(f"reset {what} in {state}")


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _openapi_doc(path: Path | None) -> dict | None:
    """A parsed OpenAPI document for ``--openapi`` (None without one); exits on a bad file."""
    if path is None:
        return None
    from driftbayes.server.app import load_openapi

    try:
        return load_openapi(path)
    except (FileNotFoundError, ValueError) as exc:
        _fail(str(exc))


@app.command()
def serve(
    state: Path = StateOpt,
    config: Path | None = ConfigOpt,
    host: str = typer.Option("127.0.0.1", "--host",
                             help="Interface to bind; a non-loopback host needs the admin token."),
    port: int = typer.Option(8000, "--port", min=0, max=65535, help="TCP port (0 = any free)."),
    seed: int | None = typer.Option(None, "--seed", help="Seed of the response draws."),
    no_headers: bool = typer.Option(False, "--no-headers",
                                    help="Omit the X-Driftbayes-Latency-Ms/-Pattern headers."),
    openapi: Path | None = typer.Option(
        None, "--openapi", help="OpenAPI document (YAML/JSON): its path templates match "
        "requests, its examples (or schemas) shape the bodies no recording supplied."),
    flow: str | None = typer.Option(
        None, "--flow", help="Session flows (session header or cookie): enforce (a step the "
        "transition model rules out answers 409), annotate (X-Driftbayes-Flow headers only) "
        "or off. Default: enforce when traffic_mirroring is on, else off."),
) -> None:
    """Serve the learned mock over HTTP (applied layer); admin API under /__driftbayes/.

    Each request: the endpoint template (404/405 otherwise), the persona (X-Persona), a status
    and latency drawn from the posterior predictive, the recorded (redacted) body for that
    endpoint × status when one was learned, else an OpenAPI example or a JSON stub.
    """
    import os
    import secrets

    from driftbayes.server.app import MockEngine, create_app, run_server

    learner = _load_learner(state, config)
    if not learner.endpoints_:
        _fail(f"{state}: nothing learned yet, no endpoints to serve")
    doc = _openapi_doc(openapi)
    token = os.environ.get("DRIFTBAYES_ADMIN_TOKEN") or None
    if token is None and not _is_loopback(host):
        token = secrets.token_urlsafe(24)
        err.print(f"admin token (set DRIFTBAYES_ADMIN_TOKEN to choose it): {token}",
                  highlight=False)
    try:
        engine = MockEngine(learner, learner.config, seed=seed, openapi=doc, flow=flow)
    except ValueError as exc:
        _fail(str(exc))
    web = create_app(engine, learner=learner, config=learner.config, state_path=state,
                     headers=not no_headers, admin_token=token,
                     state_config=learner.config if _config_path(config) else None)
    shown = f"[{host}]" if ":" in host else host
    err.print(f"serving {len(learner.endpoints_)} endpoints × {len(learner.personas_)} personas "
              f"from {state} on http://{shown}:{port} (admin: /__driftbayes/health"
              f"{', bearer token required' if token else ''}); Ctrl-C stops", highlight=False)
    run_server(web, host, port)


@app.command()
def record(
    upstream: str = typer.Option(..., "--upstream", "-u",
                                 help="Base URL of the real API to proxy to (http://host:port)."),
    state: Path = StateOpt,
    config: Path | None = ConfigOpt,
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
    port: int = typer.Option(8000, "--port", help="Port to listen on."),
    mix: float = typer.Option(0.0, "--mix", min=0.0, max=1.0,
                              help="Share of requests the mock serves instead of the upstream "
                              "(0 = pure recording; mocked requests are not learned)."),
    seed: int | None = typer.Option(None, "--seed",
                                       help="Seed of the mix choice and mock draws."),
    timeout: float = typer.Option(10.0, "--timeout",
                                  help="Upstream timeout in seconds (a timeout answers 504)."),
    body_limit: int = typer.Option(65536, "--body-limit", min=0,
                                   help="Largest response body kept (bytes, decoded; 0 = none). "
                                   "Text bodies are redacted; the latest per endpoint × status "
                                   "is served by `driftbayes serve`."),
    wait: float = WaitOpt,
) -> None:
    """Proxy to --upstream and learn from every exchange (record mode).

    Responses come back byte for byte; every exchange (upstream failures included: 502 on a
    connection error, 504 on a timeout) is redacted, enriched and learned, and the state is
    saved atomically at most once per update_interval and on Ctrl-C.
    """
    import uvicorn

    from driftbayes.server.record import create_record_app

    with _writing(state, wait):  # read the state and fingerprint it as one step
        learner = _load_learner(state, config, must_exist=False)
        try:
            proxy = create_record_app(
                upstream, learner, learner.config, state_path=state, mix=mix, seed=seed,
                timeout_s=timeout, body_limit=body_limit, lock_wait=wait,
                state_config=learner.config if _config_path(config) else None)
        except ValueError as exc:
            _fail(str(exc))
    err.print(f"recording {upstream} on http://{host}:{port} → {state}"
              + (f" (mock serves {mix:.0%})" if mix else "") + "; Ctrl-C saves and stops",
              highlight=False)
    uvicorn.run(proxy, host=host, port=port, log_level="info", lifespan="on")
    rec = proxy.state.recorder
    c = rec.counts
    bad = f", {c['bad_records']:,} bad records skipped" if c["bad_records"] else ""
    err.print(f"recorded {c['recorded']:,} exchanges ({c['forwarded']:,} forwarded, "
              f"{c['mocked']:,} mocked, {c['upstream_errors']:,} upstream errors{bad})",
              highlight=False)
    if rec.saved_events is not None:
        held = f"{rec.saved_events:,} events in total"
    elif state.exists():
        held = "what it held before (nothing new saved)"
    else:
        held = "nothing (no state saved)"
    if rec.save_error is not None:
        _fail(f"{state}: the last save failed ({rec.save_error}); the file holds {held} — "
              "check the folder's permissions and free space", code=1)
    err.print(f"{state}: {held}", highlight=False)


@config_app.command("show")
def config_show(config: Path | None = ConfigOpt) -> None:
    """Print the effective config (defaults filled in)."""
    try:
        cfg = load_config(_config_path(config))
    except ConfigError as exc:
        _fail(str(exc))
    sys.stdout.write(cfg.to_yaml())


@config_app.command("get")
def config_get(key: str, config: Path | None = ConfigOpt) -> None:
    """Print one value, e.g. `driftbayes config get drift_learning.mode`."""
    from driftbayes.config import get_key

    try:
        value = get_key(_config_path(config), key)
    except (ConfigError, KeyError) as exc:
        _fail(str(exc.args[0] if exc.args else exc))
    shown = json.dumps(value) if isinstance(value, (dict, list, bool)) else str(value)
    sys.stdout.write(shown + "\n")


@config_app.command("set")
def config_set(key: str, value: str, config: Path | None = ConfigOpt) -> None:
    """Change one value in the config file.

    E.g. ``driftbayes config set drift_learning.mode hybrid``.
    """
    from driftbayes.config import set_key

    path = config or Path(DEFAULT_CONFIG)
    try:
        set_key(path, key, value)
    except (ConfigError, KeyError) as exc:
        _fail(str(exc.args[0] if exc.args else exc))
    err.print(f"{path}: {key} = {value}")


@app.command()
def export(
    to: str = typer.Option(..., "--to", help="wiremock | mockoon | mockforge | locust | netcdf"),
    out: Path = typer.Option(..., "--out", "-o", help="Folder (wiremock, mockforge) or file."),
    state: Path = StateOpt,
    config: Path | None = ConfigOpt,
    layer: str = typer.Option("applied", "--layer", help="applied | posterior"),
    openapi: Path | None = typer.Option(
        None, "--openapi", help="OpenAPI document: examples/schemas for unrecorded bodies."),
    statuses: str = typer.Option(
        "auto", "--wiremock-statuses", help="wiremock: auto (extension where it builds, else "
        "ring) | extension (true random, ships a jar) | ring (pure JSON, exact shares)."),
    wiremock_jar: Path | None = typer.Option(
        None, "--wiremock-jar", help="wiremock: standalone jar to build the extension against "
        "(default $WIREMOCK_JAR, else the runtimes cache's)."),
    host: str = typer.Option("http://127.0.0.1:8000", "--host",
                             help="locust: the host the locustfile targets."),
    draws: int = typer.Option(1000, "--draws", min=1, help="netcdf: posterior draws."),
) -> None:
    """Export the learned posteriors to WireMock, Mockoon, MockForge, Locust or NetCDF."""
    from driftbayes.export import FORMATS
    from driftbayes.export import export as run_export

    if to not in FORMATS:
        _fail(f"unknown export format {to!r}; choose one of {', '.join(FORMATS)}")
    learner = _load_learner(state, config)
    if not learner.endpoints_:
        _fail(f"{state}: nothing learned yet, nothing to export")
    options: dict = {}
    if to == "wiremock":
        options = {"statuses": statuses, "wiremock_jar": wiremock_jar}
    elif to == "locust":
        options = {"host": host}
    elif to == "netcdf":
        options = {"draws": draws}
    doc = _openapi_doc(openapi)
    try:
        path = run_export(learner, to, out, layer=layer, openapi=doc, **options,
                          notify=lambda m: err.print(f"note: {m}", highlight=False, markup=False))
    except (ValueError, RuntimeError, FileNotFoundError) as exc:
        _fail(str(exc))
    err.print(f"exported {len(learner.endpoints_)} endpoints × {len(learner.personas_)} personas "
              f"({layer} layer) to {to}: {path}", highlight=False)


@app.command()
def demo(
    recording: str | None = typer.Option(
        None, "--recording",
        help="Learn this named real recording instead of the built-in simulation (needs the "
        "real recordings: DRIFTBAYES_DATA=/path/to/data/real)."),
    out_dir: Path = typer.Option(Path("driftbayes-demo"), "--out",
                                 help="Folder for state, patterns and plot."),
    config: Path | None = ConfigOpt,
    seed: int = typer.Option(0, "--seed", help="Seed of the built-in simulation."),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
) -> None:
    """Learn a simulated API with known truth (or a real recording), print the patterns and
    plot how they drifted."""
    from driftbayes.learner import DriftLearner

    try:
        cfg = load_config(config) if config else None
    except ConfigError as exc:
        _fail(str(exc))
    truth = endpoints = persona = None
    if recording is None:
        from driftbayes.demo import (
            DEMO_CONFIG,
            DEMO_ENDPOINTS,
            DEMO_PERSONA,
            demo_scenario,
            truth_frame,
        )

        cfg = cfg or DEMO_CONFIG
        learner = DriftLearner(cfg, track_history=True)
        with err.status("simulating and learning") if progress else nullcontext():
            sc = demo_scenario(seed=seed)
            learner.learn_many(sc.events)
        n = len(sc.events)
        err.print(f"[bold]driftbayes demo[/]: simulated {sc.description} "
                  f"(seed {seed}, {(sc.t_end - sc.t0) / 3600:g} h); the truth:", highlight=False)
        for c in sc.changes:
            err.print(f"  +{(c.t - sc.t0) / 3600:g} h  {c.endpoint}: {c.description}",
                      highlight=False)
        truth, endpoints, persona = truth_frame(sc), DEMO_ENDPOINTS, DEMO_PERSONA
        name = "simulated shop API"
    else:
        cfg = cfg or load_config(None)
        learner = DriftLearner(cfg, track_history=True)
        n = _learn_demo_recording(learner, recording, progress)
        name = recording
    from driftbayes.patterns import patterns as get_patterns
    from driftbayes.plots import plot_drift
    from driftbayes.state import save_state

    out_dir.mkdir(parents=True, exist_ok=True)
    save_state(learner, out_dir / "state.nc")
    rows = get_patterns(learner, "applied")
    (out_dir / "patterns.json").write_text(json.dumps(rows, indent=2))
    shown = sorted((r for r in rows if r["kind"] in ("latency", "errors", "frequency")),
                   key=lambda r: (-r["n_eff"], r["endpoint"], r["kind"]))
    out.print(_pattern_table(shown, "applied"))
    if recording is None:
        _print_demo_flow(rows, sc)
    plot = out_dir / "drift.png"
    plot_drift(learner.history_frame(), endpoints=endpoints, persona=persona, out=plot,
               truth=truth, title=f"driftbayes · {name}: learned latency and error rate over time")
    err.print(f"{n:,} events · {learner.n_windows_} windows of {cfg.update_interval:g} s · "
              f"state {out_dir / 'state.nc'} · patterns {out_dir / 'patterns.json'} · plot {plot}",
              highlight=False)


def _learn_demo_recording(learner, recording: str, progress: bool) -> int:
    """Learn the named real recording, or stop with one line saying what is missing."""
    from driftbayes.io.recordings import RECORDINGS

    if recording not in RECORDINGS:
        _fail(f"unknown recording {recording!r}; choose one of {', '.join(RECORDINGS)}")
    rec = RECORDINGS[recording]
    hint = "point DRIFTBAYES_DATA at the folder of the real recordings " \
           "(DRIFTBAYES_DATA=/path/to/data/real; see README, Data)"
    try:
        files = rec.files()
    except FileNotFoundError:
        _fail(f"recording {recording!r} needs the real recordings, which are not on this "
              f"machine (no shared/data/real found above {Path.cwd()}); {hint}")
    if not files or not all(p.exists() for p in files):
        _fail(f"recording {recording!r}: {rec.resolve()} does not exist; {hint}")
    err.print(f"[bold]driftbayes demo[/]: {rec.description}", highlight=False)
    try:
        return learn_files(learner, [recording], progress=progress)
    except FileNotFoundError as exc:
        _fail(str(exc))


def _print_demo_flow(rows: list[dict], sc) -> None:
    """The learned next-endpoint probabilities after the cart beside the true ones."""
    cart, persona = "/api/cart", "web"
    learned = next((r for r in rows if r["kind"] == "transitions" and r["endpoint"] == cart
                    and r["persona"] == persona), None)
    if learned is None:
        return
    true = sc.phase(persona, sc.t_end - 1).matrix.loc[cart]
    table = Table(title=f"changed flow: next endpoint after POST {cart} ({persona}), "
                        "learned vs truth at the end")
    for col in ("next endpoint", "learned P", "true P"):
        table.add_column(col, justify="left" if col == "next endpoint" else "right")
    for dst, p in learned["top_next"].items():
        key = dst.split(" ", 1)[-1] if dst != "END" else dst
        table.add_row(dst, f"{p:.3f}", f"{float(true.get(key, 0.0)):.3f}")
    out.print(table)


@app.command()
def bench(
    scenario: list[str] = typer.Option(
        [], "--scenario", "-s",
        help="Scenario or real recording (repeatable; default: all scenarios and recordings)."),
    learner: list[str] = typer.Option(
        [], "--learner", "-l", help="Mock to compare (repeatable; default: all)."),
    out_dir: Path = typer.Option(Path("driftbayes-bench"), "--out", help="Folder for results."),
    seed: int = typer.Option(0, "--seed", help="Scenario seed."),
    scale: float = typer.Option(1.0, "--scale", help="Multiply scenario traffic."),
    hours: float | None = typer.Option(None, "--hours", help="Scenario duration override."),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
) -> None:
    """Score mocks prequentially against what traffic does next (realism benchmark)."""
    from driftbayes.bench.harness import default_mocks
    from driftbayes.bench.report import write_report
    from driftbayes.bench.scenarios import SCENARIOS
    from driftbayes.bench.suite import (
        REAL,
        TUNED,
        ranks,
        recording_stream,
        run_suite,
        scenario_stream,
    )

    names = scenario or [*SCENARIOS, *REAL]
    unknown = [n for n in names if n not in SCENARIOS and n not in REAL]
    if unknown:
        _fail(f"unknown scenario {unknown[0]!r}; choose from {', '.join([*SCENARIOS, *REAL])}")
    mocks = default_mocks(TUNED)
    if learner:
        bad = [n for n in learner if n not in mocks]
        if bad:
            _fail(f"unknown learner {bad[0]!r}; choose from {', '.join(mocks)}")
        mocks = {k: v for k, v in mocks.items() if k in learner}
    streams = []
    with err.status("building streams"):
        for n in names:
            streams.append(scenario_stream(n, seed=seed, scale=scale, hours=hours)
                           if n in SCENARIOS else recording_stream(n))
    total = sum(s.n_windows for s in streams)
    with Progress(SpinnerColumn(), TextColumn("[bold]scoring"), BarColumn(),
                  TextColumn("{task.completed}/{task.total} windows"), TimeElapsedColumn(),
                  console=err, disable=not progress) as bar:
        task = bar.add_task("bench", total=total)
        scores, series = run_suite(streams, mocks, progress=lambda k: bar.advance(task, k))
    rank_table, mean_rank = ranks(scores)
    command = "driftbayes bench " + " ".join(sys.argv[2:])
    files = write_report(out_dir, scores, series, rank_table, mean_rank, command=command,
                         seed=seed, descriptions={s.name: s.description for s in streams})
    table = Table(title="mean rank (1 = best) over streams × metrics")
    table.add_column("learner")
    table.add_column("mean rank", justify="right")
    for k, v in mean_rank.items():
        table.add_row(k, f"{v:.2f}")
    out.print(table)
    err.print(f"results {files['json']} · table {files['md']} · report {files['html']}",
              highlight=False)


# ----------------------------------------------------------------------------- priors
def _priors_table(priors) -> Table:
    t = Table(title=f"group priors (group by {priors.group_by}; '*' = the population)",
              header_style="bold")
    for col in ("group", "kind", "prior", "90% interval", "weight"):
        t.add_column(col, justify="right" if col == "weight" else "left")
    main = {"latency": ("median_ms", "ms"), "think_time": ("median_ms", "ms"),
            "errors": ("rate", ""), "frequency": ("rate", "req/s")}
    for kind in priors.kinds:
        p, unit = main[kind]
        extra = ", sigma {:.3g}" if kind in ("latency", "think_time") else ""
        for i, g in enumerate(priors.groups):
            med, lo, hi = priors.values[f"{kind}_{p}"][i]
            text = f"{p} {med:.4g} {unit}".rstrip()
            if extra:
                text += extra.format(priors.values[f"{kind}_sigma"][i, 0])
            t.add_row(Text(g), kind, text, Text(f"[{lo:.4g}, {hi:.4g}]"),
                      f"{priors.values[f'{kind}_weight'][i, 0]:.3g}")
    return t


@priors_app.command("fit")
def priors_fit(
    ctx: typer.Context,
    state: Path = StateOpt,
    config: Path | None = ConfigOpt,
    group_by: str = typer.Option("prefix", "--group-by",
                                 help="prefix | method | persona | none (how cells are grouped)"),
    depth: int = typer.Option(1, "--depth", min=1,
                              help="Directory segments of the URL template that name a prefix "
                              "group."),
    draws: int = typer.Option(1000, "--draws", min=100, help="Draws per chain."),
    tune: int = typer.Option(1000, "--tune", min=100, help="Tuning steps per chain."),
    chains: int = typer.Option(2, "--chains", min=2, help="Chains (run in parallel)."),
    seed: int = typer.Option(0, "--seed"),
    sampler: str = typer.Option("auto", "--sampler",
                                help="auto (nutpie when installed, else PyMC) | nutpie | pymc"),
    wait: float = WaitOpt,
) -> None:
    """Fit hierarchical priors on the state's learned statistics and store them in it.

    The fit is refused (exit 1, nothing stored) when a diagnostic fails: r_hat above 1.01,
    bulk ESS below 400 or any divergent transition; the message names the variable.
    """
    from driftbayes.priors import GROUPINGS, fit_priors

    if group_by not in GROUPINGS:
        _fail(f"--group-by {group_by!r}: choose one of {', '.join(GROUPINGS)}")
    try:
        import pymc  # noqa: F401
    except ImportError:
        _fail("fitting priors needs PyMC: pip install 'driftbayes[pymc]' (and 'nutpie' to fit "
              "faster)")
    warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS")
    ctx.with_resource(_writing(state, wait))
    learner = _load_learner(state, config)
    err.print(f"fitting hierarchical priors of {state} (group by {group_by}) …", highlight=False)
    try:
        fit = fit_priors(learner, group_by, depth=depth, draws=draws, tune=tune, chains=chains,
                         seed=seed, sampler=sampler)
    except ValueError as exc:
        _fail(str(exc))
    d = fit.data
    err.print(f"{len(d.groups)} groups, {d.n_cells} cells ({', '.join(d.kinds)}); sampler "
              f"{fit.sampler}: compile {fit.compile_s:.1f} s, sampling {fit.sampling_s:.1f} s "
              f"({chains} chains × {draws} draws), diagnostics {fit.post_s:.1f} s",
              highlight=False)
    worst = fit.diagnostics.sort_values("r_hat", ascending=False)
    err.print(f"diagnostics: max r_hat {worst['r_hat'].iloc[0]:.4f} "
              f"({worst['variable'].iloc[0]}{worst['at'].iloc[0]}), min bulk ESS "
              f"{fit.diagnostics['ess_bulk'].min():.0f}, {fit.divergences} divergences",
              highlight=False, markup=False)
    if not fit.ok:
        shown = fit.failures[:8]
        more = len(fit.failures) - len(shown)
        err.print("[bold red]error:[/] the fit fails its diagnostics; no priors stored:",
                  highlight=False)
        err.print("  " + "\n  ".join(shown) + (f"\n  … and {more} more" if more else ""),
                  highlight=False, markup=False)
        raise typer.Exit(1)
    learner.set_group_priors(fit.priors)
    _save(learner, state)
    out.print(_priors_table(fit.priors))
    err.print(f"stored the priors of {len(d.groups)} groups in {state}", highlight=False)


@priors_app.command("show")
def priors_show(state: Path = StateOpt,
                as_json: bool = typer.Option(False, "--json", help="JSON lines instead.")) -> None:
    """Print the hierarchical priors stored in the state."""
    learner = _load_learner(state)
    priors = learner.group_priors_
    if priors is None:
        _fail(f"{state}: no fitted priors (run `driftbayes priors fit --state {state}`)", code=1)
    if as_json:
        rows = priors.summary().to_dict(orient="records")
        sys.stdout.buffer.write(b"".join(orjson.dumps(
            {k: v for k, v in r.items() if v == v}, option=orjson.OPT_APPEND_NEWLINE
            | orjson.OPT_SERIALIZE_NUMPY) for r in rows))
        return
    out.print(_priors_table(priors))
    info = priors.info
    out.print(f"fitted {info.get('fitted_at', '?')} with {info.get('sampler', '?')} "
              f"({info.get('chains')} chains × {info.get('draws')} draws): max r_hat "
              f"{info.get('max_r_hat', float('nan')):.4f}, min bulk ESS "
              f"{info.get('min_ess_bulk', float('nan')):.0f}, {info.get('divergences')} "
              f"divergences; compile {info.get('compile_s')} s, sampling "
              f"{info.get('sampling_s')} s", highlight=False)


@priors_app.command("clear")
def priors_clear(ctx: typer.Context, state: Path = StateOpt, wait: float = WaitOpt) -> None:
    """Forget the stored priors: cells go back to the synthetic defaults."""
    ctx.with_resource(_writing(state, wait))
    learner = _load_learner(state)
    learner.set_group_priors(None)
    _save(learner, state)
    err.print(f"cleared the fitted priors of {state}")


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
