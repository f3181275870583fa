"""Periodic schedules: their slots, their idempotency keys, and the rows of
``asyncjobs schedules``, as plain functions of records and time.

A slot is the moment a periodic task is due: for ``every=N`` seconds, each
multiple of N seconds since 1970-01-01 UTC; for ``cron=``, each minute the
line names. ``worker --beat`` submits one job per slot, with the
idempotency key ``periodic:<name>:<slot ISO>`` (``key()``), so the newest such
key of a task tells its last slot enqueued.

``rows()`` reads periodic tasks described as entries of the task catalog
(records of kind ``tasks``)::

    {"name": "maintenance.cleanup", "queue": "default", "priority": 5,
     "periodic": {"every": 3600 | null, "cron": "0 2 * * *" | null,
                  "org": "system", "payload": {}}}

as ``TaskRegistry.describe()`` (tasks.py) also describes an app's tasks, so
an app and the catalog give the same rows.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from .. import clock
from ..errors import InvalidInput
from . import validation
from .cron import Cron

KEY_PREFIX = "periodic:"
# a slot as clock.to_iso writes it: task "a" must not read "periodic:a:b:<slot>"
_SLOT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", re.ASCII)
DEFAULT_PRIORITY = 5


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


def last_slot(name: str, keys: Iterable[str | None]) -> str | None:
    """The newest slot (ISO) among a task's idempotency keys, or None.

    Keys of other tasks, and keys that are no periodic keys, are ignored.
    Slots are ISO times of one format, so the greatest string is the newest.
    """
    prefix = f"{KEY_PREFIX}{name}:"
    slots = [
        k[len(prefix) :]
        for k in keys
        if k and k.startswith(prefix) and _SLOT.fullmatch(k[len(prefix) :])
    ]
    return max(slots) if slots else None


def periodic_of(entry: Any) -> tuple[str, Mapping[str, Any]] | None:
    """A catalog entry's name and schedule; None if not periodic or not readable."""
    if not isinstance(entry, Mapping):
        return None
    name, periodic = entry.get("name"), entry.get("periodic")
    if not isinstance(name, str) or not isinstance(periodic, Mapping):
        return None
    if not isinstance(periodic.get("org"), str):
        return None
    return name, periodic


def rows(
    entries: Iterable[Mapping[str, Any]],
    last_slots: Mapping[str, str | None],
    *,
    now: datetime,
) -> list[dict[str, Any]]:
    """One row per periodic task, by name: its schedule, last slot and next run.

    ``last_slots`` maps a task's name to its newest slot enqueued (ISO). A
    schedule this version cannot read (a cron line another version wrote)
    shows no next run rather than failing the whole list.
    """
    out = []
    for entry in entries:
        found = periodic_of(entry)
        if found is None:
            continue
        name, periodic = found
        every, text = periodic.get("every"), periodic.get("cron")
        readable = every if _readable_every(every) else None
        try:
            cron = Cron.parse(text) if isinstance(text, str) else None
        except InvalidInput:
            cron = None
        upcoming = (
            next_slot(every=readable, cron=cron, now=now)
            if readable is not None or cron is not None
            else None
        )
        out.append(
            {
                "name": name,
                "every": every,
                "cron": text,
                "queue": entry.get("queue", "default"),
                "priority": entry.get("priority", DEFAULT_PRIORITY),
                "org": periodic["org"],
                "last_slot_at": last_slots.get(name),
                "next_run_at": clock.to_iso(upcoming) if upcoming else None,
            }
        )
    return sorted(out, key=lambda row: row["name"])


def _readable_every(every: Any) -> bool:
    """Whether ``every`` is a number of seconds ``TaskRegistry.periodic`` accepts."""
    return (
        isinstance(every, int | float)
        and not isinstance(every, bool)
        and 1 <= every <= validation.MAX_DELAY_SECONDS
    )
