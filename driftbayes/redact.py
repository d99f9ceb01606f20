"""Secret redaction on the way in: headers, query strings, paths, session ids and bodies.

Secrets never reach state, patterns, samples, exports or logs: readers call these functions on
every header, query string and body they keep, before anything else sees them.

Secrets are caught two ways. **By name**: the value of a header, query parameter or JSON field
whose name is secret (:data:`SECRET_HEADERS`, :data:`SECRET_KEY`, the config's extra names).
**By value** (:data:`DETECTORS`, each switchable with ``redact.disable``): JWTs, cloud and SaaS
keys, Luhn-valid card numbers, e-mail addresses, IBANs, SSN-like numbers and long high-entropy
tokens, wherever they stand: a path segment holding one becomes a typed template parameter
(``/users/{email}``, :func:`secret_segment`), a query value, header value or body string has
the secret replaced by ``[REDACTED]`` (:func:`scrub`), and reader-given session ids are stored
hashed (:func:`hash_session`). See ``docs/redaction.md`` for the exact rules.

What is secret is a :class:`RedactionPolicy`: the built-in names (:data:`SECRET_HEADERS` and
:data:`SECRET_KEY`) plus the config's ``redact.extra_headers`` / ``redact.extra_keys``. Every
function takes an explicit ``policy=`` and extra names; without them it uses the *current*
policy, which :func:`driftbayes.io.recordings.read_events` sets from the config while a reader
runs (:func:`redaction_policy`), so readers honour the config without passing it around.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from fnmatch import fnmatchcase
from functools import lru_cache
from urllib.parse import parse_qsl, unquote, urlencode

__all__ = [
    "DETECTORS",
    "REDACTED",
    "SECRET_HEADERS",
    "SECRET_KEY",
    "RedactionPolicy",
    "current_policy",
    "find_secrets",
    "hash_session",
    "is_secret_key",
    "redact_headers",
    "redact_json",
    "redact_query",
    "redact_text",
    "redact_url",
    "redaction_policy",
    "scrub",
    "secret_segment",
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


#: Value detectors, in the order they are tried (``redact.disable`` switches any of them off).
DETECTORS = ("jwt", "aws_key", "github_token", "slack_token", "stripe_key", "card", "email",
             "iban", "ssn", "entropy")


@dataclass(frozen=True)
class RedactionPolicy:
    """Which names and values carry secrets.

    Parameters
    ----------
    enabled : bool
        False turns redaction off (values pass unchanged; header names are still lower-cased).
        Only for traffic known to hold no real secrets.
    extra_headers, extra_keys : iterable of str
        Names redacted on top of the built-in ones, case-insensitive, fnmatch globs allowed
        (``x-session-*``, ``*_pin``). Both lists apply to every kind of name (header, query
        parameter, JSON field): over-redacting is the safe direction.
    detectors : iterable of str
        Value detectors in force (a subset of :data:`DETECTORS`; default all).
    hash_sessions : bool
        Store reader-given session ids hashed (:func:`hash_session`).
    entropy_min_length, entropy_threshold : int, float
        The ``entropy`` detector's shortest token and its entropy floor as a share of
        ``log2(min(length, 64))`` bits per character.
    """

    enabled: bool = True
    extra_headers: tuple[str, ...] = ()
    extra_keys: tuple[str, ...] = ()
    detectors: tuple[str, ...] = DETECTORS
    hash_sessions: bool = True
    entropy_min_length: int = 24
    entropy_threshold: float = 0.83

    def __post_init__(self) -> None:
        for name in ("extra_headers", "extra_keys"):
            value = getattr(self, name)
            if isinstance(value, str):
                value = (value,)
            object.__setattr__(self, name, tuple(sorted({str(v).lower() for v in value})))
        det = (self.detectors,) if isinstance(self.detectors, str) else tuple(self.detectors)
        unknown = sorted(set(det) - set(DETECTORS))
        if unknown:
            raise ValueError(f"unknown secret detector {unknown[0]!r}; known: "
                             f"{', '.join(DETECTORS)}")
        object.__setattr__(self, "detectors", tuple(d for d in DETECTORS if d in det))

    def extended(self, extra_headers: Iterable[str] = (), extra_keys: Iterable[str] = ()
                 ) -> RedactionPolicy:
        """This policy with more secret names (itself when there are none)."""
        extra_headers, extra_keys = tuple(extra_headers), tuple(extra_keys)
        if not extra_headers and not extra_keys:
            return self
        return replace(self, extra_headers=self.extra_headers + extra_headers,
                       extra_keys=self.extra_keys + extra_keys)

    def is_secret(self, name: str) -> bool:
        """True for a header, parameter or field name whose value must be redacted."""
        return self.enabled and _is_secret(self, str(name).lower())

    @property
    def active(self) -> tuple[str, ...]:
        """The value detectors in force (none when redaction is off)."""
        return self.detectors if self.enabled else ()

    @classmethod
    def from_config(cls, config) -> RedactionPolicy:
        """The policy of a :class:`~driftbayes.config.Config` (its ``redact`` section)."""
        r = config.redact
        return cls(r.enabled, r.extra_headers, r.extra_keys,
                   detectors=tuple(d for d in DETECTORS if d not in r.disable),
                   hash_sessions=r.hash_sessions, entropy_min_length=r.entropy_min_length,
                   entropy_threshold=r.entropy_threshold)


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
    """Headers with secret values replaced (by name, or the secrets :func:`scrub` finds in
    them); names are lower-cased."""
    p = _policy(policy, extra_headers, extra_keys)
    items = headers.items() if isinstance(headers, dict) else headers
    return {str(k).lower(): (REDACTED if p.is_secret(k) else scrub(v, p)) for k, v in items}


def redact_query(query: str, *, extra_headers: Iterable[str] = (), extra_keys: Iterable[str] = (),
                 policy: RedactionPolicy | None = None) -> str:
    """A query string with secret parameter values replaced (by name, or the secrets
    :func:`scrub` finds in names and values; order kept)."""
    p = _policy(policy, extra_headers, extra_keys)
    if not query or not p.enabled:
        return query
    pairs = parse_qsl(query.lstrip("?"), keep_blank_values=True)
    return urlencode([(scrub(k, p), REDACTED if p.is_secret(k) else scrub(v, p))
                      for k, v in pairs], safe="[]")


def redact_url(url: str, *, extra_headers: Iterable[str] = (), extra_keys: Iterable[str] = (),
               policy: RedactionPolicy | None = None) -> str:
    """A URL or path with its query string redacted, any ``user:password@`` removed and each
    path segment holding a secret replaced by its parameter (:func:`redact_path`)."""
    p = _policy(policy, extra_headers, extra_keys)
    if not p.enabled:
        return url
    url = re.sub(r"//[^/@\s]*:[^/@\s]*@", "//", url)
    head, sep, query = url.partition("?")
    if not sep:
        head, hsep, frag = head.partition("#")
        return redact_path(head, p) + (f"#{scrub(frag, p)}" if hsep else "")
    query, hsep, frag = query.partition("#")
    return (f"{redact_path(head, p)}?{redact_query(query, policy=p)}"
            + (f"#{scrub(frag, p)}" if hsep else ""))


def redact_json(value, *, extra_headers: Iterable[str] = (), extra_keys: Iterable[str] = (),
                policy: RedactionPolicy | None = None):
    """A JSON value with every secret-named field's value replaced, recursively, and the
    secrets :func:`scrub` finds in other strings (keys too) replaced."""
    p = _policy(policy, extra_headers, extra_keys)
    if not p.enabled:
        return value
    return _redact_json(value, p)


def _redact_json(value, p: RedactionPolicy):
    if isinstance(value, str):
        return scrub(value, p)
    if isinstance(value, dict):
        return {scrub(k, p): (REDACTED if p.is_secret(k) else _redact_json(v, p))
                for k, v in value.items()}
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
    name is secret, ``Bearer``/``Basic`` credentials, URL ``user:password@`` parts and the
    secrets the value detectors find (:func:`scrub`). Other secrets with no name beside them
    cannot be recognised: readers should not quote whole records.
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
    return scrub(_QUOTED.sub(pair, text), p)


# --------------------------------------------------------------------------------------------
# secrets caught by their value

_B64 = "A-Za-z0-9_\\-"
#: One pattern per regex-found detector (substring search; validators below for some).
_PATTERNS = {
    "jwt": rf"eyJ[{_B64}]{{2,}}\.ey[{_B64}]{{2,}}\.[{_B64}]*",
    "aws_key": r"(?<![A-Z0-9])(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|AROA|APKA|ASCA)"
               r"[A-Z0-9]{16}(?![A-Z0-9])",
    "github_token": r"(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{36,251}|"
                    r"github_pat_[A-Za-z0-9_]{22,255})",
    "slack_token": r"(?<![A-Za-z0-9])(?:xox[abposre]-[A-Za-z0-9-]{10,}|xapp-[0-9]-[A-Za-z0-9-]{10,}"
                   r"|hooks\.slack\.com/services/[A-Za-z0-9/_-]{16,})",
    "stripe_key": r"(?<![A-Za-z0-9])(?:(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{10,}|"
                  r"whsec_[A-Za-z0-9]{24,})",
    "card": r"(?<![0-9A-Za-z-])[2-6](?:[ -]?[0-9]){12,18}(?![0-9])",
    "email": r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}",
    "iban": r"(?<![A-Za-z0-9])[A-Z]{2}[0-9]{2}(?:[A-Z0-9]{11,30}|(?: [A-Z0-9]{4}){2,7}"
            r"(?: [A-Z0-9]{1,3})?)(?![A-Za-z0-9])",
    "ssn": r"(?<![0-9-])(?!000|666|9)[0-9]{3}-(?!00)[0-9]{2}-(?!0000)[0-9]{4}(?![0-9-])",
}
_FINDERS = {k: re.compile(v) for k, v in _PATTERNS.items()}
#: A cheap necessary condition for any detector (RE2-compatible, so Arrow can run it over a
#: column): text without a match holds no secret the detectors would find. Assumes
#: ``entropy_min_length`` >= 12.
SECRET_HINT = (r"@|eyJ|[A-Za-z0-9+/_-]{12,}|[0-9]{3}-[0-9]{2}-[0-9]{4}|[0-9](?:[ -]?[0-9]){12}"
               r"|[A-Z]{2}[0-9]{2} [A-Z0-9]{4}")
_HINT = re.compile(SECRET_HINT)
#: IBAN length per country (ISO 13616 registry, the common ones); others need 15–34 characters.
IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BR": 29, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20,
    "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18,
    "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IS": 26, "IT": 27, "JO": 30,
    "KW": 30, "KZ": 20, "LB": 28, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24,
    "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24, "PL": 28,
    "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24, "SE": 24, "SI": 19, "SK": 24,
    "SM": 27, "TN": 24, "TR": 26, "UA": 29, "VG": 24, "XK": 20,
}
_TOKEN_CHARS = "A-Za-z0-9+/_\\-"  # base64 / base64url; "=" only as padding
_HEXLIKE = re.compile(r"[0-9a-fA-F_\-.]+")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def luhn_ok(digits: str) -> bool:
    """Whether a digit string passes the Luhn checksum."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


