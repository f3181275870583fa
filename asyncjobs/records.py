"""The records asyncjobs keeps: jobs, events, notifications.

Frozen dataclasses. ``to_dict()`` is the JSON shape the CLI and the HTTP API
print, and also what the store keeps (``from_dict`` reads it back). A change
makes a new record with ``replace`` (``dataclasses.replace``, faster). Each class names the store
kind it lives in and the field that is its key.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, ClassVar, NamedTuple, TypeVar

from .errors import StoreCorrupt

Record = dict[str, Any]  # a record as the store keeps it: the JSON of to_dict()


class JobStatus(str, Enum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"

    def __str__(self) -> str:
        return self.value

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELED})


class EventType(str, Enum):
    QUEUED = "async.job.queued"
    STARTED = "async.job.started"
    RETRY_SCHEDULED = "async.job.retry_scheduled"
    COMPLETED = "async.job.completed"
    FAILED = "async.job.failed"
    CANCELED = "async.job.canceled"
    CANCEL_REQUESTED = "async.job.cancel_requested"
    LEASE_EXPIRED = "async.job.lease_expired"
    STALE_OUTCOME_REFUSED = "async.job.stale_outcome_refused"
    BREAKER_OPENED = "async.breaker.opened"
    BREAKER_HALF_OPENED = "async.breaker.half_opened"
    BREAKER_CLOSED = "async.breaker.closed"

    def __str__(self) -> str:
        return self.value


R = TypeVar("R", bound="StoredRecord")


class StoredRecord:
    """What every record class has: its store kind, key, and dict form."""

    KIND: ClassVar[str]
    KEY: ClassVar[str]
    # Fields stored as an enum's value, read back as the enum.
    ENUMS: ClassVar[dict[str, type[Enum]]] = {}

    @property
    def key(self) -> str:
        return getattr(self, self.KEY)

    def to_dict(self) -> dict[str, Any]:
        return _shape(type(self)).to_dict(self)

    @classmethod
    def from_dict(cls: type[R], data: dict[str, Any]) -> R:
        """The record a stored dict holds; StoreCorrupt when it lacks a field or a value."""
        try:
            return _shape(cls).from_dict(data)
        except (TypeError, ValueError, KeyError, AttributeError):
            pass  # the spelled-out reading below names what is wrong
        names = _field_names(cls)
        try:
            return cls(**cls._coerce({k: v for k, v in data.items() if k in names}))
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            key = data.get(cls.KEY) if isinstance(data, dict) else None
            raise StoreCorrupt(
                f"{cls.KIND[:-1]} {key} is a malformed record ({_reason(exc)}); "
                "run asyncjobs store check"
            ) from exc

    @classmethod
    def _coerce(cls, values: dict[str, Any]) -> dict[str, Any]:
        """Turn stored JSON values into field types (``ENUMS``)."""
        for name, enum in cls.ENUMS.items():
            values[name] = enum(values[name])
        return values


def _reason(exc: Exception) -> str:
    if isinstance(exc, KeyError):
        return f"missing {exc}"
    text = str(exc)
    return text.split("() ", 1)[-1] if "__init__() " in text else text


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value


_FIELDS: dict[type, tuple[dataclasses.Field, ...]] = {}
_NAMES: dict[type, frozenset[str]] = {}


def _stored_fields(cls: type) -> tuple[dataclasses.Field, ...]:
    fields = _FIELDS.get(cls)
    if fields is None:
        fields = tuple(
            f for f in dataclasses.fields(cls) if f.metadata.get("stored", True)
        )
        _FIELDS[cls] = fields
    return fields


def _field_names(cls: type) -> frozenset[str]:
    names = _NAMES.get(cls)
    if names is None:
        names = _NAMES[cls] = frozenset(f.name for f in _stored_fields(cls))
    return names


# Annotations whose values are stored as they are; any other (an enum) goes
# through _plain.
_PLAIN_TYPES = ("str", "int", "float", "bool", "dict[", "list[")


class _Shape(NamedTuple):
    to_dict: Callable[[Any], dict[str, Any]]
    replace: Callable[[Any, dict[str, Any]], Any]
    from_dict: Callable[[dict[str, Any]], Any]


_SHAPES: dict[type, _Shape] = {}


def _shape(cls: type) -> _Shape:
    """A record class's ``to_dict`` and ``replace``, written out field by field.

    Records are made and turned into dicts several times per job; spelled
    out, these take a fraction of a generic loop over ``dataclasses.fields``.
    """
    shape = _SHAPES.get(cls)
    if shape is not None:
        return shape
    stored = [
        f"{f.name!r}: "
        + (
            f"r.{f.name}"
            if str(f.type).startswith(_PLAIN_TYPES)
            else f"_plain(r.{f.name})"
        )
        for f in _stored_fields(cls)
    ]
    every = [f.name for f in dataclasses.fields(cls)]
    # A copy is made slot by slot, past the frozen class's __setattr__.
    setters = {name: getattr(cls, name).__set__ for name in every}
    copied = "".join(f"    set_{name}(n, r.{name})\n" for name in every)
    # from_dict: each stored field read by name (a missing one without a
    # default raises KeyError), an enum's made from its value, and the record
    # filled slot by slot as replace does; fields not stored take their
    # defaults. Any error goes to StoredRecord.from_dict's own reading.
    filled = []
    for n, f in enumerate(dataclasses.fields(cls)):
        if f.default is not dataclasses.MISSING:
            value = f"d.get({f.name!r}, defaults[{n}])"
        elif f.default_factory is not dataclasses.MISSING:
            value = f"d[{f.name!r}] if {f.name!r} in d else defaults[{n}]()"
        else:
            value = f"d[{f.name!r}]"
        if not f.metadata.get("stored", True):
            value = f"defaults[{n}]" + (
                "()" if f.default is dataclasses.MISSING else ""
            )
        elif f.name in cls.ENUMS:
            value = f"enums[{f.name!r}]({value})"
        filled.append(f"    set_{f.name}(n, {value})\n")
    source = (
        "def from_dict(d):\n"
        "    n = new(cls)\n"
        f"{''.join(filled)}"
        "    return n\n"
        "def to_dict(r):\n"
        f"    return {{{', '.join(stored)}}}\n"
        "def replace(r, c):\n"
        "    if not c.keys() <= setters.keys():\n"
        "        unknown = sorted(c.keys() - setters.keys())\n"
        "        raise TypeError(f'{cls.__name__} has no field {unknown}')\n"
        "    n = new(cls)\n"
        f"{copied}"
        "    for name, value in c.items():\n"
        "        setters[name](n, value)\n"
        "    return n\n"
    )
    scope: dict[str, Any] = {
        "_plain": _plain,
        "cls": cls,
        "enums": cls.ENUMS,
        "defaults": [
            f.default if f.default is not dataclasses.MISSING else f.default_factory
            for f in dataclasses.fields(cls)
        ],
        **{f"set_{name}": setter for name, setter in setters.items()},
        "new": object.__new__,
        "setters": setters,
    }
    exec(source, scope)  # noqa: S102 - the source is built from field names above
    shape = _SHAPES[cls] = _Shape(
        scope["to_dict"], scope["replace"], scope["from_dict"]
    )
    return shape


def replace(record: R, **changes: Any) -> R:
    """``dataclasses.replace`` for records, several times faster (see ``_shape``)."""
    return _shape(type(record)).replace(record, changes)


@dataclass(frozen=True, slots=True)
class Job(StoredRecord):
    KIND: ClassVar[str] = "jobs"
    KEY: ClassVar[str] = "job_id"
    ENUMS: ClassVar[dict[str, type[Enum]]] = {"status": JobStatus}

    job_id: str
    org_id: str
    task: str
    queue: str
    priority: int  # 0-9, 9 runs first
    status: JobStatus
    payload: dict[str, Any]
    created_at: str  # ISO 8601 UTC: "2026-02-17T00:00:00.000000Z"
    updated_at: str
    run_after: str  # not claimed before this time
    attempts: int = 0  # attempts started in this run
    max_retries: int | None = None  # None: the task's own setting
    run: int = 1  # 1 for the first run; a retry by hand starts the next
    idempotency_key: str | None = None
    result_id: str | None = None  # the result of this run, once completed
    error: dict[str, Any] | None = None  # {type, message, traceback?}
    worker_id: str | None = None
    lease_expires_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    # When a cancel of the running job was asked for; its worker stops it.
    cancel_requested_at: str | None = None
    # Its place among its lane's runnable jobs (domain/scheduling.py); None until it
    # becomes runnable (a job waiting for its run_after gets it when due).
    fair_tag: int | None = None
    # Not stored: whether submit found this job by its idempotency key.
    deduplicated: bool = field(default=False, compare=False, metadata={"stored": False})


@dataclass(frozen=True, slots=True)
class Event(StoredRecord):
    KIND: ClassVar[str] = "events"
    KEY: ClassVar[str] = "event_id"

    event_id: str
    job_id: str | None  # None only for a breaker reset by hand
    org_id: str | None
    event_type: str  # an EventType value
    created_at: str
    attempt: int = 0
    run: int = 1
    seq: int = 0  # order among the job's events; set when saved
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Notification(StoredRecord):
    KIND: ClassVar[str] = "notifications"
    KEY: ClassVar[str] = "notification_id"

    notification_id: str
    job_id: str
    org_id: str
    event_type: str  # async.job.completed | async.job.failed | async.job.canceled
    dedupe_key: str  # "<job_id>:<event_type>:run-<n>": one per terminal transition
    created_at: str
    channel: str = "in_app"
    read_at: str | None = None


@dataclass(frozen=True, slots=True)
class Result(StoredRecord):
    KIND: ClassVar[str] = "results"
    KEY: ClassVar[str] = "result_id"

    result_id: str
    job_id: str
    org_id: str
    task: str
    value: Any  # None when the value lives in value_file
    created_at: str
    run: int = 1
    attempt: int = 1
    value_file: str | None = None  # absolute path of a large value's JSON file
    value_bytes: int | None = None
    value_sha256: str | None = None


@dataclass(frozen=True, slots=True)
class WorkerInfo(StoredRecord):
    KIND: ClassVar[str] = "workers"
    KEY: ClassVar[str] = "worker_id"

    worker_id: str  # unique per process start
    host: str
    pid: int
    queues: list[str]
    concurrency: int
    started_at: str
    last_seen_at: str
    heartbeat_seconds: float
    lease_seconds: float
    state: str = "running"  # running | stopping | stopped
    running: list[str] = field(default_factory=list)  # job ids
    processed_count: int = 0
