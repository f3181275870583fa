"""asyncjobs: a durable job store and runner in one JSON file, no server needed."""

from __future__ import annotations

__version__ = "0.1.0"

from .client import CheckReport, Client  # noqa: E402
from .config import Settings  # noqa: E402
from .errors import (  # noqa: E402
    AsyncJobsError,
    Conflict,
    InvalidInput,
    JobFailed,
    NotFound,
    StoreCorrupt,
    StoreError,
    StoreLocked,
    WaitTimedOut,
)
from .paging import Page  # noqa: E402
from .tasks import (  # noqa: E402
    SoftTimeLimitExceeded,
    TaskRegistry,
    TimeLimitExceeded,
)

__all__ = [
    "AsyncJobsError",
    "CheckReport",
    "Client",
    "Conflict",
    "InvalidInput",
    "JobFailed",
    "NotFound",
    "Page",
    "Settings",
    "StoreCorrupt",
    "StoreError",
    "StoreLocked",
    "SoftTimeLimitExceeded",
    "TaskRegistry",
    "TimeLimitExceeded",
    "WaitTimedOut",
    "__version__",
]