#: Card brands: (first digits, allowed lengths); a card number must fit one and pass Luhn.
CARD_BRANDS = (
    (("4",), (16, 19)),                                                   # Visa
    (("51", "52", "53", "54", "55"), (16,)),                              # Mastercard
    (tuple(str(i) for i in range(2221, 2721)), (16,)),                    # Mastercard 2-series
    (("34", "37"), (15,)),                                                # Amex
    (("300", "301", "302", "303", "304", "305", "36", "38", "39"), (14, 16, 19)),  # Diners
    (("35",), (16, 17, 18, 19)),                                          # JCB
    (("6011", "644", "645", "646", "647", "648", "649", "65", "62"), (16, 17, 18, 19)),
)
#: File extensions of static assets: the ``email`` detector ignores ``logo@2x.png``, the
#: ``entropy`` detector content-hashed names such as ``Xj3…Q6E.woff2`` in path segments.
STATIC_EXTENSIONS = frozenset({
    "js", "mjs", "css", "map", "png", "jpg", "jpeg", "gif", "svg", "webp", "avif", "ico",
    "bmp", "tif", "tiff", "woff", "woff2", "ttf", "otf", "eot", "mp3", "mp4", "webm", "ogg",
    "wav", "pdf", "html", "htm", "txt", "xml", "json", "wasm", "zip", "gz",
})


