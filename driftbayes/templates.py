"""Request paths → endpoint templates (``/api/users/42`` → ``/api/users/{id}``).

Templating is heuristic and segment-wise: the query string and fragment are dropped, a full URL
loses its scheme and host, empty segments (duplicate or trailing slashes) are removed, and each
remaining segment is tested against :data:`SEGMENT_RULES` in order; the first rule that matches the
whole segment decides it. A segment no rule decides that holds a secret recognised by its value
(a JWT, an e-mail address, a key, a high-entropy token: :func:`driftbayes.redact.secret_segment`,
with the current redaction policy) becomes a typed parameter such as ``{jwt}`` or ``{email}``,
so secrets never become part of an endpoint name.

With an OpenAPI document, :class:`OpenApiTemplates` matches concrete paths against the
document's path templates instead (``/users/{userId}``), falling back to the heuristics for paths
the document does not describe.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import unquote

import numpy as np

from driftbayes.redact import SECRET_HINT, RedactionPolicy, current_policy, secret_segment


class SegmentRule(NamedTuple):
    """One templating rule: a segment of at least ``min_length`` characters that fully matches
    ``pattern`` becomes ``placeholder``.

    ``placeholder=None`` keeps the segment unchanged (and stops further rules). Patterns use
    the syntax common to Python's :mod:`re` and RE2 (no look-around), so the same rule runs
    per path in Python and vectorised in Arrow.
    """

    name: str
    pattern: str
    placeholder: str | None
    min_length: int = 0


_HEX = "[0-9a-fA-F]"
_DATE = (r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
         r"(?:[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?(?:Z|[+-][0-9]{2}:?[0-9]{2})?)?")

#: Ordered rule table; the first rule whose pattern matches a whole segment wins.
SEGMENT_RULES: tuple[SegmentRule, ...] = (
    SegmentRule("template", r"\{[^{}/]+\}", None),
    SegmentRule("id", r"[0-9]+", "{id}"),
    SegmentRule("uuid", rf"{_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}", "{uuid}"),
    # long hex with at least one digit (so words such as "deadbeefcafebabe" stay)
    SegmentRule("hash", r"[a-fA-F]*[0-9][0-9a-fA-F]*", "{hash}", min_length=16),
    SegmentRule("date", _DATE, "{date}"),
)
# e-mail addresses, JWTs, keys, …: the value detectors of driftbayes.redact, after these rules

_URL_PREFIX_RE = r"^[A-Za-z][A-Za-z0-9+.\-]*://[^/?#]*"
_URL_PREFIX = re.compile(_URL_PREFIX_RE)
_COMPILED = tuple((re.compile(r.pattern), r) for r in SEGMENT_RULES)


def template_segment(segment: str, policy: RedactionPolicy | None = None) -> str:
    """Template one non-empty path segment with :data:`SEGMENT_RULES` (first match wins), else
    the secret detectors of ``policy`` (default: the current one)."""
    for pattern, rule in _COMPILED:
        if len(segment) >= rule.min_length and pattern.fullmatch(segment):
            return segment if rule.placeholder is None else rule.placeholder
    return secret_segment(segment, policy) or segment


def template_path(path: str, policy: RedactionPolicy | None = None) -> str:
    """Endpoint template of one request path.

    Parameters
    ----------
    path : str
        Request path, optionally with query string and fragment, or a full URL.
    policy : RedactionPolicy, optional
        Secret detectors for segments (default: :func:`~driftbayes.redact.current_policy`).

    Returns
    -------
    str
        The template, always starting with ``/`` and without a trailing slash (except ``/``).

    Examples
    --------
    >>> template_path("/api/users/42?x=1")
    '/api/users/{id}'
    >>> template_path("/v2/54fadb412c4e40cdbaed9335e4c35a9e/servers/detail")
    '/v2/{hash}/servers/detail'
    """
    path = path.split("#", 1)[0].split("?", 1)[0]
    url = _URL_PREFIX.match(path)
    if url:
        path = path[url.end() :]
    policy = policy or current_policy()
    return "/" + "/".join(template_segment(s, policy) for s in path.split("/") if s)


def template_paths_arrow(paths, policy: RedactionPolicy | None = None):
    """:func:`template_path` on an Arrow string array, vectorised in Arrow compute (RE2).

    Parameters
    ----------
    paths : pyarrow.Array or pyarrow.ChunkedArray of string
        Request paths; nulls are treated as ``""`` (template ``/``).
    policy : RedactionPolicy, optional
        Secret detectors for segments (default: :func:`~driftbayes.redact.current_policy`).

    Returns
    -------
    pyarrow.Array
        Templates, same length.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(paths, pa.ChunkedArray):
        paths = paths.combine_chunks()
    p = pc.fill_null(paths.cast(pa.string()), "")
    data = p.buffers()[2]
    raw = data.to_pybytes() if data is not None else b""
    if b"?" in raw or b"#" in raw:
        p = pc.replace_substring_regex(p, r"(?s)[?#].*", "")
    if b"://" in raw:
        p = pc.replace_substring_regex(p, _URL_PREFIX_RE, "")
    parts = pc.split_pattern(p, "/")
    segs = parts.flatten()
    keep = pc.greater(pc.utf8_length(segs), 0)
    segs = segs.filter(keep)
    distinct = pc.dictionary_encode(segs)
    words = distinct.dictionary
    # rule of each distinct segment: each rule is tried only on the still undecided ones
    rule_of = np.full(len(words), len(SEGMENT_RULES), dtype=np.int32)
    todo = np.arange(len(words))
    for k, rule in enumerate(SEGMENT_RULES):
        cand = words.take(todo)
        hit = pc.match_substring_regex(cand, f"^(?:{rule.pattern})$")
        if rule.min_length:
            hit = pc.and_(hit, pc.greater_equal(pc.utf8_length(cand), rule.min_length))
        hit = hit.to_numpy(zero_copy_only=False)
        rule_of[todo[hit]] = k
        todo = todo[~hit]
        if not todo.size:
            break
    placeholders = pa.array([r.placeholder for r in SEGMENT_RULES] + [None], type=pa.string())
    templated = placeholders.take(pa.array(rule_of))
    policy = policy or current_policy()
    if todo.size and policy.active:  # undecided distinct segments: secrets by value
        cand = words.take(todo)
        hint = pc.match_substring_regex(cand, SECRET_HINT)
        if b"%" in raw:  # percent-encoded segments are decoded before detection
            hint = pc.or_(hint, pc.match_substring(cand, "%"))
        hint = hint.to_numpy(zero_copy_only=False)
        if hint.any():
            idx = todo[hint]
            secret = [secret_segment(w, policy) for w in words.take(idx).to_pylist()]
            found = np.array([s is not None for s in secret], dtype=bool)
            if found.any():
                full = np.array(templated.to_pylist(), dtype=object)
                full[idx[found]] = [s for s in secret if s is not None]
                templated = pa.array(full.tolist(), type=pa.string())
    words = pc.coalesce(templated, words)
    segs = words.take(distinct.indices)
    parent = pc.list_parent_indices(parts).filter(keep).to_numpy()
    offsets = np.zeros(len(p) + 1, dtype=np.int32)
    np.cumsum(np.bincount(parent, minlength=len(p)), out=offsets[1:])
    joined = pc.binary_join(pa.ListArray.from_arrays(pa.array(offsets), segs), "/")
    return pc.binary_join_element_wise("", joined, "/")


