"""The Python API: ``Client`` runs every operation as one store transaction.

``Client`` is the one caller of both the rule modules and the backend: it
reads records, hands them to the rules, and saves what comes back.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import logging
import os
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from . import clock as clocks
from . import ids
from .config import Settings
from .domain import breakers as breaker_rules
from .domain import catalog as task_catalog
from .domain import (
    integrity,
    lifecycle,
    observability,
    results,
    retention,
    validation,
    waiting,
)
from .domain import schedules as schedule_rules
from .domain.lifecycle import Token
from .domain.paging import Page
from .errors import (
    Conflict,
    InvalidInput,
    NotFound,
    StoreCorrupt,
    StoreError,
    WaitTimedOut,
)
from .records import Event, Job, JobStatus, Notification, Result, WorkerInfo
from .services import running
from .store import DEFAULT_STORE, Store, Transaction, open_store
from .store.jsonfile.fileio import write_private_file
from .tasks import TaskRegistry, load_app
from .worker import execution

log = logging.getLogger(__name__)

SUBMIT_FIELDS = frozenset(
    {
        "task",
        "org",
        "payload",
        "queue",
        "priority",
        "delay",
        "at",
        "idempotency_key",
        "max_retries",
    }
)


def _counted(
    records: Iterator[dict[str, Any]], progress: Callable[[int], None] | None
) -> list[dict[str, Any]]:
    if progress is None:
        return list(records)
    out = []
    for n, record in enumerate(records, start=1):
        out.append(record)
        if n % 1000 == 0:
            progress(1000)
    progress(len(out) % 1000)
    return out


def _statuses(
    status: str | JobStatus | Collection[str | JobStatus],
) -> list[str]:
    """Status values, checked: one given alone, or a collection of them."""
    if isinstance(status, str):
        given: list[object] = [status]
    elif isinstance(status, Iterable):
        given = list(status)
    else:
        given = [status]  # refused below, naming it
    found = []
    for value in given:
        try:
            found.append(JobStatus(value).value)
        except ValueError as exc:
            choices = ", ".join(s.value for s in JobStatus)
            raise InvalidInput(
                f"status: {validation.shown(value)} is not one of {choices}"
            ) from exc
    return found


def _check_channel(channel: str) -> None:
    if channel != "in_app":
        raise InvalidInput(
            f"channel: {validation.shown(channel)} is not a channel (in_app)"
        )


def _failed(
    outcome: dict[str, Any], error_type: str, message: str, *, retryable: bool
) -> dict[str, Any]:
    failed = {k: v for k, v in outcome.items() if k != "value"}
    return {
        **failed,
        "ok": False,
        "retryable": retryable,
        "error": {"type": error_type, "message": message[: execution.MAX_MESSAGE]},
    }


def discard_outcome(outcome: dict[str, Any]) -> None:
    """Delete the file of a prepared outcome that will never be committed."""
    stored = outcome.get("value_file")
    if stored:
        try:
            os.unlink(stored["path"])
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("cannot delete %s: %s", stored["path"], exc.strerror or exc)


def _task_catalog(tx: Transaction) -> list[dict[str, Any]]:
    """The task catalog workers publish, sorted by name."""
    return sorted(tx.scan(task_catalog.KIND), key=lambda r: r["name"])


def _catalog_source(tx: Transaction) -> str | None:
    """Whether submissions consult the task catalog: only once a worker filled it."""
    return task_catalog.CATALOG if tx.count(task_catalog.KIND) else None


def _route(
    tx: Transaction, args: dict[str, Any], source: str | None, allow_unknown: bool
) -> None:
    """Fill in the queue and priority a prepared spec left open, from the catalog."""
    declared = tx.get(task_catalog.KIND, args["task"]) if source else None
    queue, priority = task_catalog.routing(
        args["task"], declared, source=source, allow_unknown=allow_unknown
    )
    if args["queue"] is None:
        args["queue"] = queue
    if args["priority"] is None:
        args["priority"] = priority


class _Records:
    """Typed reads and writes over one backend transaction."""

    def __init__(self, tx: Transaction) -> None:
        self.tx = tx
        self._fair: running.FairTags | None = None

    def job(self, job_id: str, *, org: str) -> Job:
        """The org's job; NotFound for a missing id and another org's alike."""
        record = self.tx.get("jobs", job_id) if isinstance(job_id, str) else None
        if record is None or record.get("org_id") != org:
            raise NotFound(f"job {validation.shown_id(job_id)} not found")
        return Job.from_dict(record)

    def save(self, *records: Any) -> None:
        for record in records:
            if record is None:
                continue
            if isinstance(record, Event):
                record = self._sequenced(record)
            elif isinstance(record, Notification):
                if self.tx.find("notifications_by_dedupe", record.dedupe_key):
                    continue  # that transition already has its notification
            self.tx.put(record.KIND, record.key, record.to_dict())

    def runnable(self, job: Job, now: datetime) -> Job:
        """The job with its fair tag if it is runnable now (``running.FairTags``).

        Every transition that queues a job passes it through here before it
        is saved; one transaction reads each lane's virtual time once.
        """
        if self._fair is None:
            self._fair = running.FairTags(self.tx, now)
        return self._fair.stamp(job)

    def _sequenced(self, event: Event) -> Event:
        seqs = [e.get("seq", 0) for e in self.tx.find("events_by_job", event.job_id)]
        return dataclasses.replace(event, seq=max(seqs, default=0) + 1)

    def bump(self, counter: str, by: int = 1) -> None:
        """Add to a cumulative counter (never lowered, even by retention)."""
        self.tx.increment(counter, {"value": by})


@dataclass
class CheckReport:
    """What ``store check`` found: a store is sound when ``problems`` is empty."""

    store: str
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    generation: int = 0
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "store": self.store,
            "ok": self.ok,
            "problems": self.problems,
            "notes": self.notes,
            "generation": self.generation,
            "counts": self.counts,
        }


class Client:
    """A handle on one store: ``with Client("runtime/async_jobs/store.v1.json") as c:``.

    ``settings`` are the ``ASYNCJOBS_*`` settings (``config.Settings``);
    without them the Client reads the environment once, when it is made.
    ``artifacts`` given here wins over the setting; a ``Store`` given ready
    made keeps its own fsync and lock.
    """

    def __init__(
        self,
        store: str | os.PathLike[str] | Store = DEFAULT_STORE,
        *,
        clock: clocks.Clock | None = None,
        lock_timeout: float = 10.0,
        artifacts: str | os.PathLike[str] | None = None,
        app: TaskRegistry | str | None = None,
        settings: Settings | None = None,
    ) -> None:
        validation.seconds(
            lock_timeout, "lock_timeout", validation.LOCK_TIMEOUT_SECONDS
        )
        # The environment is read once, here, unless the caller hands its own
        # settings: a bad value stops here, before anything is written.
        self._settings = Settings.from_env() if settings is None else settings
        self._store = (
            store
            if isinstance(store, Store)
            else open_store(
                store,
                lock_timeout=lock_timeout,
                fsync=self._settings.fsync,
                lock_disabled=self._settings.test_disable_lock,
            )
        )
        self._clock = clock or clocks.now
        self.artifacts = os.path.abspath(artifacts or self._settings.artifacts)
        # The app submissions consult (queue, priority, known tasks, payloads);
        # without one, the task catalog workers publish.
        self.app = load_app(app) if isinstance(app, str) else app

    @property
    def store(self) -> Store:
        return self._store

    @property
    def settings(self) -> Settings:
        """The settings this Client was made with (``ASYNCJOBS_*``, read once)."""
        return self._settings

    def store_file(self, path: str | os.PathLike[str]) -> str | None:
        """Which of the store's own files ``path`` names, or None.

        "snapshot", "journal", "lock" or "temp file" (``.<snapshot name>.*.tmp``
        in the store's folder), comparing real paths with symlinks followed:
        a file written there would replace a part of the store.
        """
        store = self._store
        if not hasattr(store, "path"):
            return None  # a backend without files of its own
        real = os.path.realpath(path)
        for attr, kind in (
            ("path", "snapshot"),
            ("journal_path", "journal"),
            ("lock_path", "lock"),
        ):
            if real == os.path.realpath(getattr(store, attr)):
                return kind
        folder, name = os.path.split(real)
        prefix = f".{os.path.basename(store.path)}."
        if (
            folder == os.path.realpath(store.folder)
            and name.startswith(prefix)
            and name.endswith(".tmp")
        ):
            return "temp file"
        return None

    def close(self) -> None:
        self._store.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- jobs ----------------------------------------------------------------

    def submit(
        self,
        task: str,
        *,
        org: str,
        payload: Mapping[str, Any] | None = None,
        queue: str | None = None,
        priority: int | None = None,
        delay: float = 0,
        at: datetime | str | None = None,
        idempotency_key: str | None = None,
        max_retries: int | None = None,
        sync: bool = False,
        tasks: TaskRegistry | None = None,
        allow_unknown: bool = False,
    ) -> Job:
        """Queue a job; the same idempotency key in the same org returns the first job.

        A job found by its key comes back with ``deduplicated=True``. Without
        ``queue`` or ``priority`` the job takes its task's (see
        ``submit_many``). Raises InvalidInput, naming the field, before
        anything is written. With ``sync=True`` (fail-open) the job runs
        here, inline, before this returns, writing what a worker would;
        ``tasks`` (or the Client's ``app``) names the registry.
        """
        tasks = tasks if tasks is not None else self.app
        if sync and tasks is None:
            raise InvalidInput("sync=True needs tasks= (a TaskRegistry)")
        spec = {
            "task": task,
            "org": org,
            "payload": payload,
            "queue": queue,
            "priority": priority,
            "delay": delay,
            "at": at,
            "idempotency_key": idempotency_key,
            "max_retries": max_retries,
        }
        job = self.submit_many([spec], tasks=tasks, allow_unknown=allow_unknown)[0]
        if sync and not job.deduplicated:
            assert tasks is not None
            job = self.run_job(job.job_id, org=org, tasks=tasks, until_done=True)
        return job

    def submit_many(
        self,
        specs: Iterable[Mapping[str, Any]],
        *,
        org: str | None = None,
        tasks: TaskRegistry | None = None,
        allow_unknown: bool = False,
        labels: Sequence[str] | None = None,
    ) -> list[Job]:
        """Queue several jobs in one transaction; returns the jobs in order.

        Each spec is a mapping with ``task`` and optionally ``org`` (or the
        ``org`` argument), ``payload``, ``queue``, ``priority``, ``delay``,
        ``at``, ``idempotency_key`` and ``max_retries``.

        A spec without ``queue`` or ``priority`` takes its task's: from
        ``tasks`` (or the Client's ``app``), which also checks that the
        payload fits the task's parameters; else from the task catalog the
        workers publish; else ``default`` and 5. A task that the app, or a
        non-empty catalog, does not know is refused (``unknown task NAME``)
        unless ``allow_unknown``.

        Every spec is checked before anything is written; a bad one raises
        InvalidInput naming its position (``item 3: ...``, or its entry in
        ``labels``).
        """
        now = self._clock()
        registry = tasks if tasks is not None else self.app
        specs = list(specs)
        names = list(labels) if labels is not None else None
        if names is not None and len(names) != len(specs):
            raise InvalidInput("labels: give one label per spec")

        def where(n: int, exc: InvalidInput) -> InvalidInput:
            label = names[n] if names is not None else f"item {n + 1}"
            return type(exc)(f"{label}: {exc.message}")

        prepared = []
        for n, spec in enumerate(specs):
            try:
                prepared.append(self._prepare(spec, org, now, registry, allow_unknown))
            except InvalidInput as exc:
                if len(specs) == 1 and names is None:
                    raise
                raise where(n, exc) from exc
        jobs: list[Job] = []
        with self._store.transaction() as tx:
            records = _Records(tx)
            if registry is None:
                source = _catalog_source(tx)
                for n, args in enumerate(prepared):
                    try:
                        _route(tx, args, source, allow_unknown)
                    except InvalidInput as exc:
                        if len(specs) == 1 and names is None:
                            raise
                        raise where(n, exc) from exc
            for args in prepared:
                key = args["idempotency_key"]
                if key is not None:
                    found = tx.find("jobs_by_idempotency", (args["org"], key))
                    if found:
                        jobs.append(
                            dataclasses.replace(
                                Job.from_dict(found[0]), deduplicated=True
                            )
                        )
                        continue
                job, event = lifecycle.submit(now=now, **args)
                job = records.runnable(job, now)
                records.save(job, event)
                records.bump("jobs_submitted_total")
                jobs.append(job)
        return jobs

    def validate_submission(
        self,
        spec: Mapping[str, Any],
        *,
        org: str | None = None,
        tasks: TaskRegistry | None = None,
        allow_unknown: bool = False,
    ) -> None:
        """Raise InvalidInput if ``submit_many`` would refuse this spec."""
        registry = tasks if tasks is not None else self.app
        args = self._prepare(spec, org, self._clock(), registry, allow_unknown)
        if registry is None:
            with self._store.read() as tx:
                _route(tx, args, _catalog_source(tx), allow_unknown)

    def _prepare(
        self,
        spec: Mapping[str, Any],
        org: str | None,
        now: datetime,
        registry: TaskRegistry | None = None,
        allow_unknown: bool = False,
    ) -> dict[str, Any]:
        """A spec checked; without an app, queue and priority are left to ``_route``."""
        if not isinstance(spec, Mapping):
            raise InvalidInput(
                f"a job must be a JSON object, not {type(spec).__name__}"
            )
        unknown = sorted(set(spec) - SUBMIT_FIELDS)
        if unknown:
            raise InvalidInput(f"unknown field(s): {', '.join(map(str, unknown))}")
        job_org = spec.get("org") if spec.get("org") is not None else org
        if org is not None and spec.get("org") not in (None, org):
            raise InvalidInput(
                f"org: {validation.shown(spec.get('org'))} differs from {org}"
            )
        if "task" not in spec:
            raise InvalidInput("task: missing")
        delay = validation.delay(0 if spec.get("delay") is None else spec["delay"])
        at = spec.get("at")
        if at is not None and delay:
            raise InvalidInput("give either delay or at, not both")
        if at is not None:
            at = validation.at(at, now)
        task = validation.name(spec["task"], "task")
        payload = validation.payload(
            spec.get("payload"), max_bytes=self._settings.max_payload_bytes
        )
        queue = spec.get("queue")
        priority = spec.get("priority")
        if registry is not None:
            declared = registry.get(task)
            if declared is not None:
                problem = declared.payload_problem(payload)
                if problem is not None:
                    raise InvalidInput(f"payload: {problem}")
            routed = task_catalog.routing(
                task,
                None
                if declared is None
                else {"queue": declared.queue, "priority": declared.priority},
                source=task_catalog.APP,
                allow_unknown=allow_unknown,
            )
            queue = routed[0] if queue is None else queue
            priority = routed[1] if priority is None else priority
        return {
            "task": task,
            "org": validation.org(job_org),
            "payload": payload,
            "queue": None if queue is None else validation.name(queue, "queue"),
            "priority": None if priority is None else validation.priority(priority),
            "run_after": lifecycle.run_after(now, delay=delay, at=at),
            "idempotency_key": validation.idempotency_key(spec.get("idempotency_key")),
            "max_retries": validation.max_retries(spec.get("max_retries")),
        }

    def get_job(self, job_id: str, *, org: str) -> Job:
        """The job; NotFound for a missing id and for another org's job alike."""
        validation.org(org)
        with self._store.read() as tx:
            return _Records(tx).job(job_id, org=org)

    def wait(
        self,
        job_id: str,
        *,
        org: str,
        timeout: float | None = None,
        poll: float = waiting.PAUSE_CAP_SECONDS,
    ) -> Job:
        """The job once it is completed, failed or canceled.

        Each look reads that one job; looks are 10 ms apart at first, then
        twice as far apart each time, up to ``poll`` seconds (see
        ``domain/waiting.py``). Raises WaitTimedOut (a TimeoutError) after
        ``timeout`` seconds (None: no limit), and NotFound at once for a
        missing id and another org's job alike.
        """
        validation.org(org)
        if timeout is not None:
            validation.seconds(timeout, "timeout", validation.WAIT_SECONDS)
        validation.seconds(poll, "poll", validation.POLL_SECONDS)
        job = waiting.until(
            lambda: self.get_job(job_id, org=org),
            lambda job: job.status.terminal,
            timeout=timeout,
            cap=poll,
        )
        if not job.status.terminal:
            raise WaitTimedOut(
                f"job {job.job_id} is still {job.status.value} after {timeout:g} s"
            )
        return job

    def page_jobs(
        self,
        *,
        org: str,
        status: str | JobStatus | Collection[str | JobStatus] | None = None,
        queue: str | None = None,
        task: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[Job]:
        """One page of the org's jobs, newest first by (created_at, job_id).

        Only jobs of ``status`` (one, or a collection of them), ``queue`` and
        ``task``, where given. ``limit`` is 1 to 10,000 jobs a page; pass the
        page's ``next_cursor`` with the same filters for the next one (it is
        None on the last). A walk never shows a job twice nor skips an older
        one, whatever is submitted meanwhile. InvalidInput for a cursor made
        for other filters or another org, or not made here.
        """
        validation.org(org)
        validation.limit(limit)
        statuses = None if status is None else _statuses(status)
        if queue is not None:
            validation.name(queue, "queue")
        if task is not None:
            validation.name(task, "task")
        with self._store.read() as tx:
            found, next_cursor = tx.page_jobs(
                org,
                statuses=statuses,
                queue=queue,
                task=task,
                limit=limit,
                cursor=cursor,
            )
            return Page([Job.from_dict(r) for r in found], next_cursor)

    def list_jobs(
        self,
        *,
        org: str,
        status: str | JobStatus | Collection[str | JobStatus] | None = None,
        queue: str | None = None,
        task: str | None = None,
        limit: int = 50,
    ) -> list[Job]:
        """The org's newest jobs: the first page of ``page_jobs``, as a list."""
        return self.page_jobs(
            org=org, status=status, queue=queue, task=task, limit=limit
        ).items

    def page_events(
        self, job_id: str, *, org: str, limit: int = 1000, cursor: str | None = None
    ) -> Page[Event]:
        """One page of the job's events, oldest first by (seq, created_at, event_id).

        NotFound for a missing id and another org's job alike; cursors as in
        ``page_jobs``.
        """
        validation.org(org)
        validation.limit(limit)
        with self._store.read() as tx:
            _Records(tx).job(job_id, org=org)
            found, next_cursor = tx.page_events(
                job_id, org=org, limit=limit, cursor=cursor
            )
            return Page([Event.from_dict(r) for r in found], next_cursor)

    def events(self, job_id: str, *, org: str) -> list[Event]:
        """Every event of the job, oldest first (a few per attempt)."""
        validation.org(org)
        found: list[Event] = []
        with self._store.read() as tx:
            _Records(tx).job(job_id, org=org)
            cursor = None
            while True:
                page, cursor = tx.page_events(
                    job_id, org=org, limit=validation.MAX_LIMIT, cursor=cursor
                )
                found += (Event.from_dict(r) for r in page)
                if cursor is None:
                    return found

    def cancel(self, job_id: str, *, org: str) -> Job:
        """Cancel a job: a queued one at once, a running one by its worker.

        A running job comes back still ``running`` with ``cancel_requested_at``
        set; its worker kills the task at its next heartbeat and the job ends
        ``canceled``. Asking again changes nothing. Conflict for a completed,
        failed or canceled job.
        """
        validation.org(org)
        with self._store.transaction() as tx:
            records = _Records(tx)
            job = records.job(job_id, org=org)
            job, added = lifecycle.cancel(job, now=self._clock())
            if added:
                records.save(job, *added)
            if job.status is JobStatus.CANCELED:
                records.bump("jobs_canceled_total")
        return job

    def retry(self, job_id: str, *, org: str) -> Job:
        """Run a failed, canceled or completed job again (its next run)."""
        validation.org(org)
        with self._store.transaction() as tx:
            records = _Records(tx)
            job = records.job(job_id, org=org)
            now = self._clock()
            job, event = lifecycle.retry(job, now=now)
            job = records.runnable(job, now)
            records.save(job, event)
            records.bump("jobs_retried_total")
        return job

    # -- running jobs (workers and inline runs) --------------------------------

    def exchange(
        self,
        worker: WorkerInfo,
        outcomes: Sequence[tuple[Token, dict[str, Any]]],
        *,
        want: int,
        registry: TaskRegistry | None,
        expire: bool = True,
        watch: running.LeaseWatch | None = None,
    ) -> tuple[list[Job], list[tuple[Job, Token]]]:
        """One transaction: record finished attempts, rescue expired leases, claim more.

        Returns the jobs the outcomes left (None for refused ones are left out)
        and up to ``want`` newly claimed jobs with their tokens. With a
        ``watch`` (a worker keeps one), a lease is rescued only once the
        watch has seen it unrenewed for a whole lease period as well.
        """
        outcomes = [
            (token, self.prepare_outcome(token, outcome)) for token, outcome in outcomes
        ]
        now = self._clock()
        refused: list[dict[str, Any]] = []
        with self._store.transaction() as tx:
            records = _Records(tx)
            finished = []
            for token, outcome in outcomes:
                job = running.finish(records, token, outcome, registry, now)
                if job is None or job.status is JobStatus.CANCELED:
                    refused.append(outcome)  # its value is kept nowhere
                if job is not None:
                    finished.append(job)
            if finished:
                old = tx.get("workers", worker.worker_id)
                if old is not None:
                    tx.put(
                        "workers",
                        worker.worker_id,
                        {
                            **old,
                            "processed_count": old.get("processed_count", 0)
                            + len(finished),
                        },
                    )
            if expire:
                running.expire_leases(
                    records,
                    registry,
                    now,
                    watch=watch,
                    lease_seconds=worker.lease_seconds,
                )
            claimed = (
                running.claim(
                    records,
                    worker_id=worker.worker_id,
                    queues=worker.queues,
                    limit=want,
                    lease_seconds=worker.lease_seconds,
                    registry=registry,
                    now=now,
                )
                if want > 0
                else []
            )
        for outcome in refused:  # a stale or canceled attempt's value has no record
            discard_outcome(outcome)
        return finished, claimed

    def prepare_outcome(self, token: Token, outcome: dict[str, Any]) -> dict[str, Any]:
        """An outcome ready to commit: a value over the inline limit written to its file.

        Done once per outcome: an outcome already prepared comes back as it
        is, so a commit tried again reuses its file. A value the store cannot
        hold, or a file that cannot be written, fails the attempt instead,
        with the reason, so that one outcome never holds back the others.
        """
        if not outcome.get("ok") or "value_file" in outcome:
            return outcome
        try:
            validation.check_depth(outcome.get("value"), "result")
            data = json.dumps(outcome.get("value"), allow_nan=False).encode()
        except (TypeError, ValueError, RecursionError, InvalidInput) as exc:
            return _failed(outcome, type(exc).__name__, str(exc), retryable=False)
        if len(data) <= self._settings.result_inline_bytes:
            return outcome
        result_id = ids.new_id("res", self._clock())
        path = results.value_path(self.artifacts, token.org_id, result_id)
        try:
            write_private_file(path, data)
        except StoreError as exc:
            return _failed(outcome, "ResultNotStored", exc.message, retryable=True)
        return {
            **outcome,
            "result_id": result_id,
            "value_file": {
                "path": path,
                "bytes": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
            },
        }

    # -- results and notifications -------------------------------------------

    def get_result(
        self, result_id: str, *, org: str, view: str = "latest"
    ) -> dict[str, Any]:
        """The permalink of a result: the newest version of its job, or exactly this one.

        NotFound for a missing id and another org's result alike.
        """
        validation.org(org)
        results.check_view(view)
        with self._store.read() as tx:
            record = (
                tx.get("results", result_id) if isinstance(result_id, str) else None
            )
            if record is None or record.get("org_id") != org:
                raise NotFound(f"result {validation.shown_id(result_id)} not found")
            requested = Result.from_dict(record)
            versions = [
                Result.from_dict(r) for r in tx.find("results_by_job", requested.job_id)
            ]
        served, mode = results.permalink(requested, versions, view)
        return results.permalink_doc(served, result_id, mode, self._value_of(served))

    def _value_of(self, result: Result) -> Any:
        if result.value_file is None:
            return result.value
        try:
            with open(result.value_file, "rb") as f:
                data = f.read()
        except OSError as exc:
            raise StoreError(
                f"result {result.result_id}: cannot read {result.value_file}: {exc.strerror}"
            ) from exc
        if (
            len(data) != result.value_bytes
            or hashlib.sha256(data).hexdigest() != result.value_sha256
        ):
            raise StoreCorrupt(
                f"result {result.result_id}: {result.value_file} does not match its sha256"
            )
        return json.loads(data)

    def page_notifications(
        self,
        job_id: str,
        *,
        org: str,
        channel: str = "in_app",
        limit: int = 20,
        cursor: str | None = None,
    ) -> Page[Notification]:
        """One page of the job's notifications on a channel, latest first.

        Ordered by (created_at, notification_id). NotFound for a missing id
        and another org's job alike; cursors as in ``page_jobs``.
        """
        validation.org(org)
        _check_channel(channel)
        validation.limit(limit)
        with self._store.read() as tx:
            _Records(tx).job(job_id, org=org)
            found, next_cursor = tx.page_notifications(
                job_id, org=org, channel=channel, limit=limit, cursor=cursor
            )
            return Page([Notification.from_dict(r) for r in found], next_cursor)

    def notifications(
        self, job_id: str, *, org: str, channel: str = "in_app", limit: int = 20
    ) -> list[Notification]:
        """The job's latest notifications: the first page of ``page_notifications``."""
        return self.page_notifications(
            job_id, org=org, channel=channel, limit=limit
        ).items

    def page_inbox(
        self,
        *,
        org: str,
        unread: bool = False,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[Notification]:
        """One page of the org's in-app notifications, latest first.

        Ordered by (created_at, notification_id); with ``unread``, only those
        not marked read. Cursors as in ``page_jobs``.
        """
        validation.org(org)
        validation.limit(limit)
        with self._store.read() as tx:
            found, next_cursor = tx.page_inbox(
                org, unread=bool(unread), limit=limit, cursor=cursor
            )
            return Page([Notification.from_dict(r) for r in found], next_cursor)

    def inbox(
        self, *, org: str, unread: bool = False, limit: int = 50
    ) -> list[Notification]:
        """The org's latest in-app notifications: the first page of ``page_inbox``."""
        return self.page_inbox(org=org, unread=unread, limit=limit).items

    def mark_read(
        self, *, org: str, notification_ids: Sequence[str] = (), every: bool = False
    ) -> int:
        """Mark the org's notifications read; returns how many changed.

        Every id must be the org's (NotFound otherwise, before anything changes).
        """
        validation.org(org)
        if bool(notification_ids) == every:
            raise InvalidInput("name notification ids or --all, not both or neither")
        stamp = clocks.to_iso(self._clock())
        with self._store.transaction() as tx:
            if every:
                targets = tx.find("notifications_by_org", org)
            else:
                targets = []
                for notification_id in notification_ids:
                    record = tx.get("notifications", notification_id)
                    if record is None or record.get("org_id") != org:
                        raise NotFound(
                            f"notification {validation.shown_id(notification_id)} not found"
                        )
                    targets.append(record)
            changed = 0
            for record in targets:
                if record.get("read_at") is None:
                    tx.put(
                        "notifications",
                        record["notification_id"],
                        {**record, "read_at": stamp},
                    )
                    changed += 1
        return changed

    def stats(self) -> dict[str, Any]:
        """What operators watch: queues, running jobs, failures, workers, breakers, counters."""
        now = self._clock()
        with self._store.read() as tx:
            pruned = (tx.get("counters", retention.PRUNED_CUTOFF) or {}).get("at")
            summary = observability.summarize(
                jobs=tx.scan("jobs"),
                notifications=tx.scan("notifications"),
                breakers=list(tx.scan("breakers")),
                workers=list(tx.scan("workers")),
                counters={r["name"]: r for r in tx.scan("counters")},
                now=now,
                pruned_before=pruned,
                catalog=list(tx.scan("tasks")),
                stale_seconds=self._settings.stale_seconds,
            )
            summary["generation"] = tx.generation
        return summary

    def heartbeat(self, worker: WorkerInfo, tokens: Collection[Token]) -> running.Beat:
        """Renew the worker's leases and record.

        Returns ``Beat(lost, stop)``: the tokens it no longer holds, and those
        whose jobs were canceled, whose tasks the worker must kill.
        """
        now = self._clock()
        with self._store.transaction() as tx:
            return running.heartbeat(_Records(tx), worker, tokens, now)

    def release(
        self,
        tokens: Collection[Token],
        worker: WorkerInfo | None = None,
        *,
        registry: TaskRegistry | None = None,
    ) -> int:
        """Requeue jobs a stopping worker still holds; returns how many.

        A job with a cancel request ends canceled instead of queued.
        """
        now = self._clock()
        with self._store.transaction() as tx:
            released = running.release(_Records(tx), tokens, now, registry)
            if worker is not None:
                old = tx.get("workers", worker.worker_id) or worker.to_dict()
                tx.put(
                    "workers",
                    worker.worker_id,
                    {
                        **old,
                        "state": "stopped",
                        "running": [],
                        "last_seen_at": clocks.to_iso(now),
                    },
                )
        return released

    def enqueue_periodic(self, registry: TaskRegistry) -> list[Job]:
        """Submit each periodic task due now, once per schedule slot (store-wide)."""
        specs = running.due_periodic(registry, self._clock())
        return self.submit_many(specs, tasks=registry) if specs else []

    def schedules(
        self, *, app: TaskRegistry | None = None, now: datetime | None = None
    ) -> list[dict[str, Any]]:
        """The periodic tasks, each with its schedule, last slot enqueued and next run.

        The tasks are ``app``'s, or without one those of the task catalog
        that workers publish in the store (none in a store without a
        catalog). The last slot is the newest of the task's periodic jobs
        still in the store; the next run is reckoned from ``now`` (default:
        the client's clock). Rows are sorted by name.
        """
        moment = self._clock() if now is None else clocks.utc(now, field="now")
        with self._store.read() as tx:
            entries = app.describe() if app is not None else _task_catalog(tx)
            last_slots = {}
            for entry in entries:
                found = schedule_rules.periodic_of(entry)
                if found is not None:
                    name, periodic = found
                    jobs = tx.find("jobs_by_periodic", (periodic["org"], name))
                    last_slots[name] = schedule_rules.last_slot(
                        name, (job.get("idempotency_key") for job in jobs)
                    )
        return schedule_rules.rows(entries, last_slots, now=moment)

    def run_job(
        self, job_id: str, *, org: str, tasks: TaskRegistry, until_done: bool = False
    ) -> Job:
        """Run a queued job now, in this process, writing what a worker would.

        One attempt; with ``until_done`` the retries too, one after another
        without their backoff waits. Conflict unless the job is queued.
        """
        validation.org(org)
        worker = self._inline_worker()
        while True:
            with self._store.transaction() as tx:
                records = _Records(tx)
                job = records.job(job_id, org=org)
                if job.status is not JobStatus.QUEUED:
                    raise Conflict(
                        f"job {job.job_id} is {job.status.value}; only a queued job can run"
                    )
                claimed = running.claim(
                    records,
                    worker_id=worker.worker_id,
                    queues=[job.queue],
                    limit=1,
                    lease_seconds=worker.lease_seconds,
                    registry=tasks,
                    now=self._clock(),
                    only_job=job.job_id,
                )
            ((job, token),) = claimed
            spec = execution.spec_of(job)
            outcome = execution.run(tasks.get(job.task), spec)
            finished, _ = self.exchange(
                worker, [(token, outcome)], want=0, registry=tasks, expire=False
            )
            job = finished[0] if finished else self.get_job(job_id, org=org)
            if not until_done or job.status is not JobStatus.QUEUED:
                return job

    def _inline_worker(self) -> WorkerInfo:
        import os
        import socket

        now = clocks.to_iso(self._clock())
        return WorkerInfo(
            worker_id=ids.new_id("wrk", self._clock()),
            host=socket.gethostname(),
            pid=os.getpid(),
            queues=[],
            concurrency=1,
            started_at=now,
            last_seen_at=now,
            heartbeat_seconds=10.0,
            lease_seconds=300.0,
            state="inline",
        )

    def register_worker(
        self, worker: WorkerInfo, tasks: TaskRegistry | None = None
    ) -> WorkerInfo:
        """Record a worker that starts, and publish its app's ``tasks`` to the catalog.

        One transaction: each task's catalog record is replaced; records of
        tasks of other apps stay. Returns the worker's record.
        """
        with self._store.transaction() as tx:
            _Records(tx).save(worker)
            if tasks is not None:
                for record in task_catalog.published(
                    tasks.describe(), now=self._clock(), worker_id=worker.worker_id
                ):
                    tx.put(task_catalog.KIND, record["name"], record)
        return worker

    def catalog(self) -> list[dict[str, Any]]:
        """The task catalog: each task a worker published, by name (``domain/catalog.py``)."""
        with self._store.read() as tx:
            found = sorted(tx.scan(task_catalog.KIND), key=lambda r: r["name"])
        return copy.deepcopy(found)  # the store's own dicts must not be changed

    def workers(self) -> list[dict[str, Any]]:
        """Every worker record, newest first, with ``gone`` for one not seen in 3 heartbeats."""
        now = self._clock()
        with self._store.read() as tx:
            found = sorted(
                tx.scan("workers"), key=lambda r: r["started_at"], reverse=True
            )
            held = observability.running_by_worker(tx.find("jobs_by_status", "running"))
        return [
            observability.worker_view(record, now, held.get(record["worker_id"], []))
            for record in found
        ]

    def breakers(self) -> list[dict[str, Any]]:
        """Every breaker the store knows, with its state.

        A breaker is written only when it changes: one that the task catalog
        names but that never saw a failure is listed closed, as it is.
        """
        with self._store.read() as tx:
            found = {r["name"]: r for r in tx.scan("breakers")}
            behind: dict[str, list[str]] = {}
            for task in tx.scan(task_catalog.KIND):
                name = task.get("breaker")
                if isinstance(name, str):
                    behind.setdefault(name, []).append(task["name"])
        for name, tasks in behind.items():
            if name not in found:
                found[name] = breaker_rules.Breaker(name, tasks=sorted(tasks)).to_dict()
        return [found[name] for name in sorted(found)]

    def reset_breaker(self, name: str) -> dict[str, Any]:
        """Close a breaker by hand."""
        validation.name(name, "breaker")
        with self._store.transaction() as tx:
            record = tx.get("breakers", name)
            if record is None:
                raise NotFound(f"breaker {name} not found")
            breaker, event = breaker_rules.reset(
                breaker_rules.Breaker.from_dict(record, name), self._clock()
            )
            _Records(tx).save(breaker, event)
        return breaker.to_dict()

    # -- retention -------------------------------------------------------------

    def cleanup(
        self,
        *,
        results_ttl_seconds: float,
        events_ttl_seconds: float,
        notifications_ttl_seconds: float | None = None,
        jobs_ttl_seconds: float | None = None,
        workers_ttl_seconds: float = retention.DEFAULT_WORKERS_TTL_SECONDS,
        dry_run: bool = False,
        now: datetime | str | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> dict[str, Any]:
        """Delete expired records of terminal jobs in one transaction; returns the report.

        A dry run changes nothing, not one byte of the store files. Result
        files go after their records are committed, never before.
        ``progress`` is called with the number of records read so far. TTLs
        are 0 to 100 years of seconds and ``now`` is from 1970-01-01 to
        9000-01-01 (UTC); anything else raises InvalidInput before the store
        is read.
        """
        ttls = {
            "results_ttl_seconds": results_ttl_seconds,
            "events_ttl_seconds": events_ttl_seconds,
            "notifications_ttl_seconds": notifications_ttl_seconds,
            "jobs_ttl_seconds": jobs_ttl_seconds,
            "workers_ttl_seconds": workers_ttl_seconds,
        }
        for name, value in ttls.items():
            if value is None and name in ("results_ttl_seconds", "events_ttl_seconds"):
                raise InvalidInput(f"{name}: required")
            if value is not None:
                validation.seconds(value, name, validation.TTL_SECONDS)
        if now is not None:
            now = validation.moment(now, "now", validation.CLEANUP_NOW)
        opened = self._store.read() if dry_run else self._store.transaction()
        with opened as tx:
            # Read under the lock: the report's "now" is the moment of the
            # state it acted on, so no job it saw finished after it.
            moment = now or self._clock()
            records = {
                kind: _counted(tx.scan(kind), progress)
                for kind in ("jobs", "results", "events", "notifications", "workers")
            }
            plan = retention.plan(records, now=moment, **ttls)
            if not dry_run:
                for kind, _ in retention.KINDS:
                    tx.delete_many(kind, plan.deleted[kind])
                tx.delete_many("workers", plan.workers_deleted)
                if plan.notifications_cutoff is not None:
                    old = tx.get("counters", retention.PRUNED_CUTOFF) or {}
                    cutoff = max(plan.notifications_cutoff, old.get("at") or "")
                    tx.put(
                        "counters",
                        retention.PRUNED_CUTOFF,
                        {"name": retention.PRUNED_CUTOFF, "at": cutoff},
                    )
        if not dry_run:
            for path in plan.files:  # only now that their records are gone
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass
        return retention.report(
            plan, dry_run=dry_run, store_file=self._store.url, now=moment, **ttls
        )

    # -- store maintenance -------------------------------------------------

    def init_store(self) -> dict[str, Any]:
        """Create an empty store if there is none; an existing one is left as it is."""
        created = self._store.initialize()
        with self._store.read() as tx:
            return {
                "store": self._store.url,
                "created": created,
                "generation": tx.generation,
            }

    def check(self, *, strict: bool = False) -> CheckReport:
        """Validate the store: files, checksums, schema, then references.

        ``strict`` also compares the loaded state with a plain replay of the
        files: the oracle at the end of every fault test.
        """
        verification = self._store.verify(strict=strict)
        report = CheckReport(
            store=self._store.url,
            problems=list(verification.problems),
            notes=list(verification.notes),
            generation=verification.generation,
            counts=dict(verification.counts),
        )
        if not report.problems:
            with self._store.read() as tx:
                kinds = ("jobs", "results", "events", "notifications", "workers")
                records = {kind: list(tx.scan(kind)) for kind in kinds}
                pruned = (tx.get("counters", retention.PRUNED_CUTOFF) or {}).get("at")
                catalog = list(tx.scan(task_catalog.KIND))
                lanes = list(tx.scan("lanes"))
                turns = tx.count("orgs")
            report.problems += integrity.shape_problems(records)
            report.problems += task_catalog.problems(catalog)
            report.problems += integrity.lane_problems(lanes)
            if turns:
                report.notes.append(
                    f"{turns} 'orgs' record(s) of an older version's fair turns "
                    "are no longer used: they are kept, and ignored"
                )
            shapeless = bool(report.problems)
            report.problems += integrity.reference_problems(records)
            if shapeless:
                return report  # the check below reads the fields they lack
            keys = {n.get("dedupe_key") for n in records["notifications"]}
            for job_id in observability.missing_notifications(
                records["jobs"], keys, pruned
            ):
                report.problems.append(
                    f"job {job_id} is terminal but has no in-app notification for it"
                )
        return report

    def compact(self) -> dict[str, Any]:
        """Fold the journal so that the snapshot alone shows the current state."""
        return self._store.compact()

    def export(self) -> dict[str, Any]:
        """The whole current state as one JSON document."""
        return self._store.export()
