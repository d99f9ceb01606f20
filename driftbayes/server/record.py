"""Record mode: a reverse proxy that learns while it serves.

:func:`create_record_app` builds a Starlette app that forwards every request to an upstream and
streams the upstream's answer back **byte for byte** (status, headers minus hop-by-hop ones,
raw body — content encodings untouched, redirects not followed). Each exchange is recorded as
one canonical event — request start time, method, templated path, status, latency to the end of
the upstream body, client IP, a hashed session id from a session header or cookie, and the
request headers as ``extra`` — and goes through an :class:`~driftbayes.io.enrich.Enricher`
(secret redaction, personas from ``persona_header`` / map / rules, sessions) before
:meth:`~driftbayes.learner.DriftLearner.learn_many` sees it. Secret header values and secret
query parameters are redacted before an event is even buffered, so they never reach the learner
or the state file.

Upstream failures never crash the proxy and are recorded too: connection errors and resets
answer 502, timeouts 504 (a JSON error body); a failure after the upstream's headers were
already relayed aborts the client connection (the only honest signal left) and records 502/504.

Learning runs in a background task (every ``flush_every`` seconds, off the event loop): the
buffered events are learned in time order, windows close as event time passes
``update_interval``, and the state is saved atomically (:func:`~driftbayes.state.save_state`)
at most once per ``update_interval`` of wall time and on shutdown. ``mix`` sends that share of
requests (seeded) to a :class:`~driftbayes.server.app.MockEngine` built from the current
learner instead (the reality continuum); mocked exchanges are not learned, and a request the
mock cannot match yet (an endpoint never learned) is forwarded instead.

Saves go through the state's writer lock (:func:`~driftbayes.statefile.state_lock`) and never
overwrite learning another writer saved meanwhile: when the file changed since this proxy last
read or wrote it (``driftbayes learn``, ``reset``, a serve admin reset), it is re-read and the
events recorded since the last save are learned again on top of it, then saved; the proxy
continues from that merged learner. An exchange whose names carry control characters (a
request to ``/a%00b``, a persona header with a NUL) is a bad record: it is counted in
``bad_records`` and logged, never learned, so it can never break a save.

Admin: ``GET /__driftbayes/health`` → ``{"status": "ok", "recorded": N, "forwarded": N,
"mocked": N, "upstream_errors": N, "bad_records": N}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from driftbayes.bodies import MAX_BODY_BYTES, is_text_type, redact_body
from driftbayes.config import Config
from driftbayes.events import COLUMNS, DEFAULT_PERSONA, EventBatch, Screen
from driftbayes.io.enrich import Enricher
from driftbayes.learner import DriftLearner
from driftbayes.redact import RedactionPolicy, redact_headers, redact_query, redact_text, redact_url
from driftbayes.server.sessions import SESSION_COOKIES, SESSION_HEADERS, session_id
from driftbayes.templates import template_path

__all__ = [
    "ADMIN_PREFIX",
    "HOP_BY_HOP",
    "SESSION_COOKIES",
    "SESSION_HEADERS",
    "RecordProxy",
    "create_record_app",
]

log = logging.getLogger("driftbayes.record")

ADMIN_PREFIX = "/__driftbayes"
#: Hop-by-hop headers (RFC 9110 §7.6.1), dropped in both directions, plus any header the
#: ``Connection`` header names.
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection",
    "te", "trailer", "trailers", "transfer-encoding", "upgrade",
})
#: Status recorded when the client went away before the exchange finished (0 = not recorded).
_NO_STATUS = 0


def _bad_name(value: object) -> bool:
    """A name (endpoint, persona, session) carrying a control character, which no state,
    header or export can hold safely."""
    return isinstance(value, str) and any(c < " " or c == "\x7f" for c in value)


class RedactingLogFilter(logging.Filter):
    """Redacts log records in place: uvicorn's access line gets its ``path?query`` through
    :func:`~driftbayes.redact.redact_url` (secret query values and path segments holding
    secrets), other records their message and traceback through
    :func:`~driftbayes.redact.redact_text`. No log line carries a raw query string."""

    def __init__(self, policy: RedactionPolicy):
        super().__init__()
        self.policy = policy

    def filter(self, record: logging.LogRecord) -> bool:
        p = self.policy
        args = record.args
        if record.name == "uvicorn.access" and isinstance(args, tuple) and len(args) == 5:
            record.args = (*args[:2], redact_url(str(args[2]), policy=p), *args[3:])
            return True
        if record.args:
            record.msg, record.args = record.getMessage(), None
        record.msg = redact_text(str(record.msg), policy=p)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text, policy=p)
        return True


def _redact_logs(policy: RedactionPolicy) -> None:
    """Put a :class:`RedactingLogFilter` on uvicorn's access/error loggers and this module's
    (one each; a later call updates its policy)."""
    for name in ("uvicorn.access", "uvicorn.error", log.name):
        logger = logging.getLogger(name)
        mine = [f for f in logger.filters if isinstance(f, RedactingLogFilter)]
        if mine:
            mine[0].policy = policy
        else:
            logger.addFilter(RedactingLogFilter(policy))


def _drop_hop_by_hop(raw: list[tuple[bytes, bytes]], *, also: tuple[bytes, ...] = ()
                     ) -> list[tuple[bytes, bytes]]:
    """Raw header pairs minus hop-by-hop ones (and those listed in ``Connection``)."""
    listed = set(also)
    for k, v in raw:
        if k.lower() == b"connection":
            listed |= {t.strip().lower() for t in v.split(b",") if t.strip()}
    return [(k, v) for k, v in raw
            if k.lower().decode("latin-1") not in HOP_BY_HOP and k.lower() not in listed]


class RecordProxy:
    """The state behind a record app: upstream client, event buffer, learner, counters.

    Use :func:`create_record_app`; the proxy is ``app.state.recorder`` and its :meth:`flush`
    is also ``app.flush``.
    """

    def __init__(self, upstream: str, learner: DriftLearner, config: Config | None = None, *,
                 state_path: str | Path | None = None, mix: float = 0.0, seed=None,
                 timeout_s: float = 10.0, client: httpx.AsyncClient | None = None,
                 flush_every: float = 1.0, body_limit: int = MAX_BODY_BYTES,
                 lock_wait: float = 60.0, state_config: Config | None = None):
        if not 0.0 <= float(mix) <= 1.0:
            raise ValueError(f"mix must be in [0, 1], got {mix}")
        if not float(timeout_s) > 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout_s}")
        url = httpx.URL(upstream)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"upstream must be an http(s) URL, got {upstream!r}")
        self.upstream = url
        self._base_path = url.raw_path.split(b"?", 1)[0].rstrip(b"/")
        self.learner = learner
        self.config = config if config is not None else learner.config
        self.state_path = Path(state_path) if state_path is not None else None
        self.mix = float(mix)
        self.timeout_s = float(timeout_s)
        self.flush_every = float(flush_every)
        self.body_limit = int(body_limit)
        self.policy = RedactionPolicy.from_config(self.config)
        # live traffic carries the proxy's own clock: only the per-record limits apply
        self._screen = Screen(self.config.limits, track_clock=False)
        self.enricher = Enricher(self.config).resume_from(learner)
        self._rng = np.random.default_rng(seed)
        self._seed = seed
        self._client = client
        self._own_client = client is None
        self._engine = None
        self._engine_error: str | None = None
        # recorded events not yet learned; appended on the event loop, drained under _lock
        self._buffer: list[dict[str, Any]] = []
        self._buffer_lock = threading.Lock()
        self._lock = threading.RLock()  # learner, enricher, engine reload, save
        self._line = 0
        self._dirty = False
        self._last_save = -math.inf
        self.counts = {"recorded": 0, "forwarded": 0, "mocked": 0, "upstream_errors": 0,
                       "bad_records": 0}
        self.learned = 0
        self.saves = 0
        self.lock_wait = float(lock_wait)
        self.state_config = state_config
        # enriched batches learned since the last successful save (re-learned on a re-read)
        self._unsaved: list[EventBatch] = []
        #: ``n_events`` of the state file as this proxy last wrote it (None: never saved)
        self.saved_events: int | None = None
        #: the last save's failure, one line (None after a successful save)
        self.save_error: str | None = None
        self._bad_logged = 0
        from driftbayes.statefile import fingerprint

        self._disk = fingerprint(self.state_path) if self.state_path is not None else None
        self._task: asyncio.Task | None = None

    # ------------------------------------------------------------------ lifecycle
    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(self.timeout_s), follow_redirects=False)
            self._own_client = True
        return self._client

    @contextlib.asynccontextmanager
    async def lifespan(self, app) -> AsyncIterator[None]:
        self.client  # noqa: B018 - create it on the server's loop
        if self.mix > 0:
            self._load_engine()
        self._task = asyncio.create_task(self._learn_loop())
        try:
            yield
        finally:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            try:
                await asyncio.to_thread(self.flush, save=True)
            except Exception:  # noqa: BLE001 - shutdown must finish; say what was lost
                log.exception("driftbayes record: final learn/save failed")
            if self._own_client and self._client is not None:
                await self._client.aclose()
                self._client = None

    async def _learn_loop(self) -> None:
        while True:
            await asyncio.sleep(self.flush_every)
            try:
                await asyncio.to_thread(self.flush, save=None)
            except Exception:  # noqa: BLE001 - keep serving; the events stay counted
                log.exception("driftbayes record: learning failed")

    # ------------------------------------------------------------------ learning
    def flush(self, save: bool | None = True) -> int:
        """Learn every buffered event now (in time order); returns how many were learned.

        ``save``: True saves the state (when there is a ``state_path``) if anything changed
        since the last save; None saves only if ``update_interval`` of wall time passed since
        the last save; False never. Thread-safe.
        """
        with self._lock:
            with self._buffer_lock:
                rows, self._buffer = self._buffer, []
            n = 0
            if rows:
                batch = self._drop_bad(self.enricher.enrich(self._batch(rows)))
                self.learner.learn_many(batch)
                self._unsaved.append(batch)
                n = len(batch)
                self.learned += n
                self._dirty = True
                if self._engine is not None:
                    try:
                        self._engine.reload(self.learner)
                    except Exception:  # noqa: BLE001 - serve the previous model
                        log.exception("driftbayes record: mock reload failed")
            if self.state_path is not None and self._dirty and save is not False:
                now = time.monotonic()
                if save or now - self._last_save >= float(self.config.update_interval):
                    self._save()
                    self._dirty = False
                    self._last_save = now
                    self.saves += 1
            return n

    def _save(self) -> None:
        """Save under the writer lock; re-read and re-learn first if another writer saved."""
        from driftbayes.state import load_state, save_state
        from driftbayes.statefile import fingerprint, state_lock

        path = self.state_path
        try:
            with state_lock(path, self.lock_wait):
                if fingerprint(path) not in (None, self._disk):
                    fresh = load_state(path, self.state_config)
                    for batch in self._unsaved:
                        fresh.learn_many(batch)
                    log.info("driftbayes record: %s changed on disk; re-read it and learned "
                             "%d unsaved events on top", path, sum(map(len, self._unsaved)))
                    self.learner = fresh
                    if self._engine is not None:
                        self._engine.reload(fresh)
                save_state(self.learner, path)
                self._disk = fingerprint(path)
        except Exception as exc:
            self.save_error = f"{type(exc).__name__}: {exc}".splitlines()[0]
            raise
        self._unsaved.clear()
        self.saved_events = int(self.learner.n_events_)
        self.save_error = None

    def _drop_bad(self, batch: EventBatch) -> EventBatch:
        """The batch minus its bad records, by the readers' one policy (the ``limits`` config:
        control characters in names, oversized fields, implausible times or latencies)."""
        good, bad = self._screen.check(batch)
        if bad:
            self._count_bad(len(bad), f"{bad[0].field}: {bad[0].reason}")
        return good

    def _count_bad(self, n: int, why: str) -> None:
        self.counts["bad_records"] += n
        if self._bad_logged < 5:  # the first few, then only the count (health, exit line)
            self._bad_logged += 1
            log.warning("driftbayes record: skipped %d bad record(s): %s", n, why)

    def _batch(self, rows: list[dict[str, Any]]) -> EventBatch:
        rows.sort(key=lambda r: r["ts"])  # stable: ties keep completion order
        cols = {name: [r[name] for r in rows] for name in COLUMNS}
        keys = sorted(set().union(*(r["extra"] for r in rows)))
        extra = {}
        for k in keys:
            col = np.empty(len(rows), dtype=object)
            col[:] = [r["extra"].get(k) for r in rows]
            extra[k] = col
        return EventBatch(**cols, source=f"<record {self.upstream}>", extra=extra)

    def _record(self, *, ts: float, method: str, path: str, query: str, status: int,
                latency_ms: float, headers: dict[str, str], client: str | None,
                body: bytes | None = None, content_type: str | None = None,
                content_encoding: str = "") -> None:
        """Buffer one exchange (secrets already redacted here; the enricher redacts again)."""
        safe = redact_headers(headers, policy=self.policy)
        extra: dict[str, Any] = {f"header:{k}": v for k, v in safe.items()}
        extra["client"] = client or None
        if safe.get("user-agent"):
            extra["user_agent"] = safe["user-agent"]
        if query:
            extra["query"] = redact_query(query, policy=self.policy)
        if body:
            text = redact_body(body, content_type, content_encoding, policy=self.policy,
                               limit=self.body_limit)
            if text is not None:
                extra["response_body"] = text
                extra["response_content_type"] = content_type.split(";")[0].strip()
        endpoint = template_path(path, self.policy)
        if _bad_name(endpoint) or _bad_name(method):
            self._count_bad(1, "a path or method with a control character (not learned)")
            return
        self._line += 1
        row = {
            "ts": ts, "method": method.upper(), "endpoint": endpoint,
            "status": int(status), "latency_ms": float(latency_ms),
            "persona": DEFAULT_PERSONA, "session": session_id(headers), "line": self._line,
            "extra": extra,
        }
        with self._buffer_lock:
            self._buffer.append(row)
        self.counts["recorded"] += 1

    # ------------------------------------------------------------------ mock (mix)
    def _load_engine(self) -> None:
        if self._engine is not None or self._engine_error is not None:
            return
        try:
            from driftbayes.server.app import MockEngine

            with self._lock:
                self._engine = MockEngine(self.learner, self.config, seed=self._seed,
                                          flow="off")  # it sees only the mocked steps
        except Exception as exc:  # noqa: BLE001 - without a mock, everything is forwarded
            self._engine_error = f"{type(exc).__name__}: {exc}"
            log.warning("driftbayes record: mix=%s but no mock engine (%s); forwarding all",
                        self.mix, self._engine_error)

    async def _mock(self, request: Request) -> Response | None:
        """The mock's answer, or None when the mock does not know this endpoint yet.

        The engine swaps its tables atomically on reload, so no lock is taken here (the event
        loop never waits for learning)."""
        engine = self._engine
        if engine is None:
            return None
        headers: dict[str, str] = {}
        if hasattr(engine, "handle"):
            planned = engine.handle(request.method, request.url.path, request.headers,
                                    request.client.host if request.client else None)
            if planned.endpoint is None or planned.latency_ms is None:
                return None
            status, latency_ms, body = planned.status, planned.latency_ms, planned.body
            content_type = planned.content_type
            headers.update(planned.headers)
        else:  # the minimal engine API
            e, _ = engine.match(request.method, request.url.path)
            if e is None:
                return None
            status, latency_ms = engine.draw(e, engine.persona(request.headers))
            body = b"" if status in (204, 205, 304) or status < 200 else engine.body(e, status)
            content_type = "application/json"
        await asyncio.sleep(max(float(latency_ms), 0.0) / 1000.0)
        self.counts["mocked"] += 1
        headers["x-driftbayes-source"] = "mock"
        return Response(body, status_code=int(status), headers=headers,
                        media_type=content_type if body else None)

    # ------------------------------------------------------------------ proxy
    def _target(self, scope) -> httpx.URL:
        raw = scope.get("raw_path") or scope["path"].encode("utf-8")
        raw = raw.split(b"?", 1)[0]
        qs = scope.get("query_string") or b""
        return self.upstream.copy_with(
            raw_path=self._base_path + raw + (b"?" + qs if qs else b""))

    def _request_headers(self, request: Request) -> list[tuple[bytes, bytes]]:
        # Host is rewritten (httpx sets the upstream's); Expect was answered by this server
        raw = _drop_hop_by_hop(list(request.headers.raw), also=(b"host", b"expect"))
        names = {k.lower() for k, _ in raw}
        client = request.client.host if request.client else None
        if client:
            fwd = request.headers.get("x-forwarded-for")
            raw = [(k, v) for k, v in raw if k.lower() != b"x-forwarded-for"]
            raw.append((b"x-forwarded-for",
                        (f"{fwd}, {client}" if fwd else client).encode("latin-1")))
        if b"x-forwarded-proto" not in names:
            raw.append((b"x-forwarded-proto", request.url.scheme.encode("latin-1")))
        host = request.headers.get("host")
        if host and b"x-forwarded-host" not in names:
            raw.append((b"x-forwarded-host", host.encode("latin-1")))
        return raw

    async def __call__(self, scope, receive, send) -> None:
        """The catch-all ASGI endpoint: mock (a ``mix`` share) or forward, and record."""
        request = Request(scope, receive)
        if self.mix > 0 and self._rng.random() < self.mix:
            if self._engine is None:
                self._load_engine()
            try:
                mocked = await self._mock(request)
            except Exception:  # noqa: BLE001 - a mock failure falls back to the upstream
                log.exception("driftbayes record: mock failed; forwarding")
                mocked = None
            if mocked is not None:
                await mocked(scope, receive, send)
                return
        response = await self._forward(request)
        await response(scope, receive, send)

    async def _forward(self, request: Request) -> Response:
        ts, t0 = time.time(), time.perf_counter()
        method = request.method
        path = request.url.path
        query = request.scope.get("query_string", b"").decode("latin-1")
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in request.headers.raw}
        client = request.client.host if request.client else None

        def record(status: int, latency_ms: float, body: bytes | None = None) -> None:
            try:
                self._record(ts=ts, method=method, path=path, query=query, status=status,
                             latency_ms=latency_ms, headers=headers, client=client, body=body,
                             content_type=upstream_type, content_encoding=upstream_coding)
            except Exception:  # noqa: BLE001 - recording must never break serving
                log.exception("driftbayes record: could not record an exchange")

        upstream_type: str | None = None
        upstream_coding = ""
        has_body = "content-length" in headers or "transfer-encoding" in headers
        upstream_request = self.client.build_request(
            method, self._target(request.scope), headers=self._request_headers(request),
            content=request.stream() if has_body else None,
            timeout=httpx.Timeout(self.timeout_s))
        try:
            upstream = await self.client.send(upstream_request, stream=True,
                                              follow_redirects=False)
        except ClientDisconnect:
            record(_NO_STATUS, math.nan)
            return Response(status_code=499)  # nobody is listening any more
        except Exception as exc:  # noqa: BLE001 - every upstream failure is an answer
            return self._failure(exc, t0, record)

        status = upstream.status_code
        resp_headers = _drop_hop_by_hop(list(upstream.headers.raw))
        counts = self.counts
        upstream_type = upstream.headers.get("content-type")
        upstream_coding = upstream.headers.get("content-encoding", "")
        limit = self.body_limit
        keep = limit > 0 and is_text_type(upstream_type)

        async def body() -> AsyncIterator[bytes]:
            # One chunk is held back so the exchange is recorded before the client can see the
            # response complete (a client may act on the recording as soon as it has it).
            done = False
            kept: list[bytes] = []
            size, keeping = 0, keep
            try:
                held = None
                async for chunk in upstream.aiter_raw():
                    if not chunk:
                        continue
                    if keeping:  # a coded body over the limit decodes to more than it
                        size += len(chunk)
                        keeping = size <= limit
                        if keeping:
                            kept.append(chunk)
                        else:
                            kept.clear()
                    if held is not None:
                        yield held
                    held = chunk
                record(status, (time.perf_counter() - t0) * 1000.0,
                       b"".join(kept) if keeping else None)
                counts["forwarded"] += 1
                done = True
                if held is not None:
                    yield held
            except httpx.TimeoutException:
                if not done:
                    counts["upstream_errors"] += 1
                    record(504, (time.perf_counter() - t0) * 1000.0)
                raise
            except (httpx.HTTPError, OSError):
                if not done:
                    counts["upstream_errors"] += 1
                    record(502, (time.perf_counter() - t0) * 1000.0)
                raise
            except BaseException:  # the client went away (cancelled / closed)
                if not done:
                    record(status, math.nan)
                raise
            finally:
                await upstream.aclose()

        response = StreamingResponse(body(), status_code=status)
        response.raw_headers = resp_headers
        return response

    def _failure(self, exc: Exception, t0: float, record) -> Response:
        latency_ms = (time.perf_counter() - t0) * 1000.0
        if isinstance(exc, httpx.TimeoutException):
            status, error = 504, "upstream timeout"
        else:
            status, error = 502, "upstream unreachable"
        self.counts["upstream_errors"] += 1
        record(status, latency_ms)
        detail = f"{type(exc).__name__}: {exc}"[:300]
        return Response(orjson.dumps({"error": error, "detail": detail,
                                      "upstream": str(self.upstream)}),
                        status_code=status, media_type="application/json")

    # ------------------------------------------------------------------ admin
    async def admin(self, scope, receive, send) -> None:
        """``/__driftbayes/*`` (any method; never forwarded): ``GET health``, else 404/405."""
        path = scope["path"]
        if path == f"{ADMIN_PREFIX}/health":
            if scope["method"] in ("GET", "HEAD"):
                body, status = {"status": "ok", **self.counts}, 200
            else:
                body, status = {"error": "method not allowed", "allow": "GET"}, 405
        else:
            body, status = {"error": "not found", "path": path}, 404
        await Response(orjson.dumps(body), status_code=status,
                       media_type="application/json")(scope, receive, send)


class _Asgi:
    """An ASGI callable Starlette routes as an app (every method), not as a GET endpoint."""

    def __init__(self, fn):
        self.fn = fn

    async def __call__(self, scope, receive, send) -> None:
        await self.fn(scope, receive, send)


def create_record_app(upstream: str, learner: DriftLearner, config: Config | None = None, *,
                      state_path: str | Path | None = None, mix: float = 0.0, seed=None,
                      timeout_s: float = 10.0, client: httpx.AsyncClient | None = None,
                      flush_every: float = 1.0, body_limit: int = MAX_BODY_BYTES,
                      lock_wait: float = 60.0, state_config: Config | None = None) -> Starlette:
    """A Starlette app proxying to ``upstream`` that records and learns every exchange.

    Parameters
    ----------
    upstream : str
        Base URL (``http://host:port``, optionally with a path prefix) requests are sent to.
    learner : DriftLearner
        Learns the recorded events (in place; resume a saved state with ``load_state``).
    config : Config, optional
        Enrichment (redaction, personas, sessions) and ``update_interval``; default the
        learner's.
    state_path : path, optional
        Where the state is saved (atomically), at most once per ``update_interval`` of wall
        time and on shutdown.
    mix : float in [0, 1]
        Share of requests served by the mock built from the current learner (seeded by
        ``seed``); mocked exchanges are not learned.
    timeout_s : float
        Upstream connect / read / write / pool timeout; a timeout answers 504.
    client : httpx.AsyncClient, optional
        The upstream client (default: one owned by the app, closed on shutdown).
    flush_every : float
        Seconds between background learning passes.
    body_limit : int
        Largest decoded response body recorded (bytes; 0 records none). Text bodies (JSON,
        text, XML, …) are redacted (:func:`~driftbayes.bodies.redact_body`) and the latest
        per endpoint × status is kept in the state for the mock to serve.
    lock_wait : float
        Seconds a save waits for the state's writer lock (another writer) before failing.
    state_config : Config, optional
        Config used when the state file is re-read because another writer changed it
        (default: the config stored in the file).

    The app's :class:`RecordProxy` is ``app.state.recorder``; ``app.flush()`` learns (and
    saves) what is buffered now.
    """
    proxy = RecordProxy(upstream, learner, config, state_path=state_path, mix=mix, seed=seed,
                        timeout_s=timeout_s, client=client, flush_every=flush_every,
                        body_limit=body_limit, lock_wait=lock_wait,
                        state_config=state_config)
    app = Starlette(
        routes=[
            Route(ADMIN_PREFIX, _Asgi(proxy.admin)),
            Route(ADMIN_PREFIX + "/{rest:path}", _Asgi(proxy.admin)),
            Route("/{path:path}", proxy),
        ],
        lifespan=proxy.lifespan,
    )
    app.state.recorder = proxy
    app.flush = proxy.flush
    _redact_logs(proxy.policy)
    return app
