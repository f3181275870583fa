"""Declaring tasks: ``TaskRegistry``, its options, periodic schedules, ``--app`` loading.

::

    tasks = asyncjobs.TaskRegistry()

    @tasks.task(name="reports.build", queue="reports", max_retries=3,
                retry_backoff="exponential", retry_delay=1.0, timeout=300,
                soft_timeout=270, breaker="warehouse")
    def build(month: str) -> dict: ...

    @tasks.periodic(name="maintenance.cleanup", every=3600)   # or cron="0 2 * * *"
    def cleanup() -> None: ...
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from . import schedules, validation
from .cron import Cron
from .errors import InvalidInput

BACKOFFS = ("exponential", "linear", "fixed")
DEFAULT_MAX_RETRIES = 3


class SoftTimeLimitExceeded(Exception):
    """The task ran past its soft time limit; clean up and return or raise."""


class TimeLimitExceeded(Exception):
    """The task ran past its hard time limit and its process was killed."""


class ChildProcessDied(Exception):
    """The process running the task died (a crash, os._exit, an OOM kill)."""


class UnknownTask(Exception):
    """No task of that name is declared in the worker's app."""


class LeaseExpired(Exception):
    """The job's lease ran out more often than its retries allow."""


@dataclass(frozen=True)
class BreakerConfig:
    """A circuit breaker shared by the tasks that name it."""

    name: str
    fail_max: int = 5  # consecutive failures that open it
    reset_timeout: float = 60.0  # seconds open before one trial job goes through


@dataclass(frozen=True)
class Task:
    """A declared task and its options."""

    name: str
    function: Callable[..., Any]
    queue: str = "default"
    max_retries: int = DEFAULT_MAX_RETRIES
    retry_backoff: str = "exponential"
    retry_delay: float = 1.0
    retry_max_delay: float = 3600.0
    retry_jitter: bool = False
    retry_on: tuple[type[BaseException], ...] = (Exception,)
    timeout: float | None = None  # hard limit in seconds: the process is killed
    soft_timeout: float | None = None  # SoftTimeLimitExceeded is raised inside the task
    breaker: str | None = None
    wants_job: bool = False  # the function names a parameter `job`

    def retries(self, error: type[BaseException]) -> bool:
        """Whether a failed attempt with this error may be retried (``retry_on``)."""
        return issubclass(error, self.retry_on)


@dataclass(frozen=True)
class Periodic:
    """A task run on a schedule by ``worker --beat``: every N seconds or on a cron line."""

    task: Task
    every: float | None = None
    cron: Cron | None = None
    org: str = "system"
    payload: dict[str, Any] = field(default_factory=dict)

    def slot(self, now: datetime) -> datetime | None:
        """The schedule slot that ``now`` falls in, or None when it is not due."""
        return schedules.slot(every=self.every, cron=self.cron, now=now)

    def next_slot(self, now: datetime) -> datetime | None:
        """The first slot after ``now``: when ``worker --beat`` next enqueues the task."""
        return schedules.next_slot(every=self.every, cron=self.cron, now=now)


