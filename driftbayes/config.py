"""The ``drift_learning`` configuration: knobs, validation, YAML files and dotted get/set.

Every knob is declared once, as a dataclass field built with :func:`knob` (type, default, range or
choices, help). That table drives parsing, validation, nearest-key suggestions, ``to_yaml``
comments and the CLI's ``config get/set``.

A config file either holds a ``drift_learning:`` block (other top-level keys, e.g. a whole
``mockforge.yaml`` with ``core:`` and ``routes:``, are ignored) or *is* the block's contents.
"""

from __future__ import annotations

import difflib
import io
import math
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError
from ruamel.yaml.util import load_yaml_guess_indent

from driftbayes.globs import learning_enabled, most_specific

BLOCK = "drift_learning"
MODES = ("behavioral", "statistical", "hybrid")
#: Where sessions are cut from when an event carries no session id (see driftbayes.io.enrich).
SESSION_KEYS = ("auto", "client", "user", "trace", "none")


#: Windows a run-length posterior tells apart (:mod:`driftbayes.changepoint`): runs of 1 … 31
#: windows, and longer.
RUN_WINDOWS = 31


def changepoint_background(hazard: float) -> float:
    """Change probability of a cell whose data cannot tell runs apart: the hazard's prior
    probability of a change within the last :data:`RUN_WINDOWS` windows."""
    return 1.0 - (1.0 - hazard) ** RUN_WINDOWS


class ConfigError(ValueError):
    """An invalid configuration; ``errors`` lists every problem found, one line each."""

    def __init__(self, errors: str | list[str]):
        self.errors = [errors] if isinstance(errors, str) else list(errors)
        super().__init__("\n".join(self.errors))


class GateUnreachableWarning(UserWarning):
    """A configuration under which learning can never change what the mock serves."""


# --------------------------------------------------------------------------- the knob table


@dataclass(frozen=True)
class Knob:
    """How one config key is parsed and checked.

    Parameters
    ----------
    kind : str
        ``bool``, ``int``, ``float``, ``duration``, ``str``, ``choice``, ``globmap``, ``path``
        (a file name or null), ``strlist`` (a list of names), ``rules`` (persona rules),
        ``synthetic`` or ``section`` (a nested block of knobs, the dataclass ``cls``).
    help : str
        One line for docs and ``to_yaml`` comments.
    range : str, optional
        Interval such as ``"[0, 1]"``, ``"(0, 1)"`` or ``"(0, inf)"``.
    choices : tuple of str
        Allowed values of a ``choice``.
    cls : type, optional
        The dataclass of a ``section``.
    """

    kind: str
    help: str
    range: str | None = None
    choices: tuple[str, ...] = ()
    cls: Any = None


_KIND_OF_DEFAULT = {bool: "bool", int: "int", float: "float", str: "str", dict: "globmap"}


def knob(default: Any, help: str, *, kind: str | None = None, range: str | None = None,
         choices: tuple[str, ...] = ()) -> Any:
    """A dataclass field carrying its :class:`Knob` (kind inferred from the default)."""
    spec = Knob(kind or ("choice" if choices else _KIND_OF_DEFAULT[type(default)]), help, range,
                choices)
    if isinstance(default, dict):
        return field(default_factory=dict, metadata={"knob": spec})
    return field(default=default, metadata={"knob": spec})


def _knobs(cls: type) -> dict[str, Knob]:
    return {f.name: f.metadata["knob"] for f in fields(cls) if "knob" in f.metadata}


# --------------------------------------------------------------------------- value checks

_NUM = r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(rf"({_NUM})\s*(ms|s|m|h|d)")
_DURATION = re.compile(rf"(?:\s*{_NUM}\s*(?:ms|s|m|h|d))+\s*")
_ISO = re.compile(
    rf"P(?:(?P<d>{_NUM})D)?(?:T(?:(?P<h>{_NUM})H)?(?:(?P<m>{_NUM})M)?(?:(?P<s>{_NUM})S)?)?",
    re.IGNORECASE,
)
_DURATION_HINT = "a duration such as 60s, 5m, 1h30m, 500ms, 90 (seconds) or PT1M"


def parse_duration(value: Any) -> float:
    """Seconds in a duration: ``60s``, ``5m``, ``1h``, ``1d``, ``500ms``, ``1h30m``, ``90``,
    ``PT1M``.

    Examples
    --------
    >>> parse_duration("1h30m"), parse_duration(90), parse_duration("PT1M"), parse_duration("500ms")
    (5400.0, 90.0, 60.0, 0.5)
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(_NUM, text):
            return float(text)
        if _DURATION.fullmatch(text):
            return sum(float(n) * _UNITS[u] for n, u in _PART.findall(text))
        iso = _ISO.fullmatch(text)
        if iso and any(iso.groupdict().values()) and not text.upper().endswith("T"):
            scale = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
            return sum(float(v) * scale[k] for k, v in iso.groupdict().items() if v)
    raise ValueError(f"expected {_DURATION_HINT}, got {_show(value)}")


def format_duration(seconds: float) -> str:
    """A duration as written back to YAML: ``60s``, ``1800s``, ``500ms``, ``1.5s``."""
    if float(seconds).is_integer():
        return f"{int(seconds)}s"
    if seconds < 1 and float(seconds * 1000).is_integer():
        return f"{int(seconds * 1000)}ms"
    return f"{seconds!r}s"


def _show(value: Any) -> str:
    return repr(str(value)) if isinstance(value, str) else str(value)


_YAML_BOOLS = {"true": True, "yes": True, "on": True, "y": True,
               "false": False, "no": False, "off": False, "n": False}


def _to_bool(value: Any) -> bool:
    """A YAML boolean; YAML 1.1 words (yes/no/on/off) are accepted too."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _YAML_BOOLS:
        return _YAML_BOOLS[value.strip().lower()]
    raise ValueError(f"expected true or false, got {_show(value)}")


