"""Declaring tasks: ``TaskRegistry``, its options, periodic schedules, ``--app`` loading.

::

    tasks = asyncjobs.TaskRegistry()

    @tasks.task(name="reports.build", queue="reports", priority=7, max_retries=3,
                retry_backoff="exponential", retry_delay=1.0, timeout=300,
                soft_timeout=270, breaker="warehouse", layer="reports")
    def build(month: str) -> dict: ...

    @tasks.task(name="invoices.send", retry_delays=[60, 300, 1800])  # 1m, 5m, 30m
    def send(batch: int) -> None: ...

    @tasks.periodic(name="maintenance.cleanup", every=3600)   # or cron="0 2 * * *"
    def cleanup() -> None: ...

    build("2026-10")                                    # still the plain function
    build.submit(client, org="acme", month="2026-10")   # its queue and priority

Unless a task says otherwise, a failed attempt is retried: ``max_retries=3``,
exponential backoff from 1 s (1, 2, 4 s), capped at an hour. Celery, RQ and
huey retry only when asked; ``max_retries=0`` turns retrying off.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .config import Settings
from .domain import schedules, validation
from .domain.breakers import BreakerConfig
from .domain.catalog import DEFAULT_PRIORITY, DEFAULT_QUEUE
from .domain.cron import Cron
from .errors import (
    ChildProcessDied,
    InvalidInput,
    InvalidPayload,
    LeaseExpired,
    SoftTimeLimitExceeded,
    TimeLimitExceeded,
    UnknownTask,
)

# Exported here too: task code catches SoftTimeLimitExceeded from asyncjobs.tasks.
__all__ = [
    "BreakerConfig",
    "ChildProcessDied",
    "InvalidPayload",
    "LeaseExpired",
    "Periodic",
    "SoftTimeLimitExceeded",
    "Task",
    "TaskRegistry",
    "TimeLimitExceeded",
    "UnknownTask",
    "load_app",
]

if TYPE_CHECKING:
    from .client import Client
    from .records import Job

BACKOFFS = ("exponential", "linear", "fixed")
DEFAULT_MAX_RETRIES = 3
DEFAULT_BACKOFF = "exponential"
DEFAULT_RETRY_DELAY = 1.0
DEFAULT_RETRY_MAX_DELAY = 3600.0


@dataclass(frozen=True)
class Task:
    """A declared task and its options."""

    name: str
    function: Callable[..., Any]
    queue: str = DEFAULT_QUEUE
    priority: int = DEFAULT_PRIORITY
    max_retries: int = DEFAULT_MAX_RETRIES
    # The computed backoff; all three are None when retry_delays lists the waits.
    retry_backoff: str | None = DEFAULT_BACKOFF
    retry_delay: float | None = DEFAULT_RETRY_DELAY
    retry_max_delay: float | None = DEFAULT_RETRY_MAX_DELAY
    retry_delays: tuple[float, ...] | None = None  # seconds before retry 1, 2, ...
    retry_jitter: bool = False
    retry_on: tuple[type[BaseException], ...] = (Exception,)
    timeout: float | None = None  # hard limit in seconds: the process is killed
    soft_timeout: float | None = None  # SoftTimeLimitExceeded is raised inside the task
    breaker: str | None = None
    layer: str | None = None  # the data layer the task materializes
    wants_job: bool = False  # the function names a parameter `job`

    def retries(self, error: type[BaseException]) -> bool:
        """Whether a failed attempt with this error may be retried (``retry_on``)."""
        return issubclass(error, self.retry_on)

    def payload_problem(self, payload: Mapping[str, Any]) -> str | None:
        """Why ``payload`` cannot be the task's keyword arguments, or None when it can.

        The parameter ``job`` is the worker's (the job context), never the
        payload's. One line naming the parameters that are missing or not taken.
        """
        return payload_problem(self.name, self.function, payload)

    def describe(self, periodic: Periodic | None = None) -> dict[str, Any]:
        """The declared options as JSON: a task catalog record without its stamp."""
        return {
            "name": self.name,
            "queue": self.queue,
            "priority": self.priority,
            "max_retries": self.max_retries,
            "retry_backoff": self.retry_backoff,
            "retry_delay": self.retry_delay,
            "retry_delays": (
                None if self.retry_delays is None else list(self.retry_delays)
            ),
            "retry_max_delay": self.retry_max_delay,
            "retry_jitter": self.retry_jitter,
            "timeout": self.timeout,
            "soft_timeout": self.soft_timeout,
            "breaker": self.breaker,
            "layer": self.layer,
            "periodic": None if periodic is None else periodic.describe(),
        }


def payload_problem(
    name: str, function: Callable[..., Any], payload: Mapping[str, Any]
) -> str | None:
    """Why ``payload`` does not bind to ``function``'s parameters (see ``Task``)."""
    try:
        shape = _parameters(function)
    except TypeError:  # a callable that cannot be hashed: read it each time
        shape = _parameters.__wrapped__(function)
    takes_job, keywords, required, takes_any = shape
    if takes_job and "job" in payload:
        return f"'job' is the worker's parameter of task {name}, not the payload's"
    missing = [n for n, keyword in required if not keyword or n not in payload]
    if missing:
        return f"task {name} needs {_quoted(missing)}"
    if not takes_any:
        unexpected = sorted(str(k) for k in payload if k not in keywords)
        if unexpected:
            return f"task {name} takes no {_quoted(unexpected)}"
    return None


