"""Enrichment between the readers and the learner: redaction, OpenAPI templates, personas,
sessions.

Readers yield what a file says; the learner needs every event's ``endpoint``, ``persona`` and
``session`` final (:meth:`~driftbayes.learner.DriftLearner.learn_many` indexes them as given).
An :class:`Enricher` turns the one into the other, batch by batch, keeping state across batches
*and files* (one enricher per learning run; :func:`~driftbayes.io.recordings.read_events` makes
one when given a ``config``). The steps, in order:

1. **Redaction** of the request attributes in ``extra`` with the config's ``redact`` policy
   (``header:<name>`` values whose name is secret, ``query``, ``path`` and ``referer``), so
   extra secret names apply even to batches read without the policy in force. Idempotent.
2. **Endpoint templates from OpenAPI** (``openapi=``): the raw request path —
   ``extra["path"]`` where a reader provides it, else the reader's ``endpoint`` (a heuristic
   template re-templates: ``{id}`` matches a parameter) — is matched against the document
   (:class:`~driftbayes.templates.OpenApiTemplates`); unmatched events keep the reader's
   heuristic template.
3. **Personas**, first source that gives one wins:

   ============ ===========================================================================
   precedence   source
   ============ ===========================================================================
   1 field      the reader's ``persona`` (a JSONL ``persona_field``, a HAR ``_persona``
                field, a MockForge persona header …): anything but ``"default"``
   2 header     ``extra["header:<persona_header>"]`` (config ``persona_header``, default
                ``X-Persona``); a redacted value is ignored
   3 map        ``persona_map``: a file of id → persona, looked up by ``user``, then
                ``client`` (below)
   4 rules      ``persona_rules``: the first rule all of whose conditions match
   5 default    ``"default"``
   ============ ===========================================================================

   **Persona map files.** YAML or JSON: a mapping ``id: persona`` or ``persona: [id, ...]``
   (a top-level ``personas:`` key may wrap either). CSV: a header line, the id in the first
   column (or one named ``user``, ``client``, ``id`` or ``key``), the persona in the column
   named ``persona`` (else the second). Relative paths are relative to the config file.

   **Rules** (``persona_rules``) are ``{persona: name, when: {key: pattern, ...}}``. A ``key``
   is an event field — ``path`` (the raw path when known, else the endpoint template),
   ``endpoint``, ``method``, ``status``, ``session`` — or an ``extra`` attribute
   (``user_agent``, ``client``, ``user``, ``query``, ``host``, ``service``, ``trace``, …), or
   ``header:<name>``; any other key is a request header name (case-insensitive). A
   ``pattern`` is an fnmatch glob matched against the whole value, case-sensitive (``*``
   crosses ``/``), or ``re:<regex>`` searched anywhere in it. An absent value never matches.
   Example::

       persona_rules:
         - {persona: admin,  when: {path: "/admin/*"}}
         - {persona: mobile, when: {user_agent: "*Mobile*"}}
         - {persona: bot,    when: {user_agent: "re:(?i)bot|crawler|spider"}}

4. **Sessions** for events without a session id (an id the reader gives is kept, hashed
   to ``s-<sha256>`` like record mode's session cookies unless ``redact.hash_sessions`` is
   off: a session id is a credential): the
   requests of one key are cut into sessions at every inactivity gap longer than
   ``session_gap``; the id is ``f"{key}#{k}"`` with ``k`` = 1, 2, … per key. ``session_key``
   picks the key: ``client`` (``extra["client"]``: IP + user agent, user or such, as the
   reader defines it), ``user``, ``trace``, ``none`` (no sessions), or ``auto`` (the default:
   ``client``, else ``user``). ``auto`` does not fall back to ``trace``: one trace is one
   request's call tree, not a user's visit, so trace sessions would turn every request into a
   one-request session; choose ``trace`` explicitly where a trace spans a visit. The last time
   and session count per key persist across batches and files (and, with
   :meth:`Enricher.resume_from`, across learning runs via the learner's open sessions). Events
   of one key that arrive out of order (a later batch holding an earlier time) continue the
   current session.
"""

from __future__ import annotations

import csv
import functools
import os
import re
from collections.abc import Callable, Iterable, Iterator
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from driftbayes.config import REGEX_PREFIX, Config
from driftbayes.events import DEFAULT_PERSONA, EventBatch
from driftbayes.redact import (
    REDACTED,
    RedactionPolicy,
    hash_session,
    redact_query,
    redact_url,
    scrub,
)
from driftbayes.templates import OpenApiTemplates

