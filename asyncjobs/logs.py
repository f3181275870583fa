"""What ``worker`` and ``serve`` write on stderr: log lines as text or JSON.

``--log-format text`` (the default) writes one line per record::

    2026-11-01T12:00:00.000000Z WARNING asyncjobs.worker: job_... (fail) attempt ...

``--log-format json`` writes one JSON object per line, and nothing else::

    {"time": "2026-11-01T12:00:00.000000Z", "level": "warning",
     "logger": "asyncjobs.worker", "message": "job_... (fail) attempt 1/3 ...",
     "job_id": "job_...", "worker_id": "wrk_...", "exc": "Traceback ..."}

``job_id``, ``worker_id`` and ``request_id`` appear where they apply: given
with ``extra=`` on one call, or for every line of a stretch of code with
``context(...)`` (a context variable, so it follows a thread and a forked
child). ``exc`` holds an exception's traceback, or a task's (``extra=
{"task_traceback": ...}``); in text it follows the line.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from . import clock
from .records import Job, JobStatus

FORMATS = ("text", "json")
LEVELS = ("debug", "info", "warning", "error")
FIELDS = ("job_id", "worker_id", "request_id")

_context: ContextVar[Mapping[str, str]] = ContextVar(
    "asyncjobs_log_context", default=MappingProxyType({})
)
_handler: logging.Handler | None = None


@contextmanager
def context(**fields: str) -> Iterator[None]:
    """Add ``fields`` (of ``FIELDS``) to every record logged inside the block."""
    token = _context.set({**_context.get(), **fields})
    try:
        yield
    finally:
        _context.reset(token)


def _fields(record: logging.LogRecord) -> dict[str, str]:
    found = dict(_context.get())
    for name in FIELDS:
        value = getattr(record, name, None)
        if value is not None:
            found[name] = value
    return {name: found[name] for name in FIELDS if name in found}


def _time(record: logging.LogRecord) -> str:
    return clock.to_iso(datetime.fromtimestamp(record.created, UTC))


class TextFormatter(logging.Formatter):
    """``TIME LEVEL logger: message``, a traceback on the lines after it."""

    def format(self, record: logging.LogRecord) -> str:
        line = (
            f"{_time(record)} {record.levelname} {record.name}: {record.getMessage()}"
        )
        exc = _exc(self, record)
        return f"{line}\n{exc}" if exc else line


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": _time(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **_fields(record),
        }
        exc = _exc(self, record)
        if exc:
            doc["exc"] = exc
        return json.dumps(doc, default=str)


def _exc(formatter: logging.Formatter, record: logging.LogRecord) -> str:
    parts = []
    if record.exc_info:
        parts.append(formatter.formatException(record.exc_info))
    task_traceback = getattr(record, "task_traceback", None)
    if task_traceback:
        parts.append(str(task_traceback).rstrip("\n"))
    if record.stack_info:
        parts.append(formatter.formatStack(record.stack_info))
    return "\n".join(parts)


def configure(level: str = "info", fmt: str = "text") -> None:
    """Send records of ``level`` and above to stderr, as ``fmt`` (text or json).

    Replaces what an earlier call set up. Warnings of the ``warnings`` module
    become records too, so a JSON log holds nothing but JSON.
    """
    global _handler
    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
    _handler = logging.StreamHandler(sys.stderr)
    _handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root.addHandler(_handler)
    root.setLevel(getattr(logging, level.upper()))
    logging.captureWarnings(True)


def is_json() -> bool:
    """Whether ``configure`` chose JSON lines."""
    return _handler is not None and isinstance(_handler.formatter, JsonFormatter)


def error_line(message: str, exit_code: int) -> str:
    """The CLI's last line for an error: ``error: message``, or a JSON record."""
    if not is_json():
        return f"error: {message}"
    record = logging.LogRecord(
        "asyncjobs.cli", logging.ERROR, __file__, 0, message, None, None
    )
    doc = json.loads(JsonFormatter().format(record))
    return json.dumps({**doc, "exit_code": exit_code})


def announce(logger: logging.Logger, message: str, *args: Any) -> None:
    """Log at INFO whatever the level: a line the user always needs (an address)."""
    logger.handle(
        logger.makeRecord(logger.name, logging.INFO, __file__, 0, message, args, None)
    )


def _seconds(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".")


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def attempt_text(job: Job) -> str:
    """How the job's last attempt ended, for a log line or an error message.

    ``attempt 2/4 failed: ValueError: it broke; retrying at <ISO> (in 4 s)``,
    ``... failed for good (no retries left)``, ``attempt 1/1 completed``.
    """
    attempts = f"attempt {job.attempts}/{(job.max_retries or 0) + 1}"
    if job.status is JobStatus.COMPLETED:
        return f"{attempts} completed"
    if job.status is JobStatus.CANCELED:
        return "was canceled"
    if job.error is None or job.status not in (JobStatus.QUEUED, JobStatus.FAILED):
        return f"is {job.status.value}"
    error = f"{job.error.get('type')}: {_one_line(job.error.get('message'))}"
    if job.status is JobStatus.QUEUED:
        wait = clock.parse_iso(job.run_after) - clock.parse_iso(job.updated_at)
        return (
            f"{attempts} failed: {error}; retrying at {job.run_after} "
            f"(in {_seconds(max(0.0, wait.total_seconds()))} s)"
        )
    why = "no retries left" if job.attempts > (job.max_retries or 0) else "not retried"
    return f"{attempts} failed: {error}; failed for good ({why})"


def did_not_complete(job: Job) -> bool:
    """Whether its last attempt failed (retry scheduled or not), or it was canceled."""
    return job.status in (JobStatus.FAILED, JobStatus.CANCELED) or (
        job.status is JobStatus.QUEUED and job.attempts > 0 and job.error is not None
    )