def _in_range(value: float, spec: str) -> bool:
    lo, hi = (float(x) for x in spec[1:-1].split(","))
    above = value > lo or (spec[0] == "[" and value == lo)
    below = value < hi or (spec[-1] == "]" and value == hi)
    return above and below


def _range_text(spec: str) -> str:
    lo, hi = (x.strip() for x in spec[1:-1].split(","))
    if hi == "inf":
        return f"(must be {'>=' if spec[0] == '[' else '>'} {lo})"
    return spec


def _coerce(spec: Knob, value: Any) -> Any:
    """The typed value of one knob; raises ValueError with the reason (no key name)."""
    kind = spec.kind
    if kind == "bool":
        out = _to_bool(value)
    elif kind in ("int", "float"):
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not number or math.isnan(value) or (kind == "int" and not float(value).is_integer()):
            raise ValueError(f"expected {'an integer' if kind == 'int' else 'a number'}, "
                             f"got {_show(value)}")
        out = int(value) if kind == "int" else float(value)
    elif kind == "duration":
        out = parse_duration(value)
    elif kind in ("str", "choice"):
        if not isinstance(value, str) or not value:
            raise ValueError(f"expected a non-empty string, got {_show(value)}")
        out = str(value)
        if spec.choices and out not in spec.choices:
            close = difflib.get_close_matches(out, spec.choices, n=1)
            raise ValueError(f"{_show(value)} is not one of {', '.join(spec.choices)}"
                             + (f"; did you mean {close[0]!r}?" if close else ""))
    elif kind == "globmap":
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise ValueError("expected a mapping of glob pattern to true/false, "
                             f"got {_show(value)}")
        out = {}
        for pattern, flag in value.items():
            try:
                out[str(pattern)] = _to_bool(flag)
            except ValueError as exc:
                raise ValueError(f"pattern {str(pattern)!r}: {exc}") from None
    elif kind == "path":
        if value is None:
            return None
        if not isinstance(value, (str, os.PathLike)) or not str(value):
            raise ValueError(f"expected a file path or null, got {_show(value)}")
        out = os.fspath(value)
    elif kind == "strlist":
        out = _strlist(value)
    elif kind == "rules":
        out = _persona_rules(value)
    else:
        raise TypeError(f"unknown knob kind {kind!r}")
    if spec.range and not _in_range(out, spec.range):
        raise ValueError(f"{_show(value)} is out of range {_range_text(spec.range)}")
    return out


def _strlist(value: Any) -> tuple[str, ...]:
    """A list of non-empty names (None → empty)."""
    if value is None:
        return ()
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"expected a list of names, got {_show(value)}")
    bad = [v for v in value if not isinstance(v, str) or not v.strip()]
    if bad:
        raise ValueError(f"expected a list of non-empty strings, got item {_show(bad[0])}")
    return tuple(v.strip() for v in value)


#: Prefix of a persona-rule pattern that is a regular expression (``re.search``), not a glob.
REGEX_PREFIX = "re:"


def check_pattern(pattern: Any) -> str:
    """A persona-rule pattern: a glob (``*Mobile*``) or ``re:<regex>``; raises ValueError."""
    if isinstance(pattern, bool) or not isinstance(pattern, (str, int, float)):
        raise ValueError(f"expected a glob or 're:<regex>' string, got {_show(pattern)}")
    pattern = str(pattern)
    if pattern.startswith(REGEX_PREFIX):
        try:
            re.compile(pattern[len(REGEX_PREFIX):])
        except re.error as exc:
            raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from None
    return pattern


def _persona_rule(rule: Any) -> dict[str, Any]:
    if not isinstance(rule, Mapping):
        raise ValueError(f"expected a mapping {{persona: name, when: {{field: pattern}}}}, "
                         f"got {_show(rule)}")
    unknown = [str(k) for k in rule if str(k) not in ("persona", "when")]
    if unknown:
        raise ValueError(f"unknown key {unknown[0]!r} (a rule has persona and when)")
    persona = rule.get("persona")
    if not isinstance(persona, str) or not persona:
        raise ValueError(f"persona: expected a non-empty string, got {_show(persona)}")
    when = rule.get("when")
    if not isinstance(when, Mapping) or not when:
        raise ValueError(f"when: expected a non-empty mapping of field or header to glob or "
                         f"'re:<regex>', got {_show(when)}")
    conditions = {}
    for key, pattern in when.items():
        if not isinstance(key, str) or not key:
            raise ValueError(f"when: expected field or header names, got {_show(key)}")
        try:
            conditions[key] = check_pattern(pattern)
        except ValueError as exc:
            raise ValueError(f"when.{key}: {exc}") from None
    return {"persona": persona, "when": conditions}


def _persona_rules(value: Any) -> tuple[dict[str, Any], ...]:
    """Ordered persona rules ``[{persona, when: {field_or_header: pattern}}]`` (None → none)."""
    if value is None:
        return ()
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"expected a list of {{persona: name, when: {{field: pattern}}}} rules, "
                         f"got {_show(value)}")
    out = []
    for i, rule in enumerate(value, start=1):
        try:
            out.append(_persona_rule(rule))
        except ValueError as exc:
            raise ValueError(f"rule {i}: {exc}") from None
    return tuple(out)


def _did_you_mean(word: str, valid: Any) -> str:
    close = difflib.get_close_matches(word, list(valid), n=1)
    return f"; did you mean {close[0]!r}?" if close else f"; valid: {', '.join(valid)}"


