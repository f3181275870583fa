"""The error tree: every error says once how it reaches a user (exit code, HTTP status,
code). The CLI and the HTTP API answering from those attributes alone is checked in
tests/integration/test_error_answers.py."""

from __future__ import annotations

import importlib
import pkgutil
import re

import asyncjobs
from asyncjobs import errors
from asyncjobs.http import app as wsgi

# What users see of each error, as they saw it before the tree carried the
# HTTP status: (exit code, HTTP status, code).
SEEN = {
    "AsyncJobsError": (1, 500, "error"),
    "InvalidInput": (2, 400, "invalid_input"),
    "PayloadTooLarge": (2, 413, "payload_too_large"),
    "NotFound": (3, 404, "not_found"),
    "Conflict": (4, 409, "conflict"),
    "Unauthorized": (1, 401, "unauthorized"),
    "Forbidden": (1, 403, "forbidden"),
    "StoreError": (5, 503, "store_error"),
    "StoreCorrupt": (5, 503, "store_corrupt"),
    "StoreLocked": (5, 503, "store_locked"),
    "UntrustedLink": (5, 503, "store_error"),
    "ReportNotWritten": (6, 500, "report_not_written"),
    "JobFailed": (7, 500, "job_failed"),
    "WaitTimedOut": (8, 500, "wait_timed_out"),
}
JOB_ID = "job_01JC0000000000000000000000"


def package_errors() -> set[type[errors.AsyncJobsError]]:
    """Every AsyncJobsError class any module of the package defines."""
    for info in pkgutil.walk_packages(asyncjobs.__path__, "asyncjobs."):
        if not info.name.endswith("__main__"):  # that one runs the CLI
            importlib.import_module(info.name)
    found: set[type[errors.AsyncJobsError]] = set()
    stack = [errors.AsyncJobsError]
    while stack:
        cls = stack.pop()
        if cls.__module__.startswith("asyncjobs"):
            found.add(cls)
        stack.extend(cls.__subclasses__())
    return found


def test_every_error_of_the_package_is_in_errors_py_with_its_exit_code_and_status():
    classes = package_errors()
    assert {cls.__module__ for cls in classes} == {"asyncjobs.errors"}
    assert {c.__name__: (c.exit_code, c.http_status, c.code) for c in classes} == SEEN
    for cls in classes:
        assert isinstance(cls.exit_code, int) and isinstance(cls.code, str)
        assert cls.http_status in wsgi.STATUS_TEXT, cls


def test_the_tree_in_the_docstring_of_errors_py_is_the_tree_in_the_code():
    drawn, parents, open_rows = {}, {}, []
    for line in (errors.__doc__ or "").splitlines():
        row = re.search(r"(\w+)\s+exit (\d+)\s+HTTP (\d{3})\s+\"(\w+)\"", line)
        if row is None:
            continue
        name, column = row.group(1), row.start(1)
        drawn[name] = (int(row.group(2)), int(row.group(3)), row.group(4))
        while open_rows and open_rows[-1][1] >= column:
            open_rows.pop()
        parents[name] = open_rows[-1][0] if open_rows else None
        open_rows.append((name, column))
    classes = package_errors()
    assert drawn == {c.__name__: (c.exit_code, c.http_status, c.code) for c in classes}
    assert parents == {
        c.__name__: None if c is errors.AsyncJobsError else c.__mro__[1].__name__
        for c in classes
    }
