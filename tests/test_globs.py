from __future__ import annotations

import pytest

from driftbayes.globs import glob_specificity, learning_enabled, match_glob, most_specific

SEED_ENDPOINTS = {"/api/users/*": True, "/api/orders/*": True, "/api/payments/*": False}


def test_most_specific_pattern_wins():
    rules = {"/api/*": True, "/api/payments/*": False}
    assert match_glob(rules, "POST /api/payments/{id}") is False
    assert match_glob(rules, "GET /api/users/{id}") is True
    assert match_glob(rules, "GET /health") is None


def test_most_specific_ignores_mapping_order():
    rules = {"/api/payments/*": False, "/api/*": True}
    assert match_glob(rules, "POST /api/payments/{id}") is False
    assert match_glob(rules, "GET /api/users") is True


def test_exact_name_beats_any_glob():
    rules = {"/api/users/*": False, "/api/users/{id}": True, "/api/users/{id}*": False}
    assert match_glob(rules, "GET /api/users/{id}") is True
    assert match_glob(rules, "GET /api/users/{id}/orders") is False


def test_star_crosses_slashes_but_prefix_slash_is_literal():
    assert match_glob({"/api/*": True}, "GET /api/users/{id}/orders/{id}") is True
    assert match_glob({"/api/users/*": True}, "GET /api/users/{id}") is True
    assert match_glob({"/api/users/*": True}, "GET /api/users/{id}/orders") is True
    assert match_glob({"/api/users/*": True}, "GET /api/users") is None
    assert match_glob({"/api/users/**": True}, "GET /api/users/a/b") is True


def test_method_prefixed_patterns_match_the_whole_name():
    rules = {"/api/*": True, "POST /api/*": False}
    assert match_glob(rules, "GET /api/orders") is True
    assert match_glob(rules, "POST /api/orders") is False
    # a method pattern never matches a bare template, and a template pattern never sees the method
    assert match_glob({"POST /api/*": True}, "/api/orders") is None
    assert match_glob({"GET*": True}, "GET /api/orders") is None
    assert match_glob({"[GP]* /api/*": True}, "DELETE /api/orders") is None
    assert match_glob({"[GP]* /api/*": True}, "POST /api/orders") is True


def test_bare_templates_are_matched_too():
    assert match_glob({"/api/users/*": False}, "/api/users/{id}") is False


def test_question_mark_classes_and_case():
    assert match_glob({"/v?/items": True}, "GET /v2/items") is True
    assert match_glob({"/v?/items": True}, "GET /v10/items") is None
    assert match_glob({"/v[12]/items": True}, "GET /v2/items") is True
    assert match_glob({"/v[12]/items": True}, "GET /v3/items") is None
    assert match_glob({"/API/*": True}, "GET /api/x") is None


def test_specificity_order():
    exact = glob_specificity("/api/users/{id}")
    assert exact[0] is True and exact > glob_specificity("/api/users/{id}/*")
    # more literal characters win
    assert glob_specificity("/api/users/*") > glob_specificity("/api/*")
    # then fewer wildcards: 3 literals each, 1 vs 2 wildcards
    assert glob_specificity("/ab*") > glob_specificity("/a*b*")
    assert most_specific({"/a*b*": "two", "/ab*": "one"}, "GET /abc") == "one"
    # a run of stars and a class count as one wildcard each, literals exclude them
    assert glob_specificity("/a**") == (False, 2, -1, 4)
    assert glob_specificity("/v[12]/x") == (False, 4, -1, 8)
    # then the longer pattern
    assert glob_specificity("/a/**") > glob_specificity("/a/*")


def test_equally_specific_patterns_resolve_to_first_listed():
    assert most_specific({"/a/*/x": 1, "/a/x/*": 2}, "GET /a/x/x") == 1
    assert most_specific({"/a/x/*": 2, "/a/*/x": 1}, "GET /a/x/x") == 2


def test_learning_enabled_opt_in():
    assert learning_enabled(None, "GET /anything") is True
    assert learning_enabled({}, "GET /anything") is True
    assert learning_enabled(SEED_ENDPOINTS, "GET /api/users/{id}") is True
    assert learning_enabled(SEED_ENDPOINTS, "POST /api/orders/{id}") is True
    assert learning_enabled(SEED_ENDPOINTS, "POST /api/payments/{id}") is False
    assert learning_enabled(SEED_ENDPOINTS, "GET /api/products") is False  # not listed: opt-in
    assert learning_enabled({"/api/payments/*": False}, "GET /api/users/{id}") is False


@pytest.mark.parametrize(
    ("persona", "expected"),
    [("premium-customer", True), ("regular-customer", True), ("admin", False), ("guest", False)],
)
def test_persona_rules(persona, expected):
    rules = {"premium-customer": True, "regular-customer": True, "admin": False}
    assert learning_enabled(rules, persona) is expected


def test_persona_globs_and_spaces():
    rules = {"*-customer": True, "VIP customer": False}
    assert learning_enabled(rules, "trial-customer") is True
    assert learning_enabled(rules, "VIP customer") is False


def test_most_specific_generic_values():
    overrides = {"/api/*": {"latency_median_ms": 80}, "/api/users/*": {"latency_median_ms": 40}}
    assert most_specific(overrides, "GET /api/users/{id}") == {"latency_median_ms": 40}
    assert most_specific(overrides, "GET /api/orders") == {"latency_median_ms": 80}
    assert most_specific(overrides, "GET /health") is None
    assert most_specific(None, "GET /health") is None
