"""The error tree of asyncjobs.

    AsyncJobsError           exit 1  "error"
    ├── InvalidInput         exit 2  "invalid_input"
    ├── NotFound             exit 3  "not_found"
    ├── Conflict             exit 4  "conflict"
    ├── StoreError           exit 5  "store_error"
    │   ├── StoreCorrupt     exit 5  "store_corrupt"
    │   └── StoreLocked      exit 5  "store_locked"
    ├── ReportNotWritten     exit 6  "report_not_written"
    ├── JobFailed            exit 7  "job_failed"
    └── WaitTimedOut         exit 8  "wait_timed_out"   (also a TimeoutError)

Each class says once how it reaches a user: the CLI prints ``error: <message>``
on stderr and exits with ``exit_code``; the HTTP API answers
``{"error": {"code": code, "message": message}}``. ``JobFailed`` is the CLI's
alone: ``Client`` returns a failed job as a job, and a command that ran or
waited for one prints it, then raises this for its exit code.
"""

from __future__ import annotations


class AsyncJobsError(Exception):
    """asyncjobs could not do that."""

    exit_code, code = 1, "error"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.__doc__)

    @property
    def message(self) -> str:
        return str(self.args[0])


class InvalidInput(AsyncJobsError):
    """Invalid input."""

    exit_code, code = 2, "invalid_input"


class NotFound(AsyncJobsError):
    """No such record."""

    exit_code, code = 3, "not_found"


class Conflict(AsyncJobsError):
    """The record is not in a state that allows this."""

    exit_code, code = 4, "conflict"


class StoreError(AsyncJobsError):
    """The store could not be read or written."""

    exit_code, code = 5, "store_error"


class StoreCorrupt(StoreError):
    """The store files are damaged or of an unknown version."""

    code = "store_corrupt"


class StoreLocked(StoreError):
    """The store is locked by another process."""

    code = "store_locked"


class ReportNotWritten(AsyncJobsError):
    """The change is committed, but its report could not be written."""

    exit_code, code = 6, "report_not_written"


class JobFailed(AsyncJobsError):
    """The job did not complete: its attempt failed, or it was canceled."""

    exit_code, code = 7, "job_failed"


class WaitTimedOut(AsyncJobsError, TimeoutError):
    """Timed out waiting."""

    exit_code, code = 8, "wait_timed_out"
