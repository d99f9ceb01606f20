"""Secret redaction on the way in: headers, query strings and JSON bodies.

Secrets never reach state, patterns, samples, exports or logs: readers call these functions on
every header, query string and body they keep, before anything else sees them.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode

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


def is_secret_key(name: str) -> bool:
    """True for header, parameter or field names that carry secrets."""
    n = str(name).lower()
    return n in SECRET_HEADERS or bool(SECRET_KEY.search(n))


def redact_headers(headers: dict[str, str] | list[tuple[str, str]]) -> dict[str, str]:
    """Headers with secret values replaced; names are lower-cased."""
    items = headers.items() if isinstance(headers, dict) else headers
    return {str(k).lower(): (REDACTED if is_secret_key(k) else v) for k, v in items}


def redact_query(query: str) -> str:
    """A query string with secret parameter values replaced (order kept)."""
    if not query:
        return query
    pairs = parse_qsl(query.lstrip("?"), keep_blank_values=True)
    return urlencode([(k, REDACTED if is_secret_key(k) else v) for k, v in pairs], safe="[]")


def redact_url(url: str) -> str:
    """A URL or path with its query string redacted and any ``user:password@`` removed."""
    url = re.sub(r"//[^/@\s]*:[^/@\s]*@", "//", url)
    head, sep, query = url.partition("?")
    if not sep:
        return url
    query, hsep, frag = query.partition("#")
    return f"{head}?{redact_query(query)}" + (f"#{frag}" if hsep else "")


def redact_json(value):
    """A JSON value with every secret-named field's value replaced, recursively."""
    if isinstance(value, dict):
        return {k: (REDACTED if is_secret_key(k) else redact_json(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_json(v) for v in value]
    return value
