"""The error tree of asyncjobs.

    AsyncJobsError             exit 1  HTTP 500  "error"
    ├── InvalidInput           exit 2  HTTP 400  "invalid_input"
    │   └── PayloadTooLarge    exit 2  HTTP 413  "payload_too_large"
    ├── NotFound               exit 3  HTTP 404  "not_found"
    ├── Conflict               exit 4  HTTP 409  "conflict"
    ├── Unauthorized           exit 1  HTTP 401  "unauthorized"   (HTTP only)
    ├── Forbidden              exit 1  HTTP 403  "forbidden"      (HTTP only)
    ├── StoreError             exit 5  HTTP 503  "store_error"
    │   ├── StoreCorrupt       exit 5  HTTP 503  "store_corrupt"
    │   ├── StoreLocked        exit 5  HTTP 503  "store_locked"
    │   └── UntrustedLink      exit 5  HTTP 503  "store_error"
    ├── ReportNotWritten       exit 6  HTTP 500  "report_not_written"
    ├── JobFailed              exit 7  HTTP 500  "job_failed"
    └── WaitTimedOut           exit 8  HTTP 500  "wait_timed_out"   (also a TimeoutError)

Each class says once how it reaches a user, and the edges read only these
attributes: the CLI prints ``error: <message>`` on stderr and exits with
``exit_code`` (``_Group`` in cli/common.py); the HTTP API answers ``http_status`` with
``{"error": {"code": code, "message": message}}`` (``wsgi.App``). No HTTP
route raises the last three; they answer 500 like any error the API does not
expect. ``JobFailed`` is the CLI's alone: ``Client`` returns a failed job as
a job, and a command that ran or waited for one prints it, then raises this
for its exit code.
"""

from __future__ import annotations


class AsyncJobsError(Exception):
    """asyncjobs could not do that."""

    exit_code, http_status, code = 1, 500, "error"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.__doc__)

    @property
    def message(self) -> str:
        return str(self.args[0])


class InvalidInput(AsyncJobsError):
    """Invalid input."""

    exit_code, http_status, code = 2, 400, "invalid_input"


class PayloadTooLarge(InvalidInput):
    """The payload is larger than the limit."""

    http_status, code = 413, "payload_too_large"


class NotFound(AsyncJobsError):
    """No such record."""

    exit_code, http_status, code = 3, 404, "not_found"


class Conflict(AsyncJobsError):
    """The record is not in a state that allows this."""

    exit_code, http_status, code = 4, 409, "conflict"


class Unauthorized(AsyncJobsError):
    """No access token, or one that is not valid (unknown, expired, revoked)."""

    exit_code, http_status, code = 1, 401, "unauthorized"


class Forbidden(AsyncJobsError):
    """The access token does not allow this: another org, or a viewer's POST."""

    exit_code, http_status, code = 1, 403, "forbidden"


class StoreError(AsyncJobsError):
    """The store could not be read or written."""

    exit_code, http_status, code = 5, 503, "store_error"


class StoreCorrupt(StoreError):
    """The store files are damaged or of an unknown version."""

    code = "store_corrupt"


class StoreLocked(StoreError):
    """The store is locked by another process."""

    code = "store_locked"


class UntrustedLink(StoreError):
    """A symlink on the way to a file belongs to another user."""


class ReportNotWritten(AsyncJobsError):
    """The change is committed, but its report could not be written."""

    exit_code, http_status, code = 6, 500, "report_not_written"


class JobFailed(AsyncJobsError):
    """The job did not complete: its attempt failed, or it was canceled."""

    exit_code, http_status, code = 7, 500, "job_failed"


class WaitTimedOut(AsyncJobsError, TimeoutError):
    """Timed out waiting."""

    exit_code, http_status, code = 8, 500, "wait_timed_out"


# -- what a task's attempt can end with --------------------------------------
#
# Not AsyncJobsError: these are raised inside a task, or name the way an
# attempt ended (their class names are the error types stored on the job).
# The rules name them, so they live here; asyncjobs.tasks exports them.


class SoftTimeLimitExceeded(Exception):
    """The task ran past its soft time limit; clean up and return or raise."""


class TimeLimitExceeded(Exception):
    """The task ran past its hard time limit and its process was killed."""


class ChildProcessDied(Exception):
    """The process running the task died (a crash, os._exit, an OOM kill)."""


class UnknownTask(Exception):
    """No task of that name is declared in the worker's app."""


class InvalidPayload(Exception):
    """The payload does not fit the task's parameters (a missing or unexpected one)."""


class LeaseExpired(Exception):
    """The job's lease ran out more often than its retries allow."""
