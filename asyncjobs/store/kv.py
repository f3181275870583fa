"""The engine operations over records held by key: what a key-value engine implements.

An engine that keeps each record as a JSON object under a string key (the
JSON file engine does, in memory) subclasses ``KeyValueTransaction`` and
supplies the primitives below; it gets every operation of the port
(``store/ports.py``) from here. The operations are correct when one writer
holds the store at a time, as the JSON file's lock ensures: an index lookup
then an insert is then atomic. An engine where writers commit at once
implements the port itself, with the same meaning (``INSERT … ON CONFLICT``
for ``submit``, ``FOR UPDATE SKIP LOCKED`` for ``claimable``).

The primitives:

- ``get``, ``put``, ``delete``, ``delete_many``, ``scan``, ``count``: records
  by kind and key; a transaction reads its own writes.
- ``find(index, value)``: the records whose ``INDEXES`` value equals
  ``value``; ``find_committed`` the same where only records committed before
  this transaction, or changed by it, can match (it need not look at other
  records this transaction inserted: the operations here keep track of those).
- ``claim_order``, ``lane_head``, ``lane_next_tag``, ``due_untagged``,
  ``lease_order``: ordered walks over queued and running jobs (each docstring
  says which order), served from indexes so that their cost does not grow
  with the store, the queue or the number of orgs.
- ``finished_since``: an org's jobs that ended in one status, newest
  ``finished_at`` first, back to a moment.
- ``page_jobs``, ``page_notifications``, ``page_inbox``, ``page_events``.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from .. import clock, records
from ..domain import breakers as breaker_rules
from ..domain import bulk, integrity, observability, retention, scheduling, validation
from ..domain import catalog as task_catalog
from ..errors import Conflict, NotFound
from ..records import (
    Event,
    Job,
    JobStatus,
    Notification,
    Record,
    Result,
    StoredRecord,
)
from .ports import KINDS, Transaction


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
    # jobs that ended, by (org, status): walked by finished_at (finished_since)
    "jobs_finished": (
        "jobs",
        lambda r: (
            (r.get("org_id"), r["status"])
            if r.get("status") in observability.TERMINAL
            and isinstance(r.get("finished_at"), str)
            else None
        ),
    ),
    "events_by_job": ("events", _field("job_id")),
    "results_by_job": ("results", _field("job_id")),
    "notifications_by_job": ("notifications", _field("job_id")),
    "notifications_by_org": ("notifications", _field("org_id")),
    "notifications_by_dedupe": ("notifications", _field("dedupe_key")),
}


def _counted(
    records: Iterator[Record], progress: Callable[[int], None] | None
) -> list[Record]:
    if progress is None:
        return list(records)
    out = []
    for n, record in enumerate(records, start=1):
        out.append(record)
        if n % 1000 == 0:
            progress(1000)
    progress(len(out) % 1000)
    return out


class KeyValueTransaction(Transaction):
    """The port's operations over key-value primitives (see the module docstring)."""

    def __init__(self, clock_: clock.Clock | None) -> None:
        self._clock = clock_ or clock.now
        self._now: datetime | None = None
        # What this transaction inserted, so that the next insert of the same
        # kind needs no look at the others: (org, key) -> job id, job id ->
        # last event seq, the dedupe keys of notifications written.
        self._keyed: dict[tuple[str, str], str] = {}
        self._seqs: dict[str, int] = {}
        self._dedupes: set[str] = set()
        self._new_jobs: set[str] = set()
        self._fair: _FairTags | None = None

    @property
    def now(self) -> datetime:
        if self._now is None:
            self._now = self._clock()
        return self._now

    # -- primitives ------------------------------------------------------------

    @abstractmethod
    def get(self, kind: str, key: str) -> Record | None: ...

    @abstractmethod
    def put(self, kind: str, key: str, record: Record) -> None:
        """Insert or replace a record (the dict is not copied: do not mutate it)."""

    @abstractmethod
    def delete(self, kind: str, key: str) -> None: ...

    def delete_many(self, kind: str, keys: Iterable[str]) -> None:
        for key in keys:
            self.delete(kind, key)

    @abstractmethod
    def scan(self, kind: str) -> Iterator[Record]: ...

    @abstractmethod
    def find(self, index: str, value: Any) -> list[Record]: ...

    def find_committed(self, index: str, value: Any) -> list[Record]:
        return self.find(index, value)

    @abstractmethod
    def count(self, kind: str) -> int: ...

    @abstractmethod
    def claim_order(
        self,
        queues: Collection[str],
        exclude_tasks: Collection[str] = (),
        *,
        want: int = 1,
    ) -> Iterator[Record]:
        """Queued jobs with a fair tag, of ``queues``, in ``scheduling.claim_key`` order.

        Jobs of a task in ``exclude_tasks`` are left out. Lazy; ``want`` is
        how many the caller expects to take.
        """

    def lane_state(
        self, queue: str, priority: int, exclude_tasks: Collection[str], key: str
    ) -> tuple[int | None, int, Record | None]:
        """``lane_head``, ``lane_next_tag`` and the ``lanes`` record ``key``, read together."""
        return (
            self.lane_head(queue, priority, exclude_tasks),
            self.lane_next_tag(queue, priority),
            self.get("lanes", key),
        )

    @abstractmethod
    def lane_head(
        self, queue: str, priority: int, exclude_tasks: Collection[str] = ()
    ) -> int | None:
        """The fair tag of the first job of the lane (queue, priority) in claim order."""

    @abstractmethod
    def lane_next_tag(self, queue: str, priority: int) -> int:
        """The highest ``next_tag`` of the lane's ``lanes`` records; 0 for none."""

    @abstractmethod
    def due_untagged(self, queues: Collection[str], now: str) -> list[Record]:
        """Queued jobs without a fair tag whose ``run_after`` <= ``now``.

        In (run_after, created_at, job_id) order.
        """

    @abstractmethod
    def lease_order(self) -> Iterator[Record]:
        """Running jobs with a lease, soonest-ending lease first. Lazy."""

    @abstractmethod
    def finished_since(self, org: str, status: str, since: str) -> Iterator[Record]:
        """The org's jobs in the terminal ``status`` whose ``finished_at`` is at
        or after ``since``, newest first. Lazy."""

    # -- keyed reads -----------------------------------------------------------

    def job(self, job_id: str) -> Job | None:
        record = self.get("jobs", job_id) if isinstance(job_id, str) else None
        return None if record is None else Job.from_dict(record)

    def job_by_key(self, org: str, key: str) -> Job | None:
        found = self.find("jobs_by_idempotency", (org, key))
        return Job.from_dict(found[0]) if found else None

    def result(self, result_id: str) -> Result | None:
        record = self.get("results", result_id) if isinstance(result_id, str) else None
        return None if record is None else Result.from_dict(record)

    def result_versions(self, job_id: str) -> list[Result]:
        return [Result.from_dict(r) for r in self.find("results_by_job", job_id)]

    def worker(self, worker_id: str) -> Record | None:
        return self.get("workers", worker_id)

    def workers(self) -> list[Record]:
        return list(self.scan("workers"))

    def running_jobs(self) -> list[Job]:
        return [Job.from_dict(r) for r in self.find("jobs_by_status", "running")]

    def token(self, token_id: str) -> Record | None:
        return self.get("tokens", token_id)

    def tokens(self) -> list[Record]:
        return list(self.scan("tokens"))

    def breaker(self, name: str) -> Record | None:
        return self.get("breakers", name)

    def breakers(self) -> list[Record]:
        return list(self.scan("breakers"))

    def catalog(self) -> list[Record]:
        return sorted(self.scan(task_catalog.KIND), key=lambda r: r["name"])

    def catalog_entry(self, task: str) -> Record | None:
        return self.get(task_catalog.KIND, task)

    def catalog_size(self) -> int:
        return self.count(task_catalog.KIND)

    def periodic_keys(self, org: str, task: str) -> list[str]:
        return [
            job.get("idempotency_key") or ""
            for job in self.find("jobs_by_periodic", (org, task))
        ]

    # -- writes ----------------------------------------------------------------

    def submit(self, new: Sequence[tuple[Job, Event]]) -> list[Job]:
        jobs = []
        for job, event in new:
            key = job.idempotency_key
            if key is not None:
                found = self._keyed_job(job.org_id, key)
                if found is not None:
                    jobs.append(records.replace(found, deduplicated=True))
                    continue
                self._keyed[(job.org_id, key)] = job.job_id
            self._new_jobs.add(job.job_id)
            job = self._stamped(job)
            self.put(job.KIND, job.key, job.to_dict())
            self.save(event)
            jobs.append(job)
        added = sum(not job.deduplicated for job in jobs)
        if added:
            self.increment("jobs_submitted_total", {"value": added})
        return jobs

    def _keyed_job(self, org: str, key: str) -> Job | None:
        job_id = self._keyed.get((org, key))
        if job_id is not None:
            record = self.get("jobs", job_id)
        else:
            found = self.find_committed("jobs_by_idempotency", (org, key))
            record = found[0] if found else None
        return None if record is None else Job.from_dict(record)

    def save(self, *saved: StoredRecord | None) -> None:
        for record in saved:
            if record is None:
                continue
            if isinstance(record, Job):
                record = self._stamped(record)
            elif isinstance(record, Event):
                record = records.replace(record, seq=self._next_seq(record.job_id))
            elif isinstance(record, Notification):
                if not self._first_notification(record.dedupe_key):
                    continue  # that transition already has its notification
            self.put(record.KIND, record.key, record.to_dict())

    def _next_seq(self, job_id: str) -> int:
        seq = self._seqs.get(job_id)
        if seq is None:
            if job_id in self._new_jobs:
                seq = 0
            else:
                seq = max(
                    (
                        e.get("seq", 0)
                        for e in self.find_committed("events_by_job", job_id)
                    ),
                    default=0,
                )
        self._seqs[job_id] = seq + 1
        return seq + 1

    def _first_notification(self, dedupe_key: str) -> bool:
        if dedupe_key in self._dedupes:
            return False
        if self.find_committed("notifications_by_dedupe", dedupe_key):
            return False
        self._dedupes.add(dedupe_key)
        return True

    def _stamped(self, job: Job) -> Job:
        if job.status is not JobStatus.QUEUED or job.fair_tag is not None:
            return job
        if self._fair is None:
            self._fair = _FairTags(self, self.now)
        return self._fair.stamp(job)

    def increment(
        self,
        counter: str,
        amounts: Mapping[str, Any],
        *,
        initial: Mapping[str, Any] | None = None,
    ) -> None:
        record = dict(self.get("counters", counter) or initial or {})
        record["name"] = counter
        for field_name, amount in amounts.items():
            if isinstance(amount, list):
                known = list(record.get(field_name) or [0] * len(amount))
                record[field_name] = [a + b for a, b in zip(known, amount)]
            else:
                record[field_name] = record.get(field_name, 0) + amount
        self.put("counters", counter, record)

    def update_worker(
        self,
        worker_id: str,
        fields: Mapping[str, Any],
        *,
        processed: int = 0,
        default: Record | None = None,
    ) -> None:
        old = self.get("workers", worker_id) or default
        if old is None:
            return
        record = {**old, **fields}
        if processed:
            record["processed_count"] = old.get("processed_count", 0) + processed
        self.put("workers", worker_id, record)

    def publish_catalog(self, entries: Sequence[Record]) -> None:
        for record in entries:
            self.put(task_catalog.KIND, record["name"], record)

    def mark_read(
        self, org: str, notification_ids: Sequence[str] | None, at: str
    ) -> int:
        if notification_ids is None:
            targets = self.find("notifications_by_org", org)
        else:
            targets = []
            for notification_id in notification_ids:
                record = (
                    self.get("notifications", notification_id)
                    if isinstance(notification_id, str)
                    else None
                )
                if record is None or record.get("org_id") != org:
                    raise NotFound(
                        f"notification {validation.shown_id(notification_id)} not found"
                    )
                targets.append(record)
        changed = 0
        for record in targets:
            if record.get("read_at") is None:
                self.put(
                    "notifications",
                    record["notification_id"],
                    {**record, "read_at": at},
                )
                changed += 1
        return changed

    # -- running jobs ----------------------------------------------------------

    def claimable(
        self,
        queues: Collection[str],
        *,
        exclude_tasks: Collection[str] = (),
        only_job: str | None = None,
        want: int = 1,
    ) -> Iterator[Job]:
        if only_job is not None:
            record = self.get("jobs", only_job)
            if record is not None and record["status"] == "queued":
                yield Job.from_dict(record)
            return
        # Jobs that waited for their run_after join the claim order only
        # now, behind those already waiting at this virtual time: tagged when
        # they were queued, they would jump ahead of every org's backlog when
        # they came due. Jobs of an older version's store, queued without a
        # tag, are tagged here too, in the order they came due.
        for record in self.due_untagged(queues, clock.to_iso(self.now)):
            self.save(Job.from_dict(record))
        for record in self.claim_order(queues, exclude_tasks, want=want):
            yield Job.from_dict(record)

    def expired_leases(self, limit: int) -> list[Job]:
        stamp = clock.to_iso(self.now)
        found: list[Job] = []
        if limit <= 0:
            return found
        for record in self.lease_order():
            if record["lease_expires_at"] >= stamp:
                break
            found.append(Job.from_dict(record))
            if len(found) >= limit:
                break
        return found

    # -- store-wide ------------------------------------------------------------

    def count_matching(
        self, org: str, wanted: bulk.Criteria, up_to: int
    ) -> tuple[int, bool]:
        seen = 0
        for status in wanted.statuses:
            # an ended job: the org's own of that status (an index of them);
            # a live one: every org's of that status, the fewer
            found = (
                self.find("jobs_finished", (org, status))
                if status in observability.TERMINAL
                else (
                    r
                    for r in self.find("jobs_by_status", status)
                    if r.get("org_id") == org
                )
            )
            for record in found:
                if wanted.matches_record(record):
                    if seen == up_to:
                        return seen, True
                    seen += 1
        return seen, False

    def job_orgs(self, statuses: Collection[str]) -> list[str]:
        return sorted(
            {
                job["org_id"]
                for status in statuses
                for job in self.find("jobs_by_status", status)
                if isinstance(job.get("org_id"), str)
            }
        )

    def queue_groups(self, org: str | None) -> list[observability.QueueGroup]:
        stamp = clock.to_iso(self.now)
        groups: dict[tuple[str, str, str], list[Any]] = {}
        for status in ("queued", "running"):
            for job in self.find("jobs_by_status", status):
                if org is not None and job.get("org_id") != org:
                    continue
                group = groups.setdefault(
                    (job["queue"], status, job["task"]), [0, 0, None]
                )
                group[0] += 1
                run_after = job.get("run_after")
                if (
                    status == "queued"
                    and isinstance(run_after, str)
                    and run_after <= stamp
                ):
                    group[1] += 1
                    if group[2] is None or run_after < group[2]:
                        group[2] = run_after
        return [
            observability.QueueGroup(*key, *figures)
            for key, figures in sorted(groups.items())
        ]

    def pruned_before(self) -> str | None:
        return (self.get("counters", retention.PRUNED_CUTOFF) or {}).get("at")

    def throughput(self, org: str, since: str) -> list[tuple[str, str, int]]:
        return observability.throughput(
            observability.finished_of(record)
            for status in observability.TERMINAL
            for record in self.finished_since(org, status, since)
        )

    def failure_groups(self, org: str) -> list[observability.FailureGroup]:
        start = observability.since(self.now, observability.WINDOWS["7d"])
        return observability.failure_groups(
            (
                observability.finished_of(record)
                for record in self.finished_since(org, "failed", start)
            ),
            self.now,
        )

    def summary(self, *, stale_seconds: float) -> dict[str, Any]:
        pruned = (self.get("counters", retention.PRUNED_CUTOFF) or {}).get("at")
        now = self.now
        breakers = list(self.scan("breakers"))
        jobs = list(self.scan("jobs"))
        keys = {
            n.get("dedupe_key")
            for n in self.scan("notifications")
            if n.get("channel", "in_app") == "in_app"
        }
        summary = observability.summarize(
            figures=observability.job_figures(
                jobs, now=now, open_tasks=observability.open_tasks(breakers, now)
            ),
            missing=observability.missing_notifications(jobs, keys, pruned),
            breakers=breakers,
            workers=list(self.scan("workers")),
            counters={r["name"]: r for r in self.scan("counters")},
            catalog=list(self.scan(task_catalog.KIND)),
            stale_seconds=stale_seconds,
        )
        summary["generation"] = self.generation
        return summary

    def purge(
        self,
        policy: retention.Policy,
        *,
        dry_run: bool,
        progress: Callable[[int], None] | None = None,
    ) -> retention.Plan:
        records = {
            kind: _counted(self.scan(kind), progress)
            for kind in ("jobs", "results", "events", "notifications", "workers")
        }
        plan = retention.plan(records, now=self.now, **policy.ttls())
        if dry_run:
            return plan
        for kind, _ in retention.KINDS:
            self.delete_many(kind, plan.deleted[kind])
        self.delete_many("workers", plan.workers_deleted)
        if plan.notifications_cutoff is not None:
            old = self.get("counters", retention.PRUNED_CUTOFF) or {}
            cutoff = max(plan.notifications_cutoff, old.get("at") or "")
            self.put(
                "counters",
                retention.PRUNED_CUTOFF,
                {"name": retention.PRUNED_CUTOFF, "at": cutoff},
            )
        return plan

    def refuse_unless_empty(self) -> None:
        """Conflict when the store holds any record (``load`` writes only into an empty one)."""
        held = [kind for kind in KINDS if self.count(kind)]
        if held:
            raise Conflict(
                f"the store is not empty ({', '.join(held)}): import into a new store"
            )

    def load(self, records: Mapping[str, Mapping[str, Record]]) -> int:
        self.refuse_unless_empty()
        written = 0
        for kind in KINDS:
            for key, record in records.get(kind, {}).items():
                self.put(kind, key, record)
                written += 1
        return written

    def problems(self) -> tuple[list[str], list[str]]:
        kinds = ("jobs", "results", "events", "notifications", "workers")
        records = {kind: list(self.scan(kind)) for kind in kinds}
        pruned = (self.get("counters", retention.PRUNED_CUTOFF) or {}).get("at")
        problems: list[str] = []
        notes: list[str] = []
        problems += integrity.shape_problems(records)
        problems += task_catalog.problems(list(self.scan(task_catalog.KIND)))
        problems += integrity.lane_problems(list(self.scan("lanes")))
        turns = self.count("orgs")
        if turns:
            notes.append(
                f"{turns} 'orgs' record(s) of an older version's fair turns "
                "are no longer used: they are kept, and ignored"
            )
        shapeless = bool(problems)
        problems += integrity.reference_problems(records)
        if shapeless:
            return problems, notes  # the check below reads the fields they lack
        keys = {n.get("dedupe_key") for n in records["notifications"]}
        for job_id in observability.missing_notifications(
            records["jobs"], keys, pruned
        ):
            problems.append(
                f"job {job_id} is terminal but has no in-app notification for it"
            )
        return problems, notes


