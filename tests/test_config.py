from __future__ import annotations

import copy
import math
import pickle
import re
import warnings
from pathlib import Path

import annotated_types as at
import pytest

from driftbayes import yamlio
from driftbayes.config import (
    Config,
    ConfigError,
    GateUnreachableWarning,
    InputLimits,
    RedactConfig,
    SyntheticPrior,
    format_duration,
    gate_reachable,
    get_key,
    load_config,
    parse_duration,
    samples_for_confidence,
    set_key,
    steady_state_n_eff,
)
from tests.helpers import real_root

_REAL = real_root()  # .../shared/data/real; the seed doc is .../shared/seed
SEED_DOC = (_REAL.parents[1] if _REAL else Path("shared")) / "seed" / "drift-learning.md"

# Every YAML snippet of seed/drift-learning.md, with the values it states.
SEED_SNIPPETS = {
    "learning-configuration": (
        """\
drift_learning:
  enabled: true
  mode: hybrid  # behavioral, statistical, or hybrid
  sensitivity: 0.2  # How quickly mocks learn (0.0-1.0)
  decay: 0.05  # How quickly old patterns fade (0.0-1.0)
  min_samples: 10  # Minimum samples before learning starts
  update_interval: 60s  # How often to update learned patterns
  persona_adaptation: true  # Enable persona-specific learning
  traffic_mirroring: true  # Enable traffic pattern mirroring
""",
        dict(enabled=True, mode="hybrid", sensitivity=0.2, decay=0.05, min_samples=10,
             update_interval=60.0, persona_adaptation=True, traffic_mirroring=True),
    ),
    "enable": (
        """\
# mockforge.yaml
drift_learning:
  enabled: true
  mode: hybrid
  sensitivity: 0.2
  decay: 0.05
  min_samples: 10
  update_interval: 60s
""",
        dict(enabled=True, mode="hybrid", sensitivity=0.2, decay=0.05, min_samples=10,
             update_interval=60.0),
    ),
    "per-endpoint": (
        """\
drift_learning:
  enabled: true
  endpoint_learning:
    "/api/users/*": true  # Enable for user endpoints
    "/api/orders/*": true  # Enable for order endpoints
    "/api/payments/*": false  # Disable for payment endpoints
""",
        dict(enabled=True, endpoint_learning={"/api/users/*": True, "/api/orders/*": True,
                                              "/api/payments/*": False}),
    ),
    "per-persona": (
        """\
drift_learning:
  enabled: true
  persona_adaptation: true
  persona_learning:
    "premium-customer": true  # Enable for premium customers
    "regular-customer": true  # Enable for regular customers
    "admin": false  # Disable for admins
""",
        dict(enabled=True, persona_adaptation=True,
             persona_learning={"premium-customer": True, "regular-customer": True,
                               "admin": False}),
    ),
    "example-checkout": (
        """\
drift_learning:
  enabled: true
  mode: behavioral
  endpoint_learning:
    "/api/checkout/*": true
  persona_adaptation: true
""",
        dict(enabled=True, mode="behavioral", endpoint_learning={"/api/checkout/*": True},
             persona_adaptation=True),
    ),
    "example-latency": (
        """\
drift_learning:
  enabled: true
  mode: statistical
  endpoint_learning:
    "/api/*": true
  sensitivity: 0.3
""",
        dict(enabled=True, mode="statistical", endpoint_learning={"/api/*": True},
             sensitivity=0.3),
    ),
    "example-personas": (
        """\
drift_learning:
  enabled: true
  mode: hybrid
  persona_adaptation: true
  persona_learning:
    "premium-customer": true
    "regular-customer": true
""",
        dict(enabled=True, mode="hybrid", persona_adaptation=True,
             persona_learning={"premium-customer": True, "regular-customer": True}),
    ),
    "mirroring": (
        """\
drift_learning:
  enabled: true
  traffic_mirroring: true
  mode: hybrid
""",
        dict(enabled=True, traffic_mirroring=True, mode="hybrid"),
    ),
    "persona-adaptation": (
        """\
drift_learning:
  enabled: true
  persona_adaptation: true
  persona_learning:
    "premium-customer": true
    "regular-customer": true
""",
        dict(enabled=True, persona_adaptation=True,
             persona_learning={"premium-customer": True, "regular-customer": True}),
    ),
}

MOCKFORGE_YAML = """\
# mockforge.yaml: the whole server config
core:
  port: 3000   # http port
  default_latency: {base_ms: 50, jitter_ms: 20}
routes:
  - path: /api/users/{id}
    method: GET
reality: {enabled: false}
drift_learning:
  enabled: true   # keep learning on
  mode: statistical
  decay: 0.1
  endpoint_learning:
    "/api/*": true
"""


