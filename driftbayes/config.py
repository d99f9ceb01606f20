"""The ``drift_learning`` configuration: pydantic models, YAML files and dotted get/set.

Every knob is declared once, as a field of a pydantic model — :class:`Config` and its sections
:class:`SyntheticPrior`, :class:`RedactConfig` and :class:`InputLimits`: type, default, range
(``Field(ge=..., lt=...)``) and help (``description``). Those fields drive validation, the error
texts, nearest-key suggestions, ``to_yaml`` comments and the CLI's ``config get/set``.

Pydantic collects every problem of a block; :class:`ConfigError` words each one for people (the
dotted key, the value, the allowed range or the nearest valid key) and, for a file, puts the line
it is on in front (ruamel.yaml's mappings know where each key was read).

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
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, get_args, get_origin, get_type_hints

import annotated_types as at
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PrivateAttr,
    Strict,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
    with_config,
)
from pydantic.fields import FieldInfo
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError
from ruamel.yaml.util import load_yaml_guess_indent
from typing_extensions import TypedDict, is_typeddict

from driftbayes.globs import learning_enabled, most_specific

BLOCK = "drift_learning"


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


# --------------------------------------------------------------------------- durations

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


# --------------------------------------------------------------------------- value types
# Scalars are strict (no "0.3" for a number, no 1 for true) with what YAML users write on top:
# yes/no/on/off, 10.0 for an integer, durations, null for an empty map or list.

_YAML_BOOLS = {"true": True, "yes": True, "on": True, "y": True,
               "false": False, "no": False, "off": False, "n": False}


def _yaml_bool(value: Any) -> Any:
    """YAML 1.1 words (yes/no/on/off) as booleans; anything else is left to the bool check."""
    return _YAML_BOOLS.get(value.strip().lower(), value) if isinstance(value, str) else value


def _integral(value: Any) -> Any:
    """An integral float (``10.0``) as an int; anything else is left to the int check."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _empty_if_none(empty: Any) -> BeforeValidator:
    """``null`` (an empty YAML key) read as ``empty``."""
    return BeforeValidator(lambda value: empty if value is None else value)


def _glob_map(value: Any) -> Any:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"expected a mapping of glob pattern to true/false, got {_show(value)}")
    return {str(pattern): flag for pattern, flag in value.items()}


def _path(value: Any) -> str | None:
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if value is not None and (not isinstance(value, str) or not value):
        raise ValueError(f"expected a file path or null, got {_show(value)}")
    return value


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


Bool = Annotated[bool, Strict(), BeforeValidator(_yaml_bool)]
Int = Annotated[int, Strict(), BeforeValidator(_integral)]
Float = Annotated[float, Strict()]
Name = Annotated[str, Strict(), StringConstraints(min_length=1)]
#: Seconds, read from ``60s``, ``5m``, ``PT1M`` or a number; written back as ``60s``.
Duration = Annotated[float, BeforeValidator(parse_duration),
                     PlainSerializer(format_duration, return_type=str)]
#: Glob pattern → learn? (``null`` → no map).
GlobMap = Annotated[dict[str, Bool], BeforeValidator(_glob_map)]
#: A file name, or null.
PathOrNone = Annotated[str | None, BeforeValidator(_path)]
_ListedName = Annotated[str, Strict(), StringConstraints(strip_whitespace=True, min_length=1)]
#: A list of non-empty names (``null`` → none).
Names = Annotated[tuple[_ListedName, ...], _empty_if_none(())]


@with_config(ConfigDict(extra="forbid"))
class PersonaRule(TypedDict):
    """One ``persona_rules`` entry: ``{persona: name, when: {field_or_header: pattern}}``."""

    persona: Name
    when: Annotated[dict[Name, Annotated[str, BeforeValidator(check_pattern)]],
                    Field(min_length=1)]


# --------------------------------------------------------------------------- models


class _Checked(type(BaseModel)):
    """Calling a knob class raises :class:`ConfigError` (nested blocks are validated by pydantic
    itself, without this call, so their errors come out once, with their full location)."""

    def __call__(cls, **data: Any) -> Any:
        try:
            return super().__call__(**data)
        except ValidationError as exc:
            raise ConfigError(_messages(exc, data, cls.at)) from None


