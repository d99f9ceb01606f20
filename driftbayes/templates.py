"""Request paths → endpoint templates (``/api/users/42`` → ``/api/users/{id}``).

Templating is heuristic and segment-wise: the query string and fragment are dropped, a full URL
loses its scheme and host, empty segments (duplicate or trailing slashes) are removed, and each
remaining segment is tested against :data:`SEGMENT_RULES` in order; the first rule that matches the
whole segment decides it.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import NamedTuple

import numpy as np
import pandas as pd


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
        "uuid", re.compile(rf"{_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}"), "{uuid}"
    ),
    SegmentRule("hash", re.compile(rf"(?=[a-fA-F]*[0-9]){_HEX}{{16,}}"), "{hash}"),
)

_URL_PREFIX = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://[^/?#]*")


def template_segment(segment: str) -> str:
    """Template one non-empty path segment with :data:`SEGMENT_RULES`."""
    for rule in SEGMENT_RULES:
        if rule.pattern.fullmatch(segment):
            return segment if rule.placeholder is None else rule.placeholder
    return segment


@lru_cache(maxsize=1 << 16)
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

    Parameters
    ----------
    paths : array-like of str

    Returns
    -------
    numpy.ndarray
        Object array of templates, same shape as ``paths``.
    """
    paths = np.asarray(paths, dtype=object)
    if paths.size == 0:
        return np.empty(paths.shape, dtype=object)
    # factorize is the hash-based equivalent of np.unique(return_inverse=True) and avoids
    # sorting Python strings.
    codes, uniques = pd.factorize(paths.ravel())
    templated = np.array([template_path(p) for p in uniques], dtype=object)
    return templated[codes].reshape(paths.shape)
