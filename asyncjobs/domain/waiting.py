"""Waiting for a job to end: looks spaced by a backoff, never a busy poll.

``until`` looks (one bounded read: ``Client.wait`` reads one job by id), and
pauses between looks from 10 ms, doubling up to ``cap`` seconds (1 s by
default), each pause cut to the time left. A job that ends at once is seen
within milliseconds; a long wait costs one read per ``cap`` seconds, so a
hundred waiting scripts do not keep a store's lock busy.

The pause is a function, ``pause(seconds)``. The JSON file store cannot tell
anyone that a job changed, so it sleeps. A store that can (PostgreSQL's
``LISTEN``/``NOTIFY`` on the job's channel) passes a pause that returns as
soon as a notification arrives: the look after it sees the change at once,
and the backoff only bounds how long silence is trusted, so a lost
notification costs at most ``cap`` seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TypeVar

T = TypeVar("T")

FIRST_PAUSE_SECONDS = 0.01
PAUSE_CAP_SECONDS = 1.0


def pauses(cap: float = PAUSE_CAP_SECONDS) -> Iterator[float]:
    """The pauses between looks, in seconds: 0.01, 0.02, 0.04, ... then ``cap`` on."""
    pause = min(FIRST_PAUSE_SECONDS, cap)
    while True:
        yield pause
        pause = min(pause * 2, cap)


def until(
    look: Callable[[], T],
    done: Callable[[T], bool],
    *,
    timeout: float | None,
    cap: float = PAUSE_CAP_SECONDS,
    monotonic: Callable[[], float] = time.monotonic,
    pause: Callable[[float], object] = time.sleep,
) -> T:
    """The first value of ``look()`` that ``done`` accepts, or the last one at ``timeout``.

    ``timeout`` is in seconds (None: no limit; 0: one look). The last look
    is at the deadline, not before it. What ``look`` raises goes through at
    once.
    """
    deadline = None if timeout is None else monotonic() + timeout
    for wait in pauses(cap):
        value = look()
        if done(value):
            return value
        if deadline is not None:
            left = deadline - monotonic()
            if left <= 0:
                return value
            wait = min(wait, left)
        pause(wait)
    raise AssertionError("pauses() never ends")  # pragma: no cover
