"""Plain-data YAML for the package, on ruamel.yaml (the one YAML library driftbayes uses).

Config files, whose comments survive ``driftbayes config set``, are read and written in
ruamel.yaml's round-trip mode by :mod:`driftbayes.config`; everything else (OpenAPI documents,
persona maps, the config stored in a state file) is plain data read here. The safe loader follows
YAML 1.2, as OpenAPI 3 does: ``yes``/``no`` are strings, and a key given twice is an error.
"""

from __future__ import annotations

from typing import Any

import orjson
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

__all__ = ["YAMLError", "load"]


def load(text: str) -> Any:
    """Dicts, lists and scalars from YAML (or JSON) text; raises :class:`YAMLError`.

    JSON documents (large OpenAPI specs usually are) are parsed by orjson, many times faster
    than any YAML parser; text that only looks like JSON falls back to YAML.
    """
    if text.lstrip()[:1] in ("{", "["):
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    return YAML(typ="safe").load(text)