def _check(obj: Any, prefix: str) -> None:
    """Coerce and validate every knob of a dataclass instance in place (frozen-safe)."""
    errors = []
    for name, spec in _knobs(type(obj)).items():
        if spec.kind == "synthetic":
            continue
        if spec.kind == "section":
            value = getattr(obj, name)
            if isinstance(value, Mapping):  # Config(redact={...}) convenience
                unknown = [str(k) for k in value if str(k) not in _knobs(spec.cls)]
                if unknown:
                    errors.append(f"unknown key '{prefix}.{name}.{unknown[0]}'"
                                  + _did_you_mean(unknown[0], _knobs(spec.cls)))
                    continue
                try:
                    object.__setattr__(obj, name, spec.cls(**value))
                except ConfigError as exc:
                    errors.extend(exc.errors)
            elif not isinstance(value, spec.cls):
                errors.append(f"{prefix}.{name}: expected a {spec.cls.__name__} or a mapping")
            continue
        try:
            object.__setattr__(obj, name, _coerce(spec, getattr(obj, name)))
        except ValueError as exc:
            errors.append(f"{prefix}.{name}: {exc}")
    if errors:
        raise ConfigError(errors)


# --------------------------------------------------------------------------- dataclasses


@dataclass(frozen=True)
class SyntheticPrior:
    """What the mock does before it has learned anything (the prior of every cell)."""

    latency_median_ms: float = knob(100.0, "median latency of the synthetic log-normal, ms",
                                    range="(0, inf)")
    latency_sigma: float = knob(0.6, "log-scale sd of the synthetic latency log-normal",
                                range="(0, inf)")
    status: int = knob(200, "status served on success", range="[100, 599]")
    error_status: int = knob(500, "status served on error", range="[400, 599]")
    error_rate: float = knob(0.01, "share of responses with error_status", range="[0, 1)")
    think_time_median_ms: float = knob(1000.0, "median gap between a session's requests, ms",
                                       range="(0, inf)")
    think_time_sigma: float = knob(1.0, "log-scale sd of the synthetic think time",
                                   range="(0, inf)")
    rate_per_s: float = knob(0.1, "synthetic request rate per endpoint x persona, 1/s",
                             range="(0, inf)")
    session_length: float = knob(5.0, "mean requests per session", range="[1, inf)")
    prior_strength: float = knob(3.0, "pseudo-observations the synthetic prior is worth to a "
                                 "cell without data (it fades as data comes: prior_fade)",
                                 range="(0, inf)")

    def __post_init__(self) -> None:
        _check(self, f"{BLOCK}.synthetic")

    def to_dict(self) -> dict[str, Any]:
        """Field name → value."""
        return {name: getattr(self, name) for name in _knobs(SyntheticPrior)}


@dataclass(frozen=True)
class RedactConfig:
    """The ``redact`` section: which secrets are removed on the way in (see driftbayes.redact)."""

    enabled: bool = knob(True, "redact secrets (Authorization, cookies, API keys, tokens) on the "
                         "way in; false only for traffic without real secrets")
    extra_headers: tuple[str, ...] = knob((), "more header names to redact (case-insensitive, "
                                          "globs ok)", kind="strlist")
    extra_keys: tuple[str, ...] = knob((), "more query-parameter / JSON-field names to redact "
                                       "(case-insensitive, globs ok)", kind="strlist")
    disable: tuple[str, ...] = knob((), "value detectors switched off: jwt, aws_key, "
                                    "github_token, slack_token, stripe_key, card, email, iban, "
                                    "ssn, entropy (docs/redaction.md)", kind="strlist")
    hash_sessions: bool = knob(True, "store session ids given by a recording as s-<sha256>")
    entropy_min_length: int = knob(24, "shortest token the entropy detector judges",
                                   range="[8, inf)")
    entropy_threshold: float = knob(0.83, "entropy floor, share of log2(min(length, 64)) bits "
                                    "per character", range="(0, 1]")

    def __post_init__(self) -> None:
        _check(self, f"{BLOCK}.redact")
        from driftbayes.redact import DETECTORS

        unknown = [d for d in self.disable if d not in DETECTORS]
        if unknown:
            raise ConfigError([f"{BLOCK}.redact.disable: unknown detector {unknown[0]!r}"
                               + _did_you_mean(unknown[0], DETECTORS)])

    def to_dict(self) -> dict[str, Any]:
        """Field name → YAML-ready value."""
        return {"enabled": self.enabled, "extra_headers": list(self.extra_headers),
                "extra_keys": list(self.extra_keys), "disable": list(self.disable),
                "hash_sessions": self.hash_sessions,
                "entropy_min_length": self.entropy_min_length,
                "entropy_threshold": self.entropy_threshold}


@dataclass(frozen=True)
class InputLimits:
    """The ``limits`` section: what a reader accepts from one input record.

    A record outside these limits is a *bad record* (docs/input-limits.md): skipped, counted and
    reported as ``file:line: field: reason`` (``learn --strict`` stops there instead). The limits
    keep hostile or broken input from moving the learner's clock, distorting latencies or
    bloating the state; no bad record changes what is learned from the good ones.
    """

    max_clock_skew: float = knob(
        86400.0, "a timestamp more than this from the stream's clock (the state's last event "
        "time, else the median of the stream's first batch, then the latest accepted event) is "
        "bad unless clock_quorum of its 16 neighbouring records agree with it within this "
        "skew (a real gap or an older file)", kind="duration", range="(0, inf)")
    clock_quorum: int = knob(
        4, "records among a timestamp's 16 neighbours (8 before, 8 after) that must lie "
        "within max_clock_skew of it for a jump beyond max_clock_skew to be accepted",
        range="[1, 16]")
    min_year: int = knob(1970, "timestamps before 1 January of this year are bad",
                         range="[1970, 9999]")
    max_year: int = knob(2100, "timestamps from 1 January of this year on are bad",
                         range="[1971, 9999]")
    max_latency_ms: float = knob(3.6e6, "latencies above this (ms; default 1 hour) are bad, as "
                                 "are negative and infinite ones", range="(0, inf)")
    max_path_chars: int = knob(8192, "longest path / endpoint template, characters",
                               range="[1, inf)")
    max_name_chars: int = knob(256, "longest method, persona or session id, characters",
                               range="[1, inf)")
    max_header_chars: int = knob(8192, "longest header value, query string, user agent or "
                                 "client id, characters", range="[1, inf)")

    def __post_init__(self) -> None:
        _check(self, f"{BLOCK}.limits")
        if self.max_year <= self.min_year:
            raise ConfigError(f"{BLOCK}.limits.max_year: must be after min_year "
                              f"({self.min_year}), got {self.max_year}")

    def to_dict(self) -> dict[str, Any]:
        """Field name → YAML-ready value (the skew as a duration such as ``86400s``)."""
        out = {name: getattr(self, name) for name in _knobs(InputLimits)}
        out["max_clock_skew"] = format_duration(self.max_clock_skew)
        return out


