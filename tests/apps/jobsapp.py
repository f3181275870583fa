"""Tasks for the worker tests. Each run of a counting task appends a line to the
file named by ASYNCJOBS_TEST_RUNS: "<job_id> <attempt> <pid> start|end <monotonic time>"."""

import ctypes
import os
import signal
import time
from pathlib import Path

from asyncjobs.tasks import SoftTimeLimitExceeded, TaskRegistry

tasks = TaskRegistry()
tasks.breaker("dep", fail_max=2, reset_timeout=1.0)


def _mark(job, what: str) -> None:
    path = os.environ.get("ASYNCJOBS_TEST_RUNS")
    if path:
        with open(path, "a") as f:
            f.write(
                f"{job.job_id} {job.attempt} {os.getpid()} {what} {time.monotonic()}\n"
            )


@tasks.task(name="echo")
def echo(job, **payload):
    _mark(job, "start")
    _mark(job, "end")
    return {"echo": payload, "attempt": job.attempt}


@tasks.task(name="sleep", max_retries=0)
def sleep(job, seconds: float = 1.0):
    _mark(job, "start")
    time.sleep(seconds)
    _mark(job, "end")
    return seconds


@tasks.task(name="fail", max_retries=2, retry_backoff="fixed", retry_delay=0)
def fail(job, message: str = "it broke"):
    _mark(job, "start")
    raise ValueError(message)


@tasks.task(name="flaky", max_retries=3, retry_backoff="fixed", retry_delay=0)
def flaky(job, succeed_on: int = 2):
    _mark(job, "start")
    if job.attempt < succeed_on:
        raise ConnectionError(f"attempt {job.attempt} failed")
    return {"attempt": job.attempt}


@tasks.task(name="picky", max_retries=3, retry_delay=0, retry_on=ConnectionError)
def picky(kind: str):
    raise {"conn": ConnectionError, "value": ValueError}[kind]("no")


@tasks.task(name="limited", timeout=1.0, soft_timeout=0.3, max_retries=0)
def limited(job, marker: str, clean_up: bool = True):
    _mark(job, "start")
    try:
        time.sleep(10)
    except SoftTimeLimitExceeded:
        Path(marker).write_text("soft limit seen")
        if clean_up:
            return "cleaned up"
        time.sleep(10)  # ignores the soft limit: the hard limit kills it


@tasks.task(name="exit", max_retries=0)
def exit_hard(job):
    _mark(job, "start")
    os._exit(3)


@tasks.task(name="segfault", max_retries=0)
def segfault(job):
    _mark(job, "start")
    ctypes.string_at(0)


@tasks.task(name="kill_worker", max_retries=1)
def kill_worker(job):
    """Kills its own worker's whole process group (the parent and every child)."""
    _mark(job, "start")
    os.killpg(os.getpgid(0), signal.SIGKILL)


@tasks.task(name="dep.call", breaker="dep", max_retries=0)
def dep_call(job, flag: str):
    _mark(job, "start")
    if os.path.exists(flag):
        raise ConnectionError("dependency down")
    _mark(job, "end")
    return "ok"


@tasks.task(name="not_json", max_retries=2)
def not_json(huge: bool = False):
    return [2**70] if huge else {1, 2}


@tasks.task(name="chatty")
def chatty(job, words: str):
    job.log.warning("saying %s", words)
    return words


@tasks.periodic(name="tick", every=1, org="ops")
def tick():
    return "tick"


@tasks.task(name="chaos", max_retries=25, retry_backoff="fixed", retry_delay=0)
def chaos(job, ms: int = 0, **_):
    _mark(job, "start")
    time.sleep(ms / 1000)
    _mark(job, "end")
    return job.attempt


@tasks.task(name="keep", max_retries=0)
def keep(**payload):
    return payload


@tasks.task(name="nested_result", max_retries=2)
def nested_result(depth: int):
    value: list = []
    for _ in range(depth - 1):
        value = [value]
    return value


@tasks.task(name="big", max_retries=0)
def big(job, size: int = 1000, gate: str | None = None):
    """A value of about ``size`` bytes; with ``gate``, returned once that file exists."""
    _mark(job, "start")
    while gate is not None and not os.path.exists(gate):
        time.sleep(0.01)
    return "x" * size


@tasks.task(name="fail_later", max_retries=1, retry_backoff="fixed", retry_delay=30)
def fail_later(job, message: str = "try again later"):
    """Fails, and its one retry waits 30 s: a burst worker leaves it queued."""
    _mark(job, "start")
    raise ConnectionError(message)


@tasks.task(name="stepped", retry_delays=[0.2, 0.5], max_retries=3)
def stepped(job):
    """Fails every attempt: its retries wait 0.2 s, then 0.5 s, then 0.5 s again."""
    _mark(job, "start")
    raise ConnectionError(f"attempt {job.attempt} failed")


@tasks.task(name="dep.report", breaker="dep", max_retries=3)
def dep_report(job, month: str):
    _mark(job, "start")
    return month


@tasks.task(name="gated", max_retries=2, retry_backoff="fixed", retry_delay=0)
def gated(job, gate: str, fail: bool = False, size: int = 10):
    """Runs until the file ``gate`` exists, then returns ``size`` bytes or raises."""
    _mark(job, "start")
    while not os.path.exists(gate):
        time.sleep(0.01)
    _mark(job, "end")
    if fail:
        raise ValueError("failed after the gate")
    return "x" * size


@tasks.task(name="dep.gated", breaker="dep", max_retries=0)
def dep_gated(job, gate: str):
    """Behind breaker ``dep``: runs until the file ``gate`` exists."""
    _mark(job, "start")
    while not os.path.exists(gate):
        time.sleep(0.01)
    _mark(job, "end")
    return "ok"
