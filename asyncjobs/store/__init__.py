"""Backends: where records live. ``open_store`` picks one by its URL or path."""

from __future__ import annotations

import os

from ..errors import InvalidInput
from .jsonfile.engine import JsonFileStore
from .kv import INDEXES
from .ports import KINDS, Record, Store, Transaction, Verification

DEFAULT_STORE = os.path.join("runtime", "async_jobs", "store.v1.json")

__all__ = [
    "DEFAULT_STORE",
    "INDEXES",
    "KINDS",
    "JsonFileStore",
    "Record",
    "Store",
    "Transaction",
    "Verification",
    "open_store",
]


def open_store(
    url: str | os.PathLike[str],
    *,
    lock_timeout: float = 10.0,
    fsync: bool = True,
    lock_disabled: bool = False,
    connections: int = 1,
) -> Store:
    """A backend for a store URL: a plain path or ``file:PATH`` is the JSON file.

    ``postgresql://…[?schema=NAME]`` is PostgreSQL (``store/postgres/``).

    ``fsync`` and ``lock_disabled`` are the settings ``ASYNCJOBS_FSYNC`` and
    ``ASYNCJOBS_TEST_DISABLE_LOCK`` (``config.Settings``), handed down as values.
    ``connections`` is how many connections a database store may keep for
    the threads of one process (a pool); a file store has no use for it.
    """
    text = os.fspath(url)
    if text.startswith(("postgresql://", "postgres://")):
        from .postgres.engine import PostgresStore  # only with the postgres extra

        return PostgresStore(text, lock_timeout=lock_timeout, connections=connections)
    if text.startswith("file://"):
        text = text[len("file://") :]
    elif text.startswith("file:"):
        text = text[len("file:") :]
    if not text:
        raise InvalidInput("store: empty path")
    if os.path.isdir(text):
        raise InvalidInput(f"store: {text} is a folder; name the store file in it")
    default = os.path.abspath(text) == os.path.abspath(DEFAULT_STORE)
    return JsonFileStore(
        text,
        lock_timeout=lock_timeout,
        fsync=fsync,
        lock_disabled=lock_disabled,
        create_folder=default,
    )