@dataclass(frozen=True)
class Config:
    """The ``drift_learning`` block. Construct with keywords, :meth:`from_dict` or
    :func:`load_config`; invalid values raise :class:`ConfigError`.

    ``synthetic_endpoints`` maps endpoint globs to partial :class:`SyntheticPrior` overrides (YAML
    ``synthetic.endpoints``); see :meth:`synthetic_for`.
    """

    enabled: bool = knob(True, "master switch for learning")
    mode: str = knob("hybrid", "statistical (latency, errors, frequency), behavioral "
                     "(transitions, think times) or hybrid (both)", choices=MODES)
    sensitivity: float = knob(0.2, "share of the way applied moves toward the posterior per "
                              "open-gate interval", range="[0, 1]")
    decay: float = knob(0.05, "share of posterior evidence forgotten per update_interval",
                        range="[0, 1]")
    min_samples: int = knob(10, "effective (decay-weighted) samples the gate needs",
                            range="[0, inf)")
    update_interval: float = knob(60.0, "length of a learning window in event time",
                                  kind="duration", range="(0, inf)")
    persona_adaptation: bool = knob(True, "persona cells borrow strength from their endpoint")
    traffic_mirroring: bool = knob(True, "generate whole sessions from learned flows and rates")
    endpoint_learning: dict[str, bool] = knob({}, "endpoint glob -> learn?; a present map is "
                                              "opt-in, most specific match wins")
    persona_learning: dict[str, bool] = knob({}, "persona glob -> learn?; a present map is "
                                             "opt-in, most specific match wins")
    confidence_threshold: float = knob(0.5, "credible-interval contraction the gate needs",
                                       range="[0, 1]")
    credible_mass: float = knob(0.9, "probability mass of reported credible intervals",
                                range="(0, 1)")
    pooling_strength: float = knob(100.0, "pseudo-observations a persona borrows from its "
                                   "endpoint", range="[0, inf)")
    changepoint_z: float = knob(5.0, "adaptive forgetting of the request rate: a window whose "
                                "request count contradicts a cell's rate beyond this z-score "
                                "keeps only a quarter of its evidence (with changepoint_hazard 0 "
                                "also latency, think time and error rate); 0 = off",
                                range="[0, inf)")
    changepoint_hazard: float = knob(0.003, "online changepoint detection of latency, think time "
                                     "and error rate: prior probability of a change per window; "
                                     "0 = off (the z-test of changepoint_z instead)",
                                     range="[0, 1)")
    changepoint_threshold: float = knob(0.5, "change probability (a change within the last 31 "
                                        "windows) above which a cell's statistics are mixed by "
                                        "run length and its applied layer follows at once",
                                        range="(0, 1]")
    prior_fade: float = knob(1.0, "the synthetic prior fades as a cell's evidence grows: it is "
                             "worth prior_strength / (1 + n_eff / (prior_fade x prior_strength)) "
                             "pseudo-observations; 0 = never fades, else at least 1",
                             range="[0, inf)")
    session_gap: float = knob(1800.0, "inactivity gap that ends a session", kind="duration",
                              range="(0, inf)")
    persona_field: str = knob("persona", "event field the persona comes from")
    persona_header: str = knob("X-Persona", "request header the mock server reads the persona "
                               "from")
    session_key: str = knob("auto", "what sessions are cut from (at session_gap) for events "
                            "without a session id: auto (client, else user, else trace), "
                            "client, user, trace or none", choices=SESSION_KEYS)
    persona_map: str | None = knob(None, "YAML/JSON/CSV file of user or client id -> persona",
                                   kind="path")
    persona_rules: tuple[dict[str, Any], ...] = knob(
        (), "ordered [{persona: name, when: {field_or_header: glob or 're:regex'}}]; the first "
        "rule whose conditions all match wins", kind="rules")
    redact: RedactConfig = field(default_factory=RedactConfig, metadata={
        "knob": Knob("section", "secret redaction on the way in", cls=RedactConfig)})
    limits: InputLimits = field(default_factory=InputLimits, metadata={
        "knob": Knob("section", "what one input record may hold (docs/input-limits.md)",
                     cls=InputLimits)})
    synthetic: SyntheticPrior = field(default_factory=SyntheticPrior, metadata={
        "knob": Knob("synthetic", "synthetic prior; endpoints: {glob: {field: value}} overrides")})
    synthetic_endpoints: dict[str, dict[str, Any]] = field(default_factory=dict)
    _synthetic_cache: dict[str, SyntheticPrior] = field(
        default_factory=dict, init=False, repr=False, compare=False)
    #: Folder of the file the config was loaded from: relative ``persona_map`` paths resolve
    #: against it (None → the working directory).
    source_dir: Path | None = field(default=None, init=False, repr=False, compare=False)

    def resolve_path(self, name: str | os.PathLike) -> Path:
        """A file named in the config, relative to the config file's folder."""
        p = Path(name).expanduser()
        return p if p.is_absolute() or self.source_dir is None else self.source_dir / p

    def __post_init__(self) -> None:
        _check(self, BLOCK)
        if 0 < self.prior_fade < 1:
            raise ConfigError(f"{BLOCK}.prior_fade: {self.prior_fade:g} is below 1: the prior "
                              "would lose weight faster than data adds it (a first observation "
                              "would widen intervals); use 0 (never fades) or a value >= 1")
        background = changepoint_background(self.changepoint_hazard)
        if self.changepoint_hazard > 0 and background >= self.changepoint_threshold:
            raise ConfigError(
                f"{BLOCK}.changepoint_threshold: {self.changepoint_threshold:g} is not above "
                f"{background:.3g}, the change probability a cell without informative data "
                f"keeps under changepoint_hazard {self.changepoint_hazard:g} (1 - (1 - hazard)^"
                f"{RUN_WINDOWS}); every such cell would forget at every window: raise the "
                "threshold or lower the hazard")
        if not isinstance(self.synthetic, SyntheticPrior):
            raise ConfigError(f"{BLOCK}.synthetic: expected a SyntheticPrior")
        overrides: dict[str, dict[str, Any]] = {}
        for pattern, override in self.synthetic_endpoints.items():
            path = f"{BLOCK}.synthetic.endpoints.{pattern}"
            overrides[str(pattern)] = {}
            for name, value in override.items():
                if name not in SYNTHETIC_KNOBS:
                    raise ConfigError(f"unknown key '{path}.{name}'"
                                      + _did_you_mean(name, SYNTHETIC_KNOBS))
                try:
                    overrides[str(pattern)][name] = _coerce(SYNTHETIC_KNOBS[name], value)
                except ValueError as exc:
                    raise ConfigError(f"{path}.{name}: {exc}") from None
        object.__setattr__(self, "synthetic_endpoints", overrides)

    # ---- queries the learner makes

    def synthetic_for(self, endpoint: str) -> SyntheticPrior:
        """The synthetic prior of ``endpoint``: the global one with the most specific override.

        Only the most specific matching ``synthetic.endpoints`` entry applies; fields it does
        not set come from the global ``synthetic`` values (not from less specific overrides).
        """
        prior = self._synthetic_cache.get(endpoint)
        if prior is None:
            override = most_specific(self.synthetic_endpoints, endpoint)
            prior = replace(self.synthetic, **override) if override else self.synthetic
            self._synthetic_cache[endpoint] = prior
        return prior

    def endpoint_enabled(self, name: str) -> bool:
        """Whether ``name`` (e.g. ``"GET /api/users/{id}"``) is learned (False if disabled)."""
        return self.enabled and learning_enabled(self.endpoint_learning, name)

    def persona_enabled(self, persona: str) -> bool:
        """Whether traffic of ``persona`` is learned, per ``persona_learning`` (False if
        disabled)."""
        return self.enabled and learning_enabled(self.persona_learning, persona)

    def learns(self, kind: str) -> bool:
        """Whether the mode learns a model ``kind`` (``latency``, ``errors``, ``frequency``,
        ``transitions``, ``think_time``); False when ``enabled`` is false."""
        from driftbayes.kinds import REGISTRY

        if kind not in REGISTRY:
            raise ValueError(f"unknown model kind {kind!r}; valid: {', '.join(REGISTRY)}")
        group = "behavioral" if REGISTRY[kind].behavioral else "statistical"
        return self.enabled and self.mode in (group, "hybrid")

    def diagnostics(self) -> list[str]:
        """Why, if at all, this config stops learning from changing the mock (one line each)."""
        notes = []
        if not self.enabled:
            notes.append("enabled is false: nothing is learned and the mock keeps serving the "
                         "synthetic prior")
        if self.confidence_threshold >= 1:
            notes.append(f"confidence_threshold {self.confidence_threshold:g} can never be "
                         "reached: confidence = 1 - sqrt(k/(k+n)) stays below 1 for any finite "
                         "effective sample count n, so the gate never opens")
        if self.decay >= 1 and self.min_samples > 0:
            rate = self.min_samples / self.update_interval
            notes.append(f"decay 1 forgets all evidence at every update_interval boundary, so "
                         f"the gate (min_samples {self.min_samples}) can only open when a single "
                         f"update_interval ({format_duration(self.update_interval)}) alone holds "
                         f">= {self.min_samples} events, i.e. >= {rate:.3g} events/s in a cell")
        if self.sensitivity == 0:
            notes.append("sensitivity 0: applied never moves toward the posterior, so the mock "
                         "keeps serving the synthetic prior whatever is learned")
        for key, what in (("endpoint_learning", "endpoint"), ("persona_learning", "persona")):
            rules = getattr(self, key)
            if rules and not any(rules.values()):
                notes.append(f"{key} has no pattern set to true; a present map makes learning "
                             f"opt-in, so no {what} is learned")
        return notes

    # ---- conversions

    @classmethod
    def from_dict(cls, d: Mapping | None, source: str = "<dict>", *, warn: bool = True) -> Config:
        """Config from a mapping: a whole file with a ``drift_learning`` key, or the block itself.

        Mappings loaded by ruamel.yaml carry line numbers, which errors then include. Every
        problem is collected and raised together as one :class:`ConfigError`; with ``warn``,
        :meth:`diagnostics` are issued as :class:`GateUnreachableWarning`.
        """
        reader = _Reader(source)
        values = reader.section(_find_block(d, source), BLOCK, CONFIG_KNOBS)
        if reader.errors:
            raise ConfigError(reader.errors)
        cfg = cls(**values)
        if warn:
            for note in cfg.diagnostics():
                warnings.warn(f"{source}: {note}", GateUnreachableWarning, stacklevel=2)
        return cfg

    def to_dict(self) -> dict[str, Any]:
        """The block as plain YAML-ready values (durations as ``60s``); round-trips."""
        out: dict[str, Any] = {}
        for name, spec in _knobs(Config).items():
            value = getattr(self, name)
            if spec.kind == "duration":
                value = format_duration(value)
            elif spec.kind == "globmap":
                value = dict(value)
            elif spec.kind == "synthetic":
                value = {**value.to_dict(),
                         "endpoints": {g: dict(o) for g, o in self.synthetic_endpoints.items()}}
            elif spec.kind == "section":
                value = value.to_dict()
            elif spec.kind == "strlist":
                value = list(value)
            elif spec.kind == "rules":
                value = [{"persona": r["persona"], "when": dict(r["when"])} for r in value]
            out[name] = value
        return out

    def to_yaml(self, comments: bool = True) -> str:
        """The config as a ``drift_learning:`` YAML block, each key commented with its help."""
        block = CommentedMap(self.to_dict())
        synthetic = block["synthetic"] = CommentedMap(block["synthetic"])
        redact = block["redact"] = CommentedMap(block["redact"])
        limits = block["limits"] = CommentedMap(block["limits"])
        if comments:
            for mapping, cls, indent in ((block, Config, 2), (synthetic, SyntheticPrior, 4),
                                         (redact, RedactConfig, 4), (limits, InputLimits, 4)):
                width = max(len(f"{k}: {v}") for k, v in mapping.items()
                            if not isinstance(v, (dict, list)))
                for name, spec in _knobs(cls).items():
                    text = spec.help + (f"; {spec.range}" if spec.range else "")
                    mapping.yaml_add_eol_comment(text, name, column=indent + width + 2)
        out = io.StringIO()
        _yaml().dump(CommentedMap({BLOCK: block}), out)
        return out.getvalue()