class TaskRegistry:
    """The tasks an app declares; a worker runs jobs by these names."""

    def __init__(self) -> None:
        self.tasks: dict[str, Task] = {}
        self.periodics: dict[str, Periodic] = {}
        self.breakers: dict[str, BreakerConfig] = {}

    def task(
        self,
        name: str | None = None,
        *,
        queue: str = "default",
        max_retries: int = DEFAULT_MAX_RETRIES,
        retry_backoff: str = "exponential",
        retry_delay: float = 1.0,
        retry_max_delay: float = 3600.0,
        retry_jitter: bool = False,
        retry_on: tuple[type[BaseException], ...] | type[BaseException] = (Exception,),
        timeout: float | None = None,
        soft_timeout: float | None = None,
        breaker: str | None = None,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Declare a task (a decorator). The payload's keys arrive as keyword arguments."""

        def register(function: Callable[..., Any]) -> Callable[..., Any]:
            task_name = name or f"{function.__module__}.{function.__qualname__}"
            validation.name(task_name, "task")
            validation.name(queue, "queue")
            validation.max_retries(max_retries)
            if retry_backoff not in BACKOFFS:
                raise InvalidInput(
                    f"retry_backoff: {retry_backoff!r} is not one of {', '.join(BACKOFFS)}"
                )
            for label, value in (
                ("retry_delay", retry_delay),
                ("retry_max_delay", retry_max_delay),
                ("timeout", timeout),
                ("soft_timeout", soft_timeout),
            ):
                if value is not None:
                    validation.seconds(value, label, validation.DELAY_SECONDS)
            if (
                timeout is not None
                and soft_timeout is not None
                and soft_timeout >= timeout
            ):
                raise InvalidInput("soft_timeout must be shorter than timeout")
            if breaker is not None:
                validation.name(breaker, "breaker")
                self.breakers.setdefault(breaker, BreakerConfig(breaker))
            kinds = retry_on if isinstance(retry_on, tuple) else (retry_on,)
            params = inspect.signature(function).parameters
            self.tasks[task_name] = Task(
                name=task_name,
                function=function,
                queue=queue,
                max_retries=max_retries,
                retry_backoff=retry_backoff,
                retry_delay=float(retry_delay),
                retry_max_delay=float(retry_max_delay),
                retry_jitter=retry_jitter,
                retry_on=kinds,
                timeout=timeout,
                soft_timeout=soft_timeout,
                breaker=breaker,
                wants_job="job" in params,
            )
            return function

        return register

    def periodic(
        self,
        name: str | None = None,
        *,
        every: float | None = None,
        cron: str | None = None,
        org: str = "system",
        payload: dict[str, Any] | None = None,
        **options: Any,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Declare a task that ``worker --beat`` enqueues once per slot of its schedule."""
        if (every is None) == (cron is None):
            raise InvalidInput("a periodic task needs exactly one of every= and cron=")
        if every is not None:
            validation.seconds(every, "every", (1, validation.MAX_DELAY_SECONDS))
        schedule = Cron.parse(cron) if cron is not None else None
        validation.org(org)

        def register(function: Callable[..., Any]) -> Callable[..., Any]:
            self.task(name, **options)(function)
            task_name = name or f"{function.__module__}.{function.__qualname__}"
            self.periodics[task_name] = Periodic(
                self.tasks[task_name],
                every=every,
                cron=schedule,
                org=org,
                payload=dict(payload or {}),
            )
            return function

        return register

    def breaker(
        self, name: str, *, fail_max: int = 5, reset_timeout: float = 60.0
    ) -> None:
        """Set the thresholds of a named circuit breaker."""
        validation.name(name, "breaker")
        fail_max = validation.count(fail_max, "fail_max", (1, 1_000_000))
        validation.seconds(
            reset_timeout, "reset_timeout", (0.001, validation.MAX_DELAY_SECONDS)
        )
        self.breakers[name] = BreakerConfig(name, fail_max, float(reset_timeout))

    def get(self, name: str) -> Task | None:
        return self.tasks.get(name)

    def breaker_of(self, task_name: str) -> BreakerConfig | None:
        task = self.tasks.get(task_name)
        if task is None or task.breaker is None:
            return None
        return self.breakers[task.breaker]


def load_app(spec: str) -> TaskRegistry:
    """Import ``MODULE:ATTR`` (the current folder is importable) and return its registry."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise InvalidInput(f"app: {spec!r} is not MODULE:ATTR")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise InvalidInput(f"app: cannot import {module_name}: {exc}") from exc
    registry = getattr(module, attr, None)
    if not isinstance(registry, TaskRegistry):
        raise InvalidInput(f"app: {spec} is not an asyncjobs.TaskRegistry")
    return registry
