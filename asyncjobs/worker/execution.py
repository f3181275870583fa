"""Running one job's task in the current process, and the outcome it produces.

Used by the worker's child processes and by inline (``sync``) runs. An
outcome is a plain dict, sent over a pipe as one JSON line::

    {"job_id": "job_...", "ok": true, "value": <any JSON>}
    {"job_id": "job_...", "ok": false, "retryable": true,
     "error": {"type": "ValueError", "message": "...", "traceback": "..."}}
    {"job_id": "job_...", "ok": false, "retryable": false, "caller_error": true,
     "error": {"type": "InvalidPayload", "message": "task t needs 'month'"}}

``caller_error`` marks an attempt that failed because of what was submitted,
not because of the task or what it depends on: it is never retried and a
circuit breaker does not count it.
"""

from __future__ import annotations

import json
import logging
import signal
import traceback
from dataclasses import dataclass
from typing import Any

from ..domain import validation
from ..errors import InvalidInput
from ..records import Job
from ..tasks import InvalidPayload, SoftTimeLimitExceeded, Task, UnknownTask

MAX_MESSAGE = 2000
MAX_TRACEBACK = 8000


@dataclass(frozen=True)
class JobContext:
    """What a task that names a parameter ``job`` gets."""

    job_id: str
    org_id: str
    task: str
    attempt: int
    run: int
    log: logging.LoggerAdapter  # carries the job id as correlation id


class _CorrelationAdapter(logging.LoggerAdapter):
    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        extra = dict(kwargs.get("extra") or {})
        extra.setdefault("correlation_id", self.extra["correlation_id"])
        kwargs["extra"] = extra
        return f"[{self.extra['correlation_id']}] {msg}", kwargs


def spec_of(job: Job) -> dict[str, Any]:
    """What a process needs to run a job's attempt (see ``run``)."""
    return {
        "job_id": job.job_id,
        "org_id": job.org_id,
        "task": job.task,
        "payload": job.payload,
        "attempt": job.attempts,
        "run": job.run,
    }


def error_of(exc: BaseException, *, with_traceback: bool = True) -> dict[str, Any]:
    error = {"type": type(exc).__name__, "message": str(exc)[:MAX_MESSAGE]}
    if with_traceback:
        error["traceback"] = "".join(traceback.format_exception(exc))[-MAX_TRACEBACK:]
    return error


def run(task: Task | None, spec: dict[str, Any]) -> dict[str, Any]:
    """Run the task of a job spec (job_id, org_id, task, payload, attempt, run)."""
    job_id = spec["job_id"]
    if task is None:
        return {
            "job_id": job_id,
            "ok": False,
            "retryable": False,
            "error": {
                "type": UnknownTask.__name__,
                "message": f"no task named {spec['task']} in this worker's app",
            },
        }
    kwargs = dict(spec.get("payload") or {})
    problem = task.payload_problem(kwargs)
    if problem is not None:
        return {
            "job_id": job_id,
            "ok": False,
            "retryable": False,
            "caller_error": True,
            "error": {
                "type": InvalidPayload.__name__,
                "message": f"the payload does not fit: {problem}"[:MAX_MESSAGE],
            },
        }
    if task.wants_job:
        logger = logging.getLogger(f"asyncjobs.task.{task.name}")
        kwargs["job"] = JobContext(
            job_id=job_id,
            org_id=spec["org_id"],
            task=task.name,
            attempt=spec["attempt"],
            run=spec["run"],
            log=_CorrelationAdapter(logger, {"correlation_id": job_id}),
        )
    try:
        value = task.function(**kwargs)
    except (Exception, SoftTimeLimitExceeded) as exc:
        return {
            "job_id": job_id,
            "ok": False,
            "retryable": task.retries(type(exc)),
            "error": error_of(exc),
        }
    try:
        validation.check_depth(value, "result")
        encoded = json.dumps(value, allow_nan=False).encode()
        validation.check_integers(value, encoded, "result")
    except (TypeError, ValueError, RecursionError, InvalidInput) as exc:
        # Not storable: a retry would return the same value again.
        return {
            "job_id": job_id,
            "ok": False,
            "retryable": False,
            "error": error_of(exc),
        }
    return {"job_id": job_id, "ok": True, "value": value}


class SoftLimit:
    """Raise SoftTimeLimitExceeded inside the running task when a signal arrives.

    The worker sends SIGUSR1 at the soft limit; an inline run arms a timer
    (SIGALRM) itself. Outside a task the signal is ignored.
    """

    def __init__(self) -> None:
        self.active = False

    def _handler(self, signum: int, frame: Any) -> None:
        if self.active:
            self.active = False
            raise SoftTimeLimitExceeded("the task ran past its soft time limit")

    def install(self, signum: int = signal.SIGUSR1) -> None:
        signal.signal(signum, self._handler)
