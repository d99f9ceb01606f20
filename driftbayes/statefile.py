"""Exclusive writers for a state file: a lock file beside it, and orphaned-``.tmp`` cleanup.

Every process that changes a state (``learn``, ``reset``, ``serve``'s admin reset, ``record``'s
saves) holds :func:`state_lock` for its whole read–change–save cycle, so two writers never
both read the same old state and one's update is lost. The lock is ``<state>.lock`` beside the
state (``filelock``: ``flock`` on POSIX); it is released when the process ends, even on
``kill -9``. Readers (``patterns``, ``sample``, ``export``, ``serve``) need no lock: saves
replace the file atomically.

The lock is re-entrant per thread within one process (one :class:`filelock.FileLock` per lock
path), so :func:`~driftbayes.state.save_state`, which takes it too, can run inside a held cycle.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout

__all__ = [
    "DEFAULT_WAIT_S",
    "StateLockedError",
    "fingerprint",
    "lock_path",
    "remove_orphans",
    "state_lock",
    "tmp_glob",
]

#: Seconds a second writer waits for the lock before failing (``--wait``; 0 fails at once).
DEFAULT_WAIT_S = 60.0

_locks: dict[str, FileLock] = {}
_locks_guard = threading.Lock()


class StateLockedError(RuntimeError):
    """Another process holds the state's lock for longer than we were willing to wait."""


def lock_path(state: str | os.PathLike) -> Path:
    """The lock file of a state: ``<state>.lock`` in the same folder."""
    state = Path(state)
    return state.with_name(state.name + ".lock")


def tmp_glob(state: str | os.PathLike) -> str:
    """Glob (in the state's folder) of the temporary files :func:`save_state` writes."""
    return Path(state).name + ".*.tmp"


def _filelock(path: Path) -> FileLock:
    key = os.path.abspath(path)
    with _locks_guard:
        lock = _locks.get(key)
        if lock is None:
            lock = _locks[key] = FileLock(key, thread_local=True)
        return lock


@contextlib.contextmanager
def state_lock(state: str | os.PathLike, wait: float = DEFAULT_WAIT_S) -> Iterator[Path]:
    """Hold the state's writer lock (waiting up to ``wait`` seconds; ``< 0`` waits forever).

    Parameters
    ----------
    state : path
        The state file (it need not exist yet; its folder is created).
    wait : float
        Seconds to wait for another writer to finish; 0 fails at once.

    Raises
    ------
    StateLockedError
        When the lock is still held after ``wait`` seconds.
    OSError
        When the folder cannot hold a lock file (permissions, read-only file system).
    """
    state = Path(state)
    try:
        state.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise NotADirectoryError(20, "is not a folder, so it cannot hold the state; choose "
                                 "another --state", str(state.parent)) from None
    lp = lock_path(state)
    if not os.access(state.parent, os.W_OK):
        raise PermissionError(13, "folder is not writable (cannot create the state's lock "
                              "file); choose a --state in a writable folder", str(state.parent))
    lock = _filelock(lp)
    try:
        lock.acquire(timeout=wait)
    except Timeout:
        raise StateLockedError(
            f"{state}: another driftbayes process is writing this state (lock {lp}); "
            f"waited {wait:g} s — retry later or pass a longer --wait SECONDS") from None
    try:
        yield state
    finally:
        lock.release()


def remove_orphans(state: str | os.PathLike) -> list[Path]:
    """Delete temporary files an interrupted save left beside ``state``.

    Call only while holding :func:`state_lock`: then no other save is writing one.
    """
    state = Path(state)
    gone = []
    if not state.parent.is_dir():
        return gone
    for tmp in state.parent.glob(tmp_glob(state)):
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
            gone.append(tmp)
    return gone


def fingerprint(state: str | os.PathLike) -> tuple[int, int, int] | None:
    """``(inode, size, mtime_ns)`` of the state file, None when it does not exist.

    A save replaces the file (a new inode), so a changed fingerprint means another writer
    saved since the fingerprint was taken.
    """
    try:
        st = os.stat(state)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)
