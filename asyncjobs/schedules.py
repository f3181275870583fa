"""Periodic schedules: their slots and idempotency keys, as plain functions of time.

A slot is the moment a periodic task is due: for ``every=N`` seconds, each
multiple of N seconds since 1970-01-01 UTC; for ``cron=``, each minute the
line names. ``worker --beat`` submits one job per slot, with the
idempotency key ``periodic:<name>:<slot ISO>`` (``key()``).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from . import clock
from .cron import Cron

KEY_PREFIX = "periodic:"


def slot(*, every: float | None, cron: Cron | None, now: datetime) -> datetime | None:
    """The slot ``now`` falls in, or None.

    With ``every``, there always is one: the last multiple of ``every``
    seconds. With a cron line, it is ``now``'s minute when the line names
    that minute, else None.
    """
    if every is not None:
        return datetime.fromtimestamp(math.floor(now.timestamp() / every) * every, UTC)
    assert cron is not None
    minute = now.replace(second=0, microsecond=0)
    return minute if cron.matches(minute) else None


def next_slot(
    *, every: float | None, cron: Cron | None, now: datetime
) -> datetime | None:
    """The first slot that begins after ``now``.

    ``slot()`` of that moment is that moment, and no slot begins in between.
    None only for a cron line with no minute left before the year 10000.
    """
    if every is not None:
        return datetime.fromtimestamp(
            (math.floor(now.timestamp() / every) + 1) * every, UTC
        )
    assert cron is not None
    return cron.next_after(now)


def key(name: str, slot_at: datetime) -> str:
    """The idempotency key of a periodic task's job for one slot."""
    return f"{KEY_PREFIX}{name}:{clock.to_iso(slot_at)}"
