"""Response bodies the mock serves: recorded ones (redacted) and ones shaped by an OpenAPI schema.

A recording that carries response bodies (record mode, HAR ``content.text``) leaves one body per
endpoint × status in the learner (the most recent, :attr:`DriftLearner.bodies_`): decoded
(gzip / deflate), redacted with the configured policy (:func:`driftbayes.redact.redact_json`
for JSON, :func:`~driftbayes.redact.redact_text` otherwise) and kept only when it is text and
at most :data:`MAX_BODY_BYTES` long. Binary bodies (images, archives, unknown encodings) are
never kept: what cannot be redacted cannot be stored.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from typing import Any

import numpy as np
import orjson

from driftbayes.redact import RedactionPolicy, redact_json, redact_text

#: Largest (decoded) body kept; larger ones would be cut mid-document, so they are skipped.
MAX_BODY_BYTES = 64 * 1024
_TEXT_MARKERS = ("json", "text/", "xml", "javascript", "x-www-form-urlencoded", "yaml", "csv")


def is_text_type(content_type: str | None) -> bool:
    """Whether a ``Content-Type`` names text the mock can redact and serve back."""
    ct = (content_type or "").lower()
    return any(m in ct for m in _TEXT_MARKERS)


def _decode(data: bytes, encoding: str, limit: int) -> bytes | None:
    """``data`` without its content coding (None: unknown coding, corrupt or over ``limit``)."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return data
    if encoding not in ("gzip", "x-gzip", "deflate"):
        return None
    # gzip; deflate is zlib-wrapped per RFC 9110, but some servers send it raw
    tries = [16 + zlib.MAX_WBITS] if "gzip" in encoding else [zlib.MAX_WBITS, -zlib.MAX_WBITS]
    for wbits in tries:
        try:
            return zlib.decompressobj(wbits).decompress(data, limit + 1)
        except zlib.error:
            continue
    return None


def redact_body(data: bytes, content_type: str | None, content_encoding: str = "", *,
                policy: RedactionPolicy, limit: int = MAX_BODY_BYTES) -> str | None:
    """A response body as redacted text, or None when it must not be kept.

    Parameters
    ----------
    data : bytes
        The body as sent (possibly gzip / deflate coded).
    content_type, content_encoding : str
        The response's ``Content-Type`` and ``Content-Encoding`` headers.
    policy : RedactionPolicy
        Secret names to redact (JSON fields and ``name=value`` pairs in text).
    limit : int
        Largest decoded size kept (bytes); 0 keeps nothing.

    Returns
    -------
    str or None
        None for an empty, binary, over-long, non-UTF-8 or undecodable body.
    """
    if limit <= 0 or not data or not is_text_type(content_type):
        return None
    raw = _decode(data, content_encoding or "", limit)
    if raw is None or not raw or len(raw) > limit:
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if "json" in (content_type or "").lower():
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return redact_text(text, policy=policy)
        clean = redact_json(value, policy=policy)
        return text if clean == value else orjson.dumps(clean).decode()  # as recorded if clean
    return redact_text(text, policy=policy)


# --------------------------------------------------------------------------------------------
# OpenAPI: examples and schema-shaped instances


def response_example(resp: Any, doc: Mapping | None = None) -> Any:
    """A body for an OpenAPI 3 / Swagger 2 response object: its first example (JSON media
    preferred), else an instance shaped by its schema (:func:`schema_instance`), else None."""
    resp = _deref(resp, doc)
    if not isinstance(resp, Mapping):
        return None
    content = resp.get("content")
    if isinstance(content, Mapping) and content:
        types = sorted(content, key=lambda c: (c != "application/json", "json" not in str(c)))
        for ct in types:
            media = content[ct]
            if not isinstance(media, Mapping):
                continue
            if "example" in media:
                return media["example"]
            examples = media.get("examples")
            if isinstance(examples, Mapping):
                for ex in examples.values():
                    ex = _deref(ex, doc)
                    if isinstance(ex, Mapping) and "value" in ex:
                        return ex["value"]
        for ct in types:
            media = content[ct]
            if isinstance(media, Mapping) and isinstance(media.get("schema"), Mapping):
                return schema_instance(media["schema"], doc)
    examples = resp.get("examples")  # Swagger 2.0: mime type -> example
    if isinstance(examples, Mapping) and examples:
        for ct in sorted(examples, key=lambda c: "json" not in str(c)):
            return examples[ct]
    if isinstance(resp.get("schema"), Mapping):  # Swagger 2.0
        return schema_instance(resp["schema"], doc)
    return None


