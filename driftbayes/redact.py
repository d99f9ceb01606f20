"""Secret redaction on the way in: headers, query strings and JSON bodies.

Secrets never reach state, patterns, samples, exports or logs: readers call these functions on
every header, query string and body they keep, before anything else sees them.

What is secret is a :class:`RedactionPolicy`: the built-in names (:data:`SECRET_HEADERS` and
:data:`SECRET_KEY`) plus the config's ``redact.extra_headers`` / ``redact.extra_keys``. Every
function takes an explicit ``policy=`` and extra names; without them it uses the *current*
policy, which :func:`driftbayes.io.recordings.read_events` sets from the config while a reader
runs (:func:`redaction_policy`), so readers honour the config without passing it around.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from fnmatch import fnmatchcase
from functools import lru_cache
from urllib.parse import parse_qsl, urlencode

__all__ = [
    "REDACTED",
    "SECRET_HEADERS",
    "SECRET_KEY",
    "RedactionPolicy",
    "current_policy",
    "is_secret_key",
    "redact_headers",
    "redact_json",
    "redact_query",
    "redact_text",
    "redact_url",
    "redaction_policy",
]

REDACTED = "[REDACTED]"

#: Header names always redacted (lower case).
SECRET_HEADERS = frozenset({
    "authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "api-key",
    "x-auth-token", "x-access-token", "x-csrf-token", "x-xsrf-token", "x-amz-security-token",
})
#: Parameter / JSON field names whose value is a secret (matched as a substring, case-insensitive).
SECRET_KEY = re.compile(
    r"(pass(word|wd)?|secret|token|api[_-]?key|apikey|access[_-]?key|auth|credential|"
    r"session[_-]?id|sig(nature)?|private[_-]?key|client[_-]?secret|jwt|bearer)", re.I)


@dataclass(frozen=True)
class RedactionPolicy:
    """Which names carry secrets.

    Parameters
    ----------
    enabled : bool
        False turns redaction off (values pass unchanged; header names are still lower-cased).
        Only for traffic known to hold no real secrets.
    extra_headers, extra_keys : iterable of str
        Names redacted on top of the built-in ones, case-insensitive, fnmatch globs allowed
        (``x-session-*``, ``*_pin``). Both lists apply to every kind of name (header, query
        parameter, JSON field): over-redacting is the safe direction.
    """

    enabled: bool = True
    extra_headers: tuple[str, ...] = ()
    extra_keys: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("extra_headers", "extra_keys"):
            value = getattr(self, name)
            if isinstance(value, str):
                value = (value,)
            object.__setattr__(self, name, tuple(sorted({str(v).lower() for v in value})))

    def extended(self, extra_headers: Iterable[str] = (), extra_keys: Iterable[str] = ()
                 ) -> RedactionPolicy:
        """This policy with more secret names (itself when there are none)."""
        extra_headers, extra_keys = tuple(extra_headers), tuple(extra_keys)
        if not extra_headers and not extra_keys:
            return self
        return RedactionPolicy(self.enabled, self.extra_headers + extra_headers,
                               self.extra_keys + extra_keys)

    def is_secret(self, name: str) -> bool:
        """True for a header, parameter or field name whose value must be redacted."""
        return self.enabled and _is_secret(self, str(name).lower())

    @classmethod
    def from_config(cls, config) -> RedactionPolicy:
        """The policy of a :class:`~driftbayes.config.Config` (its ``redact`` section)."""
        r = config.redact
        return cls(r.enabled, r.extra_headers, r.extra_keys)


DEFAULT_POLICY = RedactionPolicy()
_POLICY: ContextVar[RedactionPolicy] = ContextVar("driftbayes_redaction_policy",
                                                  default=DEFAULT_POLICY)


@lru_cache(maxsize=65536)
def _is_secret(policy: RedactionPolicy, lname: str) -> bool:
    if lname in SECRET_HEADERS or SECRET_KEY.search(lname):
        return True
    return any(fnmatchcase(lname, p) for p in (*policy.extra_headers, *policy.extra_keys))


def current_policy() -> RedactionPolicy:
    """The policy in force (the built-in one unless :func:`redaction_policy` set another)."""
    return _POLICY.get()


@contextmanager
def redaction_policy(policy: RedactionPolicy) -> Iterator[RedactionPolicy]:
    """Make ``policy`` the current one inside the ``with`` block."""
    token = _POLICY.set(policy)
    try:
        yield policy
    finally:
        _POLICY.reset(token)


def _policy(policy: RedactionPolicy | None, extra_headers: Iterable[str],
            extra_keys: Iterable[str]) -> RedactionPolicy:
    return (policy or _POLICY.get()).extended(extra_headers, extra_keys)


def is_secret_key(name: str, *, extra_headers: Iterable[str] = (), extra_keys: Iterable[str] = (),
                  policy: RedactionPolicy | None = None) -> bool:
    """True for header, parameter or field names that carry secrets."""
    return _policy(policy, extra_headers, extra_keys).is_secret(name)


def redact_headers(headers: dict[str, str] | list[tuple[str, str]], *,
                   extra_headers: Iterable[str] = (), extra_keys: Iterable[str] = (),
                   policy: RedactionPolicy | None = None) -> dict[str, str]:
    """Headers with secret values replaced; names are lower-cased."""
    p = _policy(policy, extra_headers, extra_keys)
    items = headers.items() if isinstance(headers, dict) else headers
    return {str(k).lower(): (REDACTED if p.is_secret(k) else v) for k, v in items}


def redact_query(query: str, *, extra_headers: Iterable[str] = (), extra_keys: Iterable[str] = (),
                 policy: RedactionPolicy | None = None) -> str:
    """A query string with secret parameter values replaced (order kept)."""
    p = _policy(policy, extra_headers, extra_keys)
    if not query or not p.enabled:
        return query
    pairs = parse_qsl(query.lstrip("?"), keep_blank_values=True)
    return urlencode([(k, REDACTED if p.is_secret(k) else v) for k, v in pairs], safe="[]")


def redact_url(url: str, *, extra_headers: Iterable[str] = (), extra_keys: Iterable[str] = (),
               policy: RedactionPolicy | None = None) -> str:
    """A URL or path with its query string redacted and any ``user:password@`` removed."""
    p = _policy(policy, extra_headers, extra_keys)
    if not p.enabled:
        return url
    url = re.sub(r"//[^/@\s]*:[^/@\s]*@", "//", url)
    head, sep, query = url.partition("?")
    if not sep:
        return url
    query, hsep, frag = query.partition("#")
    return f"{head}?{redact_query(query, policy=p)}" + (f"#{frag}" if hsep else "")


def redact_json(value, *, extra_headers: Iterable[str] = (), extra_keys: Iterable[str] = (),
                policy: RedactionPolicy | None = None):
    """A JSON value with every secret-named field's value replaced, recursively."""
    p = _policy(policy, extra_headers, extra_keys)
    if not p.enabled:
        return value
    return _redact_json(value, p)


