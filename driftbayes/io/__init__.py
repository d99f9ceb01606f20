"""Traffic readers: every reader streams :class:`~driftbayes.events.EventBatch` es.

- :func:`read_jsonl` — the canonical JSON Lines schema;
- :func:`read_csv_mapped` with a :class:`CsvMapping` — any CSV whose columns are mapped;
- :func:`open_recording` / :data:`RECORDINGS` — named real recordings in ``shared/data/real``;
- :func:`read_events` — picks the reader for a path or recording name.
"""

from __future__ import annotations

from driftbayes.io.csvmap import CsvMapping, read_csv_mapped
from driftbayes.io.jsonl import read_jsonl
from driftbayes.io.recordings import (
    RECORDINGS,
    Recording,
    data_root,
    open_recording,
    read_events,
)

__all__ = [
    "RECORDINGS",
    "CsvMapping",
    "Recording",
    "data_root",
    "open_recording",
    "read_csv_mapped",
    "read_events",
    "read_jsonl",
]
