"""Cursor-paged reads: the ``Page`` a list answers, and the cursors between pages.

A list (an org's jobs, a job's events or notifications, an org's inbox) is
read one page at a time in a fixed order of record keys: jobs and
notifications newest first by ``(created_at, id)``, events oldest first by
``(seq, created_at, id)``. A page ends with the cursor of the next one: the
key of its last record, so a walk resumes after that key, never at an offset.
Records added while someone walks never make the walk show a record twice or
skip one it has not reached.

A cursor is URL-safe text::

    base64url(JSON) "." base64url(first 6 bytes of sha256(JSON))
    JSON = [1, kind, scope, *key]    e.g. [1, "jobs", "9f2c...", "2026-...Z", "job_..."]

``scope`` is a digest of the list it was made for (kind, org, job, filters):
a cursor used with another org, job or filters is refused, as is one that
is damaged or was never made here (InvalidInput). A cursor is no secret and
grants nothing: it only says where to resume, and every page is read for the
org that asks.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from ..errors import InvalidInput

T = TypeVar("T")

VERSION = 1
MAX_CURSOR_CHARS = 1024
_MAX_TEXT = 256  # a time or an id in a key
_INT64 = (-(2**63), 2**63 - 1)
# kind -> the types of its key, in order
KEY_TYPES: dict[str, tuple[type, ...]] = {
    "jobs": (str, str),  # created_at, job_id
    "notifications": (str, str),  # created_at, notification_id
    "inbox": (str, str),  # created_at, notification_id
    "events": (int, str, str),  # seq, created_at, event_id
}
MALFORMED = "cursor: not a cursor of asyncjobs (give a next_cursor as it was printed)"
MISMATCH = "cursor: does not match these filters"

Key = tuple[Any, ...]
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list, and the cursor of the next (None on the last page)."""

    items: list[T]
    next_cursor: str | None = None

    def __iter__(self) -> Iterator[T]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


@dataclass(frozen=True, slots=True)
class Scope:
    """Which list a cursor belongs to: its kind and a digest of org, job and filters."""

    kind: str
    digest: str


def scope(kind: str, **filters: Any) -> Scope:
    """The scope of a list: ``scope("jobs", org="acme", statuses=["queued"], ...)``.

    Filters are JSON values; a list of statuses should come sorted, so that the
    same filters always give the same scope.
    """
    if kind not in KEY_TYPES:
        raise ValueError(f"unknown list {kind!r}")
    text = json.dumps([kind, filters], sort_keys=True, separators=(",", ":"))
    return Scope(kind, hashlib.sha256(text.encode()).hexdigest()[:16])


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    if not _BASE64URL.fullmatch(text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _check(body: bytes) -> str:
    return _b64(hashlib.sha256(body).digest()[:6])


def encode(where: Scope, key: Key) -> str:
    """The cursor that resumes the list ``where`` after the record whose key is ``key``."""
    body = json.dumps(
        [VERSION, where.kind, where.digest, *key], separators=(",", ":")
    ).encode()
    return f"{_b64(body)}.{_check(body)}"


def decode(cursor: str | None, where: Scope) -> Key | None:
    """The key a cursor resumes after, or None for no cursor (the first page).

    Raises InvalidInput for a cursor that is damaged or not one of ours, and
    for one made for another list, org, job or filters; nothing is read first.
    """
    if cursor is None:
        return None
    if not isinstance(cursor, str) or len(cursor) > MAX_CURSOR_CHARS:
        raise InvalidInput(MALFORMED)
    text, dot, check = cursor.rpartition(".")
    try:
        if not dot:
            raise ValueError("no check")
        body = _unb64(text)
        if _b64(body) != text or check != _check(body):  # one spelling each
            raise ValueError("check differs")
        doc = json.loads(body)
    except (ValueError, binascii.Error, RecursionError):
        raise InvalidInput(MALFORMED) from None
    if not isinstance(doc, list) or len(doc) < 3 or type(doc[0]) is not int:
        raise InvalidInput(MALFORMED)
    version, kind, digest, key = doc[0], doc[1], doc[2], doc[3:]
    if version != VERSION or not isinstance(kind, str) or kind not in KEY_TYPES:
        raise InvalidInput(MALFORMED)
    if not _fits(key, KEY_TYPES[kind]):
        raise InvalidInput(MALFORMED)
    if kind != where.kind or digest != where.digest:
        raise InvalidInput(MISMATCH)
    return tuple(key)


def _fits(key: Sequence[Any], types: tuple[type, ...]) -> bool:
    if len(key) != len(types):
        return False
    for value, kind in zip(key, types):
        if type(value) is not kind:  # bool is not an int here
            return False
        if kind is str and len(value) > _MAX_TEXT:
            return False
        if kind is int and not _INT64[0] <= value <= _INT64[1]:
            return False
    return True