def write(tmp_path: Path, text: str, name: str = "driftbayes.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def line_of(text: str, needle: str) -> int:
    """1-based line of the first line containing ``needle``."""
    return next(i for i, ln in enumerate(text.splitlines(), 1) if needle in ln)


@pytest.fixture(autouse=True)
def _run_in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # so error messages say "driftbayes.yaml:N"


# ------------------------------------------------------------------ defaults and seed snippets


def test_defaults():
    cfg = load_config(None)
    assert cfg == Config()
    assert (cfg.enabled, cfg.mode, cfg.sensitivity, cfg.decay, cfg.min_samples) == (
        True, "hybrid", 0.2, 0.05, 10)
    assert (cfg.update_interval, cfg.session_gap) == (60.0, 1800.0)
    assert cfg.persona_adaptation and cfg.traffic_mirroring
    assert cfg.endpoint_learning == {} and cfg.persona_learning == {}
    assert (cfg.confidence_threshold, cfg.credible_mass, cfg.pooling_strength) == (0.5, 0.9, 100.0)
    assert (cfg.persona_field, cfg.persona_header) == ("persona", "X-Persona")
    assert cfg.synthetic == SyntheticPrior(
        latency_median_ms=100.0, latency_sigma=0.6, status=200, error_status=500,
        error_rate=0.01, think_time_median_ms=1000.0, think_time_sigma=1.0, rate_per_s=0.1,
        session_length=5.0, prior_strength=3.0)
    assert (cfg.prior_fade, cfg.changepoint_hazard, cfg.changepoint_threshold) == (1.0, 0.003, 0.5)
    assert cfg.synthetic_endpoints == {}


@pytest.mark.parametrize("name", SEED_SNIPPETS)
def test_seed_snippets_load_with_stated_values(tmp_path, name):
    text, expected = SEED_SNIPPETS[name]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the seed examples are all reachable configs
        cfg = load_config(write(tmp_path, text))
    for key, value in expected.items():
        assert getattr(cfg, key) == value, key
        assert type(getattr(cfg, key)) is type(value), key


def test_seed_doc_snippets_are_all_covered():
    if not SEED_DOC.exists():
        pytest.skip("needs the team's seed doc (shared/seed/drift-learning.md), which is not in "
                    "the repository: have shared/ beside the clone (or DRIFTBAYES_DATA at "
                    "shared/data/real)")
    blocks = re.findall(r"```yaml\n(.*?)```", SEED_DOC.read_text(), flags=re.S)
    assert len(blocks) == len(SEED_SNIPPETS)
    assert sorted(blocks) == sorted(text for text, _ in SEED_SNIPPETS.values())


def test_block_inside_mockforge_yaml(tmp_path):
    cfg = load_config(write(tmp_path, MOCKFORGE_YAML, "mockforge.yaml"))
    assert cfg.mode == "statistical" and cfg.decay == 0.1
    assert cfg.endpoint_learning == {"/api/*": True}
    assert cfg.sensitivity == 0.2  # unspecified keys keep their defaults


def test_file_may_be_the_block_itself(tmp_path):
    cfg = load_config(write(tmp_path, "mode: behavioral\nupdate_interval: 5m\n"))
    assert cfg.mode == "behavioral" and cfg.update_interval == 300.0


def test_empty_file_and_empty_block_give_defaults(tmp_path):
    assert load_config(write(tmp_path, "")) == Config()
    assert load_config(write(tmp_path, "drift_learning:\n")) == Config()


def test_file_without_block_or_block_keys(tmp_path):
    with pytest.raises(ConfigError, match=r"no 'drift_learning' block .*core, routes"):
        load_config(write(tmp_path, "core: {port: 3000}\nroutes: []\n"))


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="config file not found: .*nowhere.yaml"):
        load_config(tmp_path / "nowhere.yaml")


def test_invalid_yaml_names_file_and_line(tmp_path):
    text = "drift_learning:\n  mode: hybrid\n  decay: [0.1\n"
    with pytest.raises(ConfigError, match=r"^driftbayes.yaml:\d+: invalid YAML"):
        load_config(write(tmp_path, text).name)


def test_yaml11_booleans_accepted(tmp_path):
    text = "drift_learning:\n  enabled: yes\n  traffic_mirroring: off\n"
    cfg = load_config(write(tmp_path, text))
    assert cfg.enabled is True and cfg.traffic_mirroring is False


# ------------------------------------------------------------------ durations


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("60s", 60), ("5m", 300), ("1h", 3600), ("1d", 86400), ("500ms", 0.5), ("1h30m", 5400),
     ("90", 90), (90, 90), (2.5, 2.5), ("1h 30m", 5400), ("PT1M", 60), ("PT1H30M", 5400),
     ("P1D", 86400), ("PT0.5S", 0.5)],
)
def test_durations_parse(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["5 minutes", "1x", "", "s", "1h30", "PT", "60 s s", True, None,
                                 "inf", float("nan")])
def test_bad_durations_error(bad):
    with pytest.raises(ValueError, match="expected a duration"):
        parse_duration(bad)


