"""The engine interface: named, bounded, atomic operations, and no rules.

A store (an engine) holds the records of ``records.py`` and answers
operations on them. Services (``services/``) are its only callers: they read
what a rule of ``domain/`` needs through an operation, call the rule, and
hand its decision back to the engine. The engine decides nothing about
retries, notifications or breakers; it owns selection (which jobs a claim
takes, in the claim order of ``domain/scheduling.py``), persistence, and the
atomicity each operation promises.

A ``Store`` gives transactions:

- ``transaction(clock=None)``: a context manager giving a ``Transaction``;
  leaving the block normally commits every change at once, an exception
  rolls all back. Several operations in one transaction commit together (a
  worker's exchange finishes, rescues and claims in one).
- ``read(clock=None)``: the same operations for reading only.
- ``initialize()``, ``verify(strict)``, ``export()``, ``compact()``,
  ``close()``: setup, the engine's own integrity (files, checksums, schema),
  the whole state as one JSON document, and upkeep.

``Transaction.now`` is the moment of the transaction, supplied by the engine
(its clock, read once the transaction holds what it needs); a ``clock``
passed in overrides it, as tests do. Leases and due times are reckoned from it.

Every operation is bounded: a keyed read, a page, a claim of ``limit`` jobs,
or the rescue of ``limit`` expired leases. The store-wide ones (``summary``,
``purge``, ``problems``, ``export``) are meant for operators and cron.

A key-value engine gets every operation from ``store/kv.py`` by supplying
record reads, writes and a few ordered walks; ``docs/architecture.md`` says
how to add an engine.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..clock import Clock
from ..domain import bulk, observability, retention
from ..records import Event, Job, Record, Result, StoredRecord

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
    # Access tokens for the HTTP API (domain/tokens.py): their hashes, never
    # the tokens themselves.
    "tokens",
)

# A page of records, and the cursor of the next page (None after the last).
PageOf = tuple[list[Record], str | None]


class Transaction(ABC):
    """The operations of one transaction; it sees its own writes."""

    @property
    @abstractmethod
    def now(self) -> datetime:
        """The moment of this transaction (see the module docstring)."""

    @property
    @abstractmethod
    def generation(self) -> int:
        """The number of the last committed transaction this one builds on."""

    # -- keyed reads ---------------------------------------------------------

    @abstractmethod
    def job(self, job_id: str) -> Job | None:
        """The job, or None (the caller checks its org)."""

    @abstractmethod
    def job_by_key(self, org: str, key: str) -> Job | None:
        """The org's job of this idempotency key, or None."""

    def prefetch_jobs(self, job_ids: Collection[str]) -> None:
        """Say that these jobs are read next: a server-backed engine reads them in one go.

        The keyed reads that follow (``job``) answer from what was read. An
        engine that reads from memory does nothing.
        """

    @abstractmethod
    def result(self, result_id: str) -> Result | None:
        """The result version, or None (the caller checks its org)."""

    @abstractmethod
    def result_versions(self, job_id: str) -> list[Result]:
        """Every stored result version of a job, in no particular order."""

    @abstractmethod
    def worker(self, worker_id: str) -> Record | None:
        """A worker's record, or None."""

    @abstractmethod
    def workers(self) -> list[Record]:
        """Every worker record (cleanup prunes those long gone)."""

    @abstractmethod
    def running_jobs(self) -> list[Job]:
        """Every running job: one per busy worker slot."""

    @abstractmethod
    def token(self, token_id: str) -> Record | None:
        """An access token's record (``domain/tokens.py``), or None."""

    @abstractmethod
    def tokens(self) -> list[Record]:
        """Every access token's record."""

    @abstractmethod
    def breaker(self, name: str) -> Record | None:
        """A breaker's record; None for one never written (closed)."""

    @abstractmethod
    def breakers(self) -> list[Record]:
        """Every breaker record written (one per breaker that ever changed)."""

    @abstractmethod
    def catalog(self) -> list[Record]:
        """The task catalog workers publish, sorted by task name."""

    @abstractmethod
    def catalog_entry(self, task: str) -> Record | None:
        """One task's catalog record, or None."""

    @abstractmethod
    def catalog_size(self) -> int:
        """How many tasks the catalog holds (0: submissions do not consult it)."""

    @abstractmethod
    def periodic_keys(self, org: str, task: str) -> list[str]:
        """The idempotency keys of the org's periodic jobs of ``task`` still stored."""

    # -- writes --------------------------------------------------------------

    @abstractmethod
    def submit(self, new: Sequence[tuple[Job, Event]]) -> list[Job]:
        """Insert each job with its event, or get the job its key already names.

        Atomic insert-or-get by (org, idempotency key): of two submitters of
        the same key, whatever their timing, one inserts and both get that
        job; the one that did not insert gets it with ``deduplicated=True``
        and its event is not written. A job runnable now gets its fair tag
        (as ``save``). Counts ``jobs_submitted_total``. Returns the jobs in
        the order given.
        """

    @abstractmethod
    def save(self, *records: StoredRecord | None) -> None:
        """Write records that rules returned (None ones are passed over).

        - a job replaces the stored one; one that is queued, untagged and due
          gets its fair tag here (``domain/scheduling.py``), so every
          transition that makes a job runnable joins the claim order;
        - an event gets the next ``seq`` of its job (1 for the first);
        - a notification is written only if none with its ``dedupe_key`` is
          stored: one notification per terminal transition;
        - results, breakers and workers replace the stored ones.
        """

    @abstractmethod
    def increment(
        self,
        counter: str,
        amounts: Mapping[str, Any],
        *,
        initial: Mapping[str, Any] | None = None,
    ) -> None:
        """Add ``amounts`` to the fields of a cumulative counter record.

        An operation, not a read-modify-write left to the caller: an engine
        where many writers commit at once may keep a counter as shards it
        sums when read, so that no row is rewritten by every transaction.
        A number adds to a number; a list adds element by element (a
        histogram's buckets). A counter not there yet starts from
        ``initial`` (or from zeros).
        """

    @abstractmethod
    def update_worker(
        self,
        worker_id: str,
        fields: Mapping[str, Any],
        *,
        processed: int = 0,
        default: Record | None = None,
    ) -> None:
        """Change fields of a worker's record and add to its ``processed_count``.

        A worker with no record gets ``default`` changed so; without a
        default, nothing is written for it.
        """

    @abstractmethod
    def publish_catalog(self, entries: Sequence[Record]) -> None:
        """Replace the catalog records of these tasks; other tasks' stay."""

    @abstractmethod
    def mark_read(
        self, org: str, notification_ids: Sequence[str] | None, at: str
    ) -> int:
        """Mark the org's notifications read at ``at``; returns how many changed.

        ``None`` marks every unread one of the org. Named ids must each be
        the org's: NotFound for the first that is not, before anything changes.
        """

    # -- running jobs --------------------------------------------------------

    @abstractmethod
    def claimable(
        self,
        queues: Collection[str],
        *,
        exclude_tasks: Collection[str] = (),
        only_job: str | None = None,
        want: int = 1,
    ) -> Iterator[Job]:
        """Runnable jobs of ``queues`` in claim order, lazily.

        ``want`` is how many the caller means to take: a server-backed
        engine reads (and locks) that many first, and more only when asked.

        Jobs that came due (their ``run_after`` has come) get their fair tag
        first. Jobs of ``exclude_tasks`` are passed over. With ``only_job``,
        that job alone, if it is queued. The caller claims as many as it
        takes (``lifecycle.claim``) and saves them; a server-backed engine
        locks what it hands out (``FOR UPDATE SKIP LOCKED``), so two
        claimers never take the same job.
        """

    @abstractmethod
    def expired_leases(self, limit: int) -> list[Job]:
        """Up to ``limit`` running jobs whose lease ended before ``now``, oldest first.

        Reads only those jobs, not every running one.
        """

    # -- pages ---------------------------------------------------------------
    #
    # Lists are read a bounded page at a time: each returns ``(records,
    # next_cursor)`` in a fixed order of keys, resuming after the key an
    # opaque cursor holds (``domain/paging.py`` makes and reads cursors for
    # every engine). A page reads the records it returns and those its
    # filters pass over, never the whole list: a SQL engine answers each with
    # ``WHERE (key) < (cursor's key) ORDER BY key DESC LIMIT limit + 1`` on an
    # index of (org or job, key); ``>`` and ``ASC`` for events.

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
        error_type: str | None = None,
    ) -> PageOf:
        """Up to ``limit`` of the org's jobs, newest first by (created_at, job_id).

        Only jobs with a status in ``statuses``, on ``queue``, of ``task`` and
        whose error has the type ``error_type``, where given. Starts after ``cursor`` (None: at the newest). Returns
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

    # -- store-wide: operators and cron --------------------------------------

    @abstractmethod
    def count_matching(
        self, org: str, wanted: bulk.Criteria, up_to: int
    ) -> tuple[int, bool]:
        """How many of the org's jobs ``wanted`` matches (``Criteria.matches``),
        counting no further than ``up_to``, and whether more match."""

    @abstractmethod
    def job_orgs(self, statuses: Collection[str]) -> list[str]:
        """The orgs that have jobs in one of ``statuses``, sorted."""

    @abstractmethod
    def queue_groups(self, org: str | None) -> list[observability.QueueGroup]:
        """The queued and running jobs of ``org`` (None: of every org), counted
        by (queue, status, task): how many, how many of the queued are
        runnable (``run_after`` at or before ``now``), and the earliest
        ``run_after`` among those. Sorted by queue, status, task.
        """

    @abstractmethod
    def throughput(self, org: str, since: str) -> list[tuple[str, str, int]]:
        """The org's jobs that ended at or after ``since`` (ISO), counted by
        (minute, status): the minute as ``YYYY-MM-DDTHH:MM``, sorted."""

    @abstractmethod
    def failure_groups(self, org: str) -> list[observability.FailureGroup]:
        """The org's jobs that failed in the week before ``now``, grouped by
        (task, error type), counted for the last hour, day and week, with the
        newest one's moment, message and id; most failures first."""

    @abstractmethod
    def pruned_before(self) -> str | None:
        """The moment before which retention deleted notifications (None: never)."""

    @abstractmethod
    def change_mark(self) -> str:
        """A text that differs after any committed change: equal marks mean
        nothing changed (a mark may also move when nothing did)."""

    @abstractmethod
    def summary(self, *, stale_seconds: float) -> dict[str, Any]:
        """What operators watch at ``now`` (``observability.summarize``'s figures).

        Counts by status and queue, the oldest runnable age, running jobs,
        failures, workers, breakers, counters and the store's generation.
        """

    @abstractmethod
    def purge(
        self,
        policy: retention.Policy,
        *,
        dry_run: bool,
        progress: Callable[[int], None] | None = None,
    ) -> retention.Plan:
        """Retention at ``now``: delete what ``policy`` finds expired, in this transaction.

        Only records of terminal jobs; a job goes with everything of it;
        pruning notifications raises the store's pruned-notification cutoff.
        A dry run deletes nothing and returns the same plan. Result files are
        not touched: the caller deletes ``plan.files`` once this commits.
        ``progress`` is told how many records were read, as they are.
        """

    @abstractmethod
    def load(self, records: Mapping[str, Mapping[str, Record]]) -> int:
        """Write an exported state (kind -> key -> record) into this empty store.

        Conflict, before anything is written, when the store holds any
        record. Returns how many records were written. ``store import`` moves
        a store between engines with it (``export`` on one, ``load`` on another).
        """

    @abstractmethod
    def problems(self) -> tuple[list[str], list[str]]:
        """What is wrong with the records (references, shapes): (problems, notes).

        One line per problem; notes do not fail a check. An engine's own
        level (files, checksums, schema) is ``Store.verify``'s.
        """


