"""Sessions seen by the servers: the session id of a request and where each session is in its flow.

Record mode stores the (hashed) id with each exchange so the learner cuts flows from it; the
mock server keeps, per session, the last endpoint served, so a request is judged against the
transition model's row for the step before it (``traffic_mirroring``).
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections import OrderedDict
from collections.abc import Mapping
from http.cookies import CookieError, SimpleCookie
from typing import Any

#: Request headers whose value is a session id (first present wins), lower case.
SESSION_HEADERS = ("x-session-id", "x-session")
#: Cookies whose value is a session id (first present wins), lower case.
SESSION_COOKIES = ("session", "sessionid", "session_id", "sid", "jsessionid", "phpsessid",
                   "connect.sid", "_session_id")


def _get(headers: Mapping[str, str] | Any, name: str) -> str | None:
    if hasattr(headers, "getlist"):  # Starlette headers: case-insensitive already
        return headers.get(name)
    for k, v in headers.items():
        if k.lower() == name:
            return v
    return None


def session_id(headers: Mapping[str, str] | Any) -> str:
    """The session id of a request — a session header, else a session cookie — hashed (a
    session id is a credential: only a one-way digest of it is ever kept); ``""`` if none."""
    value = ""
    for name in SESSION_HEADERS:
        if _get(headers, name):
            value = _get(headers, name)
            break
    cookie = _get(headers, "cookie") if not value else None
    if cookie:
        jar = SimpleCookie()
        with contextlib.suppress(CookieError):
            jar.load(cookie)
        cookies = {k.lower(): m.value for k, m in jar.items()}
        value = next((cookies[n] for n in SESSION_COOKIES if cookies.get(n)), "")
    if not value:
        return ""
    return "s-" + hashlib.sha256(value.encode("utf-8", "surrogateescape")).hexdigest()[:20]


class SessionFlows:
    """Last endpoint of each live session, forgotten after ``gap`` seconds of silence.

    Parameters
    ----------
    gap : float
        Inactivity (seconds) after which a session starts again from START (``session_gap``).
    capacity : int
        Most sessions remembered; the least recently active is dropped beyond it.
    clock : callable
        Seconds, monotonic (injectable for tests).
    """

    def __init__(self, gap: float, capacity: int = 100_000, clock=time.monotonic):
        self.gap = float(gap)
        self.capacity = int(capacity)
        self.clock = clock
        self._last: OrderedDict[str, tuple[str, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._last)

    def previous(self, sid: str) -> str | None:
        """Endpoint of the session's last step, None when it starts (new or expired)."""
        hit = self._last.get(sid)
        if hit is None or self.clock() - hit[1] > self.gap:
            return None
        return hit[0]

    def step(self, sid: str, endpoint: str) -> None:
        """Record that the session has just been served ``endpoint``."""
        self._last[sid] = (endpoint, self.clock())
        self._last.move_to_end(sid)
        while len(self._last) > self.capacity:
            self._last.popitem(last=False)

    def clear(self) -> None:
        self._last.clear()