def _redact_json(value, p: RedactionPolicy):
    if isinstance(value, dict):
        return {k: (REDACTED if p.is_secret(k) else _redact_json(v, p)) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_json(v, p) for v in value]
    return value


_USERINFO = re.compile(r"//[^/@\s'\"]*:[^/@\s'\"]*@")
_AUTH_SCHEME = re.compile(r"\b(Bearer|Basic|Digest|Token|Negotiate)\s+[A-Za-z0-9._~+/=-]+", re.I)
_KEY_VALUE = re.compile(  # name=value / name: value, value unquoted and not itself a name
    r"(?P<key>[A-Za-z0-9_.\-\[\]]+)(?P<sep>\s*[=:]\s*)(?P<value>[^&\s'\",;#()}\]?=]++)"
    r"(?!\s*[=:])")
_QUOTED = re.compile(  # "name": "value", name='value', 'name': 'value'
    r"(?P<q>[\"']?)(?P<key>[A-Za-z0-9_.\-]+)(?P=q)(?P<sep>\s*[=:]\s*)"
    r"(?P<value>\"[^\"]*\"|'[^']*')")


def redact_text(text: str, *, extra_headers: Iterable[str] = (), extra_keys: Iterable[str] = (),
                policy: RedactionPolicy | None = None) -> str:
    """Free text (an error message quoting input) with recognisable secrets replaced.

    Replaces the values of ``name=value``, ``name: value`` and ``"name": "value"`` pairs whose
    name is secret, ``Bearer``/``Basic`` credentials and URL ``user:password@`` parts. A secret
    with no name beside it cannot be recognised: readers should not quote whole records.
    """
    p = _policy(policy, extra_headers, extra_keys)
    if not p.enabled or not text:
        return text
    text = _USERINFO.sub("//", text)
    text = _AUTH_SCHEME.sub(lambda m: f"{m.group(1)} {REDACTED}", text)

    def pair(m: re.Match[str]) -> str:
        if not p.is_secret(m.group("key")):
            return m.group(0)
        quote = m.group("value")[0] if m.group("value")[:1] in ("'", '"') else ""
        return m.group(0)[: m.start("value") - m.start()] + f"{quote}{REDACTED}{quote}"

    text = _KEY_VALUE.sub(pair, text)  # first: pairs inside quoted text are found too
    return _QUOTED.sub(pair, text)
