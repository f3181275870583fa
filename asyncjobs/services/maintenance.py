"""Operating a store: figures, workers, breakers, schedules, retention, checks, setup.

The store-wide operations (``summary``, ``purge``, ``problems``) are the
engine's; the rules they apply are in ``domain/`` (``observability``,
``retention``, ``integrity``). Retention deletes result files only after
their records are committed gone (``services/artifacts.py``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from .. import clock as clocks
from ..domain import breakers as breaker_rules
from ..domain import observability, retention, validation
from ..domain import schedules as schedule_rules
from ..errors import InvalidInput, NotFound
from ..store import KINDS, Store
from ..tasks import TaskRegistry
from . import artifacts


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


EXPORT_SCHEMA = "store.v1"


def exported_records(doc: Any, *, source: str) -> dict[str, dict[str, Any]]:
    """The records of an exported state (``store export``), or InvalidInput naming the flaw."""
    if not isinstance(doc, dict) or doc.get("schema") != EXPORT_SCHEMA:
        raise InvalidInput(
            f"{source}: not an asyncjobs store export (schema {EXPORT_SCHEMA})"
        )
    unknown = sorted(set(doc) - {*KINDS, "schema", "generation", "saved_at"})
    if unknown:
        raise InvalidInput(f"{source}: unknown field(s) {', '.join(unknown)}")
    records: dict[str, dict[str, Any]] = {}
    for kind in KINDS:
        found = doc.get(kind, {})
        if not isinstance(found, dict) or not all(
            isinstance(r, dict) for r in found.values()
        ):
            raise InvalidInput(f"{source}: {kind} must map keys to JSON objects")
        records[kind] = found
    return records


class Maintenance:
    """The operator's operations on one store (``Client`` hands them on)."""

    def __init__(
        self, store: Store, clock: clocks.Clock | None, *, stale_seconds: float
    ) -> None:
        self.store = store
        self.stale_seconds = stale_seconds
        self.clock = clock

    def stats(self) -> dict[str, Any]:
        with self.store.read(clock=self.clock) as tx:
            return tx.summary(stale_seconds=self.stale_seconds)

    def queues(self, org: str | None) -> list[dict[str, Any]]:
        if org is not None:
            validation.org(org)
        with self.store.read(clock=self.clock) as tx:
            now = tx.now
            held_back = observability.open_tasks(tx.breakers(), now)
            return observability.queue_view(
                tx.queue_groups(org), now=now, open_tasks=held_back
            )

    def throughput(self, org: str, minutes: int) -> list[dict[str, Any]]:
        validation.org(org)
        minutes = validation.count(minutes, "minutes", (1, 1440))
        with self.store.read(clock=self.clock) as tx:
            now = tx.now
            start = now.replace(second=0, microsecond=0) - timedelta(
                minutes=minutes - 1
            )
            rows = tx.throughput(org, clocks.to_iso(start))
        return observability.minutes(rows, now, minutes)

    def failure_groups(self, org: str) -> list[dict[str, Any]]:
        validation.org(org)
        with self.store.read(clock=self.clock) as tx:
            return [group._asdict() for group in tx.failure_groups(org)]

    def pruned_before(self) -> str | None:
        with self.store.read(clock=self.clock) as tx:
            return tx.pruned_before()

    def change_mark(self) -> str:
        with self.store.read(clock=self.clock) as tx:
            return tx.change_mark()

    def catalog(self) -> list[dict[str, Any]]:
        with self.store.read(clock=self.clock) as tx:
            found = tx.catalog()
        return copy.deepcopy(found)  # the store's own dicts must not be changed

    def workers(self) -> list[dict[str, Any]]:
        with self.store.read(clock=self.clock) as tx:
            now = tx.now
            found = sorted(tx.workers(), key=lambda r: r["started_at"], reverse=True)
            held = observability.running_by_worker(
                job.to_dict() for job in tx.running_jobs()
            )
        return [
            observability.worker_view(record, now, held.get(record["worker_id"], []))
            for record in found
        ]

    def breakers(self) -> list[dict[str, Any]]:
        with self.store.read(clock=self.clock) as tx:
            found = {r["name"]: r for r in tx.breakers()}
            behind: dict[str, list[str]] = {}
            for task in tx.catalog():
                name = task.get("breaker")
                if isinstance(name, str):
                    behind.setdefault(name, []).append(task["name"])
        for name, tasks in behind.items():
            if name not in found:
                found[name] = breaker_rules.Breaker(name, tasks=sorted(tasks)).to_dict()
        return [found[name] for name in sorted(found)]

    def reset_breaker(self, name: str) -> dict[str, Any]:
        validation.name(name, "breaker")
        with self.store.transaction(clock=self.clock) as tx:
            record = tx.breaker(name)
            if record is None:
                raise NotFound(f"breaker {name} not found")
            breaker, event = breaker_rules.reset(
                breaker_rules.Breaker.from_dict(record, name), tx.now
            )
            tx.save(breaker, event)
        return breaker.to_dict()

    def schedules(
        self, *, app: TaskRegistry | None, now: datetime | None
    ) -> list[dict[str, Any]]:
        with self.store.read(clock=self.clock) as tx:
            moment = tx.now if now is None else clocks.utc(now, field="now")
            entries = app.describe() if app is not None else tx.catalog()
            last_slots = {}
            for entry in entries:
                found = schedule_rules.periodic_of(entry)
                if found is not None:
                    name, periodic = found
                    last_slots[name] = schedule_rules.last_slot(
                        name, tx.periodic_keys(periodic["org"], name)
                    )
        return schedule_rules.rows(entries, last_slots, now=moment)

    def cleanup(
        self,
        policy: retention.Policy,
        *,
        dry_run: bool,
        now: datetime | str | None,
        progress: Callable[[int], None] | None,
    ) -> dict[str, Any]:
        for name, value in policy.ttls().items():
            if value is None and name in ("results_ttl_seconds", "events_ttl_seconds"):
                raise InvalidInput(f"{name}: required")
            if value is not None:
                validation.seconds(value, name, validation.TTL_SECONDS)
        clock = self.clock
        if now is not None:
            moment = validation.moment(now, "now", validation.CLEANUP_NOW)
            clock = clocks.FixedClock(moment)
        # The moment is read with the state: the report's "now" is that of the
        # state it acted on, so no job it saw finished after it.
        moment, plan = self.store.purge(
            policy, dry_run=dry_run, clock=clock, progress=progress
        )
        if not dry_run:
            artifacts.delete_files(plan.files)  # only now that their records are gone
        return retention.report(
            plan,
            dry_run=dry_run,
            store_file=self.store.url,
            now=moment,
            **policy.ttls(),
        )

    def init_store(self) -> dict[str, Any]:
        created = self.store.initialize()
        with self.store.read(clock=self.clock) as tx:
            return {
                "store": self.store.url,
                "created": created,
                "generation": tx.generation,
            }

    def load(self, doc: Any, *, source: str) -> dict[str, Any]:
        """Write an exported state into this empty store, checked first."""
        records = exported_records(doc, source=source)
        with self.store.transaction(clock=self.clock) as tx:
            written = tx.load(records)
            problems, _ = tx.problems()
        return {
            "store": self.store.url,
            "records": written,
            "counts": {kind: len(records.get(kind, {})) for kind in KINDS},
            "problems": problems,
        }

    def check(self, *, strict: bool = False) -> CheckReport:
        verification = self.store.verify(strict=strict)
        report = CheckReport(
            store=self.store.url,
            problems=list(verification.problems),
            notes=list(verification.notes),
            generation=verification.generation,
            counts=dict(verification.counts),
        )
        if not report.problems:
            with self.store.read(clock=self.clock) as tx:
                problems, notes = tx.problems()
            report.problems += problems
            report.notes += notes
        return report
