from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from driftbayes.templates import SEGMENT_RULES, template_path, template_paths, template_segment

CASES = [
    ("/api/users/42", "/api/users/{id}"),
    ("/api/users/42?x=1", "/api/users/{id}"),
    ("/api/users/42#frag", "/api/users/{id}"),
    ("/api/users/42?next=/a/7#x", "/api/users/{id}"),
    ("/v2/54fadb412c4e40cdbaed9335e4c35a9e/servers/detail", "/v2/{hash}/servers/detail"),
    ("/orders/123e4567-e89b-12d3-a456-426614174000", "/orders/{uuid}"),
    ("/orders/123E4567-E89B-12D3-A456-426614174000/items/3", "/orders/{uuid}/items/{id}"),
    ("/api/v1/foods/{date}/{tripId}", "/api/v1/foods/{date}/{tripId}"),
    ("//api///users//7/", "/api/users/{id}"),
    ("/api/users/", "/api/users"),
    ("/", "/"),
    ("", "/"),
    ("?q=1", "/"),
    ("api/users/5", "/api/users/{id}"),
    ("https://example.com:8443/api/users/5?x=1", "/api/users/{id}"),
    ("/blobs/0123456789abcdef", "/blobs/{hash}"),  # 16 hex chars with digits
    ("/blobs/0123456789abcde", "/blobs/0123456789abcde"),  # 15: too short
    ("/words/deadbeefdeadbeefcafe", "/words/deadbeefdeadbeefcafe"),  # hex letters, no digit
    ("/v2.1/servers", "/v2.1/servers"),
    ("/users/42abc", "/users/42abc"),
    ("/users/-42", "/users/-42"),
    ("/users/0", "/users/{id}"),
    ("/reports/2024-01-31", "/reports/{date}"),
    ("/reports/2024-01-31T12:30:00Z/rows", "/reports/{date}/rows"),
    ("/reports/2024-01-31T12:30:00.125+01:00", "/reports/{date}"),
    ("/reports/2024-1-31", "/reports/2024-1-31"),  # not ISO: kept
    ("/users/jane.doe@example.org/prefs", "/users/{email}/prefs"),
    ("/users/jane.doe%40example.co.uk", "/users/{email}"),
    ("/users/jane@localhost", "/users/jane@localhost"),  # no top-level domain
]


@pytest.mark.parametrize(("path", "expected"), CASES)
def test_template_path(path, expected):
    assert template_path(path) == expected


def test_rule_table_order_and_shape():
    assert [r.name for r in SEGMENT_RULES] == ["template", "id", "uuid", "hash", "date"]
    assert all(r.pattern and (r.placeholder is None or r.placeholder[0] == "{")
               for r in SEGMENT_RULES)
    # a UUID is not swallowed by the hash rule, all digits stay {id} not {hash}
    assert template_segment("0" * 20) == "{id}"
    assert template_segment("123e4567-e89b-12d3-a456-426614174000") == "{uuid}"
    assert template_segment("{name}") == "{name}"
    assert template_segment("users") == "users"


def test_template_paths_matches_scalar():
    rng = np.random.default_rng(1)
    pool = [p for p, _ in CASES]
    paths = np.array([pool[i] for i in rng.integers(0, len(pool), 500)], dtype=object)
    out = template_paths(paths)
    assert out.dtype == object and out.shape == paths.shape
    assert out.tolist() == [template_path(p) for p in paths]


def test_template_paths_empty_and_2d():
    assert template_paths(np.array([], dtype=object)).shape == (0,)
    grid = np.array([["/a/1", "/b/2"], ["/a/1", "/c"]], dtype=object)
    assert template_paths(grid).tolist() == [["/a/{id}", "/b/{id}"], ["/a/{id}", "/c"]]


_SEGMENT_ALPHABET = "0123456789abcdefABCDEF-{}@.%:TZ+ /?#\né😀"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.text(alphabet=_SEGMENT_ALPHABET, max_size=40)
                | st.sampled_from([p for p, _ in CASES]), min_size=1, max_size=30))
def test_arrow_templating_equals_scalar_reference(paths):
    """The vectorised (RE2 in Arrow) templating agrees with the per-path Python one."""
    arr = np.array(paths, dtype=object)
    assert template_paths(arr).tolist() == [template_path(p) for p in paths]


# ------------------------------------------------------------------------------ OpenAPI


from driftbayes.templates import OpenApiTemplates  # noqa: E402

PETSTORE = {
    "openapi": "3.0.3",
    "servers": [{"url": "https://api.example.com/v1"}],
    "paths": {
        "/users/{userId}": {"get": {}},
        "/users/me": {"get": {}},
        "/users/{userId}/friends": {"get": {}},
        "/users/me/{tab}": {"get": {}},
        "/files/{name}.json": {"get": {}},
        "/files/{fileId}": {"get": {}},
        "/files/report.{format}": {"get": {}},
        "/orders/": {"post": {}},
        "x-vendor-extension": {},
    },
}


