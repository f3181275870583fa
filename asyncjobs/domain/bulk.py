"""Bulk retry and cancel: which jobs a filter matches, and what a call answers.

An operator replays the failed jobs of a queue after fixing their cause,
or cancels what is left of a bad batch, with one filter instead of one id
at a time. A call changes at most ``MAX_JOBS`` jobs in one transaction,
newest first, and says whether more match: calling again until ``more``
is false reaches them all, since a job changed no longer matches (a
retried job is queued; a canceled one is canceled or has its cancel
requested, and a running job whose cancel is pending is not matched again).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .. import clock
from ..errors import InvalidInput
from ..records import Job, JobStatus
from . import validation

ACTIONS = ("retry", "cancel")
MAX_JOBS = 1000  # per call, and the default
# The statuses each action takes, and those it takes when none are given.
STATUSES = {
    "retry": ("failed", "canceled", "completed"),
    "cancel": ("queued", "running"),
}
DEFAULT_STATUSES = {"retry": ("failed",), "cancel": ("queued", "running")}
MAX_ERROR_TYPE_CHARS = 200
COUNT_UP_TO = 100_000  # jobs a count of the matches reads at the most


@dataclass(frozen=True)
class Criteria:
    """A bulk action's filter, checked (``criteria``)."""

    action: str
    statuses: tuple[str, ...]
    queue: str | None = None
    task: str | None = None
    failed_since: str | None = None  # ISO 8601 UTC, as jobs store times
    created_before: str | None = None
    error_type: str | None = None

    def matches(self, job: Job) -> bool:
        """Whether the action applies to ``job`` under this filter."""
        return self._matches(
            job.status.value,
            job.queue,
            job.task,
            job.finished_at,
            job.created_at,
            job.error,
            job.cancel_requested_at,
        )

    def matches_record(self, record: Mapping[str, Any]) -> bool:
        """``matches`` for a job's stored record, as an engine holds it."""
        return self._matches(
            record.get("status"),
            record.get("queue"),
            record.get("task"),
            record.get("finished_at"),
            record.get("created_at"),
            record.get("error"),
            record.get("cancel_requested_at"),
        )

    def _matches(
        self,
        status: Any,
        queue: Any,
        task: Any,
        finished_at: Any,
        created_at: Any,
        error: Any,
        cancel_requested_at: Any,
    ) -> bool:
        if status not in self.statuses:
            return False
        if self.queue is not None and queue != self.queue:
            return False
        if self.task is not None and task != self.task:
            return False
        if self.failed_since is not None and (
            not isinstance(finished_at, str) or finished_at < self.failed_since
        ):
            return False
        if self.created_before is not None and (
            not isinstance(created_at, str) or created_at >= self.created_before
        ):
            return False
        if self.error_type is not None and (
            not isinstance(error, dict) or error.get("type") != self.error_type
        ):
            return False
        # A running job asked to stop already is on its way: not matched again.
        return not (
            status == JobStatus.RUNNING.value and cancel_requested_at is not None
        )


@dataclass(frozen=True)
class Count:
    """How many jobs a filter matches in all; ``more``: over the count's cap."""

    jobs: int
    more: bool


def check_error_type(error_type: object) -> None:
    """InvalidInput unless ``error_type`` is None or 1 to MAX_ERROR_TYPE_CHARS of text."""
    if error_type is not None and (
        not isinstance(error_type, str)
        or not 1 <= len(error_type) <= MAX_ERROR_TYPE_CHARS
    ):
        raise InvalidInput(
            f"error_type: {validation.shown(error_type)} is not 1 to "
            f"{MAX_ERROR_TYPE_CHARS} characters of text"
        )


def criteria(
    action: str,
    *,
    status: str | Collection[str] | None = None,
    queue: str | None = None,
    task: str | None = None,
    failed_since: str | datetime | None = None,
    created_before: str | datetime | None = None,
    error_type: str | None = None,
) -> Criteria:
    """The filter of a bulk ``action``; InvalidInput naming the field at fault."""
    if action not in ACTIONS:
        raise InvalidInput(f"action: {validation.shown(action)} is not retry or cancel")
    allowed = STATUSES[action]
    if status is None:
        statuses = DEFAULT_STATUSES[action]
    else:
        if isinstance(status, str):
            given = [status]
        elif isinstance(status, (list, tuple, set, frozenset)):
            given = list(status)
        else:
            raise InvalidInput(
                f"status: {validation.shown(status)} is not a status or a list of them"
            )
        if not given:
            raise InvalidInput("status: give at least one status")
        for value in given:
            if value not in allowed:
                raise InvalidInput(
                    f"status: {action} takes {_or(allowed)} jobs, "
                    f"not {validation.shown(value)}"
                )
        statuses = tuple(dict.fromkeys(given))
    if failed_since is not None and action != "retry":
        raise InvalidInput("failed_since: only a retry takes it")
    check_error_type(error_type)
    return Criteria(
        action=action,
        statuses=statuses,
        queue=None if queue is None else validation.name(queue, "queue"),
        task=None if task is None else validation.name(task, "task"),
        failed_since=_stamp(failed_since, "failed_since"),
        created_before=_stamp(created_before, "created_before"),
        error_type=error_type,
    )


@dataclass(frozen=True)
class Bulk:
    """What a bulk call matched (a dry run) or changed, newest first."""

    action: str
    count: int
    ids: list[str]
    more: bool  # jobs that match remain past this call's limit
    dry_run: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "dry_run": self.dry_run,
            "count": self.count,
            "ids": list(self.ids),
            "more": self.more,
        }


def _stamp(value: str | datetime | None, field: str) -> str | None:
    if value is None:
        return None
    return clock.to_iso(validation.moment(value, field))


def _or(values: Collection[str]) -> str:
    *head, last = values
    return f"{', '.join(head)} or {last}" if head else last