_FORMATS = {"date-time": "2024-01-01T00:00:00Z", "date": "2024-01-01", "email": "user@example.com",
            "uuid": "00000000-0000-4000-8000-000000000000", "uri": "https://example.com/",
            "url": "https://example.com/", "hostname": "example.com", "ipv4": "192.0.2.1",
            "ipv6": "2001:db8::1", "byte": "", "binary": "", "password": "********"}


def _deref(node: Any, doc: Mapping | None, seen: frozenset = frozenset()) -> Any:
    """Follow local ``$ref``s (``#/components/...``); unknown or cyclic refs give None."""
    while isinstance(node, Mapping) and isinstance(node.get("$ref"), str):
        ref = node["$ref"]
        if ref in seen or not ref.startswith("#/") or doc is None:
            return None
        seen = seen | {ref}
        target: Any = doc
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            target = target.get(part) if isinstance(target, Mapping) else None
        node = target
    return node


def schema_instance(schema: Any, doc: Mapping | None = None, *, depth: int = 0) -> Any:
    """A JSON value of the shape a JSON Schema / OpenAPI schema describes.

    ``example``, ``default``, ``const`` and the first ``enum`` value win; ``allOf`` merges,
    ``oneOf``/``anyOf`` take the first choice; objects list their declared properties, arrays
    hold one item; strings follow their ``format``; numbers respect ``minimum``. Recursion stops
    at depth 8 (a self-referencing schema gives ``None`` there).
    """
    schema = _deref(schema, doc)
    if not isinstance(schema, Mapping) or depth > 8:
        return None
    for key in ("example", "default", "const"):
        if key in schema:
            return schema[key]
    if isinstance(schema.get("examples"), list) and schema["examples"]:
        return schema["examples"][0]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    if isinstance(schema.get("allOf"), list):
        merged: dict[str, Any] = {}
        for part in schema["allOf"]:
            value = schema_instance(part, doc, depth=depth + 1)
            if isinstance(value, dict):
                merged.update(value)
        return merged
    for key in ("oneOf", "anyOf"):
        if isinstance(schema.get(key), list) and schema[key]:
            return schema_instance(schema[key][0], doc, depth=depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):  # JSON Schema 2020 / OpenAPI 3.1: ["string", "null"]
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = ("object" if "properties" in schema else "array" if "items" in schema else None)
    if kind == "object":
        props = schema.get("properties") or {}
        out = {name: schema_instance(sub, doc, depth=depth + 1) for name, sub in props.items()}
        return out
    if kind == "array":
        item = schema_instance(schema.get("items"), doc, depth=depth + 1)
        return [] if item is None else [item]
    if kind == "string":
        return _FORMATS.get(str(schema.get("format", "")), "string")
    if kind in ("integer", "number"):
        low = schema.get("minimum", 0)
        value = low if isinstance(low, (int, float)) else 0
        return int(value) if kind == "integer" else float(value)
    if kind == "boolean":
        return True
    return None


def recorded_bodies_to_dataset(bodies: dict[tuple[str, int], tuple[str, str]]):
    """Recorded (redacted) bodies, one per endpoint × status, on a ``body`` dim."""
    import xarray as xr

    items = sorted(bodies.items())
    return xr.Dataset({
        "body_endpoint": ("body", np.array([k[0] for k, _ in items], dtype=object)),
        "body_status": ("body", np.array([k[1] for k, _ in items], dtype=np.int64)),
        "body_content_type": ("body", np.array([v[0] for _, v in items], dtype=object)),
        "body_text": ("body", np.array([v[1] for _, v in items], dtype=object)),
    })


def recorded_bodies_from_dataset(ds) -> dict[tuple[str, int], tuple[str, str]]:
    """Inverse of :func:`recorded_bodies_to_dataset` (none in states older than bodies)."""
    if "body_text" not in ds:
        return {}
    return {(str(e), int(s)): (str(ct), str(text))
            for e, s, ct, text in zip(ds["body_endpoint"].values, ds["body_status"].values,
                                      ds["body_content_type"].values, ds["body_text"].values)}