class _Knobs(BaseModel, metaclass=_Checked):
    """A block of knobs: immutable, unknown keys refused, every problem a :class:`ConfigError`."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)
    #: Where the block sits under ``drift_learning`` (for error messages).
    at: ClassVar[tuple[str, ...]] = ()

    def replace(self, **changes: Any) -> Any:
        """A validated copy with ``changes`` (``dataclasses.replace`` for the knobs)."""
        return type(self)(**{**dict(self), **changes})

    def to_dict(self) -> dict[str, Any]:
        """Field name → YAML-ready value (durations as ``60s``, lists for tuples)."""
        return self.model_dump(mode="json")


class SyntheticPrior(_Knobs):
    """What the mock does before it has learned anything (the prior of every cell)."""

    at: ClassVar[tuple[str, ...]] = ("synthetic",)
    latency_median_ms: Float = Field(100.0, gt=0, description="median latency of the synthetic "
                                     "log-normal, ms")
    latency_sigma: Float = Field(0.6, gt=0, description="log-scale sd of the synthetic latency "
                                 "log-normal")
    status: Int = Field(200, ge=100, le=599, description="status served on success")
    error_status: Int = Field(500, ge=400, le=599, description="status served on error")
    error_rate: Float = Field(0.01, ge=0, lt=1, description="share of responses with "
                              "error_status")
    think_time_median_ms: Float = Field(1000.0, gt=0, description="median gap between a "
                                        "session's requests, ms")
    think_time_sigma: Float = Field(1.0, gt=0, description="log-scale sd of the synthetic think "
                                    "time")
    rate_per_s: Float = Field(0.1, gt=0, description="synthetic request rate per endpoint x "
                              "persona, 1/s")
    session_length: Float = Field(5.0, ge=1, description="mean requests per session")
    prior_strength: Float = Field(3.0, gt=0, description="pseudo-observations the synthetic "
                                  "prior is worth to a cell without data (it fades as data "
                                  "comes: prior_fade)")


def _partial(model: type[BaseModel], name: str) -> type:
    """A TypedDict of any subset of ``model``'s fields, checked like the model's."""
    fields = {k: Annotated[(f.annotation, *f.metadata)] if f.metadata else f.annotation
              for k, f in model.model_fields.items()}
    return with_config(ConfigDict(extra="forbid"))(TypedDict(name, fields, total=False))


#: Per-endpoint overrides of :class:`SyntheticPrior` (any subset of its fields).
SyntheticOverride = _partial(SyntheticPrior, "SyntheticOverride")


class RedactConfig(_Knobs):
    """The ``redact`` section: which secrets are removed on the way in (see driftbayes.redact)."""

    at: ClassVar[tuple[str, ...]] = ("redact",)
    enabled: Bool = Field(True, description="redact secrets (Authorization, cookies, API keys, "
                          "tokens) on the way in; false only for traffic without real secrets")
    extra_headers: Names = Field((), description="more header names to redact "
                                 "(case-insensitive, globs ok)")
    extra_keys: Names = Field((), description="more query-parameter / JSON-field names to redact "
                              "(case-insensitive, globs ok)")
    disable: Names = Field((), description="value detectors switched off: jwt, aws_key, "
                           "github_token, slack_token, stripe_key, card, email, iban, ssn, "
                           "entropy (docs/redaction.md)")
    hash_sessions: Bool = Field(True, description="store session ids given by a recording as "
                                "s-<sha256>")
    entropy_min_length: Int = Field(24, ge=8, description="shortest token the entropy detector "
                                    "judges")
    entropy_threshold: Float = Field(0.83, gt=0, le=1, description="entropy floor, share of "
                                     "log2(min(length, 64)) bits per character")

    @field_validator("disable")
    @classmethod
    def _known_detectors(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        from driftbayes.redact import DETECTORS

        unknown = [d for d in names if d not in DETECTORS]
        if unknown:
            raise ValueError(f"unknown detector {unknown[0]!r}" + _did_you_mean(unknown[0],
                                                                                 DETECTORS))
        return names


class InputLimits(_Knobs):
    """The ``limits`` section: what a reader accepts from one input record.

    A record outside these limits is a *bad record* (docs/input-limits.md): skipped, counted and
    reported as ``file:line: field: reason`` (``learn --strict`` stops there instead). The limits
    keep hostile or broken input from moving the learner's clock, distorting latencies or
    bloating the state; no bad record changes what is learned from the good ones.
    """

    at: ClassVar[tuple[str, ...]] = ("limits",)
    max_clock_skew: Duration = Field(
        86400.0, gt=0, description="a timestamp more than this from the stream's clock (the "
        "state's last event time, else the median of the stream's first batch, then the latest "
        "accepted event) is bad unless clock_quorum of its 16 neighbouring records agree with it "
        "within this skew (a real gap or an older file)")
    clock_quorum: Int = Field(
        4, ge=1, le=16, description="records among a timestamp's 16 neighbours (8 before, 8 "
        "after) that must lie within max_clock_skew of it for a jump beyond max_clock_skew to be "
        "accepted")
    min_year: Int = Field(1970, ge=1970, le=9999, description="timestamps before 1 January of "
                          "this year are bad")
    max_year: Int = Field(2100, ge=1971, le=9999, description="timestamps from 1 January of this "
                          "year on are bad")
    max_latency_ms: Float = Field(3.6e6, gt=0, description="latencies above this (ms; default 1 "
                                  "hour) are bad, as are negative and infinite ones")
    max_path_chars: Int = Field(8192, ge=1, description="longest path / endpoint template, "
                                "characters")
    max_name_chars: Int = Field(256, ge=1, description="longest method, persona or session id, "
                                "characters")
    max_header_chars: Int = Field(8192, ge=1, description="longest header value, query string, "
                                  "user agent or client id, characters")

    @field_validator("max_year")
    @classmethod
    def _after_min_year(cls, year: int, info: ValidationInfo) -> int:
        low = info.data.get("min_year")
        if low is not None and year <= low:
            raise ValueError(f"must be after min_year ({low}), got {year}")
        return year


class Config(_Knobs):
    """The ``drift_learning`` block. Construct with keywords, :meth:`from_dict` or
    :func:`load_config`; invalid values raise :class:`ConfigError`.

    ``synthetic_endpoints`` maps endpoint globs to partial :class:`SyntheticPrior` overrides (YAML
    ``synthetic.endpoints``); see :meth:`synthetic_for`. Two configs are equal when their knobs
    are (where they were loaded from does not count).
    """

    enabled: Bool = Field(True, description="master switch for learning")
    mode: Literal["behavioral", "statistical", "hybrid"] = Field(
        "hybrid", description="statistical (latency, errors, frequency), behavioral "
        "(transitions, think times) or hybrid (both)")
    sensitivity: Float = Field(0.2, ge=0, le=1, description="share of the way applied moves "
                               "toward the posterior per open-gate interval")
    decay: Float = Field(0.05, ge=0, le=1, description="share of posterior evidence forgotten per "
                         "update_interval")
    min_samples: Int = Field(10, ge=0, description="effective (decay-weighted) samples the gate "
                             "needs")
    update_interval: Duration = Field(60.0, gt=0, description="length of a learning window in "
                                      "event time")
    persona_adaptation: Bool = Field(True, description="persona cells borrow strength from their "
                                     "endpoint")
    traffic_mirroring: Bool = Field(True, description="generate whole sessions from learned flows "
                                    "and rates")
    endpoint_learning: GlobMap = Field(default_factory=dict, description="endpoint glob -> "
                                       "learn?; a present map is opt-in, most specific match wins")
    persona_learning: GlobMap = Field(default_factory=dict, description="persona glob -> learn?; "
                                      "a present map is opt-in, most specific match wins")
    confidence_threshold: Float = Field(0.5, ge=0, le=1, description="credible-interval "
                                        "contraction the gate needs")
    credible_mass: Float = Field(0.9, gt=0, lt=1, description="probability mass of reported "
                                 "credible intervals")
    pooling_strength: Float = Field(100.0, ge=0, description="pseudo-observations a persona "
                                    "borrows from its endpoint")
    changepoint_z: Float = Field(5.0, ge=0, description="adaptive forgetting of the request "
                                 "rate: a window whose request count contradicts a cell's rate "
                                 "beyond this z-score keeps only a quarter of its evidence (with "
                                 "changepoint_hazard 0 also latency, think time and error rate); "
                                 "0 = off")
    changepoint_hazard: Float = Field(0.003, ge=0, lt=1, description="online changepoint "
                                      "detection of latency, think time and error rate: prior "
                                      "probability of a change per window; 0 = off (the z-test "
                                      "of changepoint_z instead)")
    changepoint_threshold: Float = Field(0.5, gt=0, le=1, description="change probability (a "
                                         "change within the last 31 windows) above which a "
                                         "cell's statistics are mixed by run length and its "
                                         "applied layer follows at once")
    prior_fade: Float = Field(1.0, ge=0, description="the synthetic prior fades as a cell's "
                              "evidence grows: it is worth prior_strength / (1 + n_eff / "
                              "(prior_fade x prior_strength)) pseudo-observations; 0 = never "
                              "fades, else at least 1")
    session_gap: Duration = Field(1800.0, gt=0, description="inactivity gap that ends a session")
    persona_field: Name = Field("persona", description="event field the persona comes from")
    persona_header: Name = Field("X-Persona", description="request header the mock server reads "
                                 "the persona from")
    session_key: Literal["auto", "client", "user", "trace", "none"] = Field(
        "auto", description="what sessions are cut from (at session_gap) for events without a "
        "session id: auto (client, else user, else trace), client, user, trace or none")
    persona_map: PathOrNone = Field(None, description="YAML/JSON/CSV file of user or client id -> "
                                    "persona")
    persona_rules: Annotated[tuple[PersonaRule, ...], _empty_if_none(())] = Field(
        (), description="ordered [{persona: name, when: {field_or_header: glob or 're:regex'}}]; "
        "the first rule whose conditions all match wins")
    redact: Annotated[RedactConfig, _empty_if_none({})] = Field(
        default_factory=RedactConfig, description="secret redaction on the way in")
    limits: Annotated[InputLimits, _empty_if_none({})] = Field(
        default_factory=InputLimits, description="what one input record may hold "
        "(docs/input-limits.md)")
    synthetic: Annotated[SyntheticPrior, _empty_if_none({})] = Field(
        default_factory=SyntheticPrior, description="synthetic prior; endpoints: {glob: {field: "
        "value}} overrides")
    synthetic_endpoints: Annotated[
        dict[str, Annotated[SyntheticOverride, _empty_if_none({})]], _empty_if_none({})
    ] = Field(default_factory=dict, exclude=True)

    _synthetic_cache: dict[str, SyntheticPrior] = PrivateAttr(default_factory=dict)
    _source_dir: Path | None = PrivateAttr(None)

    @field_validator("changepoint_threshold")
    @classmethod
    def _above_background(cls, threshold: float, info: ValidationInfo) -> float:
        hazard = info.data.get("changepoint_hazard")
        if hazard and changepoint_background(hazard) >= threshold:
            raise ValueError(
                f"{threshold:g} is not above {changepoint_background(hazard):.3g}, the change "
                f"probability a cell without informative data keeps under changepoint_hazard "
                f"{hazard:g} (1 - (1 - hazard)^{RUN_WINDOWS}); every such cell would forget at "
                "every window: raise the threshold or lower the hazard")
        return threshold

    @field_validator("prior_fade")
    @classmethod
    def _fade_at_least_one(cls, fade: float) -> float:
        if 0 < fade < 1:
            raise ValueError(f"{fade:g} is below 1: the prior would lose weight faster than data "
                             "adds it (a first observation would widen intervals); use 0 (never "
                             "fades) or a value >= 1")
        return fade

    @model_validator(mode="before")
    @classmethod
    def _endpoints_beside_synthetic(cls, data: Any) -> Any:
        """YAML nests the overrides as ``synthetic.endpoints``; the model keeps them beside."""
        synthetic = data.get("synthetic") if isinstance(data, Mapping) else None
        if isinstance(synthetic, Mapping) and "endpoints" in synthetic:
            synthetic = dict(synthetic)
            data = {**data, "synthetic": synthetic,
                    "synthetic_endpoints": synthetic.pop("endpoints")}
        return data

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self.__dict__ == other.__dict__

    __hash__ = None  # dict-valued knobs, as before

    @property
    def source_dir(self) -> Path | None:
        """Folder of the file the config was loaded from: relative ``persona_map`` paths resolve
        against it (None → the working directory)."""
        return self._source_dir

    def resolve_path(self, name: str | os.PathLike) -> Path:
        """A file named in the config, relative to the config file's folder."""
        p = Path(name).expanduser()
        return p if p.is_absolute() or self.source_dir is None else self.source_dir / p

    # ---- queries the learner makes

    def synthetic_for(self, endpoint: str) -> SyntheticPrior:
        """The synthetic prior of ``endpoint``: the global one with the most specific override.

        Only the most specific matching ``synthetic.endpoints`` entry applies; fields it does
        not set come from the global ``synthetic`` values (not from less specific overrides).
        """
        prior = self._synthetic_cache.get(endpoint)
        if prior is None:
            override = most_specific(self.synthetic_endpoints, endpoint)
            prior = self.synthetic.model_copy(update=override) if override else self.synthetic
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
        block = _find_block(d, source)
        try:
            cfg = cls.model_validate(block)
        except ValidationError as exc:
            raise ConfigError(_messages(exc, block, source=source)) from None
        if warn:
            for note in cfg.diagnostics():
                warnings.warn(f"{source}: {note}", GateUnreachableWarning, stacklevel=2)
        return cfg

    def to_dict(self) -> dict[str, Any]:
        """The block as plain YAML-ready values (durations as ``60s``); round-trips."""
        out = self.model_dump(mode="json")  # synthetic_endpoints is excluded: it goes in synthetic
        out["synthetic"]["endpoints"] = {g: dict(o) for g, o in self.synthetic_endpoints.items()}
        return out

    def to_yaml(self, comments: bool = True) -> str:
        """The config as a ``drift_learning:`` YAML block, each key commented with its help."""
        block = CommentedMap(self.to_dict())
        levels = [(block, Config, 2)]
        for name in ("redact", "limits", "synthetic"):
            block[name] = CommentedMap(block[name])
            levels.append((block[name], type(getattr(self, name)), 4))
        if comments:
            for mapping, model, indent in levels:
                width = max(len(f"{k}: {v}") for k, v in mapping.items()
                            if not isinstance(v, (dict, list)))
                for name, info in model.model_fields.items():
                    if name in mapping:
                        bounds = _range_of(info)
                        mapping.yaml_add_eol_comment(
                            info.description + (f"; {bounds}" if bounds else ""), name,
                            column=indent + width + 2)
        out = io.StringIO()
        _yaml().dump(CommentedMap({BLOCK: block}), out)
        return out.getvalue()