class _FairTags:
    """Gives jobs their fair tags as they become runnable, in one transaction.

    Reads what ``scheduling.fair_tag`` needs (each lane's virtual time once,
    each org's ``lanes`` record) and writes the org's new next tag. A lane's
    virtual time does not move with the jobs tagged here (each takes a tag at
    or after it), so it is read once per transaction.
    """

    def __init__(self, tx: KeyValueTransaction, now: datetime) -> None:
        self._tx = tx
        self._stamp = clock.to_iso(now)
        self._held_back = breaker_rules.held_back(tx.scan("breakers"), now)
        self._virtual: dict[tuple[str, int], int] = {}

    def stamp(self, job: Job) -> Job:
        """The job with its fair tag if it is runnable now; otherwise as it is.

        Runnable: queued, untagged, and its ``run_after`` has come (a job
        still waiting for it gets its tag when a claim finds it due).
        """
        if (
            job.status is not JobStatus.QUEUED
            or job.fair_tag is not None
            or job.run_after > self._stamp
        ):
            return job
        tx, lane = self._tx, (job.queue, job.priority)
        key = scheduling.lane_key(job.queue, job.priority, job.org_id)
        virtual = self._virtual.get(lane)
        if virtual is None:
            head, next_tag, record = tx.lane_state(
                job.queue, job.priority, self._held_back, key
            )
            virtual = self._virtual[lane] = scheduling.virtual_time(head, next_tag)
        else:
            record = tx.get("lanes", key)
        record = record or {}
        tag, next_tag = scheduling.fair_tag(virtual, record.get("next_tag", 0))
        tx.put(
            "lanes",
            key,
            {
                "queue": job.queue,
                "priority": job.priority,
                "org_id": job.org_id,
                "next_tag": next_tag,
            },
        )
        return records.replace(job, fair_tag=tag)