@pytest.mark.parametrize("seconds", [60.0, 1800.0, 0.5, 1.5, 0.001, 5400.0])
def test_format_duration_round_trips(seconds):
    assert parse_duration(format_duration(seconds)) == seconds
    assert format_duration(60.0) == "60s" and format_duration(0.5) == "500ms"


def test_duration_keys_in_yaml(tmp_path):
    cfg = load_config(write(tmp_path, "drift_learning:\n  update_interval: 1h30m\n"
                                      "  session_gap: 90\n"))
    assert (cfg.update_interval, cfg.session_gap) == (5400.0, 90.0)
    text = "drift_learning:\n  update_interval: 5 minutes\n"
    with pytest.raises(ConfigError, match=r"^driftbayes.yaml:2: drift_learning.update_interval: "
                                          r"expected a duration .*got '5 minutes'"):
        load_config(write(tmp_path, text).name)
    with pytest.raises(ConfigError, match=r"update_interval: '0s' is out of range \(must be > 0\)"):
        load_config(write(tmp_path, "drift_learning:\n  update_interval: 0s\n"))


# ------------------------------------------------------------------ errors


def test_unknown_key_names_nearest_key_and_line(tmp_path):
    text = MOCKFORGE_YAML.replace("  decay: 0.1\n", "  decay: 0.1\n  sensitivty: 0.3\n")
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text).name)
    assert str(info.value) == (
        f"driftbayes.yaml:{line_of(text, 'sensitivty')}: unknown key "
        "'drift_learning.sensitivty'; did you mean 'sensitivity'?")


def test_unknown_key_inside_synthetic(tmp_path):
    text = ("drift_learning:\n  synthetic:\n    latency_medain_ms: 80\n    endpoints:\n"
            "      '/api/users/*': {error_rat: 0.2}\n")
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text).name)
    assert info.value.errors == [
        "driftbayes.yaml:3: unknown key 'drift_learning.synthetic.latency_medain_ms'; "
        "did you mean 'latency_median_ms'?",
        "driftbayes.yaml:5: unknown key 'drift_learning.synthetic.endpoints./api/users/*."
        "error_rat'; did you mean 'error_rate'?",
    ]


def test_unknown_key_without_close_match_lists_valid_keys(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key 'drift_learning.zzz'; valid: enabled, "):
        load_config(write(tmp_path, "drift_learning:\n  mode: hybrid\n  zzz: 1\n"))


def test_out_of_range_names_file_line_key_and_range(tmp_path):
    text = "# tuned by hand\ndrift_learning:\n  enabled: true\n  mode: hybrid\n" \
           "  sensitivity: 0.2\n  min_samples: 10\n  decay: 1.5\n"
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text).name)
    assert str(info.value) == "driftbayes.yaml:7: drift_learning.decay: 1.5 is out of range [0, 1]"


@pytest.mark.parametrize(
    ("line", "message"),
    [("sensitivity: -0.1", "drift_learning.sensitivity: -0.1 is out of range [0, 1]"),
     ("min_samples: -1", "drift_learning.min_samples: -1 is out of range (must be >= 0)"),
     ("credible_mass: 1", "drift_learning.credible_mass: 1 is out of range (0, 1)"),
     ("synthetic: {status: 700}", "drift_learning.synthetic.status: 700 is out of range "
                                  "[100, 599]"),
     ("synthetic: {error_rate: 1.0}", "drift_learning.synthetic.error_rate: 1.0 is out of range "
                                      "[0, 1)"),
     ("synthetic: {session_length: 0.5}", "drift_learning.synthetic.session_length: 0.5 is out of "
                                          "range (must be >= 1)"),
     ("synthetic: {latency_median_ms: 0}", "drift_learning.synthetic.latency_median_ms: 0 is out "
                                           "of range (must be > 0)")],
)
def test_ranges(tmp_path, line, message):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, f"drift_learning:\n  {line}\n").name)
    assert str(info.value) == f"driftbayes.yaml:2: {message}"


@pytest.mark.parametrize(
    ("line", "message"),
    [('min_samples: "ten"', "drift_learning.min_samples: expected an integer, got 'ten'"),
     ("min_samples: 10.5", "drift_learning.min_samples: expected an integer, got 10.5"),
     ('enabled: "yes please"', "drift_learning.enabled: expected true or false, got 'yes please'"),
     ("enabled: 1", "drift_learning.enabled: expected true or false, got 1"),
     ("sensitivity: true", "drift_learning.sensitivity: expected a number, got True"),
     ("sensitivity: high", "drift_learning.sensitivity: expected a number, got 'high'"),
     ("persona_field: 42", "drift_learning.persona_field: expected a non-empty string, got 42"),
     ("mode: hybird", "drift_learning.mode: 'hybird' is not one of behavioral, statistical, "
                      "hybrid; did you mean 'hybrid'?"),
     ("endpoint_learning: [a, b]", "drift_learning.endpoint_learning: expected a mapping of glob "
                                   "pattern to true/false, got ['a', 'b']"),
     ("synthetic: 5", "drift_learning.synthetic: expected a mapping, got 5")],
)
def test_wrong_types(tmp_path, line, message):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, f"drift_learning:\n  {line}\n").name)
    assert str(info.value) == f"driftbayes.yaml:2: {message}"