#: The keys of a ``drift_learning`` block.
_BLOCK_KEYS = [k for k, f in Config.model_fields.items() if not f.exclude]


# --------------------------------------------------------------------------- error messages
# Pydantic reports each problem with its location (a tuple of keys and list indices), its type
# and the input. Here that becomes ``file:line: drift_learning.key: what is wrong``.

_EXPECTED = {
    "bool_type": "expected true or false", "int_type": "expected an integer",
    "float_type": "expected a number", "finite_number": "expected a finite number",
    "string_type": "expected a non-empty string", "string_too_short": "expected a non-empty string",
    "dict_type": "expected a mapping", "model_type": "expected a mapping",
    "tuple_type": "expected a list", "list_type": "expected a list",
    "too_short": "expected at least one entry",
}
_BOUNDS = ("greater_than", "greater_than_equal", "less_than", "less_than_equal")
#: What one item of a list knob is called in messages.
_ITEM = {"persona_rules": "rule"}


def _did_you_mean(word: str, valid: Any) -> str:
    close = difflib.get_close_matches(word, list(valid), n=1)
    return f"; did you mean {close[0]!r}?" if close else f"; valid: {', '.join(valid)}"


def _bare(tp: Any) -> Any:
    while get_origin(tp) is Annotated:
        tp = get_args(tp)[0]
    return tp


