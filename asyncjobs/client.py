"""The Python API: ``Client``, a thin facade over the services.

Each method checks its arguments and hands on to one service
(``services/jobs.py``, ``running.py``, ``delivery.py``, ``maintenance.py``,
``artifacts.py``), which runs it as one transaction of the store's engine
(``store/ports.py``). ``docs/architecture.md`` draws the layers.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from . import clock as clocks
from .config import Settings
from .domain import bulk, retention, validation, waiting
from .domain.lifecycle import Token
from .domain.paging import Page
from .domain.tokens import AccessToken
from .errors import InvalidInput
from .records import Event, Job, JobStatus, Notification, WorkerInfo
from .services import running
from .services.access import Access
from .services.artifacts import discard_outcome
from .services.delivery import Delivery
from .services.jobs import SUBMIT_FIELDS, Jobs
from .services.maintenance import CheckReport, Maintenance
from .store import DEFAULT_STORE, Store, open_store
from .tasks import TaskRegistry, load_app

__all__ = ["SUBMIT_FIELDS", "CheckReport", "Client", "discard_outcome"]


class Client:
    """A handle on one store: ``with Client("runtime/async_jobs/store.v1.json") as c:``.

    ``settings`` are the ``ASYNCJOBS_*`` settings (``config.Settings``);
    without them the Client reads the environment once, when it is made.
    ``artifacts`` given here wins over the setting; a ``Store`` given ready
    made keeps its own fsync and lock. ``connections``: how many a
    PostgreSQL store keeps for this Client's threads (``serve`` keeps
    ``ASYNCJOBS_STORE_CONNECTIONS``). ``clock`` overrides the engine's
    moment of each transaction (tests and replays).
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
        connections: int = 1,
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
                connections=connections,
            )
        )
        self._clock: clocks.Clock = clock or clocks.now
        self.artifacts = os.path.abspath(artifacts or self._settings.artifacts)
        # The app submissions consult (queue, priority, known tasks, payloads);
        # without one, the task catalog workers publish.
        self.app = load_app(app) if isinstance(app, str) else app
        settings = self._settings
        self._jobs = Jobs(
            self._store, clock, self.app, max_payload_bytes=settings.max_payload_bytes
        )
        self._delivery = Delivery(self._store, clock)
        self._access = Access(self._store, clock)
        self._maintenance = Maintenance(
            self._store, clock, stale_seconds=settings.stale_seconds
        )
        self._runner = running.Runner(
            self._store,
            clock,
            self.submit_many,
            artifacts_folder=self.artifacts,
            # an engine serving many hosts keeps every value in its records
            inline_bytes=(
                settings.result_inline_bytes if self._store.result_files else None
            ),
        )

    @property
    def store(self) -> Store:
        return self._store

    @property
    def settings(self) -> Settings:
        """The settings this Client was made with (``ASYNCJOBS_*``, read once)."""
        return self._settings

    def now(self) -> datetime:
        """The Client's clock: the one given, else the wall clock."""
        return self._clock()

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
        return self._jobs.submit_many(
            specs, org=org, tasks=tasks, allow_unknown=allow_unknown, labels=labels
        )

    def validate_submission(
        self,
        spec: Mapping[str, Any],
        *,
        org: str | None = None,
        tasks: TaskRegistry | None = None,
        allow_unknown: bool = False,
    ) -> None:
        """Raise InvalidInput if ``submit_many`` would refuse this spec."""
        self._jobs.validate(spec, org=org, tasks=tasks, allow_unknown=allow_unknown)

    def get_job(self, job_id: str, *, org: str) -> Job:
        """The job; NotFound for a missing id and for another org's job alike."""
        return self._jobs.get(job_id, org=org)

    def job_by_key(self, key: str, *, org: str) -> Job:
        """The org's job submitted with this idempotency key; NotFound when none is."""
        return self._jobs.by_key(key, org=org)

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
        return self._jobs.wait(job_id, org=org, timeout=timeout, poll=poll)

    def page_jobs(
        self,
        *,
        org: str,
        status: str | JobStatus | Collection[str | JobStatus] | None = None,
        queue: str | None = None,
        task: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
        error_type: str | None = None,
    ) -> Page[Job]:
        """One page of the org's jobs, newest first by (created_at, job_id).

        Only jobs of ``status`` (one, or a collection of them), ``queue``,
        ``task`` and whose last error has the type ``error_type``, where
        given. ``limit`` is 1 to 10,000 jobs a page; pass the
        page's ``next_cursor`` with the same filters for the next one (it is
        None on the last). A walk never shows a job twice nor skips an older
        one, whatever is submitted meanwhile. InvalidInput for a cursor made
        for other filters or another org, or not made here.
        """
        return self._jobs.page(
            org=org,
            status=status,
            queue=queue,
            task=task,
            limit=limit,
            cursor=cursor,
            error_type=error_type,
        )

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
        return self._jobs.page_events(job_id, org=org, limit=limit, cursor=cursor)

    def events(self, job_id: str, *, org: str) -> list[Event]:
        """Every event of the job, oldest first (a few per attempt)."""
        return self._jobs.events(job_id, org=org)

    def cancel(self, job_id: str, *, org: str) -> Job:
        """Cancel a job: a queued one at once, a running one by its worker.

        A running job comes back still ``running`` with ``cancel_requested_at``
        set; its worker kills the task at its next heartbeat and the job ends
        ``canceled``. Asking again changes nothing. Conflict for a completed,
        failed or canceled job.
        """
        return self._jobs.cancel(job_id, org=org)

    def retry(self, job_id: str, *, org: str) -> Job:
        """Run a failed, canceled or completed job again (its next run)."""
        return self._jobs.retry(job_id, org=org)

    def retry_matching(
        self,
        *,
        org: str | None,
        status: str | Collection[str] | None = None,
        queue: str | None = None,
        task: str | None = None,
        failed_since: str | datetime | None = None,
        created_before: str | datetime | None = None,
        error_type: str | None = None,
        dry_run: bool = False,
        limit: int = bulk.MAX_JOBS,
    ) -> bulk.Bulk:
        """Retry the org's jobs that match, newest first, in one transaction.

        ``status``: failed (the default), canceled or completed, or several.
        ``failed_since``: ended at or after that time; ``created_before``:
        submitted before it; ``error_type``: the last attempt's error type.
        At most ``limit`` jobs (1 to 1,000, the default); the answer's
        ``more`` says whether others still match: call again until it is
        false. ``dry_run`` changes nothing and counts what would change.
        ``org=None``: the jobs of every org, org by org (an operator's call;
        the HTTP API always passes the caller's org).
        """
        wanted = bulk.criteria(
            "retry",
            status=status,
            queue=queue,
            task=task,
            failed_since=failed_since,
            created_before=created_before,
            error_type=error_type,
        )
        return self._jobs.bulk(wanted, org=org, dry_run=dry_run, limit=limit)

    def cancel_matching(
        self,
        *,
        org: str | None,
        status: str | Collection[str] | None = None,
        queue: str | None = None,
        task: str | None = None,
        created_before: str | datetime | None = None,
        error_type: str | None = None,
        dry_run: bool = False,
        limit: int = bulk.MAX_JOBS,
    ) -> bulk.Bulk:
        """Cancel the org's queued and running jobs that match, as ``cancel`` does.

        ``status``: queued, running, or both (the default). A running job
        whose cancel is already requested is not matched again. Filters,
        ``limit``, ``more`` and ``dry_run`` as in ``retry_matching``.
        """
        wanted = bulk.criteria(
            "cancel",
            status=status,
            queue=queue,
            task=task,
            created_before=created_before,
            error_type=error_type,
        )
        return self._jobs.bulk(wanted, org=org, dry_run=dry_run, limit=limit)

    def count_matching(
        self,
        action: str,
        *,
        org: str,
        status: str | Collection[str] | None = None,
        queue: str | None = None,
        task: str | None = None,
        failed_since: str | datetime | None = None,
        created_before: str | datetime | None = None,
        error_type: str | None = None,
        up_to: int = bulk.COUNT_UP_TO,
    ) -> bulk.Count:
        """How many of the org's jobs ``retry_matching`` or ``cancel_matching``
        (``action``) would reach with these filters over as many calls as it
        takes, counting no further than ``up_to`` (``more`` says whether
        others match beyond). Changes nothing; reads every match."""
        wanted = bulk.criteria(
            action,
            status=status,
            queue=queue,
            task=task,
            failed_since=failed_since,
            created_before=created_before,
            error_type=error_type,
        )
        return self._jobs.count(wanted, org=org, up_to=up_to)

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
        ahead: int = 0,
    ) -> tuple[list[Job], list[tuple[Job, Token]]]:
        """One transaction: record finished attempts, rescue expired leases, claim more.

        Returns the jobs the outcomes left (None for refused ones are left out)
        and up to ``want`` + ``ahead`` newly claimed jobs with their tokens,
        in claim order. The ``ahead`` ones are for a worker to hold until a
        slot frees up: never jobs behind a circuit breaker, whose state may
        change before they start. With a ``watch`` (a worker keeps one), a
        lease is rescued only once the watch has seen it unrenewed for a
        whole lease period as well.
        """
        return self._runner.exchange(
            worker,
            outcomes,
            want=want,
            registry=registry,
            expire=expire,
            watch=watch,
            ahead=ahead,
        )

    def prepare_outcome(self, token: Token, outcome: dict[str, Any]) -> dict[str, Any]:
        """An outcome ready to commit: a value over the inline limit written to its file.

        Done once per outcome: an outcome already prepared comes back as it
        is, so a commit tried again reuses its file. A value the store cannot
        hold, or a file that cannot be written, fails the attempt instead,
        with the reason, so that one outcome never holds back the others.
        """
        return self._runner.prepare_outcome(token, outcome)

    def heartbeat(self, worker: WorkerInfo, tokens: Collection[Token]) -> running.Beat:
        """Renew the worker's leases and record.

        Returns ``Beat(lost, stop)``: the tokens it no longer holds, and those
        whose jobs were canceled, whose tasks the worker must kill.
        """
        return self._runner.heartbeat(worker, tokens)

    def release(
        self,
        tokens: Collection[Token],
        worker: WorkerInfo | None = None,
        *,
        registry: TaskRegistry | None = None,
        started: bool = True,
    ) -> int:
        """Requeue jobs a worker holds; returns how many.

        ``worker`` given: it is stopping, and its record says so. ``started``
        False: jobs it claimed ahead and never started (the event's reason is
        ``not_started`` instead of ``worker_shutdown``). A job with a cancel
        request ends canceled instead of queued.
        """
        reason = "worker_shutdown" if started else "not_started"
        return self._runner.release(tokens, worker, registry, reason)

    def enqueue_periodic(self, registry: TaskRegistry) -> list[Job]:
        """Submit each periodic task due now, once per schedule slot (store-wide)."""
        return self._runner.enqueue_periodic(registry)

    def run_job(
        self, job_id: str, *, org: str, tasks: TaskRegistry, until_done: bool = False
    ) -> Job:
        """Run a queued job now, in this process, writing what a worker would.

        One attempt; with ``until_done`` the retries too, one after another
        without their backoff waits. Conflict unless the job is queued.
        """
        validation.org(org)
        return self._runner.run_job(
            job_id, org=org, tasks=tasks, until_done=until_done, get_job=self.get_job
        )

    def register_worker(
        self, worker: WorkerInfo, tasks: TaskRegistry | None = None
    ) -> WorkerInfo:
        """Record a worker that starts, and publish its app's ``tasks`` to the catalog.

        One transaction: each task's catalog record is replaced; records of
        tasks of other apps stay. Returns the worker's record.
        """
        return self._runner.register_worker(worker, tasks)

    # -- results and notifications -------------------------------------------

    def get_result(
        self, result_id: str, *, org: str, view: str = "latest"
    ) -> dict[str, Any]:
        """The permalink of a result: the newest version of its job, or exactly this one.

        NotFound for a missing id and another org's result alike.
        """
        return self._delivery.result(result_id, org=org, view=view)

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
        return self._delivery.page_notifications(
            job_id, org=org, channel=channel, limit=limit, cursor=cursor
        )

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
        return self._delivery.page_inbox(
            org=org, unread=unread, limit=limit, cursor=cursor
        )

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
        return self._delivery.mark_read(
            org=org, notification_ids=notification_ids, every=every
        )

    # -- operating -----------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """What operators watch: queues, running jobs, failures, workers, breakers, counters."""
        return self._maintenance.stats()

    def queues(self, *, org: str | None) -> list[dict[str, Any]]:
        """Each queue of the org (``org=None``: of every org), by name.

        ``depth`` queued jobs, of them ``runnable`` (due now) and ``delayed``;
        ``running``; ``lag_s``, how long the oldest runnable job has waited
        since it became runnable (0 when none waits); ``held``, runnable
        jobs an open breaker holds back. Queues with no queued or running
        job are not listed.
        """
        return self._maintenance.queues(org)

    def throughput(self, *, org: str, minutes: int = 60) -> list[dict[str, Any]]:
        """The org's jobs that ended in each of the last ``minutes`` minutes.

        Oldest minute first, the current one last: ``minute``
        (``YYYY-MM-DDTHH:MM``, UTC) and the ``completed``, ``failed`` and
        ``canceled`` counts, 0 where none ended. ``minutes``: 1 to 1440.
        """
        return self._maintenance.throughput(org, minutes)

    def failure_groups(self, *, org: str) -> list[dict[str, Any]]:
        """The org's jobs that failed in the last week, by (task, error type).

        Each group: ``task``, ``error_type``, how many failed in the
        ``last_hour``, ``last_day`` and ``last_week``, and the newest one's
        ``newest_at``, ``newest_message`` and ``newest_job_id``. Most
        failures first.
        """
        return self._maintenance.failure_groups(org)

    def pruned_before(self) -> str | None:
        """The retention cutoff: notifications before it were deleted (None: none were)."""
        return self._maintenance.pruned_before()

    def change_mark(self) -> str:
        """A text that changes whenever the store commits a change.

        Two equal marks mean nothing changed in between; the mark may also
        move when nothing did (on PostgreSQL it is the server's snapshot,
        which any writing transaction moves). The dashboard's ETag.
        """
        return self._maintenance.change_mark()

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
        return self._maintenance.schedules(app=app, now=now)

    def catalog(self) -> list[dict[str, Any]]:
        """The task catalog: each task a worker published, by name (``domain/catalog.py``)."""
        return self._maintenance.catalog()

    def workers(self) -> list[dict[str, Any]]:
        """Every worker record, newest first, with ``gone`` for one not seen in 3 heartbeats."""
        return self._maintenance.workers()

    def breakers(self) -> list[dict[str, Any]]:
        """Every breaker the store knows, with its state.

        A breaker is written only when it changes: one that the task catalog
        names but that never saw a failure is listed closed, as it is.
        """
        return self._maintenance.breakers()

    def create_token(
        self,
        *,
        orgs: Sequence[str],
        role: str,
        label: str | None = None,
        expires_in: float | None = None,
    ) -> tuple[dict[str, Any], str]:
        """A new access token for the HTTP API: its record and the token.

        The token (``tok_….<secret>``) is returned this once; the store keeps
        only the SHA-256 of its secret. ``role``: ``viewer`` (reads) or
        ``operator`` (also every POST, ``/metrics`` and ``/telemetry``).
        ``expires_in``: seconds, 60 to ten years; None never expires.
        """
        return self._access.create(orgs, role, label=label, expires_in=expires_in)

    def tokens(self) -> list[dict[str, Any]]:
        """Every access token's record (never a secret nor its hash), oldest first."""
        return self._access.list()

    def revoke_token(self, token_id: str) -> tuple[dict[str, Any], bool]:
        """Revoke a token at once: its record, and whether it was live until now."""
        return self._access.revoke(token_id)

    def authenticate(self, token: str) -> AccessToken:
        """The record of a live token; Unauthorized for any other text, alike."""
        return self._access.authenticate(token)

    def reset_breaker(self, name: str) -> dict[str, Any]:
        """Close a breaker by hand."""
        return self._maintenance.reset_breaker(name)

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
        """Delete expired records of terminal jobs; returns the report.

        One transaction on the JSON file; on PostgreSQL, short transactions
        of bounded size, each deleting only what still qualifies.

        A dry run changes nothing, not one byte of the store files. Result
        files go after their records are committed, never before.
        ``progress`` is called with the number of records read so far. TTLs
        are 0 to 100 years of seconds and ``now`` is from 1970-01-01 to
        9000-01-01 (UTC); anything else raises InvalidInput before the store
        is read.
        """
        policy = retention.Policy(
            results_ttl_seconds=results_ttl_seconds,
            events_ttl_seconds=events_ttl_seconds,
            notifications_ttl_seconds=notifications_ttl_seconds,
            jobs_ttl_seconds=jobs_ttl_seconds,
            workers_ttl_seconds=workers_ttl_seconds,
        )
        return self._maintenance.cleanup(
            policy, dry_run=dry_run, now=now, progress=progress
        )

    # -- store maintenance -------------------------------------------------

    def init_store(self) -> dict[str, Any]:
        """Create an empty store if there is none; an existing one is left as it is."""
        return self._maintenance.init_store()

    def check(self, *, strict: bool = False) -> CheckReport:
        """Validate the store: files, checksums, schema, then references.

        ``strict`` also compares the loaded state with a plain replay of the
        files: the oracle at the end of every fault test.
        """
        return self._maintenance.check(strict=strict)

    def import_store(self, doc: Any, *, source: str = "import") -> dict[str, Any]:
        """Write a state that ``export`` gave (from any engine) into this empty store.

        One transaction. InvalidInput for a document that is not an export,
        Conflict for a store that holds records; either way nothing is
        written. Returns what was written and any reference problems found.
        """
        return self._maintenance.load(doc, source=source)

    def compact(self) -> dict[str, Any]:
        """Fold the journal so that the snapshot alone shows the current state."""
        return self._store.compact()

    def export(self) -> dict[str, Any]:
        """The whole current state as one JSON document."""
        return self._store.export()
