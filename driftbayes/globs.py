"""Glob rules on endpoint and persona names: the most specific matching pattern wins.

Patterns are fnmatch-style and case-sensitive: ``*`` (and ``**``) match any run of
characters *including* ``/``, ``?`` matches one character and ``[..]`` a character class.

Endpoint names look like ``"GET /api/users/{id}"``. A pattern that starts with a method
(``"POST /api/*"``) is matched against the whole name; a pattern without one (``"/api/users/*"``)
is matched against the template part only, so it applies to every method. Persona names have no
method and are matched whole.

``/api/users/*`` matches ``/api/users/{id}`` and anything deeper, but **not** ``/api/users``
itself (the ``/`` before the ``*`` is literal); list ``/api/users`` too if the collection
endpoint should follow the same rule.
"""

from __future__ import annotations

import re
from fnmatch import fnmatchcase
from functools import lru_cache
from typing import TypeVar

T = TypeVar("T")

# An endpoint name: upper-case method, one space, a template starting with "/".
_ENDPOINT_NAME = re.compile(r"([A-Z]+) (/.*)", re.DOTALL)
# A method-prefixed pattern: a first token (may itself be a glob, e.g. "[GP]*"), one space, "/".
_METHOD_PATTERN = re.compile(r"[^\s/]\S* /.*", re.DOTALL)


@lru_cache(maxsize=4096)
def glob_specificity(pattern: str) -> tuple[bool, int, int, int]:
    """How specific a pattern is; larger tuples are more specific.

    Parameters
    ----------
    pattern : str
        An fnmatch-style glob.

    Returns
    -------
    tuple
        ``(is_literal, literal_chars, -wildcards, len(pattern))``: a pattern without wildcards
        (an exact name) beats any glob, then more literal characters win, then fewer wildcards
        (a run of ``*`` counts once, a ``[..]`` class counts as one), then the longer pattern.

    Examples
    --------
    >>> glob_specificity("/api/users/*") > glob_specificity("/api/*")
    True
    >>> glob_specificity("/api/users/{id}")[0]
    True
    """
    literal = wildcards = 0
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            wildcards += 1
            while i < len(pattern) and pattern[i] == "*":
                i += 1
            continue
        if c == "?":
            wildcards += 1
        elif c == "[" and (end := _class_end(pattern, i)) is not None:
            wildcards += 1
            i = end
        else:
            literal += 1
        i += 1
    return (wildcards == 0, literal, -wildcards, len(pattern))


def _class_end(pattern: str, start: int) -> int | None:
    """Index of the ``]`` closing the character class opened at ``start`` (fnmatch rules)."""
    j = start + 1
    if j < len(pattern) and pattern[j] == "!":
        j += 1
    if j < len(pattern) and pattern[j] == "]":
        j += 1
    end = pattern.find("]", j)
    return None if end < 0 else end


def _matches(pattern: str, name: str) -> bool:
    """Whether ``pattern`` matches ``name`` (see the module docstring for the method rule)."""
    endpoint = _ENDPOINT_NAME.fullmatch(name)
    if endpoint is None or _METHOD_PATTERN.fullmatch(pattern):
        return fnmatchcase(name, pattern)
    return fnmatchcase(endpoint.group(2), pattern)


def most_specific(mapping: dict[str, T] | None, name: str) -> T | None:
    """The value of the most specific pattern in ``mapping`` that matches ``name``.

    Parameters
    ----------
    mapping : dict of str to T, or None
        Glob pattern → value.
    name : str
        Endpoint name (``"GET /api/users/{id}"``), template or persona.

    Returns
    -------
    T or None
        The matching value, or None when no pattern matches. Equally specific patterns are
        resolved in favour of the one listed first.

    Examples
    --------
    >>> most_specific({"/api/*": 100, "/api/users/*": 40}, "GET /api/users/{id}")
    40
    """
    best: tuple | None = None
    value: T | None = None
    for pattern, v in (mapping or {}).items():
        if _matches(pattern, name):
            rank = glob_specificity(pattern)
            if best is None or rank > best:
                best, value = rank, v
    return value


def match_glob(rules: dict[str, bool] | None, name: str) -> bool | None:
    """The boolean of the most specific rule matching ``name``, or None if none matches.

    Examples
    --------
    >>> rules = {"/api/*": True, "/api/payments/*": False}
    >>> match_glob(rules, "POST /api/payments/{id}"), match_glob(rules, "GET /health")
    (False, None)
    """
    return most_specific(rules, name)


def learning_enabled(rules: dict[str, bool] | None, name: str) -> bool:
    """Whether learning is on for ``name`` under opt-in glob ``rules``.

    No map (None or empty) means learning for all; once the map has entries, learning is
    opt-in: on only if the most specific matching pattern says ``true``.

    Examples
    --------
    >>> learning_enabled(None, "GET /anything")
    True
    >>> learning_enabled({"/api/users/*": True}, "GET /api/orders/{id}")
    False
    """
    if not rules:
        return True
    return match_glob(rules, name) is True