def card_ok(digits: str) -> bool:
    """Whether a digit string is a card number: a known brand's prefix and length, and Luhn."""
    return any(len(digits) in lengths and digits.startswith(prefixes)
               for prefixes, lengths in CARD_BRANDS) and luhn_ok(digits)


def iban_ok(text: str) -> bool:
    """Whether ``text`` (spaces allowed) is an IBAN: its country's length and mod-97 = 1."""
    s = text.replace(" ", "")
    want = IBAN_LENGTHS.get(s[:2])
    if (len(s) != want) if want else not 15 <= len(s) <= 34:
        return False
    return int("".join(str(int(c, 36)) for c in s[4:] + s[:4])) % 97 == 1


def shannon_bits(text: str) -> float:
    """Shannon entropy of the characters of ``text``, bits per character."""
    n = len(text)
    if not n:
        return 0.0
    return -sum(c / n * math.log2(c / n) for c in Counter(text).values())


def is_high_entropy(token: str, min_length: int = 24, threshold: float = 0.83) -> bool:
    """The ``entropy`` rule for one token of ``[A-Za-z0-9+/=_-]``.

    True when the token

    - is at least ``min_length`` long and holds a letter and a digit;
    - is not hex-like (hex digits and ``-_.`` only: content hashes, UUIDs and trace ids are
      ids, not secrets; in paths they are ``{hash}`` / ``{uuid}`` already);
    - mixes upper and lower case with at least 30 % of adjacent letter pairs switching case
      (random text: 50 %; CamelCase and ``Snake_Case`` words: about 15 %), or, in one case
      only (base36), switches between letters and digits at least ``len / 6`` times, so
      slugs such as ``logstash-monitorama-2013`` (no switch) stay;
    - has a Shannon entropy of at least ``threshold * log2(min(len, A))`` bits per character,
      ``A`` = 64 with mixed case, 26 without (random base62 clears 0.83 in 98–99 % of draws
      at 24–40 characters; English identifiers such as ``GetUserProfileInformationV2Handler``
      score about 0.79).
    """
    if len(token) < min_length or _HEXLIKE.fullmatch(token):
        return False
    upper, lower = _UPPER.search(token), _LOWER.search(token)
    if not _DIGIT.search(token) or not (upper or lower):
        return False
    if upper and lower:
        letters = _NOT_LETTER.sub("", token)
        flips = sum(a.isupper() != b.isupper() for a, b in zip(letters, letters[1:]))
        if flips < 0.3 * (len(letters) - 1):
            return False
    elif len(_SWITCH.findall(token)) < len(token) / 6:
        return False
    alphabet = 64 if upper and lower else 26
    return shannon_bits(token) >= threshold * math.log2(min(len(token), alphabet))


