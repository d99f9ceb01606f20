"""Secret detectors by value: true positives, near misses, config switches, templates, sessions."""

from __future__ import annotations

import numpy as np
import pytest

from driftbayes.config import Config, ConfigError
from driftbayes.redact import (
    DETECTORS,
    REDACTED,
    RedactionPolicy,
    card_ok,
    find_secrets,
    hash_session,
    iban_ok,
    is_high_entropy,
    redact_headers,
    redact_json,
    redact_query,
    redact_text,
    redact_url,
    redaction_policy,
    scrub,
)
from driftbayes.templates import template_path, template_paths

FONT = "/fonts/xjAJXh38I15wypJXxuGMBp0EAVxt0G0biEntp43Qt6E.ttf"
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
    "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)

#: (detector, values it must find, near misses it must leave alone)
CASES = [
    (
        "jwt",
        [JWT, "Bearer-less " + JWT],
        ["eyJhbGciOiJIUzI1NiJ9", "eyJ.eyJ.x", "header.payload.signature"],
    ),
    (
        "aws_key",
        ["AKIAIOSFODNN7EXAMPLE", "ASIAY34FZKBOKMUTVV7A"],
        [
            "AKIAIOSFODNN7EXAMPL",
            "AKIAIOSFODNN7EXAMPLEX",
            "akiaiosfodnn7example",
            "XAKIAIOSFODNN7EXAMPLE",
        ],
    ),
    (
        "github_token",
        ["ghp_" + "a1B2" * 9, "gho_" + "Z" * 36, "github_pat_11ABCDEFG0123456789_abcdefXYZ"],
        ["ghp_" + "a" * 35, "ghx_" + "a" * 36, "xghp_" + "a" * 36],
    ),
    (
        "slack_token",
        [
            "xoxb-1234567890-abcdefghij",
            "xoxp-12-34-56-abcdef0123",
            "https://hooks.slack.com/services/T0000/B0000/XXXXXXXXXXXXXXXX",
        ],
        ["xoxb-short", "xoxz-1234567890-abcdefghij"],
    ),
    (
        "stripe_key",
        ["sk_live_4eC39HqLyjWDarjtT1zdp7dc", "rk_test_abcdefghij12", "whsec_" + "a1" * 12],
        ["sk_live_short", "sk_prod_4eC39HqLyjWDarjtT1zdp7dc", "task_live_4eC39HqLyjWDarjtT1zdp7dc"],
    ),
    (
        "card",
        [
            "4111111111111111",
            "4111 1111 1111 1111",
            "5500-0000-0000-0004",
            "378282246310005",
            "6011111111111117",
        ],
        [
            "4111111111111112",  # fails Luhn
            "1690000000000",  # an epoch in ms: no card brand starts with 1
            "5421476359479",  # Luhn-valid but 13 digits: no brand of that length
            "41111111111111111111",  # 20 digits
            "s53772975319328",
            "2024-01-31",
        ],
    ),
    (
        "email",
        ["jane.doe@example.org", "a+tag@sub.example.co.uk"],
        ["jane@localhost", "Wikipedia-logo-v2@2x.png", "200@70.jpg", "@example.com"],
    ),
    (
        "iban",
        ["DE89370400440532013000", "GB82 WEST 1234 5698 7654 32", "FR1420041010050500013M02606"],
        [
            "DE89370400440532013001",  # checksum
            "DE8937040044053201300",  # length for DE
            "XX00123456789012345",
        ],
    ),
    (
        "ssn",
        ["123-45-6789", "ssn 078-05-1120."],
        [
            "000-12-3456",
            "666-12-3456",
            "900-12-3456",
            "123-00-4567",
            "123-45-0000",
            "123456789",
            "2024-01-31",
            "1-123-45-6789-0",
        ],
    ),
    (
        "entropy",
        [
            "Zq8Xv3Lm9Rt2Wp7Ks4Nd6Hy1Bc5Fg0Jx",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "k3j9x0q2m8v7b1n4c6z5l0p2o9i8u7y6",
        ],
        [
            "GetUserProfileInformationV2Handler",  # CamelCase words
            "logstash-monitorama-2013",
            "how-to-configure-the-server-in-production-2021",  # slugs
            "54fadb412c4e40cdbaed9335e4c35a9e",
            "0123456789abcdef0123456789abcdef01234567",  # hex
            "123e4567-e89b-12d3-a456-426614174000",  # UUID
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA1",
            "Zq8Xv3Lm9Rt2Wp7Ks4Nd6Hy",  # low entropy / short
            "KatrinaNewOrleansFlooded_edit2",
            "tag_for_child_directed_treatment",
        ],
    ),
]


@pytest.mark.parametrize(("kind", "hits", "misses"), CASES, ids=[c[0] for c in CASES])
def test_detector_true_positives_and_near_misses(kind, hits, misses):
    only = RedactionPolicy(detectors=(kind,))
    for value in hits:
        spans = find_secrets(f"a {value} z", only)
        assert [k for *_, k in spans] == [kind], value
        assert value.split()[-1] not in scrub(f"a {value} z", only)
    for value in misses:
        assert find_secrets(value, only) == [], value
        assert scrub(value, only) == value