__all__ = ["Enricher", "OpenApiTemplates", "cut_sessions", "load_persona_map", "persona_matcher",
           "session_group", "session_groups"]

#: Event columns a persona rule can name (everything else is an extra attribute or a header).
_EVENT_FIELDS = ("endpoint", "method", "status", "session")
_SESSION_ID = re.compile(r"(.*)#([0-9]+)", re.DOTALL)  # the ids cut_sessions gives


# --------------------------------------------------------------------------------------------
# helpers


def _is_text(values: np.ndarray) -> np.ndarray:
    """Mask of non-empty strings in an object array."""
    if values.size == 0:
        return np.zeros(0, dtype=bool)
    return np.fromiter((type(v) is str and v != "" for v in values), dtype=bool,
                       count=len(values))


def _map_text(values: np.ndarray, fn: Callable[[str], Any]) -> np.ndarray:
    """``fn`` applied once per distinct non-empty string; other entries stay as they are."""
    out = np.array(values, dtype=object, copy=True)
    text = _is_text(out)
    if text.any():
        codes, uniq = pd.factorize(out[text])
        mapped = np.empty(len(uniq), dtype=object)
        mapped[:] = [fn(u) for u in uniq]
        out[text] = mapped[codes]
    return out


def persona_matcher(pattern: str) -> Callable[[str], bool]:
    """Matcher of one rule pattern: ``re:<regex>`` (search) or an fnmatch glob (whole value)."""
    pattern = str(pattern)
    if pattern.startswith(REGEX_PREFIX):
        regex = re.compile(pattern[len(REGEX_PREFIX):])
        return lambda value: regex.search(value) is not None
    return lambda value: fnmatchcase(value, pattern)


