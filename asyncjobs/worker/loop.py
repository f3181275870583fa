"""The worker: one parent process that claims and commits, children that run tasks.

The parent is a single-threaded loop (no threads, so forking a replacement
child is safe). Each turn it:

1. commits the outcomes its children reported and claims jobs for idle
   children, in one transaction (``Client.exchange``). While jobs are short
   it also claims a few more and holds them ready (``prefetch``), so that a
   child that reports starts its next job at once and the outcomes of
   several jobs share one commit; a finished job's commit waits at most
   BATCH_SECONDS for others;
2. renews its leases every ``heartbeat_seconds`` (at most a third of the
   lease) and refreshes its worker record;
3. with ``beat``, enqueues due periodic tasks;
4. waits for a child to report, a time limit, a heartbeat or a signal.

A child runs one job at a time. At ``soft_timeout`` it gets SIGUSR1, which
raises ``SoftTimeLimitExceeded`` inside the task; at ``timeout`` the parent
kills it and the attempt fails with ``TimeLimitExceeded``. A child that dies
fails its attempt and is replaced. A heartbeat that names a canceled job
makes the parent SIGKILL that child, report the attempt canceled and fork a
replacement. Children ignore SIGINT and SIGTERM (the
parent decides when they stop) and die with the parent (PR_SET_PDEATHSIG).

SIGTERM or SIGINT: stop claiming, let running jobs finish within ``grace``
seconds, then kill them and release their leases so they are requeued at
once. A second signal stops at once.

What it logs comes from what a commit returned, never from what it expects:
each failed attempt at WARNING (the job, attempt n/max, the error, and when
it runs again or that it failed for good), a dead worker's job it took back
at WARNING, a task's traceback at DEBUG.

Every line it logs carries its worker id (``logs.context``), and a line
about a job that job's id.
"""

from __future__ import annotations

import json
import logging
import os
import selectors
import signal
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from .. import clock as clocks
from .. import ids, logs
from ..client import Client
from ..domain.lifecycle import Token
from ..errors import InvalidInput, StoreCorrupt, StoreError
from ..records import Job, JobStatus, WorkerInfo
from ..services import running
from ..services.artifacts import discard_outcome
from ..tasks import ChildProcessDied, TaskRegistry, TimeLimitExceeded
from . import execution

if TYPE_CHECKING:
    from ..store.ports import Listener

log = logging.getLogger("asyncjobs.worker")  # the name docs/workers.md shows
STORE_RETRY_SECONDS = 0.5  # the first wait after a store error; doubles to
STORE_RETRY_MAX_SECONDS = 4.0  # at most this, until the store answers again
_WAKE_UPS = object()  # the selector's mark of the store's wake-ups
# A finished job's commit waits at most this long for others to share it.
BATCH_SECONDS = 0.002
# Jobs are held ready only as many as the children start within this long
# at the recent pace (none when jobs take longer), and held jobs that no
# child took for HOLD_SECONDS are given back: a held job never waits long
# behind a long one while another worker could run it.
PREFETCH_WAIT_SECONDS = 0.005
HOLD_SECONDS = 0.05
PREFETCH = 32  # the most jobs held ready, by default


@dataclass
class _Child:
    pid: int
    to_child: int
    from_child: int
    buffer: bytes = b""
    token: Token | None = None
    task: str | None = None
    started: float = 0.0
    soft_at: float | None = None
    hard_at: float | None = None


def _die_with_parent() -> None:
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: an orphaned child ends when its pipe closes


def _child_main(registry: TaskRegistry, read_fd: int, write_fd: int) -> None:
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    _die_with_parent()
    soft = execution.SoftLimit()
    soft.install(signal.SIGUSR1)
    reader = os.fdopen(read_fd, "rb")
    writer = os.fdopen(write_fd, "wb")
    while line := reader.readline():
        spec = json.loads(line)
        soft.active = True
        started = time.monotonic()
        try:
            with logs.context(job_id=spec["job_id"]):
                outcome = execution.run(registry.get(spec["task"]), spec)
        finally:
            soft.active = False
        # how long the task took, apart from the time its outcome waits to be read
        outcome = {**outcome, "seconds": time.monotonic() - started}
        try:
            data = json.dumps(outcome, allow_nan=False)
        except (TypeError, ValueError) as exc:
            data = json.dumps(
                {
                    "job_id": spec["job_id"],
                    "ok": False,
                    "retryable": False,
                    "error": execution.error_of(exc, with_traceback=False),
                }
            )
        writer.write(data.encode() + b"\n")
        writer.flush()


