"""Partitions of a learning run's inputs: whole files, and byte ranges of large line files.

A distributed ``learn`` (:mod:`driftbayes.distributed`) reads its inputs in parallel, one
:class:`Partition` per task:

* a line-oriented file (JSONL, access logs, regex-mapped logs such as OpenStack's) larger than
  the partition size is split into byte ranges; each range knows the file line it starts at
  (the newlines before it are counted first, a pass far cheaper than parsing), so its events
  and bad records carry the file's true line numbers; and every range starts at a line
  ``1 + k·batch_size`` (:func:`batch_aligned`), so it reads exactly the batches the whole file
  is read in (batches matter where events arrive out of order: the stream-clock screen looks
  at neighbours within a batch, sessions are cut per batch);
* gzip files (no random access), HAR, SQLite, span exports, CSV and small files are read whole;
* a registered recording's name stands for its files, each read whole.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Any

from driftbayes.io.jsonl import open_input
from driftbayes.io.recordings import resolve_input

__all__ = ["LINE_FORMATS", "Partition", "batch_aligned", "count_lines", "first_lines",
           "grid_offset", "plan_input"]

#: Formats read line by line: their uncompressed files may be split into byte ranges.
LINE_FORMATS = frozenset({"jsonl", "access-log", "combined", "common", "nasa-tsv", "openstack",
                          "regex"})
_GZIP_MAGIC = b"\x1f\x8b"
_SCAN_BYTES = 1 << 22


@dataclass(frozen=True)
class Partition:
    """One unit of reading: a whole file, or bytes ``start:end`` of one starting at line
    ``first_line``.

    Parameters
    ----------
    path : str
        The file, as the run names it in bad records.
    fmt : str
        Its format (a name in :data:`~driftbayes.io.recordings.FORMATS`).
    input : int
        Position of its input in the run (files are learned in the order given).
    start, end : int
        The byte range; ``end`` None: the whole file.
    first_line : int
        File line of ``start``.
    mapping : CsvMapping or RegexMapping, optional
        A registered recording's mapping.
    recording : str, optional
        The registered recording's name when the file is one of its files.
    """

    path: str
    fmt: str
    input: int
    start: int = 0
    end: int | None = None
    first_line: int = 1
    mapping: Any = None
    recording: str | None = None

    @property
    def whole(self) -> bool:
        return self.end is None

    def __str__(self) -> str:
        if self.whole:
            return self.path
        return f"{self.path} bytes {self.start:,}-{self.end:,} (from line {self.first_line:,})"

    def reader_options(self) -> dict:
        """Keyword arguments that make a reader read just this partition."""
        if self.whole:
            return {}
        return {"byte_range": (self.start, self.end), "first_line": self.first_line}


def plan_input(source: str | os.PathLike, input: int, *, fmt: str | None = None,
               partition_bytes: int = 64 << 20) -> list[Partition]:
    """The partitions of one input of a run (a file or a registered recording's name), in
    reading order; ranges of a split file still need their ``first_line`` (:func:`first_lines`).

    Raises
    ------
    FileNotFoundError, ValueError
        As :func:`~driftbayes.io.recordings.read_events` (no such file, unknown format), or for
        ``-``: standard input cannot be shared among workers.
    """
    key = os.fspath(source)
    if key == "-":
        raise ValueError("'-' (standard input) cannot be read by a distributed run; learn it "
                         "without --workers/--scheduler, or save it to a file first")
    fmt, recording = resolve_input(key, fmt=fmt)
    if recording is not None:
        files = recording.files()
        missing = next((p for p in files if not p.exists()), None if files else
                       recording.resolve())
        if missing is not None:
            raise FileNotFoundError(f"recording {recording.name!r}: {missing} does not exist")
        return [Partition(str(p), fmt, input, mapping=recording.mapping,
                          recording=recording.name) for p in files]
    size = os.path.getsize(key)
    if fmt not in LINE_FORMATS or size <= partition_bytes or _is_gzip(key):
        return [Partition(key, fmt, input)]
    starts = _line_starts(key, size, partition_bytes)
    return [Partition(key, fmt, input, start=a, end=b)
            for a, b in zip(starts, starts[1:] + [size])]


def _is_gzip(path: str) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == _GZIP_MAGIC


def _line_starts(path: str, size: int, partition_bytes: int) -> list[int]:
    """Offsets about ``partition_bytes`` apart, each moved forward to the next line start."""
    starts = [0]
    with open(path, "rb") as f:
        for target in range(partition_bytes, size, partition_bytes):
            if target <= starts[-1]:
                continue
            f.seek(target - 1)  # a range may start right after a newline at target - 1
            pos = target - 1
            while chunk := f.read(1 << 16):
                cut = chunk.find(b"\n")
                if cut >= 0:
                    pos += cut + 1
                    break
                pos += len(chunk)
            else:
                break  # no newline after target: the last range runs to the end
            if pos < size:
                starts.append(pos)
    return starts


def count_lines(part: Partition) -> int:
    """Newlines in the partition's byte range: the lines it holds, since ranges that are not
    last end at a line end."""
    n = 0
    with open_input(part.path, (part.start, part.end)) as f:
        while chunk := f.read(_SCAN_BYTES):
            n += chunk.count(b"\n")
    return n


def first_lines(parts: list[Partition], counts: list[int | None]) -> list[Partition]:
    """The partitions with ``first_line`` set from the line counts of the ranges before them
    in the same file (``counts[i]`` for the ranges, None for whole files)."""
    out, line = [], 1
    for i, part in enumerate(parts):
        if part.whole:
            out.append(part)
            continue
        if part.start == 0:
            line = 1
        out.append(replace(part, first_line=line))
        line += counts[i] or 0
    return out


def grid_offset(part: Partition, batch_size: int) -> tuple[int, int] | None:
    """``(byte offset, line)`` of the first line ``1 + k·batch_size`` at or after the start of
    a range, None when the file ends first."""
    skip = -(part.first_line - 1) % batch_size
    pos = part.start
    with open(part.path, "rb") as f:
        f.seek(pos)
        left = skip
        while left:
            chunk = f.read(_SCAN_BYTES)
            if not chunk:
                return None
            n = chunk.count(b"\n")
            if n < left:
                left -= n
                pos += len(chunk)
                continue
            cut = -1
            for _ in range(left):
                cut = chunk.index(b"\n", cut + 1)
            pos += cut + 1
            left = 0
    if pos >= os.path.getsize(part.path):
        return None
    return pos, part.first_line + skip


def batch_aligned(parts: list[Partition], offsets: list[tuple[int, int] | None]
                  ) -> list[Partition]:
    """The ranges moved to start at batch boundaries (``offsets[i]`` from :func:`grid_offset`
    for the ranges, None for whole files); ranges left empty are dropped."""
    out: list[Partition] = []
    for part, at in zip(parts, offsets):
        if part.whole:
            out.append(part)
            continue
        if part.start == 0:
            at = (0, 1)
        if at is None or (out and not out[-1].whole and out[-1].input == part.input
                          and out[-1].path == part.path and out[-1].start == at[0]):
            continue
        out.append(replace(part, start=at[0], first_line=at[1]))
    # each range ends where the next one of its file starts
    for i, part in enumerate(out):
        if part.whole:
            continue
        nxt = out[i + 1] if i + 1 < len(out) else None
        same = (nxt is not None and not nxt.whole and nxt.input == part.input
                and nxt.path == part.path)
        end = nxt.start if same else os.path.getsize(part.path)
        out[i] = replace(part, end=end)
    return out