def test_glob_entry_error_is_on_its_own_line(tmp_path):
    text = 'drift_learning:\n  endpoint_learning:\n    "/api/*": true\n    "/api/x/*": maybe\n'
    with pytest.raises(ConfigError, match=r"^driftbayes.yaml:4: drift_learning.endpoint_learning"
                                          r"./api/x/\*: expected true or false, got 'maybe'$"):
        load_config(write(tmp_path, text).name)


def test_integral_float_is_an_int(tmp_path):
    cfg = load_config(write(tmp_path, "drift_learning:\n  min_samples: 10.0\n"))
    assert cfg.min_samples == 10 and type(cfg.min_samples) is int


def test_all_errors_reported_together(tmp_path):
    text = "drift_learning:\n  decay: 2\n  mode: fast\n  sensitivty: 0.1\n"
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text).name)
    assert [e.split(":")[1] for e in info.value.errors] == ["2", "3", "4"]


def test_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)
    with pytest.raises(ValueError, match=r"drift_learning.decay: 2 is out of range \[0, 1\]"):
        Config(decay=2)
    with pytest.raises(ConfigError, match=r"synthetic.endpoints./a/\*.status: 99 is out of range"):
        Config(synthetic_endpoints={"/a/*": {"status": 99}})
    with pytest.raises(ConfigError, match="did you mean 'status'"):
        Config(synthetic_endpoints={"/a/*": {"statsu": 200}})


def test_from_dict_without_lines():
    with pytest.raises(ConfigError, match=r"^<dict>: drift_learning.decay: 1.5 is out of range"):
        Config.from_dict({"drift_learning": {"decay": 1.5}})
    assert Config.from_dict({"mode": "statistical"}).mode == "statistical"


# ------------------------------------------------------------------ warnings and the gate


def test_default_config_does_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Config.from_dict({})
    assert Config().diagnostics() == []


@pytest.mark.parametrize(
    ("block", "match"),
    [({"enabled": False}, "enabled is false: nothing is learned"),
     ({"confidence_threshold": 1.0}, r"confidence_threshold 1 can never be reached: confidence = "
                                     r"1 - sqrt\(k/\(k\+n\)\) stays below 1"),
     ({"decay": 1.0, "min_samples": 30, "update_interval": "60s"},
      r"decay 1 forgets all evidence .*min_samples 30.*single update_interval \(60s\) alone "
      r"holds >= 30 events, i\.e\. >= 0\.5 events/s"),
     ({"sensitivity": 0}, "sensitivity 0: applied never moves toward the posterior"),
     ({"endpoint_learning": {"/api/payments/*": False}}, "endpoint_learning has no pattern set "
                                                         "to true.*no endpoint is learned")],
)
def test_warnings_fire_with_reasons(block, match):
    with pytest.warns(GateUnreachableWarning, match=match):
        Config.from_dict({"drift_learning": block})


def test_decay_one_without_min_samples_does_not_warn():
    assert Config(decay=1.0, min_samples=0).diagnostics() == []


def test_steady_state_n_eff():
    assert steady_state_n_eff(2.0, 0.05) == pytest.approx(40.0)
    assert steady_state_n_eff(7.0, 1.0) == 7.0
    assert steady_state_n_eff(3.0, 0.0) == math.inf
    assert steady_state_n_eff(0.0, 0.0) == 0.0
    n = 0.0
    for _ in range(2000):  # it is the fixed point of the decayed update
        n = (1 - 0.05) * n + 2.0
    assert n == pytest.approx(steady_state_n_eff(2.0, 0.05))
    with pytest.raises(ValueError):
        steady_state_n_eff(1.0, 1.5)


def test_samples_for_confidence():
    assert samples_for_confidence(0.5, 10.0) == pytest.approx(30.0)  # 1 - sqrt(10/40) = 0.5
    assert samples_for_confidence(1.0, 10.0) == math.inf
    assert samples_for_confidence(0.0, 10.0) == 0.0