@pytest.mark.parametrize(("path", "expected"), [
    ("/v1/users/42", "/v1/users/{userId}"),
    ("/v1/users/me", "/v1/users/me"),  # literal beats parameter
    ("/v1/users/me/friends", "/v1/users/me/{tab}"),  # first differing segment decides
    ("/v1/users/7/friends", "/v1/users/{userId}/friends"),
    ("/v1/files/a.json", "/v1/files/{name}.json"),  # mixed segment beats bare parameter
    ("/v1/files/report.csv", "/v1/files/report.{format}"),  # more literal characters win
    ("/v1/files/a.txt", "/v1/files/{fileId}"),
    ("/v1/orders", "/v1/orders"),
    ("/v1/orders/", "/v1/orders"),
    ("https://api.example.com/v1/users/42?x=1#f", "/v1/users/{userId}"),
    ("/v1/users/{id}", "/v1/users/{userId}"),  # heuristic templates re-template
    ("/v1/users/%6De", "/v1/users/me"),  # percent-decoded before comparing literals
    ("/users/42", "/users/{userId}"),  # without the base path: prefix stripped upstream
    ("/v1/users/42/unknown", None),
    ("/v2/users/42/friends/x", None),
    ("/", None),
])
def test_openapi_match(path, expected):
    assert OpenApiTemplates.from_dict(PETSTORE).match(path) == expected


def test_openapi_base_paths_from_servers_and_swagger():
    t = OpenApiTemplates.from_dict({"paths": {"/a/{id}": {}}, "servers": [
        {"url": "/api/"}, {"url": "https://h:{port}/t/{tenant}/", "variables": {"port": {
            "default": "443"}}}, {"url": "{scheme}://h/{base}", "variables": {
                "base": {"default": "v2/x"}}}]})
    assert t.base_paths == ("/api", "/t/{tenant}", "/v2/x")
    assert t.match("/api/a/1") == "/api/a/{id}"
    assert t.match("/t/acme/a/1") == "/t/{tenant}/a/{id}"
    assert t.match("/v2/x/a/1") == "/v2/x/a/{id}"
    swagger = OpenApiTemplates.from_dict({"swagger": "2.0", "basePath": "/v3",
                                          "paths": {"/pets/{petId}": {}}})
    assert swagger.match("/v3/pets/9") == "/v3/pets/{petId}"
    assert OpenApiTemplates.from_dict({"paths": {"/p": {}}}).base_paths == ("",)


def test_openapi_base_path_match_beats_bare_match():
    t = OpenApiTemplates.from_dict({"servers": [{"url": "/api"}],
                                    "paths": {"/{kind}/{id}": {}, "/users": {}}})
    assert t.match("/api/users") == "/api/users"  # not /{kind}/{id} without the base path
    assert t.match("/users") == "/users"
    assert t.match("/x/1") == "/{kind}/{id}"


def test_openapi_template_falls_back_to_heuristics_and_vectorises():
    t = OpenApiTemplates.from_dict(PETSTORE)
    assert t.template("/health/42") == "/health/{id}"
    paths = np.array(["/v1/users/me", "/health/42", "/v1/users/5", "/v1/users/me"], dtype=object)
    assert t.template_many(paths).tolist() == ["/v1/users/me", "/health/{id}",
                                               "/v1/users/{userId}", "/v1/users/me"]
    assert t.match_many(paths).tolist() == ["/v1/users/me", None, "/v1/users/{userId}",
                                            "/v1/users/me"]
    assert t.match_many(np.array([], dtype=object)).shape == (0,)
    assert len(t) == 8 and "8 paths" in repr(t)


def test_openapi_from_file_yaml_json_and_errors(tmp_path):
    import json

    (tmp_path / "spec.json").write_text(json.dumps(PETSTORE))
    assert OpenApiTemplates.from_file(tmp_path / "spec.json").match("/v1/users/1") == \
        "/v1/users/{userId}"
    (tmp_path / "spec.yaml").write_text(
        "openapi: 3.1.0\nservers:\n  - url: /api\npaths:\n  /things/{thingId}:\n    get: {}\n")
    assert OpenApiTemplates.from_file(tmp_path / "spec.yaml").match("/api/things/x") == \
        "/api/things/{thingId}"
    (tmp_path / "bad.yaml").write_text("openapi: [unclosed\n")
    with pytest.raises(ValueError, match="bad.yaml: not valid YAML or JSON"):
        OpenApiTemplates.from_file(tmp_path / "bad.yaml")
    (tmp_path / "nopaths.yaml").write_text("openapi: 3.0.0\n")
    with pytest.raises(ValueError, match="nopaths.yaml: not an OpenAPI document"):
        OpenApiTemplates.from_file(tmp_path / "nopaths.yaml")
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        OpenApiTemplates.from_file(tmp_path / "missing.yaml")