def test_checksums_and_entropy_rule():
    assert card_ok("4111111111111111") and not card_ok("4111111111111112")
    assert iban_ok("GB82 WEST 1234 5698 7654 32") and not iban_ok("GB82 WEST 1234 5698 7654 33")
    rng = np.random.default_rng(0)
    alphabet = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"))
    tokens = ["".join(rng.choice(alphabet, 32)) for _ in range(500)]
    assert np.mean([is_high_entropy(t) for t in tokens]) > 0.95  # random base62 is caught
    assert not is_high_entropy("Zq8Xv3Lm9Rt2Wp7Ks4Nd6Hy1Bc5Fg0Jx", min_length=40)


def test_channels_query_headers_json_text_urls():
    assert redact_query(f"ref={JWT}&page=2") == "ref=[REDACTED]&page=2"
    assert redact_query("to=jane%40example.org&n=1") == "to=[REDACTED]&n=1"
    assert redact_headers({"X-Note": f"id {JWT}", "Accept": "*/*"}) == {
        "x-note": f"id {REDACTED}",
        "accept": "*/*",
    }
    body = {
        "contact": "mail jane.doe@example.org now",
        "cards": ["4111 1111 1111 1111"],
        "id": 4111111111111111,
        "ok": "plain words",
        "AKIAIOSFODNN7EXAMPLE": 1,
    }
    assert redact_json(body) == {
        "contact": f"mail {REDACTED} now",
        "cards": [REDACTED],
        "id": 4111111111111111,
        "ok": "plain words",
        REDACTED: 1,
    }
    assert redact_text("user jane.doe@example.org paid with 4111-1111-1111-1111") == (
        f"user {REDACTED} paid with {REDACTED}"
    )
    assert redact_url(f"https://h/u/{JWT}/x?ref=AKIAIOSFODNN7EXAMPLE#f") == (
        "https://h/u/{jwt}/x?ref=[REDACTED]#f"
    )


def test_path_segments_become_typed_parameters():
    cases = {
        f"/users/{JWT}/profile": "/users/{jwt}/profile",
        "/keys/AKIAIOSFODNN7EXAMPLE": "/keys/{aws_key}",
        "/cards/4111-1111-1111-1111": "/cards/{card}",
        "/cards/4111111111111111": "/cards/{id}",  # all digits: an id parameter already
        "/users/jane.doe%40example.org": "/users/{email}",
        "/accounts/GB82WEST12345698765432": "/accounts/{iban}",
        "/people/123-45-6789": "/people/{ssn}",
        "/s/Zq8Xv3Lm9Rt2Wp7Ks4Nd6Hy1Bc5Fg0Jx": "/s/{token}",
        "/t/ghp_" + "a1B2" * 9: "/t/{github_token}",
        # near misses keep their names
        "/static/app.3f9a1c.js": "/static/app.3f9a1c.js",
        FONT: FONT,  # a content-hashed asset, not a key
        "/img/logo@2x.png": "/img/logo@2x.png",
        "/presentations/logstash-monitorama-2013": "/presentations/logstash-monitorama-2013",
        "/v2/54fadb412c4e40cdbaed9335e4c35a9e/servers": "/v2/{hash}/servers",
        "/o/123e4567-e89b-12d3-a456-426614174000": "/o/{uuid}",
    }
    for path, want in cases.items():
        assert template_path(path) == want, path
    # the vectorised (Arrow) templating agrees, distinct paths templated once
    paths = np.array(list(cases) * 3, dtype=object)
    assert template_paths(paths).tolist() == [cases[p] for p in paths]


def test_every_detector_can_be_switched_off():
    for kind, hits, _ in CASES:
        off = RedactionPolicy(detectors=tuple(d for d in DETECTORS if d != kind))
        for value in hits:
            assert kind not in {k for *_, k in find_secrets(value, off)}, (kind, value)
    cfg = Config(redact={"disable": ["email", "entropy"]})
    policy = RedactionPolicy.from_config(cfg)
    assert (
        "email" not in policy.active and "entropy" not in policy.active and "jwt" in policy.active
    )
    with redaction_policy(policy):  # readers run under the config's policy
        assert template_path("/users/jane.doe@example.org") == "/users/jane.doe@example.org"
        assert template_paths(
            np.array(["/s/Zq8Xv3Lm9Rt2Wp7Ks4Nd6Hy1Bc5Fg0Jx"], dtype=object)
        ).tolist() == ["/s/Zq8Xv3Lm9Rt2Wp7Ks4Nd6Hy1Bc5Fg0Jx"]
        assert template_path(f"/u/{JWT}") == "/u/{jwt}"
    assert RedactionPolicy(enabled=False).active == ()
    assert scrub(JWT, RedactionPolicy(enabled=False)) == JWT
    with pytest.raises(ConfigError, match="unknown detector 'emails'.*did you mean 'email'"):
        Config(redact={"disable": ["emails"]})
    with pytest.raises(ValueError, match="unknown secret detector"):
        RedactionPolicy(detectors=("nope",))


def test_session_hash_matches_record_mode_and_is_stable():
    from driftbayes.server.sessions import session_id

    raw = "abc123-session"
    assert hash_session(raw) == session_id({"X-Session-Id": raw})  # same digest as serve/record
    assert hash_session(raw) == hash_session(raw) != raw
    assert hash_session(hash_session(raw)) == hash_session(raw)  # idempotent
    assert hash_session("") == ""
    assert hash_session("har:capture.har#page_1") == "har:capture.har#page_1"