@dataclass
class Verification:
    """What ``verify()`` found: problems fail a check, notes do not."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    generation: int = 0
    counts: dict[str, int] = field(default_factory=dict)


class Listener(ABC):
    """Wake-ups from an engine: readable when a transaction made jobs runnable."""

    @abstractmethod
    def fileno(self) -> int: ...

    @abstractmethod
    def drain(self) -> bool:
        """Consume what arrived; True when jobs may be runnable now.

        A listener that lost its connection answers True once (poll now)
        and is then ``closed``.
        """

    @property
    @abstractmethod
    def closed(self) -> bool: ...

    @abstractmethod
    def close(self) -> None: ...


class Store(ABC):
    """An engine: see the module docstring."""

    url: str
    # True when every process reckons ``now`` from one clock (a database's):
    # a lease then ends for all alike, and a worker needs no ``LeaseWatch``
    # of its own (services/running.py). False when each process reads its
    # own wall clock, as the JSON file's do.
    one_clock: bool = False
    # True when a result value too large to keep inline goes to a file beside
    # the store (services/artifacts.py): fine for one machine's store; an
    # engine that serves many hosts keeps every value in its records, since
    # another host cannot read this one's files.
    result_files: bool = True

    @abstractmethod
    def transaction(
        self, *, clock: Clock | None = None
    ) -> AbstractContextManager[Transaction]: ...

    @abstractmethod
    def read(
        self, *, clock: Clock | None = None
    ) -> AbstractContextManager[Transaction]: ...

    def listener(self) -> Listener | None:
        """A way to hear that jobs became runnable, or None (then workers poll).

        An engine whose writers can signal a commit gives one: a worker
        waits on its ``fileno()`` beside its other events and claims as soon
        as ``drain()`` says a submission committed.
        """
        return None

    def purge(
        self,
        policy: retention.Policy,
        *,
        dry_run: bool,
        clock: Clock | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> tuple[datetime, retention.Plan]:
        """Retention (``Transaction.purge``), and the moment it reckoned from.

        Here one transaction, read-only for a dry run, so the report's
        ``now`` is that of the state it acted on. An engine that serves many
        hosts deletes in short transactions of bounded size instead, each
        deleting only what still qualifies, and reports what they deleted.
        """
        opened = self.read(clock=clock) if dry_run else self.transaction(clock=clock)
        with opened as tx:
            return tx.now, tx.purge(policy, dry_run=dry_run, progress=progress)

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