def load_persona_map(path: str | os.PathLike[str]) -> dict[str, str]:
    """Id → persona from a YAML/JSON or CSV file (formats in the module docstring).

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        The content is not one of the accepted shapes; the message names the file.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: persona_map file not found")
    text = p.read_text(encoding="utf-8-sig")
    if p.suffix.lower() in (".csv", ".tsv"):
        return _persona_csv(text, p, "\t" if p.suffix.lower() == ".tsv" else ",")
    from driftbayes import yamlio

    try:
        doc = yamlio.load(text)
    except yamlio.YAMLError as exc:
        raise ValueError(f"{p}: persona_map is not valid YAML/JSON: {exc}") from None
    if isinstance(doc, dict) and set(doc) == {"personas"}:
        doc = doc["personas"]
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise ValueError(f"{p}: persona_map must be a mapping of id to persona (or persona to "
                         f"a list of ids), got {type(doc).__name__}")
    out: dict[str, str] = {}
    for key, value in doc.items():
        if isinstance(value, list):  # persona: [ids]
            for ident in value:
                out[str(ident)] = str(key)
        elif isinstance(value, (str, int, float)) and not isinstance(value, bool) and value != "":
            out[str(key)] = str(value)
        else:
            raise ValueError(f"{p}: persona_map entry {key!r}: expected a persona name or a "
                             f"list of ids, got {value!r}")
    return out


def _persona_csv(text: str, p: Path, delimiter: str) -> dict[str, str]:
    rows = list(csv.reader(text.splitlines(), delimiter=delimiter))
    rows = [r for r in rows if any(c.strip() for c in r)]
    if not rows:
        return {}
    header = [c.strip().lower() for c in rows[0]]
    if len(header) < 2:
        raise ValueError(f"{p}: persona_map CSV needs an id and a persona column, got header "
                         f"{rows[0]}")
    key_col = next((header.index(k) for k in ("user", "client", "id", "key") if k in header), 0)
    persona_col = header.index("persona") if "persona" in header else (1 if key_col != 1 else 0)
    out = {}
    for i, row in enumerate(rows[1:], start=2):
        if max(key_col, persona_col) >= len(row) or not row[persona_col].strip():
            raise ValueError(f"{p}:{i}: expected an id and a persona, got {row}")
        out[row[key_col].strip()] = row[persona_col].strip()
    return out


def cut_sessions(
    keys: np.ndarray,
    ts: np.ndarray,
    gap: float,
    last: dict[str, float] | None = None,
    count: dict[str, int] | None = None,
) -> np.ndarray:
    """Session ids ``f"{key}#{k}"`` for events of ``keys`` at times ``ts``, cut at gaps > ``gap``.

    Vectorised: events are sorted by (key, time), a new session starts at a key's first event
    when the key is unseen or its previous event (in ``last``) is more than ``gap`` earlier,
    and wherever the time step within a key exceeds ``gap``; session numbers continue from
    ``count``. ``last`` and ``count`` (key → last time, key → sessions so far) are updated in
    place, so consecutive calls continue each other. ``keys`` must be non-empty strings.

    Examples
    --------
    >>> cut_sessions(np.array(["a", "b", "a"], dtype=object), np.array([0.0, 5.0, 4000.0]),
    ...              1800.0).tolist()
    ['a#1', 'b#1', 'a#2']
    """
    last = {} if last is None else last
    count = {} if count is None else count
    n = len(keys)
    if n == 0:
        return np.empty(0, dtype=object)
    codes, uniq = pd.factorize(np.asarray(keys, dtype=object))
    ts = np.asarray(ts, dtype=np.float64)
    order = np.lexsort((ts, codes))
    c, t = codes[order], ts[order]
    first = np.r_[True, c[1:] != c[:-1]]
    uniq_list = uniq.tolist()
    prev_last = np.array([last.get(u, np.nan) for u in uniq_list], dtype=np.float64)
    prev_count = np.array([count.get(u, 0) for u in uniq_list], dtype=np.int64)
    prev_t = np.r_[np.nan, t[:-1]]
    prev_t[first] = prev_last[c[first]]
    with np.errstate(invalid="ignore"):
        new = np.isnan(prev_t) | (t - prev_t > gap)
    cum = np.cumsum(new)
    start = np.flatnonzero(first)
    before = (cum[start] - new[start])  # new sessions before each key's first event
    k = prev_count[c] + cum - np.repeat(before, np.diff(np.r_[start, n]))
    # state: last time (the latest seen) and session count per key
    ends = np.r_[start[1:] - 1, n - 1]
    group_codes = c[start]
    latest = np.fmax(prev_last[group_codes], t[ends])
    for code, t_last, k_last in zip(group_codes.tolist(), latest.tolist(), k[ends].tolist()):
        last[uniq_list[code]] = t_last
        count[uniq_list[code]] = k_last
    ids = pd.Series(np.asarray(uniq, dtype=object)[c]).str.cat(k.astype(str), sep="#")
    out = np.empty(n, dtype=object)
    out[order] = ids.to_numpy(dtype=object)
    return out


#: Session ids recur from batch to batch: each distinct id's SHA-256 is computed once (bounded).
_hash_session_memo = functools.lru_cache(maxsize=1 << 18)(hash_session)


def session_group(session: str) -> str:
    """The key a session id was cut from (``"key#k"`` → ``"key"``), else the id itself: the
    events of one group decide its sessions alone, whatever the other groups hold."""
    m = _SESSION_ID.fullmatch(session)
    return m.group(1) if m is not None else session


def session_groups(sessions: np.ndarray) -> np.ndarray:
    """:func:`session_group` of each of ``sessions`` (strings), vectorised with Arrow."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        keys = pc.replace_substring_regex(pa.array(sessions, type=pa.string()),
                                          pattern=r"#[0-9]+\z", replacement="")
    except (pa.ArrowException, UnicodeEncodeError):  # lone surrogates: one at a time
        return np.array([session_group(s) for s in sessions], dtype=object)
    return keys.to_numpy(zero_copy_only=False).astype(object)


# --------------------------------------------------------------------------------------------
# the enricher


