"""Named real recordings and the format-dispatching :func:`read_events`.

The recordings live beside the project in ``shared/data/real/`` and are never copied into it
(several licences forbid redistribution); :func:`data_root` finds that folder.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

from driftbayes.events import BadRecordReport, EventBatch
from driftbayes.io.csvmap import CsvMapping, read_csv_mapped
from driftbayes.io.jsonl import open_input, read_jsonl

__all__ = ["RECORDINGS", "Recording", "data_root", "open_recording", "read_events"]

_JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz")
_SNIFF_BYTES = 1 << 16


def data_root() -> Path:
    """Folder holding the real recordings (``.../shared/data/real``).

    ``$DRIFTBAYES_DATA`` wins when set (that folder, or its ``real`` subfolder if it has one);
    otherwise the first ``shared/data/real`` found walking up from the current directory, then
    from this package's location.

    Raises
    ------
    FileNotFoundError
        When no such folder exists.
    """
    env = os.environ.get("DRIFTBAYES_DATA")
    if env:
        root = Path(env).expanduser()
        return root / "real" if (root / "real").is_dir() else root
    starts = (Path.cwd().resolve(), Path(__file__).resolve().parent)
    for start in starts:
        for d in (start, *start.parents):
            for candidate in (
                d / "shared" / "data" / "real",
                d.parent / "shared" / "data" / "real",
            ):
                if candidate.is_dir():
                    return candidate
    raise FileNotFoundError(
        "cannot find the real recordings (shared/data/real) above "
        f"{starts[0]} or {starts[1]}; set DRIFTBAYES_DATA to that folder"
    )


@dataclass(frozen=True)
class Recording:
    """A registered real recording: where it is and how to read it.

    Parameters
    ----------
    name : str
    path : str
        Location relative to :func:`data_root`.
    reader : callable
        ``reader(path, mapping, **options)`` for CSV readers, ``reader(path, **options)`` when
        ``mapping`` is None.
    mapping : CsvMapping or None
    description : str
        One line.
    """

    name: str
    path: str
    reader: Callable[..., Iterator[EventBatch]]
    mapping: CsvMapping | None
    description: str

    def resolve(self) -> Path:
        """Absolute path of the recording file."""
        return data_root() / self.path

    def open(self, **options) -> Iterator[EventBatch]:
        """Stream the recording; ``options`` go to the reader (``strict``, ``report``, …)."""
        path = self.resolve()
        if not path.exists():
            raise FileNotFoundError(f"recording {self.name!r}: {path} does not exist")
        if self.mapping is None:
            return self.reader(path, **options)
        return self.reader(path, self.mapping, **options)


#: Registered recordings by name; ``trainticket`` is the default demo recording.
RECORDINGS: dict[str, Recording] = {
    r.name: r
    for r in (
        Recording(
            name="trainticket",
            path="trainticket-traces/requests.csv.gz",
            reader=read_csv_mapped,
            mapping=CsvMapping(
                ts="start_unix_ns",
                ts_unit="ns",
                method="method",
                path=None,
                endpoint="endpoint",
                status=None,
                latency="duration_us",
                latency_unit="us",
            ),
            description=(
                "TrainTicket microservices: 27,364 requests in 12.3 h (2023-01-30), "
                "10 endpoints, latency only, 17 injected faults then a regime shift"
            ),
        ),
    )
}


def open_recording(name: str, **options) -> Iterator[EventBatch]:
    """Stream the registered recording ``name`` (see :data:`RECORDINGS`).

    ``options`` (``strict``, ``report``, ``batch_size``) go to its reader.
    """
    try:
        recording = RECORDINGS[name]
    except KeyError:
        raise KeyError(f"unknown recording {name!r}; registered: {', '.join(RECORDINGS)}") from None
    return recording.open(**options)


def _looks_like_jsonl(path: str | PathLike[str]) -> bool:
    with open_input(path) as f:
        head = f.peek(_SNIFF_BYTES)[:_SNIFF_BYTES] if hasattr(f, "peek") else b""
    head = head.removeprefix(b"\xef\xbb\xbf").lstrip()
    return head.startswith(b"{")


def read_events(
    path_or_name: str | PathLike[str],
    *,
    fmt: str | None = None,
    mapping: CsvMapping | None = None,
    strict: bool = False,
    report: BadRecordReport | None = None,
    persona_field: str = "persona",
    batch_size: int = 65536,
) -> Iterator[EventBatch]:
    """Stream events from a file or a registered recording, choosing the reader.

    Parameters
    ----------
    path_or_name : str or path-like
        A name in :data:`RECORDINGS`, a file path, or ``-`` (stdin, JSONL).
    fmt : {"jsonl", "csv"}, optional
        Force a format; ``"csv"`` needs ``mapping``. Otherwise: a registered name → its reader;
        a ``mapping`` → CSV; ``.jsonl``/``.jsonl.gz``/``.ndjson`` or content starting with ``{``
        → JSONL.
    mapping : CsvMapping, optional
        Column mapping for CSV input.
    strict, report, persona_field, batch_size
        As for :func:`~driftbayes.io.jsonl.read_jsonl` (``persona_field`` is JSONL only).

    Raises
    ------
    ValueError
        When the format cannot be determined; the message lists the supported formats.
    """
    options = {"strict": strict, "report": report, "batch_size": batch_size}
    key = os.fspath(path_or_name)
    if fmt is None and isinstance(key, str) and key in RECORDINGS:
        return open_recording(key, **options)
    if fmt is None and mapping is not None:
        fmt = "csv"
    if fmt is None:
        if key == "-" or key.lower().endswith(_JSONL_SUFFIXES):
            fmt = "jsonl"
        elif not Path(key).is_file():
            raise FileNotFoundError(
                f"{key}: no such file and not a registered recording "
                f"(registered: {', '.join(RECORDINGS)})"
            )
        elif _looks_like_jsonl(key):
            fmt = "jsonl"
    if fmt == "jsonl":
        return read_jsonl(path_or_name, persona_field=persona_field, **options)
    if fmt == "csv":
        if mapping is None:
            raise ValueError(f"{key}: CSV input needs a CsvMapping (mapping=...)")
        return read_csv_mapped(path_or_name, mapping, **options)
    what = f"unknown format {fmt!r}" if fmt is not None else "cannot tell its format"
    raise ValueError(
        f"{key}: {what}. Supported: JSONL (.jsonl, .jsonl.gz, .ndjson, or content starting "
        f"with '{{'), CSV with a column mapping (mapping=CsvMapping(...)), and the registered "
        f"recordings ({', '.join(RECORDINGS)})."
    )
