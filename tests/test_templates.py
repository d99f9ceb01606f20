from __future__ import annotations

import numpy as np
import pytest

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
]


@pytest.mark.parametrize(("path", "expected"), CASES)
def test_template_path(path, expected):
    assert template_path(path) == expected


def test_rule_table_order_and_shape():
    assert [r.name for r in SEGMENT_RULES] == ["template", "id", "uuid", "hash"]
    assert all(
        r.pattern.pattern and (r.placeholder is None or r.placeholder[0] == "{")
        for r in SEGMENT_RULES
    )
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


def test_template_memo_is_bounded(monkeypatch):
    import driftbayes.templates as templates

    monkeypatch.setattr(templates, "_MEMO_MAX", 10)
    paths = np.array([f"/u/{i}/x{i % 3}" for i in range(25)], dtype=object)
    out = template_paths(paths)
    assert len(templates._MEMO) <= 25
    assert out.tolist() == [f"/u/{{id}}/x{i % 3}" for i in range(25)]
    assert template_paths(paths[:5]).tolist() == out[:5].tolist()
