"""asyncjobs: a durable job store and runner in one JSON file, no server needed."""

from __future__ import annotations

__version__ = "0.1.0"

from .client import CheckReport, Client
from .config import Settings
from .domain.paging import Page
from .errors import (
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
from .tasks import SoftTimeLimitExceeded, TaskRegistry, TimeLimitExceeded

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