def test_gate_reachable_numbers():
    # decay 0.05, min_samples 10, threshold 0.5, a prior worth k = 10 that never fades
    cfg = Config(synthetic=SyntheticPrior(prior_strength=10.0), prior_fade=0.0)
    ok, reason = gate_reachable(cfg, 2.0)
    assert ok and reason.startswith("gate reachable")
    assert "n_eff = 40 >= min_samples 10" in reason
    assert "= 0.553" in reason and "k = 10 >= confidence_threshold 0.5" in reason

    ok, reason = gate_reachable(cfg, 1.0)  # n_eff 20: enough samples but confidence 0.423
    assert not ok and reason.startswith("gate unreachable")
    assert "1 events per update_interval (60s) with decay 0.05" in reason
    assert "n_eff = 20 >= min_samples 10" in reason
    assert "= 0.423" in reason and "< confidence_threshold 0.5 (needs n_eff >= 30)" in reason

    ok, reason = gate_reachable(Config(confidence_threshold=0.0), 0.4)  # n_eff 8 < 10
    assert not ok and "n_eff = 8 < min_samples 10" in reason

    # the defaults: k = 3, fading (prior_fade 1) to 3/(1 + 20/3) = 0.39 at n_eff 20, so
    # confidence 1 - sqrt(3/20.39) = 0.616 and the gate opens at about min_samples
    ok, reason = gate_reachable(Config(), 1.0)
    assert ok and "= 0.616" in reason and "k = 3 >=" in reason
    assert "(needs n_eff >= 11.37)" in reason
    assert samples_for_confidence(0.5, 3.0, 1.0) == pytest.approx(11.37, abs=0.01)


def test_prior_fade_and_changepoint_knobs_are_checked():
    with pytest.raises(ConfigError, match="prior_fade: 0.5 is below 1"):
        Config(prior_fade=0.5)
    Config(prior_fade=0.0)  # never fades
    # a hazard whose prior change probability over 31 windows (0.27 at 0.01) reaches the
    # threshold would make every uninformed cell forget at every window
    with pytest.raises(ConfigError, match="changepoint_threshold: 0.2 is not above 0.268"):
        Config(changepoint_hazard=0.01, changepoint_threshold=0.2)
    Config(changepoint_hazard=0.0, changepoint_threshold=0.2)  # off: no constraint


def test_gate_reachable_edge_cases():
    assert gate_reachable(Config(decay=0.0), 0.01)[0]
    assert not gate_reachable(Config(confidence_threshold=1.0, decay=0.0), 100.0)[0]
    assert gate_reachable(Config(enabled=False), 100.0) == (
        False, "learning is disabled (enabled: false)")
    cfg = Config(synthetic_endpoints={"/api/slow/*": {"prior_strength": 1000.0}})
    assert gate_reachable(cfg, 5.0)[0]
    ok, reason = gate_reachable(cfg, 5.0, endpoint="GET /api/slow/{id}")
    assert not ok and "k = 1000" in reason


# ------------------------------------------------------------------ queries


@pytest.mark.parametrize(
    ("mode", "learned"),
    [("statistical", {"latency", "errors", "frequency"}),
     ("behavioral", {"transitions", "think_time"}),
     ("hybrid", {"latency", "errors", "frequency", "transitions", "think_time"})],
)
def test_learns(mode, learned):
    kinds = ["latency", "errors", "frequency", "transitions", "think_time"]
    assert {k for k in kinds if Config(mode=mode).learns(k)} == learned
    assert not any(Config(mode=mode, enabled=False).learns(k) for k in kinds)


def test_learns_unknown_kind():
    with pytest.raises(ValueError, match="unknown model kind 'bodies'"):
        Config().learns("bodies")


def test_endpoint_and_persona_enabled(tmp_path):
    cfg = load_config(write(tmp_path, SEED_SNIPPETS["per-endpoint"][0]))
    assert cfg.endpoint_enabled("GET /api/users/{id}")
    assert not cfg.endpoint_enabled("POST /api/payments/{id}")
    assert not cfg.endpoint_enabled("GET /api/products")  # map present: opt-in
    assert cfg.persona_enabled("anyone")  # no persona map: all personas
    personas = load_config(write(tmp_path, SEED_SNIPPETS["per-persona"][0], "p.yaml"))
    assert personas.persona_enabled("premium-customer") and not personas.persona_enabled("admin")
    assert not personas.persona_enabled("guest")
    assert not Config(enabled=False).endpoint_enabled("GET /api/users/{id}")


def test_synthetic_for_most_specific_override(tmp_path):
    text = """\
drift_learning:
  synthetic:
    latency_median_ms: 80
    error_rate: 0.02
    endpoints:
      "/api/*": {latency_median_ms: 60, status: 201}
      "/api/users/*": {latency_median_ms: 40}
      "POST /api/users/*": {error_rate: 0.2}
"""
    cfg = load_config(write(tmp_path, text))
    users = cfg.synthetic_for("GET /api/users/{id}")
    assert (users.latency_median_ms, users.status, users.error_rate) == (40.0, 200, 0.02)
    post = cfg.synthetic_for("POST /api/users/{id}")
    assert (post.latency_median_ms, post.error_rate) == (80.0, 0.2)
    orders = cfg.synthetic_for("GET /api/orders")
    assert (orders.latency_median_ms, orders.status) == (60.0, 201)
    assert cfg.synthetic_for("GET /health") == cfg.synthetic
    assert cfg.synthetic.latency_median_ms == 80.0 and cfg.synthetic.latency_sigma == 0.6
    assert cfg.synthetic_for("GET /api/users/{id}") is users  # cached