def template_paths(paths: np.ndarray, policy: RedactionPolicy | None = None) -> np.ndarray:
    """Vectorised :func:`template_path`: each distinct path is templated once, in Arrow.

    Parameters
    ----------
    paths : array-like of str
    policy : RedactionPolicy, optional
        Secret detectors for segments (default: :func:`~driftbayes.redact.current_policy`).

    Returns
    -------
    numpy.ndarray
        Object array of templates, same shape as ``paths``.
    """
    import pandas as pd
    import pyarrow as pa

    paths = np.asarray(paths, dtype=object)
    if paths.size == 0:
        return np.empty(paths.shape, dtype=object)
    codes, uniq = pd.factorize(paths.ravel())
    templated = template_paths_arrow(pa.array(uniq.tolist(), type=pa.string()), policy)
    return templated.to_numpy(zero_copy_only=False)[codes].reshape(paths.shape)


# --------------------------------------------------------------------------------------------
# OpenAPI path templates

_PARAM = re.compile(r"\{[^{}/]*\}")
_MEMO_MAX = 1 << 17  # OpenApiTemplates.match memo size


def _segments(path: str) -> list[str]:
    """Non-empty segments of a path or URL (query, fragment, scheme and host dropped)."""
    path = path.split("#", 1)[0].split("?", 1)[0]
    url = _URL_PREFIX.match(path)
    if url:
        path = path[url.end() :]
    return [s for s in path.split("/") if s]