_UPPER, _LOWER, _DIGIT = re.compile("[A-Z]"), re.compile("[a-z]"), re.compile("[0-9]")
_NOT_LETTER = re.compile("[^A-Za-z]")
_SWITCH = re.compile("[A-Za-z](?=[0-9])|[0-9](?=[A-Za-z])")


@lru_cache(maxsize=64)
def _token_finder(min_length: int) -> re.Pattern[str]:
    return re.compile(rf"(?<![{_TOKEN_CHARS}])[{_TOKEN_CHARS}]{{{max(int(min_length), 1)},}}"
                      r"={0,2}(?![A-Za-z0-9+/_=-])")


def find_secrets(text: str, policy: RedactionPolicy | None = None) -> list[tuple[int, int, str]]:
    """Secrets recognised by their value in ``text``: sorted ``(start, end, detector)`` spans.

    Each detector of :data:`DETECTORS` in force runs over the whole text; a span overlapping
    an earlier detector's span is dropped. ``card`` needs a number of a known brand's prefix
    and length that passes Luhn (:func:`card_ok`; spaces or dashes between digits allowed);
    ``email`` a top-level domain that is not a static file extension; ``iban`` its country's
    length and a valid mod-97 check; ``entropy`` the rule of :func:`is_high_entropy`.
    """
    p = policy or _POLICY.get()
    if not text or not p.active or not _HINT.search(text):
        return []
    return list(_find(p, text)) if len(text) <= 4096 else _find_uncached(p, text)


