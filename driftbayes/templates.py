"""Request paths → endpoint templates (``/api/users/42`` → ``/api/users/{id}``).

Templating is heuristic and segment-wise: the query string and fragment are dropped, a full URL
loses its scheme and host, empty segments (duplicate or trailing slashes) are removed, and each
remaining segment is tested against :data:`SEGMENT_RULES` in order; the first rule that matches the
whole segment decides it.
"""

from __future__ import annotations

import re
from typing import NamedTuple

import numpy as np


class SegmentRule(NamedTuple):
    """One templating rule: a segment that fully matches ``pattern`` becomes ``placeholder``.

    ``placeholder=None`` keeps the segment unchanged (and stops further rules).
    """

    name: str
    pattern: re.Pattern[str]
    placeholder: str | None


_HEX = "[0-9a-fA-F]"

#: Ordered rule table; the first rule whose pattern matches a whole segment wins. New rules
#: (dates, e-mails, OpenAPI-derived names) go here.
SEGMENT_RULES: tuple[SegmentRule, ...] = (
    SegmentRule("template", re.compile(r"\{[^{}/]+\}"), None),
    SegmentRule("id", re.compile(r"[0-9]+"), "{id}"),
    SegmentRule(
        "uuid",
        re.compile(rf"{_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}"),
        "{uuid}",
    ),
    SegmentRule("hash", re.compile(rf"(?=[a-fA-F]*[0-9]){_HEX}{{16,}}"), "{hash}"),
)

_URL_PREFIX = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://[^/?#]*")


def _combined(rules: tuple[SegmentRule, ...]) -> re.Pattern[str]:
    # one alternation in table order: a single regex call per segment; lastgroup names the rule
    return re.compile("|".join(f"(?P<r{i}>{r.pattern.pattern})" for i, r in enumerate(rules)))


_SEGMENT_RE = _combined(SEGMENT_RULES)
_MEMO: dict[str, str] = {}
_MEMO_MAX = 1 << 17


def template_segment(segment: str) -> str:
    """Template one non-empty path segment with :data:`SEGMENT_RULES` (first match wins)."""
    m = _SEGMENT_RE.fullmatch(segment)
    if m is None:
        return segment
    placeholder = SEGMENT_RULES[int(m.lastgroup[1:])].placeholder
    return segment if placeholder is None else placeholder


def template_path(path: str) -> str:
    """Endpoint template of one request path.

    Parameters
    ----------
    path : str
        Request path, optionally with query string and fragment, or a full URL.

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
    return "/" + "/".join(template_segment(s) for s in path.split("/") if s)


def template_paths(paths: np.ndarray) -> np.ndarray:
    """Vectorised :func:`template_path`: each distinct path is templated once.

    A module-level memo (cleared when it reaches 131,072 paths) carries templates across calls,
    so streaming readers template a recurring path only once.

    Parameters
    ----------
    paths : array-like of str

    Returns
    -------
    numpy.ndarray
        Object array of templates, same shape as ``paths``.
    """
    paths = np.asarray(paths, dtype=object)
    flat = paths.ravel().tolist()
    memo = _MEMO
    out = list(map(memo.get, flat))
    if None in out:
        new = set(flat).difference(memo)
        if len(memo) + len(new) > _MEMO_MAX:
            memo.clear()
            new = set(flat)
        memo.update((p, template_path(p)) for p in new)
        out = list(map(memo.__getitem__, flat))
    result = np.empty(len(out), dtype=object)
    result[:] = out
    return result.reshape(paths.shape)