CONFIG_KNOBS = _knobs(Config)
SYNTHETIC_KNOBS = _knobs(SyntheticPrior)
REDACT_KNOBS = _knobs(RedactConfig)
LIMIT_KNOBS = _knobs(InputLimits)


# --------------------------------------------------------------------------- reading mappings


def _line_of(mapping: Any, key: Any) -> int | None:
    """1-based line of ``key`` in a ruamel.yaml mapping, if known."""
    try:
        return mapping.lc.key(key)[0] + 1
    except (AttributeError, KeyError, TypeError, IndexError):
        return None


def _item_line(seq: Any, index: int) -> int | None:
    """1-based line of item ``index`` in a ruamel.yaml sequence, if known."""
    try:
        return seq.lc.item(index)[0] + 1
    except (AttributeError, KeyError, TypeError, IndexError):
        return None


def _looks_like_block(doc: Mapping) -> bool:
    """Whether a file without ``drift_learning:`` holds the block's keys at its top level."""
    return any(str(k) in CONFIG_KNOBS or difflib.get_close_matches(str(k), CONFIG_KNOBS, n=1)
               for k in doc)


def _find_block(doc: Any, source: str) -> Mapping:
    if doc is None:
        return {}
    if not isinstance(doc, Mapping):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {_show(doc)}")
    if BLOCK in doc:
        block = doc[BLOCK]
        if block is not None and not isinstance(block, Mapping):
            where = f"{source}:{_line_of(doc, BLOCK)}" if _line_of(doc, BLOCK) else source
            raise ConfigError(f"{where}: {BLOCK}: expected a mapping, got {_show(block)}")
        return block or {}
    if doc and not _looks_like_block(doc):
        raise ConfigError(f"{source}: no '{BLOCK}' block and no {BLOCK} keys at the top level "
                          f"(top-level keys: {', '.join(map(str, doc))})")
    return doc


