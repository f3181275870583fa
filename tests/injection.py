"""Run a command under strace with one syscall made to fail or to kill it.

Debian's strace (``.ci/run`` installs it). ``fault`` is what ``inject=``
takes after the syscall: ``signal=SIGKILL:when=3``, ``error=ENOSPC:when=2+``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
APPS = Path(__file__).parent / "apps"
ENV = {**os.environ, "PYTHONPATH": f"{APPS}{os.pathsep}{ROOT}"}


def under_strace(
    syscall: str,
    fault: str,
    command: list[str],
    *,
    path: Path | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess:
    """Run ``command`` with the fault injected; with ``path``, only into calls on it.

    strace matches ``path`` against a rename's first path only (the source).
    """
    only = ["-P", str(path)] if path is not None else []
    return subprocess.run(
        ["strace", "-o", "/dev/null", *only, "-e", f"trace={syscall}"]
        + ["-e", f"inject={syscall}:{fault}", *command],
        capture_output=True,
        text=True,
        env={**ENV, **(env or {})},
        timeout=60,
    )


def asyncjobs_cmd(store: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "asyncjobs", "--store", str(store), *args]


def worker_process(store: Path, env: dict[str, str], *args: str) -> subprocess.Popen:
    """A worker of the test task app in its own process group (kill it with killpg)."""
    return subprocess.Popen(
        asyncjobs_cmd(store, "worker", "--app", "jobsapp:tasks")
        + ["--poll-seconds", "0.05", "--log-level", "error", *args],
        env=env,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def helper_process(env: dict[str, str], *args: str) -> subprocess.Popen:
    """A Python helper process with piped, text output."""
    return subprocess.Popen(
        [sys.executable, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(predicate, timeout: float = 20.0, what: str = "condition"):
    """Poll ``predicate`` until it is true (returned), or fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")
