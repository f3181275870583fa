"""Circuit breakers shared by every worker through the store: plain rules.

A breaker record::

    {"name": "warehouse", "state": "closed" | "open" | "half_open",
     "failure_count": 3, "opened_at": ISO | null, "reopens_at": ISO | null,
     "trial_job_id": "job_..." | null, "updated_at": ISO,
     "tasks": ["reports.build", ...]}

``fail_max`` consecutive failures of the tasks behind it open it for
``reset_timeout`` seconds: their jobs stay queued and are not claimed. Then
one trial job goes through (half-open): success closes it, failure opens it
again. Every change of state returns an event.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from .. import clock
from ..records import Event, EventType, Job
from . import lifecycle

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


@dataclass(frozen=True)
class BreakerConfig:
    """A circuit breaker shared by the tasks that name it."""

    name: str
    fail_max: int = 5  # consecutive failures that open it
    reset_timeout: float = 60.0  # seconds open before one trial job goes through


@dataclass(frozen=True, slots=True)
class Breaker:
    name: str
    state: str = CLOSED
    failure_count: int = 0
    opened_at: str | None = None
    reopens_at: str | None = None
    trial_job_id: str | None = None
    updated_at: str | None = None
    tasks: list[str] = field(default_factory=list)  # the tasks behind it

    KIND = "breakers"

    @property
    def key(self) -> str:
        return self.name

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": self.state,
            "failure_count": self.failure_count,
            "opened_at": self.opened_at,
            "reopens_at": self.reopens_at,
            "trial_job_id": self.trial_job_id,
            "updated_at": self.updated_at,
            "tasks": list(self.tasks),
        }

    @classmethod
    def from_dict(cls, record: dict[str, Any] | None, name: str) -> Breaker:
        if record is None:
            return cls(name)
        return cls(
            **{k: record.get(k) for k in cls.__dataclass_fields__ if k in record}
        )


def blocks(breaker: Breaker, now: datetime) -> bool:
    """Whether jobs behind the breaker must wait (it is open, or a trial is running)."""
    if breaker.state == HALF_OPEN:
        return True
    return breaker.state == OPEN and not trial_due(breaker, now)


def held_back(records: Iterable[Mapping[str, Any]], now: datetime) -> set[str]:
    """The tasks whose jobs a breaker holds back now, by the records' ``tasks`` lists.

    For a transaction without the app (a submit): the breaker records name
    the tasks behind them as the last worker that saved them knew them.
    """
    tasks: set[str] = set()
    for record in records:
        breaker = Breaker.from_dict(record, str(record.get("name")))
        if blocks(breaker, now):
            tasks.update(t for t in breaker.tasks or () if isinstance(t, str))
    return tasks


def trial_due(breaker: Breaker, now: datetime) -> bool:
    return (
        breaker.state == OPEN
        and breaker.reopens_at is not None
        and breaker.reopens_at <= clock.to_iso(now)
    )


def _event(
    job: Job | None, breaker: Breaker, kind: EventType, now: datetime, **data: Any
) -> Event:
    if job is not None:
        return lifecycle.new_event(job, kind, now, breaker=breaker.name, **data)
    from .. import ids

    return Event(
        event_id=ids.new_id("evt", now),
        job_id=None,
        org_id=None,
        event_type=kind.value,
        created_at=clock.to_iso(now),
        data={"breaker": breaker.name, **data},
    )


def on_claim(breaker: Breaker, job: Job, now: datetime) -> tuple[Breaker, Event | None]:
    """A job behind the breaker was claimed: if the breaker was due a trial, this is it."""
    if not trial_due(breaker, now):
        return breaker, None
    breaker = replace(
        breaker, state=HALF_OPEN, trial_job_id=job.job_id, updated_at=clock.to_iso(now)
    )
    return breaker, _event(job, breaker, EventType.BREAKER_HALF_OPENED, now)


def _closed(breaker: Breaker, now: datetime) -> Breaker:
    return replace(
        breaker,
        state=CLOSED,
        failure_count=0,
        opened_at=None,
        reopens_at=None,
        trial_job_id=None,
        updated_at=clock.to_iso(now),
    )


def on_success(
    breaker: Breaker, job: Job, now: datetime
) -> tuple[Breaker | None, Event | None]:
    """A job behind the breaker succeeded: closed, with an event if it was not.

    (None, None) when it was closed with no failures counted: a breaker is
    written only when it changes, not by every success behind it.
    """
    if breaker.state == CLOSED and not breaker.failure_count:
        return None, None
    changed = breaker.state != CLOSED
    breaker = _closed(breaker, now)
    return breaker, _event(
        job, breaker, EventType.BREAKER_CLOSED, now
    ) if changed else None


def on_failure(
    breaker: Breaker, config: BreakerConfig, job: Job, now: datetime
) -> tuple[Breaker, Event | None]:
    """A job behind the breaker failed an attempt (an error, a time limit, a lost lease)."""
    count = breaker.failure_count + 1
    if breaker.state == HALF_OPEN or (
        breaker.state == CLOSED and count >= config.fail_max
    ):
        stamp = clock.to_iso(now)
        breaker = replace(
            breaker,
            state=OPEN,
            failure_count=count,
            opened_at=stamp,
            reopens_at=clock.to_iso(now + timedelta(seconds=config.reset_timeout)),
            trial_job_id=None,
            updated_at=stamp,
        )
        return breaker, _event(
            job,
            breaker,
            EventType.BREAKER_OPENED,
            now,
            failure_count=count,
            reopens_at=breaker.reopens_at,
        )
    return replace(breaker, failure_count=count, updated_at=clock.to_iso(now)), None


def on_inconclusive(
    breaker: Breaker, job: Job, now: datetime, *, reason: str
) -> tuple[Breaker | None, Event | None]:
    """A job behind the breaker ended for a reason of its own: neither success nor failure.

    A payload that does not fit its task, or a cancel: not counted. Only
    when it was the breaker's half-open trial does the breaker change: open
    again with its trial due at once, so that the next job behind it tries
    the dependency. None (nothing to save) otherwise.
    """
    if breaker.state != HALF_OPEN or breaker.trial_job_id != job.job_id:
        return None, None
    stamp = clock.to_iso(now)
    breaker = replace(
        breaker, state=OPEN, reopens_at=stamp, trial_job_id=None, updated_at=stamp
    )
    return breaker, _event(
        job,
        breaker,
        EventType.BREAKER_OPENED,
        now,
        failure_count=breaker.failure_count,
        reopens_at=stamp,
        reason=reason,
    )


def reset(breaker: Breaker, now: datetime) -> tuple[Breaker, Event]:
    """Close a breaker by hand."""
    breaker = _closed(breaker, now)
    return breaker, _event(
        None, breaker, EventType.BREAKER_CLOSED, now, reason="reset by hand"
    )