class _Reader:
    """Walks a block, collecting typed values and every error with file:line."""

    def __init__(self, source: str):
        self.source = source
        self.errors: list[str] = []

    def fail(self, mapping: Any, key: Any, message: str) -> None:
        line = _line_of(mapping, key)
        self.errors.append(f"{self.source}:{line}: {message}" if line
                           else f"{self.source}: {message}")

    def section(self, mapping: Any, path: str, knobs: dict[str, Knob], extra: tuple[str, ...] = (),
                where: tuple[Any, Any] = (None, None)) -> dict[str, Any]:
        """Typed values of one mapping level (``where`` = its parent mapping and key, for the
        line); unknown keys are reported with a suggestion."""
        if mapping is None:
            return {}
        if not isinstance(mapping, Mapping):
            self.fail(*where, f"{path}: expected a mapping, got {_show(mapping)}")
            return {}
        values = {}
        for key, raw in mapping.items():
            name = str(key)
            if name in extra:
                continue
            if name not in knobs:
                self.fail(mapping, key, f"unknown key '{path}.{name}'"
                          + _did_you_mean(name, [*knobs, *extra]))
            elif knobs[name].kind == "synthetic":
                values["synthetic"], values["synthetic_endpoints"] = self.synthetic(
                    raw, f"{path}.{name}", (mapping, key))
            elif knobs[name].kind == "globmap" and isinstance(raw, Mapping):
                values[name] = self.globmap(raw, f"{path}.{name}")
            elif knobs[name].kind == "section":
                cls = knobs[name].cls
                values[name] = cls(**self.section(raw, f"{path}.{name}", _knobs(cls),
                                                  where=(mapping, key)))
            elif knobs[name].kind == "rules" and isinstance(raw, (list, tuple)):
                values[name] = self.rules(raw, f"{path}.{name}")
            else:
                try:
                    values[name] = _coerce(knobs[name], raw)
                except ValueError as exc:
                    self.fail(mapping, key, f"{path}.{name}: {exc}")
        return values

    def globmap(self, rules: Mapping, path: str) -> dict[str, bool]:
        """Glob → bool entries, each error on its own line."""
        values = {}
        for pattern, flag in rules.items():
            try:
                values[str(pattern)] = _to_bool(flag)
            except ValueError as exc:
                self.fail(rules, pattern, f"{path}.{pattern}: {exc}")
        return values

    def rules(self, rules: list, path: str) -> tuple[dict[str, Any], ...]:
        """Persona rules, each error on the line of its rule."""
        values = []
        for i, rule in enumerate(rules):
            try:
                values.append(_persona_rule(rule))
            except ValueError as exc:
                line = _item_line(rules, i)
                where = f"{self.source}:{line}" if line else self.source
                self.errors.append(f"{where}: {path}: rule {i + 1}: {exc}")
        return tuple(values)

    def synthetic(self, raw: Any, path: str,
                  where: tuple[Any, Any]) -> tuple[SyntheticPrior, dict[str, dict]]:
        """The global synthetic prior and its per-endpoint overrides."""
        values = self.section(raw, path, SYNTHETIC_KNOBS, extra=("endpoints",), where=where)
        endpoints = raw.get("endpoints") if isinstance(raw, Mapping) else None
        if endpoints is not None and not isinstance(endpoints, Mapping):
            self.fail(raw, "endpoints", f"{path}.endpoints: expected a mapping of endpoint glob "
                      f"to synthetic overrides, got {_show(endpoints)}")
            endpoints = None
        overrides = {str(glob): self.section(over, f"{path}.endpoints.{glob}", SYNTHETIC_KNOBS,
                                             where=(endpoints, glob))
                     for glob, over in (endpoints or {}).items()}
        return SyntheticPrior(**values), overrides