@functools.lru_cache(maxsize=1024)
def _parameters(
    function: Callable[..., Any],
) -> tuple[bool, frozenset[str], tuple[tuple[str, bool], ...], bool]:
    """What ``payload_problem`` needs of a signature, read once per function.

    Whether it names ``job``; the names a payload may give; the parameters
    without a default, in order, each with whether a payload can give it
    (positional-only ones cannot); whether it takes ``**kwargs``.
    """
    kind = inspect.Parameter
    params = inspect.signature(function).parameters
    keywords = frozenset(
        n
        for n, p in params.items()
        if p.kind in (kind.POSITIONAL_OR_KEYWORD, kind.KEYWORD_ONLY) and n != "job"
    )
    required = tuple(
        (n, n in keywords)
        for n, p in params.items()
        if n != "job"
        and p.default is kind.empty
        and (p.kind is kind.POSITIONAL_ONLY or n in keywords)
    )
    takes_any = any(p.kind is kind.VAR_KEYWORD for p in params.values())
    return "job" in params, keywords, required, takes_any


def _quoted(names: Sequence[str]) -> str:
    return ", ".join(repr(n) for n in names)


def _retry_options(
    max_retries: int | None,
    backoff: str | None,
    delay: float | None,
    max_delay: float | None,
    delays: Sequence[float] | None,
) -> dict[str, Any]:
    """The retry fields of a ``Task``, checked; InvalidInput for a contradiction."""
    if max_retries is not None:
        max_retries = validation.max_retries(max_retries)
    if delays is not None:
        if isinstance(delays, (str, bytes)) or not isinstance(delays, Sequence):
            raise InvalidInput(
                f"retry_delays: {validation.shown(delays)} is not a list of seconds"
            )
        if not delays:
            raise InvalidInput("retry_delays: give at least one delay")
        if len(delays) > validation.MAX_RETRIES_LIMIT:
            raise InvalidInput(
                f"retry_delays: {len(delays)} delays is more than the "
                f"{validation.MAX_RETRIES_LIMIT} retries a task may have"
            )
        given = [
            label
            for label, value in (
                ("retry_backoff", backoff),
                ("retry_delay", delay),
                ("retry_max_delay", max_delay),
            )
            if value is not None
        ]
        if given:
            raise InvalidInput(
                f"retry_delays lists every wait: give it or {' and '.join(given)}, "
                "not both"
            )
        if max_retries == 0:
            raise InvalidInput(
                "retry_delays with max_retries=0: there is no retry to wait for"
            )
        waits = tuple(
            float(validation.seconds(d, f"retry_delays[{n}]", validation.DELAY_SECONDS))
            for n, d in enumerate(delays)
        )
        return {
            "max_retries": len(waits) if max_retries is None else max_retries,
            "retry_backoff": None,
            "retry_delay": None,
            "retry_max_delay": None,
            "retry_delays": waits,
        }
    backoff = DEFAULT_BACKOFF if backoff is None else backoff
    if backoff not in BACKOFFS:
        raise InvalidInput(
            f"retry_backoff: {validation.shown(backoff)} is not one of "
            f"{', '.join(BACKOFFS)}"
        )
    delay = DEFAULT_RETRY_DELAY if delay is None else delay
    max_delay = DEFAULT_RETRY_MAX_DELAY if max_delay is None else max_delay
    validation.seconds(delay, "retry_delay", validation.DELAY_SECONDS)
    validation.seconds(max_delay, "retry_max_delay", validation.DELAY_SECONDS)
    return {
        "max_retries": DEFAULT_MAX_RETRIES if max_retries is None else max_retries,
        "retry_backoff": backoff,
        "retry_delay": float(delay),
        "retry_max_delay": float(max_delay),
        "retry_delays": None,
    }


