"""The Python API: ``Client`` runs every operation as one store transaction.

``Client`` is the one caller of both the rule modules and the backend: it
reads records, hands them to the rules, and saves what comes back.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from . import clock as clocks
from . import integrity
from .store import DEFAULT_STORE, Store, open_store


@dataclass
class CheckReport:
    """What ``store check`` found: a store is sound when ``problems`` is empty."""

    store: str
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    generation: int = 0
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "store": self.store,
            "ok": self.ok,
            "problems": self.problems,
            "notes": self.notes,
            "generation": self.generation,
            "counts": self.counts,
        }


class Client:
    """A handle on one store: ``with Client("runtime/async_jobs/store.v1.json") as c:``."""

    def __init__(
        self,
        store: str | os.PathLike[str] | Store = DEFAULT_STORE,
        *,
        clock: clocks.Clock | None = None,
        lock_timeout: float = 10.0,
    ) -> None:
        self._store = store if isinstance(store, Store) else open_store(
            store, lock_timeout=lock_timeout
        )
        self._clock = clock or clocks.now

    @property
    def store(self) -> Store:
        return self._store

    def close(self) -> None:
        self._store.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- store maintenance -------------------------------------------------

    def init_store(self) -> dict[str, Any]:
        """Create an empty store if there is none; an existing one is left as it is."""
        created = self._store.initialize()
        with self._store.read() as tx:
            return {"store": self._store.url, "created": created, "generation": tx.generation}

    def check(self) -> CheckReport:
        """Validate the store: files, checksums, schema, then references."""
        verification = self._store.verify()
        report = CheckReport(
            store=self._store.url,
            problems=list(verification.problems),
            notes=list(verification.notes),
            generation=verification.generation,
            counts=dict(verification.counts),
        )
        if not report.problems:
            with self._store.read() as tx:
                kinds = ("jobs", "results", "events", "notifications")
                report.problems += integrity.reference_problems(
                    {kind: list(tx.scan(kind)) for kind in kinds}
                )
        return report

    def compact(self) -> dict[str, Any]:
        """Fold the journal so that the snapshot alone shows the current state."""
        return self._store.compact()

    def export(self) -> dict[str, Any]:
        """The whole current state as one JSON document."""
        return self._store.export()