# ------------------------------------------------------------------ dict / YAML round trips


def test_to_dict_round_trips():
    cfg = Config(mode="statistical", update_interval=90.5, session_gap="30m",
                 endpoint_learning={"/api/*": True},
                 persona_learning={"admin": False, "*-customer": True},
                 synthetic=SyntheticPrior(latency_median_ms=80.0),
                 synthetic_endpoints={"/api/users/*": {"latency_median_ms": 40}})
    d = cfg.to_dict()
    assert d["update_interval"] == "90.5s" and d["session_gap"] == "1800s"
    assert d["synthetic"]["endpoints"] == {"/api/users/*": {"latency_median_ms": 40.0}}
    assert Config.from_dict(d) == cfg
    assert Config.from_dict({"drift_learning": d}) == cfg


def test_to_yaml_loads_back(tmp_path):
    cfg = Config(decay=0.1, endpoint_learning={"/api/users/*": True},
                 synthetic_endpoints={"GET /api/*": {"status": 204}})
    text = cfg.to_yaml()
    assert text.startswith("drift_learning:\n")
    assert re.search(r"^  update_interval: 60s +# ", text, flags=re.M)
    assert "# share of posterior evidence forgotten per update_interval; [0, 1]" in text
    assert load_config(write(tmp_path, text)) == cfg


# ------------------------------------------------------------------ get_key / set_key


def test_get_key_defaults_and_prefix():
    assert get_key(None, "drift_learning.mode") == "hybrid"
    assert get_key(None, "mode") == "hybrid"
    assert get_key(None, "update_interval") == "60s"
    assert get_key(None, "synthetic.prior_strength") == 3.0
    assert get_key(None, "endpoint_learning./api/*") is None
    with pytest.raises(ConfigError, match="unknown key 'drift_learning.sensitivty'; did you mean "
                                          "'sensitivity'"):
        get_key(None, "drift_learning.sensitivty")


def test_set_key_round_trip_preserves_comments_and_other_keys(tmp_path):
    path = write(tmp_path, MOCKFORGE_YAML, "mockforge.yaml")
    set_key(path, "drift_learning.mode", "hybrid")
    set_key(path, "sensitivity", "0.3")
    set_key(path, "update_interval", "5m")
    set_key(path, "enabled", "true")
    set_key(path, "drift_learning.endpoint_learning./api/payments/*", "false")
    set_key(path, "synthetic.endpoints./api/v1.2/*.latency_median_ms", "40")
    text = path.read_text()
    assert text.startswith("# mockforge.yaml: the whole server config\n"
                           "core:\n  port: 3000   # http port\n")
    assert "  enabled: true   # keep learning on\n" in text
    assert "reality: {enabled: false}\n" in text and "  - path: /api/users/{id}\n" in text
    assert get_key(path, "mode") == "hybrid"
    assert get_key(path, "drift_learning.sensitivity") == 0.3
    assert get_key(path, "update_interval") == "300s"
    assert get_key(path, "endpoint_learning") == {"/api/*": True, "/api/payments/*": False}
    assert get_key(path, "endpoint_learning./api/payments/*") is False
    assert get_key(path, "synthetic.endpoints./api/v1.2/*.latency_median_ms") == 40.0
    cfg = load_config(path)
    assert cfg.decay == 0.1 and not cfg.endpoint_enabled("POST /api/payments/{id}")
    assert cfg.synthetic_for("GET /api/v1.2/items").latency_median_ms == 40.0
    assert [p.name for p in tmp_path.iterdir()] == ["mockforge.yaml"]  # no temp files left


def test_set_key_untouched_lines_are_byte_identical(tmp_path):
    path = write(tmp_path, MOCKFORGE_YAML)
    set_key(path, "decay", "0.2")
    assert path.read_text() == MOCKFORGE_YAML.replace("decay: 0.1", "decay: 0.2")