def _fields_of(tp: Any) -> dict[str, FieldInfo] | None:
    """The fields of a model or TypedDict type (None for anything else)."""
    tp = _bare(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return tp.model_fields
    if is_typeddict(tp):
        return {k: FieldInfo.from_annotation(a)
                for k, a in get_type_hints(tp, include_extras=True).items()}
    return None


def _item_type(tp: Any) -> Any:
    """The type of one value of a dict, tuple or list type."""
    tp = _bare(tp)
    args = get_args(tp)
    return args[-1] if get_origin(tp) is dict else args[0] if args else None


def _lookup(loc: tuple) -> tuple[dict[str, FieldInfo] | None, FieldInfo | None]:
    """Fields of the mapping holding the last key of ``loc`` (from the block), and its field."""
    tp: Any = Config
    fields = info = None
    for part in loc:
        fields = _fields_of(tp)
        if fields is None:
            tp = _item_type(tp)
            continue
        info = fields.get(part) if isinstance(part, str) else None
        if info is None:
            return fields, None
        tp = info.annotation
    return fields, info


def _range_of(info: FieldInfo) -> str | None:
    """A field's interval from its ``ge``/``gt``/``le``/``lt``: ``[0, 1)``, ``(0, inf)``."""
    lo, hi = "(-inf", "inf)"
    for m in info.metadata:
        if isinstance(m, (at.Ge, at.Gt)):
            lo = f"[{m.ge:g}" if isinstance(m, at.Ge) else f"({m.gt:g}"
        elif isinstance(m, (at.Le, at.Lt)):
            hi = f"{m.le:g}]" if isinstance(m, at.Le) else f"{m.lt:g})"
    return None if (lo, hi) == ("(-inf", "inf)") else f"{lo}, {hi}"


def _range_words(info: FieldInfo | None) -> str:
    bounds = _range_of(info) if info is not None else None
    if bounds is None:
        return ""
    if bounds.endswith("inf)"):
        return f" (must be {'>=' if bounds[0] == '[' else '>'} {bounds[1:].split(',')[0]})"
    return f" {bounds}"


def _yaml_loc(loc: tuple) -> tuple:
    """A model location as YAML keys (``synthetic_endpoints`` sits in ``synthetic.endpoints``)."""
    return ("synthetic", "endpoints", *loc[1:]) if loc[:1] == ("synthetic_endpoints",) else loc


def _key_path(loc: tuple) -> str:
    """``drift_learning.a.b``, with ``: rule 2: `` for list items."""
    text, sep = BLOCK, "."
    for i, part in enumerate(loc):
        if isinstance(part, int):
            noun = _ITEM.get(str(loc[i - 1]), "item") if i else "item"
            text, sep = f"{text}: {noun} {part + 1}", ": "
        else:
            text, sep = f"{text}{sep}{part}", "."
    return text


def _line_at(node: Any, key: Any) -> int | None:
    """1-based line of ``key`` (or list index) in a ruamel.yaml mapping or sequence, if known."""
    try:
        pos = node.lc.item(key) if isinstance(key, int) else node.lc.key(key)
        return pos[0] + 1
    except (AttributeError, KeyError, TypeError, IndexError):
        return None


def _dig(data: Any, loc: tuple) -> tuple[bool, Any, int | None]:
    """Whether ``loc`` is in ``data``, the value there and the line of the deepest key found."""
    node, line = data, None
    for part in loc:
        try:
            line = _line_at(node, part) or line
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return False, None, line
    return True, node, line


def _message(err: dict, at: tuple, value: Any) -> str:
    """One problem in words: the dotted key, the value and what was expected (``at``: where the
    validated block sits)."""
    kind, shown = err["type"], _show(value)
    where = at + err["loc"]  # the models' names, to look fields up
    loc = at + _yaml_loc(err["loc"])  # the YAML keys, to name the key
    if loc[-1:] == ("[key]",):  # a bad key of a mapping
        return f"{_key_path(loc[:-2])}: key {shown}: {_EXPECTED.get(kind, err['msg'])}"
    if kind == "extra_forbidden":
        fields, _ = _lookup(where)
        valid = [k for k, f in (fields or {}).items() if not f.exclude]
        if loc[:-1] == ("synthetic",):
            valid.append("endpoints")
        hint = _did_you_mean(str(loc[-1]), valid)
        if any(isinstance(part, int) for part in loc):
            return f"{_key_path(loc[:-1])}: unknown key '{loc[-1]}'{hint}"
        return f"unknown key '{_key_path(loc)}'{hint}"
    if kind == "missing":
        return f"{_key_path(loc)}: required, not given"
    if kind == "value_error":
        return f"{_key_path(loc)}: {err['ctx']['error']}"
    if kind in _BOUNDS:
        return f"{_key_path(loc)}: {shown} is out of range{_range_words(_lookup(where)[1])}"
    if kind == "literal_error":
        choices = get_args(_lookup(where)[1].annotation)
        close = difflib.get_close_matches(str(value), choices, n=1)
        return (f"{_key_path(loc)}: {shown} is not one of {', '.join(choices)}"
                + (f"; did you mean {close[0]!r}?" if close else ""))
    return f"{_key_path(loc)}: {_EXPECTED.get(kind, err['msg'])}, got {shown}"


def _messages(exc: ValidationError, data: Any, at: tuple = (),
              source: str | None = None) -> list[str]:
    """Every problem of ``exc`` as ``source:line: message``, in the order of the lines.

    ``data`` is what was validated (a ruamel.yaml mapping knows its lines), ``at`` where it sits
    in the block.
    """
    found = []
    for err in exc.errors(include_url=False):
        loc = _yaml_loc(err["loc"])
        there, value, line = _dig(data, loc)
        if not there:  # keyword arguments keep the model's own names
            there, value, _ = _dig(data, err["loc"])
        found.append((line or 0, _message(err, at, value if there else err["input"])))
    found.sort(key=lambda lm: lm[0])
    return [(f"{source}:{line}: " if source and line else f"{source}: " if source else "") + msg
            for line, msg in found]


# --------------------------------------------------------------------------- reading mappings


def _looks_like_block(doc: Mapping) -> bool:
    """Whether a file without ``drift_learning:`` holds the block's keys at its top level."""
    return any(str(k) in _BLOCK_KEYS or difflib.get_close_matches(str(k), _BLOCK_KEYS, n=1)
               for k in doc)


def _find_block(doc: Any, source: str) -> Mapping:
    if doc is None:
        return {}
    if not isinstance(doc, Mapping):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {_show(doc)}")
    if BLOCK in doc:
        block = doc[BLOCK]
        if block is not None and not isinstance(block, Mapping):
            line = _line_at(doc, BLOCK)
            where = f"{source}:{line}" if line else source
            raise ConfigError(f"{where}: {BLOCK}: expected a mapping, got {_show(block)}")
        return block or {}
    if doc and not _looks_like_block(doc):
        raise ConfigError(f"{source}: no '{BLOCK}' block and no {BLOCK} keys at the top level "
                          f"(top-level keys: {', '.join(map(str, doc))})")
    return doc


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
    cfg._source_dir = Path(path).resolve().parent
    return cfg


# --------------------------------------------------------------------------- dotted get / set


def _resolve(key: str) -> tuple[list[str], FieldInfo | None]:
    """YAML key path of a dotted key, and the field of its leaf (None for mappings).

    Glob patterns may contain dots: ``endpoint_learning.<glob>`` and
    ``synthetic.endpoints.<glob>[.<field>]`` take the rest of the key as the glob.
    """
    rest = key.removeprefix(f"{BLOCK}.")
    head, _, tail = rest.partition(".")
    if head not in _BLOCK_KEYS:
        raise ConfigError(f"unknown key '{BLOCK}.{head}'" + _did_you_mean(head, _BLOCK_KEYS))
    info = Config.model_fields[head]
    section = _fields_of(info.annotation)
    mapping = section is not None or get_origin(info.annotation) is dict
    if not tail:
        return [head], None if mapping else info
    if get_origin(info.annotation) is dict:  # a glob map: the rest is one pattern
        return [head, tail], None
    if section is None:
        raise ConfigError(f"'{BLOCK}.{head}' holds a value, not a mapping: it has no key '{tail}'")
    sub, _, glob = tail.partition(".")
    if sub in section and not glob:
        return [head, sub], section[sub]
    if head != "synthetic" or sub != "endpoints":
        valid = [*section, "endpoints"] if head == "synthetic" else list(section)
        raise ConfigError(f"unknown key '{BLOCK}.{head}.{sub}'" + _did_you_mean(sub, valid))
    if not glob:
        return [head, sub], None
    pattern, _, last = glob.rpartition(".")
    if pattern and last in section:
        return [head, sub, pattern, last], section[last]
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


def _parse_value(text: str, info: FieldInfo | None) -> Any:
    """A CLI string as YAML (so ``true``, ``0.3``, ``{"/api/*": true}`` get their types);
    strings stay strings for string knobs and when the text is not valid YAML."""
    kind = info.annotation if info is not None else None
    if kind is str or get_origin(kind) is Literal:
        return text
    if kind == str | None:  # a file name
        return None if text.strip() in ("", "null", "~") else text
    try:
        value = YAML(typ="safe", pure=True).load(text)
    except YAMLError:
        value = text
    if kind == tuple[_ListedName, ...] and isinstance(value, str):
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
    keys, info = _resolve(key)
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
    node[keys[-1]] = _parse_value(value, info)

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
    >>> gate_reachable(Config(), 1.0)[0], gate_reachable(Config(), 0.4)[0]
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
