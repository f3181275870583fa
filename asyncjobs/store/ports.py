"""The backend interface: records in transactions, and no rules.

A store holds records of a few kinds, each a JSON object under a string key.
``Client`` is its one caller: it reads records, hands them to the rule
modules, and saves what they return, all inside one transaction.

A backend implements:

- ``transaction()``: a context manager giving a ``Transaction``; leaving the
  block normally commits every change at once, an exception rolls all back.
- ``read()``: the same view for reading only, with nothing to commit.
- ``verify()``: what is wrong with the stored data at its own level (files,
  checksums, schema), as one line per problem.
- ``compact()``, ``export()``, ``close()``.

A ``Transaction`` reads its own writes. ``find(index, value)`` answers from a
secondary index named in ``INDEXES``, so a SQL backend can serve each one from
an indexed column.

Lists are read a bounded page at a time: ``page_jobs``, ``page_notifications``,
``page_inbox`` and ``page_events`` each return ``(records, next_cursor)`` in a
fixed order of keys (each docstring names it), resuming after the key an
opaque cursor holds (``domain/paging.py`` makes and reads cursors for every backend).
A page reads the records it returns, and those its filters pass over, never
the whole list: a SQL backend answers each with ``WHERE (key) < (cursor's
key) ORDER BY key DESC LIMIT limit + 1`` on an index of (org or job, key),
``>`` and ``ASC`` for events.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from ..records import Record

KINDS = (
    "jobs",
    "results",
    "events",
    "notifications",
    "workers",
    "breakers",
    "counters",
    # The fair turns of old versions (one record per org, rewritten at every
    # claim): no longer written nor read, kept so that older stores open.
    "orgs",
    "tasks",  # the task catalog (domain/catalog.py), one record per task name
    # Fair tags (domain/scheduling.py): one record per (queue, priority, org) that
    # has had a job become runnable, written only when that happens.
    "lanes",
)


def _field(name: str) -> Callable[[Record], Any]:
    return lambda record: record.get(name)


# name -> (kind, the value a record is found by; None leaves it out)
INDEXES: dict[str, tuple[str, Callable[[Record], Any]]] = {
    "jobs_by_org": ("jobs", _field("org_id")),
    "jobs_by_status": ("jobs", _field("status")),
    "jobs_by_idempotency": (
        "jobs",
        lambda r: (
            (r["org_id"], r["idempotency_key"]) if r.get("idempotency_key") else None
        ),
    ),
    # the jobs beat workers enqueued for a periodic task, by (org, task)
    "jobs_by_periodic": (
        "jobs",
        lambda r: (
            (r["org_id"], r["task"])
            if (r.get("idempotency_key") or "").startswith("periodic:")
            else None
        ),
    ),
    "events_by_job": ("events", _field("job_id")),
    "results_by_job": ("results", _field("job_id")),
    "notifications_by_job": ("notifications", _field("job_id")),
    "notifications_by_org": ("notifications", _field("org_id")),
    "notifications_by_dedupe": ("notifications", _field("dedupe_key")),
}


# A page of records, and the cursor of the next page (None after the last).
PageOf = tuple[list[Record], str | None]


class Transaction(ABC):
    """Reads and writes of one transaction; it sees its own writes."""

    @abstractmethod
    def get(self, kind: str, key: str) -> Record | None:
        """The record, or None."""

    @abstractmethod
    def put(self, kind: str, key: str, record: Record) -> None:
        """Insert or replace a record (the dict is not copied: do not mutate it)."""

    @abstractmethod
    def delete(self, kind: str, key: str) -> None:
        """Remove a record; removing a missing one does nothing."""

    def delete_many(self, kind: str, keys: Iterable[str]) -> None:
        """Remove many records of one kind (a cleanup removes hundreds of thousands)."""
        for key in keys:
            self.delete(kind, key)

    @abstractmethod
    def scan(self, kind: str) -> Iterator[Record]:
        """Every record of a kind, in no particular order."""

    @abstractmethod
    def find(self, index: str, value: Any) -> list[Record]:
        """The records whose index value equals ``value``, in no particular order."""

    @abstractmethod
    def count(self, kind: str) -> int:
        """How many records of a kind there are."""

    def increment(
        self,
        counter: str,
        amounts: Mapping[str, Any],
        *,
        initial: Mapping[str, Any] | None = None,
    ) -> None:
        """Add ``amounts`` to the fields of a cumulative counter record.

        An operation, not a read-modify-write left to the caller: a backend
        where many writers commit at once may keep a counter as shards it
        sums when read, so that no row is rewritten by every transaction.
        A number adds to a number; a list adds element by element (a
        histogram's buckets). A counter not there yet starts from
        ``initial`` (or from zeros).
        """
        record = dict(self.get("counters", counter) or initial or {})
        record["name"] = counter
        for field_name, amount in amounts.items():
            if isinstance(amount, list):
                known = list(record.get(field_name) or [0] * len(amount))
                record[field_name] = [a + b for a, b in zip(known, amount)]
            else:
                record[field_name] = record.get(field_name, 0) + amount
        self.put("counters", counter, record)

    # -- the claim order (see domain/scheduling.py) ------------------------------
    #
    # "Queued and tagged" means status ``queued`` with a ``fair_tag``: a
    # runnable job. Each answer sees this transaction's own changes. A SQL
    # backend serves them from partial indexes on queued jobs:
    # ``(queue, priority DESC, fair_tag, run_after, created_at, job_id)`` and
    # ``(queue, run_after) WHERE fair_tag IS NULL``, and ``lanes`` by
    # ``(queue, priority, next_tag)``; a claim reads the order with
    # ``LIMIT n FOR UPDATE SKIP LOCKED``.

    @abstractmethod
    def claim_order(
        self, queues: Collection[str], exclude_tasks: Collection[str] = ()
    ) -> Iterator[Record]:
        """Queued, tagged jobs of ``queues`` in claim order (``scheduling.claim_key``).

        Jobs of a task in ``exclude_tasks`` are left out. Lazy: a claim reads
        only as far as it takes, so its cost does not grow with the queue or
        with the number of orgs in it.
        """

    @abstractmethod
    def lane_head(
        self, queue: str, priority: int, exclude_tasks: Collection[str] = ()
    ) -> int | None:
        """The fair tag of the first job of the lane (queue, priority) in claim order.

        Tasks in ``exclude_tasks`` are passed over; None when no job is left.
        """

    @abstractmethod
    def lane_next_tag(self, queue: str, priority: int) -> int:
        """The highest ``next_tag`` of the lane's ``lanes`` records; 0 for none."""

    @abstractmethod
    def due_untagged(self, queues: Collection[str], now: str) -> list[Record]:
        """Queued jobs of ``queues`` without a fair tag whose ``run_after`` <= ``now``.

        In (run_after, created_at, job_id) order: the jobs that waited for
        their time and have come due, for the claim to tag.
        """

    @abstractmethod
    def page_jobs(
        self,
        org: str,
        *,
        statuses: Collection[str] | None = None,
        queue: str | None = None,
        task: str | None = None,
        limit: int,
        cursor: str | None = None,
    ) -> PageOf:
        """Up to ``limit`` of the org's jobs, newest first by (created_at, job_id).

        Only jobs with a status in ``statuses``, on ``queue`` and of ``task``,
        where given. Starts after ``cursor`` (None: at the newest). Returns
        the jobs and the cursor of the next page, None when no job is left.
        Raises InvalidInput, before reading, for a cursor that is not one a
        ``page_jobs`` of this org and these filters returned. Jobs changed in
        this transaction are seen as changed.
        """

    @abstractmethod
    def page_notifications(
        self,
        job_id: str,
        *,
        org: str,
        channel: str,
        limit: int,
        cursor: str | None = None,
    ) -> PageOf:
        """Up to ``limit`` of the job's notifications on ``channel``, newest first.

        Ordered by (created_at, notification_id); only records of ``org``. As
        ``page_jobs`` for the cursors.
        """

    @abstractmethod
    def page_inbox(
        self, org: str, *, unread: bool, limit: int, cursor: str | None = None
    ) -> PageOf:
        """Up to ``limit`` of the org's notifications, newest first.

        Ordered by (created_at, notification_id); with ``unread``, only those
        whose ``read_at`` is null. As ``page_jobs`` for the cursors.
        """

    @abstractmethod
    def page_events(
        self, job_id: str, *, org: str, limit: int, cursor: str | None = None
    ) -> PageOf:
        """Up to ``limit`` of the job's events, oldest first.

        Ordered by (seq, created_at, event_id), a missing ``seq`` counting as
        0; only records of ``org``. As ``page_jobs`` for the cursors.
        """

    @property
    @abstractmethod
    def generation(self) -> int:
        """The number of the last committed transaction this one builds on."""


@dataclass
class Verification:
    """What ``verify()`` found: problems fail a check, notes do not."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    generation: int = 0
    counts: dict[str, int] = field(default_factory=dict)


class Store(ABC):
    """A backend: see the module docstring."""

    url: str

    @abstractmethod
    def transaction(self) -> AbstractContextManager[Transaction]: ...

    @abstractmethod
    def read(self) -> AbstractContextManager[Transaction]: ...

    @abstractmethod
    def initialize(self) -> bool:
        """Create the store if it does not exist; True when it was created."""

    @abstractmethod
    def verify(self, *, strict: bool = False) -> Verification: ...

    @abstractmethod
    def compact(self) -> dict[str, Any]: ...

    @abstractmethod
    def export(self) -> dict[str, Any]: ...

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