def test_set_key_maps_from_json(tmp_path):
    path = write(tmp_path, MOCKFORGE_YAML)
    set_key(path, "endpoint_learning", '{"/api/users/*": true, "/api/*": false}')
    assert load_config(path).endpoint_learning == {"/api/users/*": True, "/api/*": False}
    set_key(path, "persona_learning", "{admin: false, '*': true}")
    assert get_key(path, "persona_learning") == {"admin": False, "*": True}


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [("drift_learning.decay", "1.5", r"^driftbayes.yaml:\d+: drift_learning.decay: 1.5 is out "
                                     r"of range \[0, 1\]$"),
     ("sensitivty", "0.1", "unknown key 'drift_learning.sensitivty'; did you mean 'sensitivity'"),
     ("min_samples", "ten", "drift_learning.min_samples: expected an integer, got 'ten'"),
     ("enabled", "yes please", "drift_learning.enabled: expected true or false"),
     ("mode", "fast", "'fast' is not one of behavioral, statistical, hybrid"),
     ("update_interval", "soon", "update_interval: expected a duration"),
     ("endpoint_learning./api/*", "maybe", r"endpoint_learning./api/\*: expected true or false"),
     ("synthetic.endpoints./x/*.status", "99", r"endpoints./x/\*.status: 99 is out of range"),
     ("mode.sub", "x", "'drift_learning.mode' holds a value, not a mapping: it has no key 'sub'")],
)
def test_set_key_refuses_bad_values_and_leaves_file_byte_identical(tmp_path, key, value, match):
    path = write(tmp_path, MOCKFORGE_YAML)
    before = path.read_bytes()
    with pytest.raises(ConfigError, match=match):
        set_key(path.name, key, value)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["driftbayes.yaml"]


def test_set_key_creates_missing_file(tmp_path):
    path = tmp_path / "new.yaml"
    set_key(path, "drift_learning.mode", "statistical")
    assert path.read_text() == "drift_learning:\n  mode: statistical\n"
    assert load_config(path).mode == "statistical"


def test_set_key_adds_block_to_foreign_file_and_keeps_bare_blocks_bare(tmp_path):
    foreign = write(tmp_path, "core:\n  port: 3000\n", "mockforge.yaml")
    set_key(foreign, "decay", "0.2")
    assert foreign.read_text() == "core:\n  port: 3000\ndrift_learning:\n  decay: 0.2\n"
    bare = write(tmp_path, "mode: statistical  # bare block\n")
    set_key(bare, "decay", "0.2")
    assert bare.read_text() == "mode: statistical  # bare block\ndecay: 0.2\n"


def test_set_key_keeps_four_space_indentation(tmp_path):
    text = "drift_learning:\n    mode: hybrid\n    endpoint_learning:\n        '/api/*': true\n"
    path = write(tmp_path, text)
    set_key(path, "decay", "0.1")
    assert path.read_text() == text + "    decay: 0.1\n"


def test_set_key_warns_about_unreachable_gate(tmp_path):
    path = write(tmp_path, MOCKFORGE_YAML)
    with pytest.warns(GateUnreachableWarning, match="sensitivity 0"):
        cfg = set_key(path, "sensitivity", "0")
    assert cfg.sensitivity == 0.0 and "sensitivity: 0\n" in path.read_text()


# ------------------------------------------------------------------ the models behind the knobs


def _bounds():
    """(dotted key, model field, bound) of every knob with a range."""
    for prefix, model in (("", Config), ("synthetic.", SyntheticPrior),
                          ("redact.", RedactConfig), ("limits.", InputLimits)):
        for name, info in model.model_fields.items():
            for bound in info.metadata:
                if isinstance(bound, (at.Ge, at.Gt, at.Le, at.Lt)):
                    yield pytest.param(prefix + name, info, bound, id=f"{prefix}{name}-{bound}")


@pytest.mark.parametrize(("key", "info", "bound"), list(_bounds()))
def test_every_range_refuses_the_value_past_it_naming_line_key_and_range(tmp_path, key, info,
                                                                          bound):
    limit = getattr(bound, type(bound).__name__.lower())  # Ge(ge=0).ge
    value = {at.Ge: limit - 1, at.Gt: limit, at.Le: limit + 1, at.Lt: limit}[type(bound)]
    value = int(value) if info.annotation is int else value
    head, _, sub = key.rpartition(".")
    text = (f"drift_learning:\n  {head}:\n    {sub}: {value}\n" if head
            else f"drift_learning:\n  {sub}: {value}\n")
    with pytest.raises(ConfigError) as info_:
        load_config(write(tmp_path, text).name)
    line = 3 if head else 2
    first = f"driftbayes.yaml:{line}: drift_learning.{key}: {value} is out of range "
    hits = [e for e in info_.value.errors if e.startswith(first)]
    assert hits, info_.value.errors
    # the words name the limit, as the to_yaml comment of the key does
    assert f"{limit:g}" in hits[0].removeprefix(first)
    comment = next(ln for ln in Config().to_yaml().splitlines()
                   if ln.strip().startswith(f"{sub}:"))
    assert f"{limit:g}" in comment.rsplit(";", 1)[1]


def test_config_is_immutable_and_replace_validates():
    cfg = Config(decay=0.1)
    with pytest.raises(ValueError):
        cfg.decay = 0.2  # noqa: B003 - the point
    again = cfg.replace(update_interval="5m", synthetic=cfg.synthetic.replace(status=201))
    assert (again.decay, again.update_interval, again.synthetic.status) == (0.1, 300.0, 201)
    assert cfg.update_interval == 60.0  # the original is untouched
    with pytest.raises(ConfigError, match=r"drift_learning.decay: 2 is out of range \[0, 1\]"):
        cfg.replace(decay=2)
    with pytest.raises(ConfigError, match=r"drift_learning.synthetic.status: 99 is out of range"):
        cfg.synthetic.replace(status=99)