class Enricher:
    """Stateful enrichment of :class:`~driftbayes.events.EventBatch` es (module docstring).

    Parameters
    ----------
    config : Config, optional
        ``session_key``, ``session_gap``, ``persona_header``, ``persona_map``,
        ``persona_rules`` and ``redact`` are used (defaults when None).
    openapi : OpenApiTemplates, str or path-like, optional
        An OpenAPI document (or its templates) for endpoint templates.

    Examples
    --------
    >>> enricher = Enricher(Config(persona_rules=[{"persona": "mobile",
    ...                                              "when": {"user_agent": "*Mobile*"}}]))
    >>> batch = EventBatch.from_records([{"ts": 0, "path": "/a"}, {"ts": 9, "path": "/a"}])
    >>> batch.extra = {"client": np.array(["1.2.3.4", "1.2.3.4"], dtype=object),
    ...                "user_agent": np.array(["Mobile Safari", None], dtype=object)}
    >>> out = enricher(batch)
    >>> out.persona.tolist(), out.session.tolist()
    (['mobile', 'default'], ['1.2.3.4#1', '1.2.3.4#1'])
    """

    def __init__(self, config: Config | None = None, *,
                 openapi: OpenApiTemplates | str | os.PathLike[str] | None = None,
                 sessions: bool = True):
        self.config = config if config is not None else Config()
        #: Whether :meth:`enrich` cuts sessions; a distributed run prepares batches where they
        #: are read and cuts sessions after gathering each key's events (:meth:`cut`).
        self.cuts_sessions = sessions
        if openapi is not None and not isinstance(openapi, OpenApiTemplates):
            openapi = OpenApiTemplates.from_file(openapi)
        self.openapi: OpenApiTemplates | None = openapi
        self.policy = RedactionPolicy.from_config(self.config)
        cfg = self.config
        self.persona_map: dict[str, str] = (
            load_persona_map(cfg.resolve_path(cfg.persona_map)) if cfg.persona_map else {})
        self._rules = [
            (rule["persona"], [(key, persona_matcher(pattern))
                               for key, pattern in rule["when"].items()])
            for rule in cfg.persona_rules
        ]
        #: Per session key: time of its latest event and number of sessions cut so far.
        self.last_seen: dict[str, float] = {}
        self.session_count: dict[str, int] = {}

    # ---- public

    def __call__(self, batch: EventBatch) -> EventBatch:
        return self.enrich(batch)

    def enrich(self, batch: EventBatch) -> EventBatch:
        """The batch with redacted extras, final endpoints, personas and sessions (a new batch;
        the input is not modified)."""
        out = self.prepare(batch)
        return self.cut(out) if self.cuts_sessions else out

    def prepare(self, batch: EventBatch) -> EventBatch:
        """Every step but cutting sessions: redaction, templates, personas and hashed session
        ids, each a function of one event (a new batch)."""
        extra = dict(batch.extra)
        if self.policy.enabled and extra:
            self._redact(extra)
        out = EventBatch(ts=batch.ts, method=batch.method, endpoint=batch.endpoint,
                         status=batch.status, latency_ms=batch.latency_ms,
                         persona=batch.persona, session=batch.session, line=batch.line,
                         source=batch.source, extra=extra)
        if len(out) == 0:
            return out
        if self.openapi is not None:
            out.endpoint = self._openapi(out)
        out.persona = self._personas(out)
        if self.policy.enabled and self.policy.hash_sessions:
            out.session = _map_text(out.session, _hash_session_memo)
        return out

    def cut(self, batch: EventBatch) -> EventBatch:
        """The prepared batch with sessions cut for its events without a session id, continuing
        :attr:`last_seen` and :attr:`session_count` (a new batch)."""
        out = EventBatch(ts=batch.ts, method=batch.method, endpoint=batch.endpoint,
                         status=batch.status, latency_ms=batch.latency_ms,
                         persona=batch.persona, session=batch.session, line=batch.line,
                         source=batch.source, extra=batch.extra)
        if len(out):
            out.session = self._sessions(out)
        return out

    def stream(self, batches: Iterable[EventBatch]) -> Iterator[EventBatch]:
        """Enrich a stream of batches lazily."""
        for batch in batches:
            yield self.enrich(batch)

    def resume_from(self, learner) -> Enricher:
        """Continue the session numbering of a learner's open sessions (ids ``key#k``).

        A learning run that resumes a saved state then cuts the same sessions as one run over
        all the traffic would.
        """
        for s in learner.sessions.open():
            m = _SESSION_ID.fullmatch(s.session)
            if m is None:
                continue
            key, k, t = m.group(1), int(m.group(2)), s.ts
            if k >= self.session_count.get(key, 0):
                self.session_count[key] = k
                self.last_seen[key] = max(t, self.last_seen.get(key, -np.inf))
        return self

    # ---- steps

    def _redact(self, extra: dict[str, np.ndarray]) -> None:
        policy = self.policy
        for name, values in list(extra.items()):
            if name.startswith("header:"):
                if policy.is_secret(name[len("header:"):]):
                    col = np.array(values, dtype=object, copy=True)
                    col[_is_text(col)] = REDACTED
                    extra[name] = col
                elif policy.active:
                    extra[name] = _map_text(values, lambda v: scrub(v, policy))
            elif name == "query":
                extra[name] = _map_text(values, lambda q: redact_query(q, policy=policy))
            elif name in ("path", "referer"):
                extra[name] = _map_text(values, lambda u: redact_url(u, policy=policy))

    def _openapi(self, b: EventBatch) -> np.ndarray:
        raw = np.array(b.endpoint, dtype=object, copy=True)
        path = b.extra.get("path")
        if path is not None:
            has = _is_text(path)
            raw[has] = path[has]
        found = self.openapi.match_many(raw)
        hit = np.not_equal(found, None)
        endpoint = np.array(b.endpoint, dtype=object, copy=True)
        endpoint[hit] = found[hit]
        return endpoint

    def _field(self, b: EventBatch, key: str) -> np.ndarray:
        """Values of a rule key for every event (None where absent)."""
        n = len(b)
        if key == "path":
            values = np.array(b.endpoint, dtype=object, copy=True)
            path = b.extra.get("path")
            if path is not None:
                has = _is_text(path)
                values[has] = path[has]
            return values
        if key in _EVENT_FIELDS:
            return np.asarray(getattr(b, key)).astype(str).astype(object)
        if key in b.extra and not key.startswith("header:"):
            values = b.extra[key]
            if key == "user_agent" and "header:user-agent" in b.extra:
                values = np.where(_is_text(values), values, b.extra["header:user-agent"])
            return values
        if key == "user_agent":
            return b.extra.get("header:user-agent", np.full(n, None, dtype=object))
        name = key if key.startswith("header:") else "header:" + key.lower()
        return b.extra.get(name.lower(), np.full(n, None, dtype=object))

    @property
    def assigns_personas(self) -> bool:
        """Whether a persona map or persona rules are configured (beyond the header)."""
        return bool(self.persona_map or self._rules)

    def personas(self, b: EventBatch) -> np.ndarray:
        """Each event's persona by the precedence above (field, header, map, rules, default)."""
        return self._personas(b)

    def _personas(self, b: EventBatch) -> np.ndarray:
        persona = np.array(b.persona, dtype=object, copy=True)
        todo = persona == DEFAULT_PERSONA
        if not todo.any():
            return persona
        # 2. header
        header = b.extra.get("header:" + self.config.persona_header.lower())
        if header is not None:
            ok = todo & _is_text(header) & (header != REDACTED)
            persona[ok] = header[ok]
            todo &= ~ok
        # 3. map: user, then client
        if self.persona_map and todo.any():
            for key in ("user", "client"):
                ids = b.extra.get(key)
                if ids is None or not todo.any():
                    continue
                found = _map_text(np.where(todo, ids, None), self.persona_map.get)
                ok = todo & _is_text(found)
                persona[ok] = found[ok]
                todo &= ~ok
        # 4. rules, in order
        for name, conditions in self._rules:
            if not todo.any():
                break
            match = todo.copy()
            for key, matcher in conditions:
                values = np.where(match, self._field(b, key), None)
                text = _is_text(values)
                hit = np.zeros(len(b), dtype=bool)
                if text.any():
                    hit[text] = _map_text(values[text], matcher).astype(bool)
                match &= hit
            persona[match] = name
            todo &= ~match
        return persona

    def _session_keys(self, b: EventBatch) -> np.ndarray | None:
        key = self.config.session_key
        if key == "none":
            return None
        if key == "auto":
            client, user = b.extra.get("client"), b.extra.get("user")
            if client is None:
                return user
            if user is None:
                return client
            return np.where(_is_text(client), client, user)
        return b.extra.get(key)

    def cut_keys(self, b: EventBatch) -> np.ndarray:
        """The key (``session_key``) each event's session is cut from, None for events that get
        no cut session (they have a session id, or no key). Sessions of different keys are
        independent: a key's events alone decide its sessions."""
        out = np.full(len(b), None, dtype=object)
        keys = self._session_keys(b)
        if keys is not None:
            need = np.asarray(b.session == "", dtype=bool) & _is_text(keys)
            out[need] = keys[need]
        return out

    def _sessions(self, b: EventBatch) -> np.ndarray:
        keys = self.cut_keys(b)
        need = np.not_equal(keys, None)
        if not need.any():
            return b.session
        session = np.array(b.session, dtype=object, copy=True)
        session[need] = cut_sessions(keys[need], b.ts[need], float(self.config.session_gap),
                                     self.last_seen, self.session_count)
        return session