def _encoded(spec: dict[str, Any]) -> bytes:
    """A job's spec as one JSON line for its child (orjson: a payload is JSON already)."""
    try:
        return orjson.dumps(spec)
    except TypeError:  # orjson.JSONEncodeError is one
        return json.dumps(spec).encode()


def _outcome_of(line: bytes, token: Token | None) -> dict[str, Any]:
    """The outcome a child reported; a line this process cannot read fails the attempt."""
    try:
        outcome = json.loads(line)
        if isinstance(outcome, dict):
            return outcome
        problem = "not a JSON object"
    except (ValueError, RecursionError) as exc:
        problem = str(exc) or type(exc).__name__
    return {
        "job_id": token.job_id if token is not None else None,
        "ok": False,
        "retryable": False,
        "error": {
            "type": "InvalidOutcome",
            "message": f"the task's process reported an unreadable outcome: {problem}"[
                : execution.MAX_MESSAGE
            ],
        },
    }


class Worker:
    """Claims and runs jobs until stopped (or, with ``burst``, until none is runnable)."""

    def __init__(
        self,
        client: Client,
        registry: TaskRegistry,
        *,
        queues: list[str] | None = None,
        concurrency: int = 1,
        lease_seconds: float = 30.0,
        heartbeat_seconds: float | None = None,
        burst: bool = False,
        max_jobs: int | None = None,
        beat: bool = False,
        grace: float = 30.0,
        poll_interval: float = 1.0,
        prefetch: int = PREFETCH,
    ) -> None:
        from ..domain import validation

        validation.count(concurrency, "concurrency", validation.CONCURRENCY)
        validation.seconds(lease_seconds, "lease_seconds", validation.LEASE_SECONDS)
        heartbeat_seconds = (
            lease_seconds / 3 if heartbeat_seconds is None else heartbeat_seconds
        )
        validation.seconds(
            heartbeat_seconds, "heartbeat_seconds", validation.HEARTBEAT_SECONDS
        )
        if not heartbeat_seconds <= lease_seconds / 3:
            raise InvalidInput(
                f"heartbeat_seconds: {heartbeat_seconds} must be positive and at most a "
                f"third of the lease ({lease_seconds / 3:g}) so a live lease never runs out"
            )
        if max_jobs is not None:
            validation.count(max_jobs, "max_jobs", validation.MAX_JOBS)
        validation.seconds(grace, "grace", validation.GRACE_SECONDS)
        validation.seconds(poll_interval, "poll_interval", validation.POLL_SECONDS)
        validation.count(prefetch, "prefetch", validation.PREFETCH)
        self.client = client
        self.registry = registry
        self.queues = queues or sorted(
            {t.queue for t in registry.tasks.values()} or {"default"}
        )
        for queue in self.queues:
            validation.name(queue, "queue")
        self.concurrency = concurrency
        self.lease_seconds = lease_seconds
        self.heartbeat_seconds = heartbeat_seconds
        self.burst = burst
        self.max_jobs = max_jobs
        self.beat = beat
        self.grace = grace
        self.poll_interval = poll_interval
        self.prefetch = prefetch
        self.children: list[_Child] = []
        self.ready: deque[tuple[Job, Token]] = deque()  # claimed, not yet started
        self.ready_moved = 0.0  # when a child last took one (or they came)
        self.run_average: float | None = None  # seconds an attempt took, smoothed
        self.selector = selectors.DefaultSelector()
        self.listener: Listener | None = None  # the store's wake-ups, if any
        self.outcomes: list[tuple[Token, dict[str, Any]]] = []
        self.outcomes_since = 0.0  # when the oldest of them came in
        self.run_seconds: dict[Token, float] = {}  # of outcomes not yet committed
        self.lost: set[Token] = set()
        self.lease_watch = running.LeaseWatch()
        self.claimed_count = 0
        self.processed_count = 0
        self.stop_requested = 0  # 1: graceful, 2: at once
        self.store_retry_at = 0.0  # after a store error, wait until then
        self.store_failures = 0  # store calls failed in a row
        self.store_down_since = 0.0
        self.stop_deadline: float | None = None
        now = client.now()
        stamp = clocks.to_iso(now)
        self.info = WorkerInfo(
            worker_id=ids.new_id("wrk", now),
            host=socket.gethostname(),
            pid=os.getpid(),
            queues=list(self.queues),
            concurrency=concurrency,
            started_at=stamp,
            last_seen_at=stamp,
            heartbeat_seconds=heartbeat_seconds,
            lease_seconds=lease_seconds,
        )

    # -- children ----------------------------------------------------------------

    def _spawn(self) -> _Child:
        to_read, to_write = os.pipe()
        from_read, from_write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child
            code = 0
            try:
                os.close(to_write)
                os.close(from_read)
                for other in self.children:
                    os.close(other.to_child)
                    os.close(other.from_child)
                _child_main(self.registry, to_read, from_write)
            except BaseException:
                code = 70
            finally:
                os._exit(code)
        os.close(to_read)
        os.close(from_write)
        os.set_blocking(from_read, False)
        child = _Child(pid, to_write, from_read)
        self.selector.register(from_read, selectors.EVENT_READ, child)
        self.children.append(child)
        return child

    def _reap(self, child: _Child) -> str:
        """Close a dead (or killed) child's pipes and say how it ended."""
        self.selector.unregister(child.from_child)
        os.close(child.to_child)
        os.close(child.from_child)
        self.children.remove(child)
        try:
            _, status = os.waitpid(child.pid, 0)
        except ChildProcessError:
            return "ended"
        if os.WIFSIGNALED(status):
            number = os.WTERMSIG(status)
            return f"was killed by signal {number} ({signal.Signals(number).name})"
        return f"exited with code {os.WEXITSTATUS(status)}"

    def _dispatch(self, child: _Child, job: Job, token: Token) -> None:
        task = self.registry.get(job.task)
        spec = execution.spec_of(job)
        now = time.monotonic()
        child.token, child.task, child.started, child.buffer = token, job.task, now, b""
        child.soft_at = now + task.soft_timeout if task and task.soft_timeout else None
        child.hard_at = now + task.timeout if task and task.timeout else None
        data = _encoded(spec) + b"\n"
        view = memoryview(data)
        while view:
            view = view[os.write(child.to_child, view) :]
        log.info(
            "%s (%s) started attempt %d/%d",
            job.job_id,
            job.task,
            job.attempts,
            (job.max_retries or 0) + 1,
            extra={"job_id": job.job_id},
        )

    def _report(
        self,
        token: Token,
        outcome: dict[str, Any],
        started: float | None,
        took: Any = None,
    ) -> None:
        """Keep an attempt's outcome for the next commit, and how long it ran.

        ``took``: the seconds the child measured. The time since dispatch
        also counts how long this process was busy committing before it
        read the outcome, which would make short jobs look long.
        """
        now = time.monotonic()
        if not self.outcomes:
            self.outcomes_since = now
        self.outcomes.append((token, outcome))
        if started is not None:
            if not isinstance(took, float) or not 0 <= took <= now - started:
                took = now - started
            self.run_seconds[token] = took
            average = self.run_average
            self.run_average = took if average is None else 0.8 * average + 0.2 * took

    def _prefetch_target(self, now: float) -> int:
        """How many claimed jobs to hold ready beyond the idle children.

        As many as the children start within PREFETCH_WAIT_SECONDS at the
        recent pace, where a job running for over HOLD_SECONDS counts for as
        long as it has run (a shorter time may be this process's own commit,
        during which it reads no outcome).
        """
        if self.stop_requested or not self.prefetch or self.run_average is None:
            return 0
        running = [now - c.started for c in self._busy()]
        took = max([self.run_average] + [t for t in running if t > HOLD_SECONDS])
        pace = self.concurrency * PREFETCH_WAIT_SECONDS / max(took, 1e-6)
        return min(self.prefetch, int(pace))

    def _hold(self, claimed: list[tuple[Job, Token]]) -> None:
        if claimed:
            self.ready_moved = time.monotonic()
        self.ready.extend(claimed)

    def _dispatch_ready(self) -> None:
        """Start held jobs on the idle children.

        Not while the store fails: their leases are not being renewed, and
        one may already have run out and been taken over.
        """
        if self.stop_requested or self.store_failures:
            return
        for child in self.children:
            if not self.ready:
                return
            if child.token is None:
                self._dispatch(child, *self.ready.popleft())
                self.ready_moved = time.monotonic()

    def _release_ready(self) -> None:
        """Give the held jobs back at once, queued, their attempts not counted."""
        tokens = [token for _, token in self.ready]
        released = self._store(
            self.client.release, tokens, None, registry=self.registry, started=False
        )
        if released is not None:
            log.info("gave back %d job(s) claimed ahead and not started", len(tokens))
        # Dropped either way: a release whose outcome is unknown may have
        # committed, and then another worker may be running them. If it did
        # not, their leases run out and they are rescued.
        self.ready.clear()

    def _fail_child(
        self, child: _Child, error_type: type[BaseException], message: str
    ) -> None:
        token = child.token
        how = self._reap(child)
        if token is not None:
            task = self.registry.get(child.task or "")
            self._report(
                token,
                {
                    "job_id": token.job_id,
                    "ok": False,
                    "retryable": task.retries(error_type) if task else False,
                    "error": {
                        "type": error_type.__name__,
                        "message": message.format(how=how),
                    },
                },
                child.started,
            )
            log.info(
                "%s: %s",
                token.job_id,
                message.format(how=how),
                extra={"job_id": token.job_id},
            )
        if not self.stop_requested:
            self._spawn()

    def _read(self, child: _Child) -> None:
        try:
            chunk = os.read(child.from_child, 1 << 20)
        except BlockingIOError:
            return
        if not chunk:
            self._fail_child(child, ChildProcessDied, "the task's process {how}")
            return
        child.buffer += chunk
        while b"\n" in child.buffer:
            line, child.buffer = child.buffer.split(b"\n", 1)
            outcome = _outcome_of(line, child.token)
            took = outcome.pop("seconds", None)
            if child.token is not None and outcome.get("job_id") == child.token.job_id:
                prepared = self.client.prepare_outcome(child.token, outcome)
                self._report(child.token, prepared, child.started, took)
            child.token = child.task = None
            child.soft_at = child.hard_at = None
        self._dispatch_ready()

    def _stop(self, tokens: list[Token]) -> None:
        """Kill the tasks of canceled jobs and report their attempts canceled.

        SIGKILL at once, as at the hard time limit: children ignore SIGTERM,
        and a task that could delay its end would stretch the promise that a
        cancel takes effect within one heartbeat. A held job that was canceled
        is reported so without starting.
        """
        for job, token in [entry for entry in self.ready if entry[1] in tokens]:
            self.ready.remove((job, token))
            self._report_canceled(token, "the job was canceled before its task started")
        for child in self._busy():
            token = child.token
            if token not in tokens:
                continue
            os.kill(child.pid, signal.SIGKILL)
            how = self._reap(child)
            self._report_canceled(
                token, f"the job was canceled; the task's process {how}"
            )
            if not self.stop_requested:
                self._spawn()

    def _report_canceled(self, token: Token, message: str) -> None:
        outcome = {
            "job_id": token.job_id,
            "ok": False,
            "retryable": False,
            "canceled": True,
            "error": {"type": "Canceled", "message": message},
        }
        self._report(token, outcome, None)
        log.info("%s: %s", token.job_id, message)

    def _check_limits(self, now: float) -> None:
        for child in list(self.children):
            if child.token is None:
                continue
            if child.hard_at is not None and now >= child.hard_at:
                os.kill(child.pid, signal.SIGKILL)
                task = self.registry.get(child.task or "")
                limit = task.timeout if task else 0
                self._fail_child(
                    child,
                    TimeLimitExceeded,
                    f"the task ran past its time limit of {limit:g} s and was killed",
                )
            elif child.soft_at is not None and now >= child.soft_at:
                child.soft_at = None
                os.kill(child.pid, signal.SIGUSR1)

    # -- signals -----------------------------------------------------------------

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.stop_requested += 1
        if self.stop_requested == 1:
            self.stop_deadline = time.monotonic() + self.grace
            log.info("stopping: finishing running jobs within %g s", self.grace)

    def _install_signals(self) -> int:
        wake_read, wake_write = os.pipe()
        os.set_blocking(wake_read, False)
        os.set_blocking(wake_write, False)
        signal.set_wakeup_fd(wake_write, warn_on_full_buffer=False)
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        self.selector.register(wake_read, selectors.EVENT_READ, None)
        self._wake_fds = (wake_read, wake_write)
        return wake_read

    # -- the loop ------------------------------------------------------------------

    def run(self) -> int:
        """Run until stopped; returns the exit code."""
        with logs.context(worker_id=self.info.worker_id):
            return self._run()

    def _run(self) -> int:
        wake = self._install_signals()
        # Registering also publishes the app's tasks to the store's task catalog.
        while (
            self._store(self.client.register_worker, self.info, self.registry) is None
        ):
            if self.stop_requested:
                return 0
            time.sleep(max(0.0, self.store_retry_at - time.monotonic()))
        log.info(
            "worker %s on queues %s, concurrency %d",
            self.info.worker_id,
            ",".join(self.queues),
            self.concurrency,
        )
        try:
            for _ in range(self.concurrency):
                self._spawn()
            self._loop(wake)
        finally:
            held = [c.token for c in self.children if c.token is not None]
            held += [token for _, token in self.ready]
            for child in list(self.children):
                if child.token is not None:
                    os.kill(child.pid, signal.SIGKILL)
                self._reap(child)
            released = self._store(
                self.client.release, held, self.info, registry=self.registry
            )
            if released is None and held:
                log.warning(
                    "%d job(s) not released; they are rescued when their "
                    "leases run out",
                    len(held),
                )
            for _, outcome in self.outcomes:  # never committed: run again later
                discard_outcome(outcome)
            signal.set_wakeup_fd(-1)
            for fd in self._wake_fds:
                os.close(fd)
            if self.listener is not None:
                self.listener.close()
            self.selector.close()
        log.info(
            "worker %s stopped after %d job(s)",
            self.info.worker_id,
            self.processed_count,
        )
        return 0

    def _busy(self) -> list[_Child]:
        return [c for c in self.children if c.token is not None]

    def _listen(self) -> None:
        """Register the store's wake-ups, when its engine has them (store/ports.py)."""
        listener = self.client.store.listener()
        if listener is not None:
            self.listener = listener
            self.selector.register(listener.fileno(), selectors.EVENT_READ, _WAKE_UPS)

    def _loop(self, wake: int) -> None:
        mono = time.monotonic
        next_poll = next_ahead = 0.0
        next_listen = 0.0
        next_heartbeat = mono() + self.heartbeat_seconds
        next_beat = 0.0
        if self.beat:
            # Before the first claim: a burst worker (--beat --burst) runs
            # the slots due now, where it would otherwise exit first.
            self._store(self.client.enqueue_periodic, self.registry)
            next_beat = mono() + 1.0
        while True:
            now = mono()
            if self.stop_requested >= 2 or (
                self.stop_requested
                and self.stop_deadline is not None
                and now >= self.stop_deadline
            ):
                if self._busy():
                    log.warning(
                        "grace over: releasing %d running job(s)", len(self._busy())
                    )
                self._flush()
                return
            self._dispatch_ready()
            if (
                self.ready
                and (self.stop_requested or now - self.ready_moved >= HOLD_SECONDS)
                and now >= self.store_retry_at
            ):
                self._release_ready()  # the children are taken by long jobs
            idle = [c for c in self.children if c.token is None]
            target = self._prefetch_target(now)
            want = 0 if self.stop_requested else len(idle)
            ahead = 0 if self.ready and len(self.ready) > target // 2 else target
            ahead = max(0, ahead - len(self.ready))  # refilled at half the target
            if self.max_jobs is not None:
                want = min(want, self.max_jobs - self.claimed_count)
                ahead = max(0, min(ahead, self.max_jobs - self.claimed_count - want))
            # When each kind of claim is due: for an idle child, or to hold.
            claim_at = [next_poll] if want else []
            claim_at += [next_ahead] if ahead else []
            busy = bool(self._busy())
            commit_at = self.outcomes_since + BATCH_SECONDS if busy else now
            if (
                (self.outcomes and now >= commit_at)
                or (claim_at and now >= min(claim_at))
            ) and now >= self.store_retry_at:
                reported = len(self.outcomes)
                claimed = self._exchange(want, ahead)
                if claimed is None:  # the store is unavailable: outcomes kept, retry
                    claimed, reported = [], 1
                self._hold(claimed)
                self._dispatch_ready()
                short = not reported and len(claimed) < want + ahead
                # nothing more is runnable now (or nothing to hold)
                next_ahead = now + self.poll_interval if short else now
                if want > 0 and len(claimed) < want and not reported:
                    next_poll = now + self.poll_interval
                    if (
                        self.burst
                        and not self._busy()
                        and not self.ready
                        and not self.lease_watch.waiting
                    ):
                        return  # (a lease about to be rescued is runnable soon)
                else:
                    next_poll = now
            if not self._busy() and not self.outcomes and not self.ready:
                if self.stop_requested:
                    return
                if self.max_jobs is not None and self.claimed_count >= self.max_jobs:
                    return
            if now >= next_heartbeat:
                tokens = [c.token for c in self._busy()]
                tokens += [token for _, token in self.ready]
                live = [t for t in tokens if t not in self.lost]
                beat = self._store(self.client.heartbeat, self.info, live)
                if beat is not None:
                    self.lost.update(beat.lost)
                    # a held job whose lease is gone is no longer this worker's
                    self.ready = deque(e for e in self.ready if e[1] not in beat.lost)
                    self._stop(beat.stop)
                next_heartbeat = now + self.heartbeat_seconds
            if self.beat and now >= next_beat and not self.stop_requested:
                if self._store(self.client.enqueue_periodic, self.registry):
                    next_poll = now
                next_beat = now + 1.0
            deadlines = [next_heartbeat]
            if want:
                deadlines.append(max(next_poll, self.store_retry_at))
            if ahead:
                deadlines.append(max(next_ahead, self.store_retry_at))
            if self.beat:
                deadlines.append(next_beat)
            if self.stop_deadline is not None:
                deadlines.append(self.stop_deadline)
            for child in self._busy():
                deadlines += [
                    d for d in (child.soft_at, child.hard_at) if d is not None
                ]
            if self.outcomes:
                deadlines.append(max(commit_at, self.store_retry_at))
            if self.ready:
                deadlines.append(
                    max(self.ready_moved + HOLD_SECONDS, self.store_retry_at)
                )
            if want and self.listener is None and now >= next_listen:
                self._listen()  # an engine with wake-ups: listen (again)
                next_listen = now + max(self.poll_interval, 5.0)
            for key, _ in self.selector.select(max(0.0, min(deadlines) - mono())):
                if key.data is _WAKE_UPS:
                    assert self.listener is not None
                    if self.listener.drain():
                        next_poll = next_ahead = (
                            0.0  # a submission committed: claim now
                        )
                    if self.listener.closed:
                        self.selector.unregister(key.fileobj)
                        self.listener = None
                elif key.data is None:
                    try:
                        os.read(wake, 512)
                    except BlockingIOError:
                        pass
                elif key.data in self.children:
                    self._read(key.data)
            self._check_limits(mono())

    def _store(self, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run a store call; a store that is busy or failing is retried, not fatal.

        Retrying is safe: if a commit whose outcome was unknown did land,
        the outcomes sent again are refused as stale, never applied twice.
        The wait between tries doubles from STORE_RETRY_SECONDS to
        STORE_RETRY_MAX_SECONDS; an outage is logged as a warning when it
        starts and when it ends, each try between at debug level. A corrupt
        store stops the worker.
        """
        try:
            answer = call(*args, **kwargs)
        except StoreCorrupt:
            raise
        except StoreError as exc:
            now = time.monotonic()
            self.store_failures += 1
            doublings = min(self.store_failures - 1, 16)  # an outage may last days
            delay = min(STORE_RETRY_SECONDS * 2**doublings, STORE_RETRY_MAX_SECONDS)
            if self.store_failures == 1:  # once per outage, not once per try
                self.store_down_since = now
                log.warning(
                    "store unavailable, retrying (every %g s at most): %s",
                    STORE_RETRY_MAX_SECONDS,
                    exc.message,
                )
            else:
                log.debug(
                    "store still unavailable (try %d), next in %g s: %s",
                    self.store_failures,
                    delay,
                    exc.message,
                )
            self.store_retry_at = now + delay
            return None
        if self.store_failures:
            log.warning(
                "store available again after %.1f s (%d failed tries)",
                time.monotonic() - self.store_down_since,
                self.store_failures,
            )
            self.store_failures = 0
        return answer

    def _exchange(self, want: int, ahead: int = 0) -> list[tuple[Job, Token]] | None:
        """Commit the outcomes and claim up to ``want`` + ``ahead`` (to hold).

        None when the store is unavailable.
        """
        outcomes = self.outcomes
        self.lease_watch.rescued = []
        answer = self._store(
            self.client.exchange,
            self.info,
            outcomes,
            want=want,
            ahead=ahead,
            registry=self.registry,
            expire=want + ahead > 0,
            watch=self.lease_watch,
        )
        if answer is None:
            return None
        self.outcomes = self.outcomes[len(outcomes) :]
        finished, claimed = answer
        self._log_committed(outcomes, finished)
        self.processed_count += len(outcomes)
        self.claimed_count += len(claimed)
        return claimed

    def _log_committed(
        self, outcomes: list[tuple[Token, dict[str, Any]]], finished: list[Job]
    ) -> None:
        """Log what a commit decided: each attempt's end, refusals, rescued leases."""
        sent = {t.job_id: t for t, _ in outcomes}
        seconds = {t.job_id: self.run_seconds.pop(t, 0.0) for t, _ in outcomes}
        for job in finished:
            sent.pop(job.job_id, None)
            took = seconds[job.job_id]
            where = {"job_id": job.job_id}
            if job.status is JobStatus.COMPLETED:
                log.info(
                    "%s (%s) %s in %.3f s",
                    job.job_id,
                    job.task,
                    logs.attempt_text(job),
                    took,
                    extra=where,
                )
                continue
            log.warning(
                "%s (%s) %s", job.job_id, job.task, logs.attempt_text(job), extra=where
            )
            traceback = (job.error or {}).get("traceback")
            if traceback:
                log.debug(
                    "%s (%s) traceback of attempt %d",
                    job.job_id,
                    job.task,
                    job.attempts,
                    extra={**where, "task_traceback": traceback},
                )
        for job_id, token in sent.items():  # outcomes the commit refused
            log.warning(
                "%s outcome of attempt %d refused: the job is no longer this "
                "worker's (its lease ran out, or it was taken over)",
                job_id,
                token.attempt,
                extra={"job_id": job_id},
            )
        for job, lost_by, lease_end in self.lease_watch.rescued:
            attempts = f"attempt {job.attempts}/{(job.max_retries or 0) + 1}"
            then = (
                "failed for good (no retries left)"
                if job.status is JobStatus.FAILED
                else "queued again"
            )
            log.warning(
                "%s (%s) rescued from worker %s, whose lease ran out at %s: "
                "%s counted as failed; %s",
                job.job_id,
                job.task,
                lost_by,
                lease_end,
                attempts,
                then,
                extra={"job_id": job.job_id},
            )
        self.lease_watch.rescued = []

    def _flush(self) -> None:
        if self.outcomes:
            self._exchange(0)