# --------------------------------------------------------------------------- files


def _mapping_indent(text: str) -> int:
    """Indent of the first nested mapping in ``text`` (2 if none)."""
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    for parent, child in zip(lines, lines[1:]):
        depth = len(child) - len(child.lstrip()) - (len(parent) - len(parent.lstrip()))
        if parent.rstrip().endswith(":") and depth > 0 and not child.lstrip().startswith("-"):
            return depth
    return 2


def _yaml(text: str = "") -> YAML:
    """A round-trip YAML keeping the comments, quotes and indentation of ``text``."""
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096
    sequence, offset = 2, 0
    try:
        _, guessed, guessed_offset = load_yaml_guess_indent(text)
        if guessed_offset is not None:
            sequence, offset = guessed, guessed_offset
    except YAMLError:
        pass
    yaml.indent(mapping=_mapping_indent(text), sequence=sequence, offset=offset)
    return yaml


def _parse(text: str, source: str) -> Any:
    try:
        return _yaml(text).load(text)
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{where}: invalid YAML: {problem}") from None


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"config path is a directory, not a file: {path}") from None


def load_config(path: str | os.PathLike | None = None) -> Config:
    """Load the ``drift_learning`` config from a YAML file (None → defaults).

    Raises
    ------
    ConfigError
        Missing file, invalid YAML, unknown keys, bad types or out-of-range values, each
        reported as ``file:line: key: problem``.
    """
    if path is None:
        return Config()
    source = str(path)
    cfg = Config.from_dict(_parse(_read_text(Path(path)), source), source)
    object.__setattr__(cfg, "source_dir", Path(path).resolve().parent)
    return cfg


# --------------------------------------------------------------------------- dotted get / set


def _resolve(key: str) -> tuple[list[str], Knob | None]:
    """YAML key path of a dotted key, and the knob of its leaf (None for mappings).

    Glob patterns may contain dots: ``endpoint_learning.<glob>`` and
    ``synthetic.endpoints.<glob>[.<field>]`` take the rest of the key as the glob.
    """
    rest = key.removeprefix(f"{BLOCK}.")
    head, _, tail = rest.partition(".")
    if head not in CONFIG_KNOBS:
        raise ConfigError(f"unknown key '{BLOCK}.{head}'" + _did_you_mean(head, CONFIG_KNOBS))
    spec = CONFIG_KNOBS[head]
    if spec.kind == "globmap":
        return ([head, tail], Knob("bool", "")) if tail else ([head], None)
    if spec.kind == "section":
        if not tail:
            return [head], None
        sub = _knobs(spec.cls)
        if tail not in sub:
            raise ConfigError(f"unknown key '{BLOCK}.{head}.{tail}'" + _did_you_mean(tail, sub))
        return [head, tail], sub[tail]
    if spec.kind != "synthetic":
        if tail:
            raise ConfigError(f"'{BLOCK}.{head}' is a {spec.kind}, it has no key '{tail}'")
        return [head], spec
    if not tail:
        return [head], None
    sub, _, glob = tail.partition(".")
    if sub in SYNTHETIC_KNOBS and not glob:
        return [head, sub], SYNTHETIC_KNOBS[sub]
    if sub != "endpoints":
        raise ConfigError(f"unknown key '{BLOCK}.{head}.{sub}'"
                          + _did_you_mean(sub, [*SYNTHETIC_KNOBS, "endpoints"]))
    if not glob:
        return [head, sub], None
    pattern, _, last = glob.rpartition(".")
    if pattern and last in SYNTHETIC_KNOBS:
        return [head, sub, pattern, last], SYNTHETIC_KNOBS[last]
    return [head, sub, glob], None


def get_key(path: str | os.PathLike | None, key: str) -> Any:
    """Value of a dotted key (``drift_learning.`` prefix optional) as written in YAML.

    Durations come back as ``60s``-style strings, maps as dicts; a glob entry that is not set
    gives None.
    """
    keys, _ = _resolve(key)
    node: Any = load_config(path).to_dict()
    for k in keys:
        if not isinstance(node, dict) or k not in node:
            return None
        node = node[k]
    return node