def test_equality_pickle_and_copies_ignore_where_it_was_loaded_and_caches(tmp_path):
    text = ("drift_learning:\n  decay: 0.1\n  synthetic:\n    endpoints:\n"
            "      /a/*: {status: 201}\n")
    loaded = load_config(write(tmp_path, text))
    built = Config(decay=0.1, synthetic_endpoints={"/a/*": {"status": 201}})
    assert loaded.source_dir == tmp_path.resolve() and built.source_dir is None
    assert loaded.synthetic_for("GET /a/b").status == 201  # fills the cache of one only
    assert loaded == built and loaded != Config()
    for copy_ in (pickle.loads(pickle.dumps(loaded)), copy.deepcopy(loaded)):
        assert copy_ == loaded and copy_.source_dir == loaded.source_dir
        assert copy_.synthetic_for("GET /a/b").status == 201
    assert hash(loaded.synthetic) == hash(SyntheticPrior())  # the sections stay hashable
    with pytest.raises(TypeError):
        hash(loaded)  # dict-valued knobs, as before


def test_state_round_trip_through_plain_yaml():
    """What a state file stores (``to_yaml``) read back by the safe loader gives the config."""
    cfg = Config(mode="statistical", session_gap="2h", endpoint_learning={"/api/*": True},
                 persona_rules=[{"persona": "m", "when": {"user_agent": "*Mobile*"}}],
                 redact={"extra_keys": ["ssn"], "disable": ["card"]},
                 limits={"max_clock_skew": "2d", "max_year": 2200},
                 synthetic_endpoints={"GET /api/*": {"status": 204, "error_rate": 0.2}})
    assert Config.from_dict(yamlio.load(cfg.to_yaml()), warn=False) == cfg


def test_sections_built_alone_raise_config_error_with_every_problem():
    with pytest.raises(ConfigError) as info:
        SyntheticPrior(status=700, latency_sigma=0, statsu=1)
    assert info.value.errors == [
        "drift_learning.synthetic.latency_sigma: 0 is out of range (must be > 0)",
        "drift_learning.synthetic.status: 700 is out of range [100, 599]",
        "unknown key 'drift_learning.synthetic.statsu'; did you mean 'status'?"]
    with pytest.raises(ConfigError, match="drift_learning.limits.max_year: must be after "
                                          r"min_year \(2000\), got 1999"):
        InputLimits(min_year=2000, max_year=1999)


def test_every_problem_of_a_section_is_reported_on_its_line(tmp_path):
    text = ("drift_learning:\n  redact:\n    disable: [jwtt]\n    extra_keys: [' ']\n"
            "    entropy_threshold: 0\n  limits:\n    min_year: 2000\n    max_year: 1999\n")
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text).name)
    assert info.value.errors == [
        "driftbayes.yaml:3: drift_learning.redact.disable: unknown detector 'jwtt'; did you "
        "mean 'jwt'?",
        "driftbayes.yaml:4: drift_learning.redact.extra_keys: item 1: expected a non-empty "
        "string, got ' '",
        "driftbayes.yaml:5: drift_learning.redact.entropy_threshold: 0 is out of range (0, 1]",
        "driftbayes.yaml:8: drift_learning.limits.max_year: must be after min_year (2000), "
        "got 1999"]


def test_empty_keys_mean_the_defaults(tmp_path):
    text = ("drift_learning:\n  redact:\n  limits:\n  endpoint_learning:\n  persona_rules:\n"
            "  synthetic:\n    endpoints:\n      /a/*:\n")
    cfg = load_config(write(tmp_path, text))
    assert cfg.redact == RedactConfig() and cfg.limits == InputLimits()
    assert (cfg.endpoint_learning, cfg.persona_rules) == ({}, ())
    assert cfg.synthetic_endpoints == {"/a/*": {}}
    assert cfg.synthetic_for("GET /a/b") == cfg.synthetic


@pytest.mark.parametrize(("line", "message"), [
    ("sensitivity: .nan", "drift_learning.sensitivity: expected a finite number, got nan"),
    ("synthetic: {rate_per_s: .inf}", "drift_learning.synthetic.rate_per_s: expected a finite "
                                      "number, got inf"),
    ("decay: '0.1'", "drift_learning.decay: expected a number, got '0.1'"),
    ("mode: 5", "drift_learning.mode: 5 is not one of behavioral, statistical, hybrid"),
    ("persona_rules: [{persona: x}]", "drift_learning.persona_rules: rule 1: when: required"),
])
def test_more_wrong_values(tmp_path, line, message):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, f"drift_learning:\n  {line}\n").name)
    assert str(info.value).startswith(f"driftbayes.yaml:2: {message}")