@dataclass(frozen=True)
class Periodic:
    """A task run on a schedule by ``worker --beat``: every N seconds or on a cron line."""

    task: Task
    every: float | None = None
    cron: Cron | None = None
    org: str = "system"
    payload: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        """The schedule as plain JSON (the ``periodic`` of a catalog record)."""
        return {
            "every": self.every,
            "cron": None if self.cron is None else self.cron.text,
            "org": self.org,
            "payload": dict(self.payload),
        }

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
        queue: str = DEFAULT_QUEUE,
        priority: int = DEFAULT_PRIORITY,
        max_retries: int | None = None,
        retry_backoff: str | None = None,
        retry_delay: float | None = None,
        retry_max_delay: float | None = None,
        retry_delays: Sequence[float] | None = None,
        retry_jitter: bool = False,
        retry_on: tuple[type[BaseException], ...] | type[BaseException] = (Exception,),
        timeout: float | None = None,
        soft_timeout: float | None = None,
        breaker: str | None = None,
        layer: str | None = None,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Declare a task (a decorator). The payload's keys arrive as keyword arguments.

        ``queue`` and ``priority`` are what a submission that names neither
        gets. Retries: ``max_retries`` (default 3) with a computed backoff
        (``retry_backoff`` exponential, linear or fixed from ``retry_delay``
        seconds, capped at ``retry_max_delay``), or ``retry_delays``, the
        seconds before each retry (the last repeats; ``max_retries`` defaults
        to their number). Raises InvalidInput for an option out of range or
        options that contradict each other. The function comes back as it
        was, with ``submit(client, *, org, **payload)`` attached.
        """
        retry = _retry_options(
            max_retries, retry_backoff, retry_delay, retry_max_delay, retry_delays
        )

        def register(function: Callable[..., Any]) -> Callable[..., Any]:
            task_name = name or f"{function.__module__}.{function.__qualname__}"
            validation.name(task_name, "task")
            validation.name(queue, "queue")
            validation.priority(priority)
            if layer is not None:
                validation.name(layer, "layer")
            for label, value in (("timeout", timeout), ("soft_timeout", soft_timeout)):
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
                priority=validation.priority(priority),
                retry_jitter=retry_jitter,
                retry_on=kinds,
                timeout=timeout,
                soft_timeout=soft_timeout,
                breaker=breaker,
                layer=layer,
                wants_job="job" in params,
                **retry,
            )
            try:
                function.submit = self._submitter(task_name)  # type: ignore[attr-defined]
            except AttributeError:
                pass  # a bound method keeps no attributes: Client.submit still works
            return function

        return register

    def _submitter(self, task_name: str) -> Callable[..., Job]:
        registry = self

        def submit(client: Client, *, org: str, **payload: Any) -> Job:
            """Queue a job of this task with its declared queue and priority."""
            return client.submit(task_name, org=org, payload=payload, tasks=registry)

        submit.__name__ = submit.__qualname__ = "submit"
        return submit

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
            task_name = name or f"{function.__module__}.{function.__qualname__}"
            # A beat worker submits this payload every slot: a misfit stops here.
            # An app is declared before any Client exists: the limit is the
            # environment's, as the Client that submits it will read it.
            limit = Settings.from_env().max_payload_bytes
            checked = validation.payload(payload, max_bytes=limit)
            problem = payload_problem(task_name, function, checked)
            if problem is not None:
                raise InvalidInput(f"payload: {problem}")
            self.task(name, **options)(function)
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

    def describe(self) -> list[dict[str, Any]]:
        """Every task's declared options, by name: what a worker publishes."""
        return [
            self.tasks[name].describe(self.periodics.get(name))
            for name in sorted(self.tasks)
        ]

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