def _parse_value(text: str, spec: Knob | None) -> Any:
    """A CLI string as YAML (so ``true``, ``0.3``, ``{"/api/*": true}`` get their types);
    strings stay strings for string knobs and when the text is not valid YAML."""
    if spec is not None and spec.kind in ("str", "choice"):
        return text
    if spec is not None and spec.kind == "path":
        return None if text.strip() in ("", "null", "~") else text
    try:
        value = YAML(typ="safe", pure=True).load(text)
    except YAMLError:
        value = text
    if spec is not None and spec.kind == "strlist" and isinstance(value, str):
        return [value]  # `config set redact.extra_headers X-Session` sets a one-name list
    return value


def _block_for_writing(doc: CommentedMap) -> CommentedMap:
    if BLOCK not in doc and doc and _looks_like_block(doc):
        return doc
    if not isinstance(doc.get(BLOCK), Mapping):
        doc[BLOCK] = CommentedMap()
    return doc[BLOCK]


def set_key(path: str | os.PathLike, key: str, value: str) -> Config:
    """Set one dotted key in a config file, keeping its comments and other top-level keys.

    ``value`` is parsed by the key's type (``true``, ``0.3``, ``5m``, ``{"/api/*": true}``);
    ``endpoint_learning.<glob>`` sets one pattern. The whole result is validated first: an
    invalid value raises :class:`ConfigError` and leaves the file untouched. The file (created
    with a ``drift_learning:`` block if missing) is replaced atomically.

    Returns
    -------
    Config
        The config now in the file.
    """
    path = Path(path)
    source = str(path)
    keys, spec = _resolve(key)
    text = _read_text(path) if path.exists() else ""
    doc = _parse(text, source)
    if doc is None:
        doc = CommentedMap()
    if not isinstance(doc, CommentedMap):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {_show(doc)}")
    node = _block_for_writing(doc)
    for k in keys[:-1]:
        if not isinstance(node.get(k), Mapping):
            node[k] = CommentedMap()
        node = node[k]
    node[keys[-1]] = _parse_value(value, spec)

    out = io.StringIO()
    _yaml(text).dump(doc, out)
    new_text = out.getvalue()
    cfg = Config.from_dict(_parse(new_text, source), source)  # raises before anything is written
    _atomic_write(path, new_text)
    return cfg


def _atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to a temp file beside ``path``, then rename it over ``path``."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        if path.exists():
            shutil.copymode(path, tmp)
        else:
            os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------- gate arithmetic


def steady_state_n_eff(events_per_interval: float, decay: float) -> float:
    """Fixed point of ``n ← (1 - decay)·n + r``: ``r / decay`` (inf for decay 0, 0 for r = 0).

    Examples
    --------
    >>> steady_state_n_eff(2.0, 0.05)
    40.0
    """
    if events_per_interval < 0 or not 0 <= decay <= 1:
        raise ValueError("need events_per_interval >= 0 and decay in [0, 1]")
    if events_per_interval == 0:
        return 0.0
    return math.inf if decay == 0 else events_per_interval / decay


def samples_for_confidence(threshold: float, prior_strength: float, fade: float = 0.0) -> float:
    """Effective samples needed for confidence ``threshold``: ``k·(1/(1-c)² - 1)`` (inf at 1);
    under ``prior_fade`` ``f`` the ``n`` with ``k·f·k/(f·k + n) + n = k/(1-c)²``.

    Examples
    --------
    >>> samples_for_confidence(0.5, 10.0), samples_for_confidence(0.5, 10.0, 1.0)
    (30.0, 37.9128784747792)
    """
    if threshold <= 0:
        return 0.0
    if threshold >= 1:
        return math.inf
    k = prior_strength
    target = k / (1 - threshold) ** 2
    if fade <= 0:
        return target - k
    fk = fade * k
    # n² + n·(fk − T) + fk·(k − T) = 0, the larger root (the left side rises with n)
    b, c = fk - target, fk * (k - target)
    return max(0.0, (-b + math.sqrt(b * b - 4 * c)) / 2)


def gate_reachable(cfg: Config, events_per_interval: float,
                   endpoint: str | None = None) -> tuple[bool, str]:
    """Whether a cell seeing ``events_per_interval`` events per interval can ever open the gate.

    Both gate conditions are checked at the steady state of decay: the effective sample count
    ``n_eff = r / decay`` against ``min_samples``, and the confidence ceiling
    ``1 - sqrt(k/(k' + n_eff))`` (``k`` = synthetic ``prior_strength`` of ``endpoint``, ``k'``
    what ``prior_fade`` leaves of it) against ``confidence_threshold``. The reason names every
    number.

    Examples
    --------
    >>> gate_reachable(Config(), 2.0)[0], gate_reachable(Config(), 1.0)[0]
    (True, False)
    """
    if not cfg.enabled:
        return False, "learning is disabled (enabled: false)"
    k = (cfg.synthetic_for(endpoint) if endpoint else cfg.synthetic).prior_strength
    from driftbayes.gating import confidence_ceiling  # the gate's own definition

    n_ss = steady_state_n_eff(events_per_interval, cfg.decay)
    ceiling = confidence_ceiling(n_ss, k, cfg.prior_fade)
    needed = samples_for_confidence(cfg.confidence_threshold, k, cfg.prior_fade)
    enough = n_ss >= cfg.min_samples
    confident = cfg.confidence_threshold < 1 and ceiling >= cfg.confidence_threshold
    reason = (
        f"{events_per_interval:g} events per update_interval "
        f"({format_duration(cfg.update_interval)}) with decay {cfg.decay:g} give a steady-state "
        f"n_eff = {n_ss:.4g} {'>=' if enough else '<'} min_samples {cfg.min_samples}; "
        f"confidence ceiling 1 - sqrt(k/(k'+n_eff)) = {ceiling:.3f} with prior_strength "
        f"k = {k:g} {'>=' if confident else '<'} confidence_threshold "
        f"{cfg.confidence_threshold:g} (needs n_eff >= {needed:.4g})"
    )
    reachable = enough and confident
    return reachable, ("gate reachable: " if reachable else "gate unreachable: ") + reason