class _Node:
    """One trie level: literal children, mixed-segment patterns, a parameter child."""

    __slots__ = ("literal", "mixed", "param", "template")

    def __init__(self) -> None:
        self.literal: dict[str, _Node] = {}
        self.mixed: list[tuple[int, str, re.Pattern[str], _Node]] = []
        self.param: _Node | None = None
        self.template: str | None = None

    def child(self, segment: str) -> _Node:
        params = _PARAM.findall(segment)
        if not params:
            return self.literal.setdefault(unquote(segment), _Node())
        if len(params) == 1 and params[0] == segment:
            if self.param is None:
                self.param = _Node()
            return self.param
        for _, text, _, node in self.mixed:
            if text == segment:
                return node
        parts = _PARAM.split(segment)
        regex = re.compile("[^/]+".join(re.escape(unquote(p)) for p in parts))
        node = _Node()
        self.mixed.append((sum(map(len, parts)), segment, regex, node))
        self.mixed.sort(key=lambda m: -m[0])  # more literal characters first
        return node


def _match(node: _Node, segs: list[str], i: int) -> str | None:
    """Most specific template under ``node`` for ``segs[i:]``: at the first segment where
    candidates differ, a literal beats a mixed segment (``{name}.json``), which beats a bare
    parameter; more literal characters win among mixed segments."""
    if i == len(segs):
        return node.template
    seg = segs[i]
    if _PARAM.fullmatch(seg):  # an already templated segment ({id}) only fits a parameter
        return _match(node.param, segs, i + 1) if node.param is not None else None
    child = node.literal.get(seg)
    if child is not None:
        found = _match(child, segs, i + 1)
        if found is not None:
            return found
    for _, _, regex, child in node.mixed:
        if regex.fullmatch(seg):
            found = _match(child, segs, i + 1)
            if found is not None:
                return found
    if node.param is not None:
        return _match(node.param, segs, i + 1)
    return None


_SERVER_PREFIX = re.compile(r"^(?:[A-Za-z{][^:/?#]*:)?//[^/?#]*")


def _server_base(url: str, variables: Mapping | None) -> str:
    """Path part of an OpenAPI ``servers[].url``: scheme and host dropped, variables set to
    their defaults (a variable without a default stays a parameter segment)."""
    def default(m: re.Match[str]) -> str:
        spec = (variables or {}).get(m.group(0)[1:-1])
        value = spec.get("default") if isinstance(spec, Mapping) else None
        return str(value) if value is not None else m.group(0)

    path = _SERVER_PREFIX.sub("", str(url), count=1).split("?", 1)[0].split("#", 1)[0]
    path = _PARAM.sub(default, path)
    segs = [s for s in path.split("/") if s and s != "."]
    return "/" + "/".join(segs) if segs else ""