@lru_cache(maxsize=65536)
def _find(p: RedactionPolicy, text: str) -> tuple[tuple[int, int, str], ...]:
    return tuple(_find_uncached(p, text))


def _find_uncached(p: RedactionPolicy, text: str) -> list[tuple[int, int, str]]:
    spans: list[tuple[int, int, str]] = []

    def free(a: int, b: int) -> bool:
        return all(b <= s or a >= e for s, e, _ in spans)

    for kind in p.active:
        if kind == "entropy":
            for m in _token_finder(p.entropy_min_length).finditer(text):
                if free(*m.span()) and is_high_entropy(m.group(), p.entropy_min_length,
                                                       p.entropy_threshold):
                    spans.append((m.start(), m.end(), kind))
            continue
        if kind == "email" and "@" not in text:
            continue
        for m in _FINDERS[kind].finditer(text):
            value = m.group()
            if kind == "card" and not card_ok(value.replace(" ", "").replace("-", "")):
                continue
            if kind == "iban" and not iban_ok(value):
                continue
            if kind == "email" and value.rpartition(".")[2].lower() in STATIC_EXTENSIONS:
                continue  # logo@2x.png
            if free(*m.span()):
                spans.append((m.start(), m.end(), kind))
    return sorted(spans)


def scrub(text: str, policy: RedactionPolicy | None = None) -> str:
    """``text`` with every secret :func:`find_secrets` sees replaced by ``[REDACTED]``."""
    spans = find_secrets(text, policy) if isinstance(text, str) else ()
    if not spans:
        return text
    out, last = [], 0
    for start, end, _ in spans:
        out.append(text[last:start])
        out.append(REDACTED)
        last = end
    out.append(text[last:])
    return "".join(out)


def secret_segment(segment: str, policy: RedactionPolicy | None = None) -> str | None:
    """The template parameter for a path segment holding a secret (``{jwt}``, ``{email}``,
    ``{token}`` for the entropy rule, …), else None. The segment is percent-decoded first;
    a secret anywhere in it claims the whole segment."""
    if "%" in segment:
        segment = unquote(segment)
    spans = find_secrets(segment, policy)
    stem, dot, ext = segment.rpartition(".")
    if spans and dot and ext.lower() in STATIC_EXTENSIONS:  # app.Xk3…Q.js: an asset, not a key
        spans = [s for s in spans if s[2] != "entropy"]
    if not spans:
        return None
    kind = spans[0][2]
    return "{token}" if kind == "entropy" else f"{{{kind}}}"


def redact_path(path: str, policy: RedactionPolicy | None = None) -> str:
    """A path (no query) with each secret-holding segment replaced by its parameter."""
    p = policy or _POLICY.get()
    if not p.active or not path:
        return path
    parts = path.split("/")
    return "/".join((secret_segment(s, p) or s) if s else s for s in parts)


def hash_session(value: str) -> str:
    """A session id as stored: ``s-`` + 20 hex digits of its SHA-256 (the digest record mode
    and serve keep for session cookies). ``""`` and a digest stay themselves, and so do the
    ids the HAR reader derives from file name and page (``har:<file>#<page>``)."""
    if not value or _HASHED.fullmatch(value) or value.startswith("har:"):
        return value
    return "s-" + hashlib.sha256(value.encode("utf-8", "surrogateescape")).hexdigest()[:20]


_HASHED = re.compile(r"s-[0-9a-f]{20}")