class OpenApiTemplates:
    """Endpoint templates from an OpenAPI (3.x, or Swagger 2.0) document.

    A concrete path is matched segment by segment against the document's ``paths`` keys, each
    prefixed with the base path of every ``servers[].url`` (Swagger: ``basePath``; server
    variables take their defaults). A literal segment beats a parameter at the first segment
    where two templates differ, so ``/users/me`` wins over ``/users/{userId}`` for
    ``/users/me``, and ``/users/me/{x}`` over ``/users/{id}/friends``. Matching ignores the
    method, as OpenAPI path matching does. When no template fits with a base path, the
    templates are tried without it (traffic recorded behind a proxy that strips the prefix).

    The result is the document's template with its parameter names, prefixed with the base
    path it matched under and normalised like :func:`template_path` (no trailing slash).
    A path the document does not describe gets ``None`` from :meth:`match` and the heuristic
    template from :meth:`template`. Already templated segments (``{id}``) match parameters
    only, so heuristic templates can be re-templated too.

    Parameters
    ----------
    paths : iterable of str
        Path templates (``/users/{userId}``), relative to the base paths.
    base_paths : iterable of str
        Base paths (``/v1``); ``""`` or ``/`` for none.
    source : str
        Where the templates came from, for messages.
    """

    def __init__(self, paths: Iterable[str], base_paths: Iterable[str] = ("",),
                 source: str = "<memory>"):
        self.source = source
        self.paths = tuple(dict.fromkeys(str(p) for p in paths))
        bases = [("/" + "/".join(_segments(b))) if _segments(b) else "" for b in base_paths]
        self.base_paths = tuple(dict.fromkeys(bases)) or ("",)
        self._with_base = _Node()
        self._bare = _Node()
        for p in self.paths:
            segs = [s for s in p.split("/") if s]
            for base in self.base_paths:
                self._insert(self._with_base, base.split("/")[1:] + segs if base else segs)
            self._insert(self._bare, segs)
        self._memo: dict[str, str | None] = {}

    @staticmethod
    def _insert(root: _Node, segs: list[str]) -> None:
        node = root
        for seg in segs:
            node = node.child(seg)
        if node.template is None:
            node.template = "/" + "/".join(segs)

    @classmethod
    def from_dict(cls, doc: Any, source: str = "<dict>") -> OpenApiTemplates:
        """Templates of a parsed OpenAPI document."""
        if not isinstance(doc, Mapping) or not isinstance(doc.get("paths"), Mapping):
            raise ValueError(f"{source}: not an OpenAPI document (no 'paths' mapping)")
        paths = [str(k) for k in doc["paths"] if str(k).startswith("/")]
        bases: list[str] = []
        servers = doc.get("servers")
        if isinstance(servers, list):
            for server in servers:
                if isinstance(server, Mapping) and isinstance(server.get("url"), str):
                    bases.append(_server_base(server["url"], server.get("variables")))
        if isinstance(doc.get("basePath"), str):  # Swagger 2.0
            bases.append(doc["basePath"])
        return cls(paths, bases or [""], source)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> OpenApiTemplates:
        """Templates of an OpenAPI document in YAML or JSON.

        Raises
        ------
        FileNotFoundError
            No such file.
        ValueError
            Not YAML/JSON, or no ``paths`` mapping; the message names the file.
        """
        from driftbayes import yamlio

        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise FileNotFoundError(f"{p}: no such OpenAPI document") from None
        except (UnicodeDecodeError, IsADirectoryError) as exc:
            raise ValueError(f"{p}: cannot read as an OpenAPI document: {exc}") from None
        try:
            doc = yamlio.load(text)
        except yamlio.YAMLError as exc:
            raise ValueError(f"{p}: not valid YAML or JSON: {exc}") from None
        return cls.from_dict(doc, str(p))

    def __len__(self) -> int:
        return len(self.paths)

    def __repr__(self) -> str:
        return (f"OpenApiTemplates({len(self.paths)} paths, base paths "
                f"{list(self.base_paths)}, from {self.source})")

    def match(self, path: str) -> str | None:
        """The document's template for a concrete path (or a heuristic template), or None."""
        found = self._memo.get(path, False)
        if found is False:
            segs = [unquote(s) if "%" in s else s for s in _segments(path)]
            found = _match(self._with_base, segs, 0)
            if found is None:
                found = _match(self._bare, segs, 0)
            if len(self._memo) >= _MEMO_MAX:
                self._memo.clear()
            self._memo[path] = found
        return found

    def match_many(self, paths: np.ndarray) -> np.ndarray:
        """Vectorised :meth:`match` (each distinct path once); None where nothing matches."""
        paths = np.asarray(paths, dtype=object)
        out = np.empty(paths.shape, dtype=object)
        if paths.size == 0:
            return out
        import pandas as pd

        codes, uniq = pd.factorize(paths.ravel(), use_na_sentinel=False)
        found = np.empty(len(uniq), dtype=object)
        found[:] = [self.match(u) if isinstance(u, str) else None for u in uniq]
        out[...] = found[codes].reshape(paths.shape)
        return out

    def template(self, path: str) -> str:
        """The document's template, else the heuristic :func:`template_path`."""
        found = self.match(path)
        return found if found is not None else template_path(path)

    def template_many(self, paths: np.ndarray) -> np.ndarray:
        """Vectorised :meth:`template`."""
        paths = np.asarray(paths, dtype=object)
        out = self.match_many(paths)
        miss = np.equal(out, None) & np.vectorize(lambda p: isinstance(p, str), otypes=[bool])(
            paths) if paths.size else np.zeros(paths.shape, dtype=bool)
        if miss.any():
            out[miss] = template_paths(paths[miss])
        return out
