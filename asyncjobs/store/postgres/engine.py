"""The PostgreSQL engine: the operations of store/ports.py as SQL statements.

A store is a schema of one database (``postgresql://…?schema=NAME``, default
``asyncjobs``). Records are documents in tables of their kind
(``schema.py``); what the engine selects and orders by are indexed
generated columns. No lock is global: each transaction locks the rows it
changes.

- ``submit`` is an insert-or-get on the unique index of (org, idempotency
  key): ``INSERT … ON CONFLICT DO NOTHING``, then the row that won.
- ``claimable`` and ``expired_leases`` read the claim order and the lease
  index with ``FOR UPDATE SKIP LOCKED``: two claimers never take one job, and
  neither waits for the other.
- In a writing transaction, a job is read ``FOR UPDATE``: what a rule
  decides from it cannot be overwritten by another transaction meanwhile
  (the JSON file gets the same from its lock). An event's number is then
  the job's next, and a notification is inserted unless its dedupe key is
  there (``ON CONFLICT DO NOTHING``).
- Counters are shards, one row per process: no row every transaction
  rewrites; a read sums them.
- ``now`` is the database's clock (``clock_timestamp()``, read once per
  transaction), so every host reckons leases and due times alike.
"""

from __future__ import annotations

import functools
import itertools
import os
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from ... import clock as clocks
from ...clock import Clock
from ...domain import bulk, lifecycle, observability, paging, retention
from ...domain import catalog as task_catalog
from ...errors import InvalidInput, StoreCorrupt, StoreError
from ...records import Job, Notification, Record, StoredRecord
from ..kv import KeyValueTransaction
from ..ports import KINDS, Listener, PageOf, Store, Transaction, Verification
from . import schema

try:
    import psycopg
    from psycopg import sql
    from psycopg.types.json import Json
except ImportError:  # pragma: no cover - the extra is missing
    psycopg = None  # type: ignore[assignment]
try:
    import psycopg_pool
except ImportError:  # pragma: no cover - the extra is missing
    psycopg_pool = None  # type: ignore[assignment]

DEFAULT_SCHEMA = "asyncjobs"
_SHARDS = 16
_CHUNKS = (16, 64, 256, 1024)  # rows a claim reads at a time, growing
# the first fair tag of a lane's runnable jobs: the claim-order index, read in order
_LANE_HEAD = (
    "SELECT fair_tag FROM jobs WHERE status = 'queued' AND fair_tag IS NOT NULL "
    "AND queue = %s AND priority = %s AND NOT (task = ANY(%s)) "
    "ORDER BY priority DESC, fair_tag LIMIT 1"
)
_LANE_NEXT_TAG = (
    "SELECT coalesce(max(next_tag), 0) FROM lanes WHERE queue = %s AND priority = %s"
)
# Statements by kind; the names are schema.KEYS' own, never input.
_GET = {k: f"SELECT doc FROM {k} WHERE {c} = %s" for k, c in schema.KEYS.items()}
_SCAN = {k: f"SELECT {c}, doc FROM {k} ORDER BY {c}" for k, c in schema.KEYS.items()}
_UPSERT = {
    k: f"INSERT INTO {k} ({c}, doc) VALUES (%s, %s) "
    f"ON CONFLICT ({c}) DO UPDATE SET doc = EXCLUDED.doc"
    for k, c in schema.KEYS.items()
}
# the number of each job's last event (read after the job's lock: _read_jobs)
_LAST_SEQS = (
    "SELECT job_id, max(seq) FROM events WHERE job_id = ANY(%s) GROUP BY job_id"
)
# a new job, unless its (org, idempotency key) is taken
_INSERT_JOB = (
    "INSERT INTO jobs (job_id, doc) VALUES (%s, %s) "
    "ON CONFLICT (org_id, idempotency_key) WHERE idempotency_key IS NOT NULL "
    "DO NOTHING RETURNING job_id"
)
_PURGE_JOB_BATCH = 1_000  # terminal jobs a cleanup judges per transaction
_TERMINAL = "('completed', 'failed', 'canceled')"


def _canonical(column: str) -> str:
    """SQL: the column holds a time in the form this version writes (retention.py)."""
    return (
        f"coalesce(length({column}) = 27 AND substr({column}, 20, 1) = '.' "
        f"AND right({column}, 1) = 'Z', false)"
    )


_INDEX_WHERE = {
    "jobs_by_org": ("jobs", "org_id = %s"),
    "jobs_by_status": ("jobs", "status = %s"),
    "events_by_job": ("events", "job_id = %s"),
    "results_by_job": ("results", "job_id = %s"),
    "notifications_by_job": ("notifications", "job_id = %s"),
    "notifications_by_org": ("notifications", "org_id = %s"),
    "notifications_by_dedupe": ("notifications", "dedupe_key = %s"),
}


def split_url(url: str) -> tuple[str, str]:
    """The libpq URL without ``schema=``, and the schema it names (default ``asyncjobs``)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    names = [v for k, v in query if k == "schema"]
    name = names[-1] if names else DEFAULT_SCHEMA
    if not name or not name.replace("_", "a").isalnum() or name[0].isdigit():
        raise InvalidInput(
            f"store: schema {name!r} is not a plain name (letters, digits, _)"
        )
    rest = urlencode([(k, v) for k, v in query if k != "schema"])
    return urlunsplit(parts._replace(query=rest)), name


# A job whose last error has this type (as text: a number there is no type).
ERROR_TYPE_IS = (
    "json_typeof(doc->'error'->'type') = 'string' AND doc->'error'->>'type' = %s"
)


def _shown(url: str) -> str:
    """The URL without its password (in the host part or as a parameter), for messages."""
    parts = urlsplit(url)
    if parts.password is not None:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        parts = parts._replace(netloc=netloc)
    hidden = ("password", "sslpassword")
    query = "&".join(
        f"{pair.split('=', 1)[0]}=***"
        if unquote(pair.split("=", 1)[0]).lower() in hidden
        else pair
        for pair in parts.query.split("&")
    )
    return urlunsplit(parts._replace(query=query))


def _merge(shards: Iterable[Record]) -> Record | None:
    """One counter from its shards: numbers add up, lists element by element."""
    merged: Record | None = None
    for doc in shards:
        if merged is None:
            merged = dict(doc)
            continue
        for name, value in doc.items():
            known = merged.get(name)
            if isinstance(value, bool) or name == "name":
                merged.setdefault(name, value)
            elif isinstance(value, (int, float)) and isinstance(known, (int, float)):
                merged[name] = known + value
            elif isinstance(value, list) and isinstance(known, list):
                merged[name] = [a + b for a, b in zip(known, value)]
            elif isinstance(value, str) and isinstance(known, str):
                merged[name] = max(known, value)
            elif known is None:
                merged[name] = value
    return merged


class PostgresStore(Store):
    """A store in a PostgreSQL schema: see the module docstring."""

    one_clock = True  # now is the database's, on every host
    result_files = False  # values live in the database, readable from any host

    def __init__(
        self, url: str, *, lock_timeout: float = 10.0, connections: int = 1
    ) -> None:
        if psycopg is None:
            raise InvalidInput(
                "store: a postgresql:// store needs the postgres extra: "
                "pip install 'asyncjobs[postgres]'"
            )
        self.conninfo, self.schema = split_url(url)
        self.url = _shown(url)  # what messages and reports name: no password
        self.lock_timeout = lock_timeout
        self._lock = threading.RLock()
        self._conn: Any = None
        self._ready = False
        self._pid = os.getpid()
        # With more than one, the threads of this process (serve's requests)
        # share a pool; with one, they take turns on one connection.
        self.connections = connections if psycopg_pool is not None else 1
        self._pool: Any = None

    # -- connections ---------------------------------------------------------

    def _options(self) -> dict[str, Any]:
        timeout_ms = max(1, int(self.lock_timeout * 1000))
        return {
            "autocommit": True,
            "connect_timeout": max(1, int(self.lock_timeout)),
            # nothing waits forever: a lock, a statement, an abandoned transaction
            "options": (
                f"-c search_path={self.schema} -c lock_timeout={timeout_ms} "
                f"-c statement_timeout={max(timeout_ms, 60_000)} "
                "-c idle_in_transaction_session_timeout=600000"
            ),
        }

    def _connect(self) -> Any:
        if (
            self._conn is not None
            and self._pid == os.getpid()
            and not self._conn.closed
        ):
            return self._conn
        self._pid = os.getpid()
        try:
            self._conn = psycopg.connect(self.conninfo, **self._options())
        except psycopg.Error as exc:
            raise StoreError(
                f"cannot connect to {_shown(self.url)}: {_reason(exc)}"
            ) from None
        return self._conn

    @contextmanager
    def _borrowed(self) -> Iterator[Any]:
        """A connection of the pool for one transaction (``connections`` > 1)."""
        with self._lock:
            if self._pool is None or self._pid != os.getpid():
                self._pid = os.getpid()
                self._pool = psycopg_pool.ConnectionPool(
                    self.conninfo,
                    min_size=1,
                    max_size=self.connections,
                    kwargs=self._options(),
                    # a connection the server dropped (a restart) is not handed out
                    check=psycopg_pool.ConnectionPool.check_connection,
                    open=False,
                    name=f"asyncjobs-{self.schema}",
                )
                self._pool.open(wait=False)
            pool = self._pool
        try:
            with pool.connection(timeout=self.lock_timeout) as conn:
                yield conn
        except psycopg_pool.PoolTimeout:
            raise StoreError(
                f"{_shown(self.url)}: no connection free or made within "
                f"{self.lock_timeout:g} s"
            ) from None

    @contextmanager
    def _held(self) -> Iterator[Any]:
        """The process's one connection, for one transaction at a time."""
        with self._lock:
            yield self._connect()

    @contextmanager
    def _session(self) -> Iterator[Any]:
        """A connection for one transaction; database errors as StoreError."""
        with self._borrowed() if self.connections > 1 else self._held() as conn:
            try:
                yield conn
            except psycopg.errors.LockNotAvailable as exc:
                raise StoreError(
                    f"{_shown(self.url)}: lock wait timed out: {_reason(exc)}"
                ) from None
            except psycopg.OperationalError as exc:
                self._drop()
                raise StoreError(f"{_shown(self.url)}: {_reason(exc)}") from None
            except psycopg.Error as exc:
                if conn.closed or conn.broken:
                    self._drop()
                raise StoreError(f"{_shown(self.url)}: {_reason(exc)}") from None

    def _drop(self) -> None:
        if self.connections > 1:
            return  # the pool throws a broken connection away itself
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass

    def _version(self, conn: Any) -> int | None:
        found = conn.execute(
            "SELECT to_regclass(%s) IS NOT NULL", (f"{self.schema}.schema_version",)
        ).fetchone()[0]
        if not found:
            return None
        row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
        return row[0] if row else None

    def _check_ready(self, conn: Any) -> None:
        if self._ready:
            return
        version = self._version(conn)
        if version is None:
            raise StoreError(
                f"no store at {_shown(self.url)}: create it with "
                f"'asyncjobs --store {_shown(self.url)} store init'"
            )
        if version > schema.VERSION:
            raise StoreCorrupt(
                f"{_shown(self.url)}: schema version {version} is newer than this "
                f"asyncjobs knows ({schema.VERSION}); upgrade asyncjobs"
            )
        if version < schema.VERSION:
            raise StoreError(
                f"{_shown(self.url)}: schema version {version} is older than "
                f"{schema.VERSION}: run 'asyncjobs --store {_shown(self.url)} store init'"
            )
        self._ready = True

    # -- the port ------------------------------------------------------------

    @contextmanager
    def transaction(self, *, clock: Clock | None = None) -> Iterator[Transaction]:
        with self._session() as conn:
            self._check_ready(conn)
            # Pipelined: a write is sent without waiting for its answer; the
            # connection waits only where a read needs one, and at commit.
            with conn.transaction(), conn.pipeline():
                tx = _PgTransaction(
                    conn, writable=True, clock=clock, channel=self.channel
                )
                yield tx
                tx.flush()

    @contextmanager
    def read(self, *, clock: Clock | None = None) -> Iterator[Transaction]:
        with self._session() as conn:
            self._check_ready(conn)
            with conn.transaction():
                # one snapshot for every statement (pages, exports, cleanup plans)
                conn.execute(
                    "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"
                )
                yield _PgTransaction(
                    conn, writable=False, clock=clock, channel=self.channel
                )

    @property
    def channel(self) -> str:
        """The NOTIFY channel of this store's wake-ups (one per schema)."""
        return f"asyncjobs_{self.schema}"[:63]

    def listener(self) -> Listener | None:
        try:
            conn = psycopg.connect(
                self.conninfo,
                autocommit=True,
                connect_timeout=max(1, int(self.lock_timeout)),
            )
            conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
        except psycopg.Error:
            return None  # workers poll until the next try
        return _PgListener(conn)

    def initialize(self) -> bool:
        with self._session() as conn:
            with conn.transaction():
                # one initializer at a time, whatever the number of hosts
                conn.execute(
                    "SELECT pg_advisory_xact_lock(hashtext(%s))", (self.schema,)
                )
                # an operator's command: an index on a large table takes its time
                conn.execute("SET LOCAL statement_timeout = 0")
                conn.execute(
                    sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                        sql.Identifier(self.schema)
                    )
                )
                version = self._version(conn) or 0
                for number in sorted(schema.MIGRATIONS):
                    if number <= version:
                        continue
                    for statement in schema.MIGRATIONS[number]:
                        conn.execute(statement)
                    conn.execute(
                        "INSERT INTO schema_version (version) VALUES (%s)", (number,)
                    )
            self._ready = False
            return version == 0

    def verify(self, *, strict: bool = False) -> Verification:
        out = Verification()
        with self._session() as conn:
            version = self._version(conn)
            if version is None:
                raise StoreError(
                    f"no store at {_shown(self.url)}: create it with "
                    f"'asyncjobs --store {_shown(self.url)} store init'"
                )
            if version != schema.VERSION:
                out.problems.append(
                    f"schema version {version}, this asyncjobs uses {schema.VERSION}"
                )
                return out
            for kind in KINDS:
                out.counts[kind] = conn.execute(
                    sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(kind))
                ).fetchone()[0]
        return out

    def compact(self) -> dict[str, Any]:
        with self._session() as conn:
            self._check_ready(conn)
            for kind in ("jobs", "events", "notifications", "results"):
                conn.execute(sql.SQL("VACUUM ANALYZE {}").format(sql.Identifier(kind)))
        return {
            "store": _shown(self.url),
            "compacted": False,
            "note": "PostgreSQL keeps no journal: VACUUM ANALYZE of the job tables ran",
        }

    def purge(
        self,
        policy: retention.Policy,
        *,
        dry_run: bool,
        clock: Clock | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> tuple[datetime, retention.Plan]:
        """Retention in short transactions: 1,000 terminal jobs at a time.

        The totals come first, from one short read. Then each batch of
        terminal jobs, in job id order, is judged and (unless ``dry_run``)
        deleted in one transaction of its own: records first, each only if
        its job is still terminal (a job retried meanwhile keeps
        everything), then the jobs, each in one statement with every record
        of it. The report counts what the deletes returned; nothing waits
        for a whole-store snapshot.
        """
        with self.read(clock=clock) as tx:
            assert isinstance(tx, _PgTransaction)
            moment = tx.now
            plan = tx.purge_totals(policy, moment)
        # each batch a transaction of its own
        opener = self.read if dry_run else self.transaction
        batches = functools.partial(opener, clock=clock)
        _purge_batches(
            batches, plan, policy, moment, dry_run=dry_run, progress=progress
        )
        return moment, plan

    def export(self) -> dict[str, Any]:
        """The whole state as the JSON store's document (``store.v1``)."""
        with self.read() as tx:
            assert isinstance(tx, _PgTransaction)
            doc: dict[str, Any] = {"schema": "store.v1", "generation": 0}
            for kind in KINDS:
                doc[kind] = dict(tx.keyed(kind))
            return doc

    def close(self) -> None:
        with self._lock:
            self._drop()
            pool, self._pool = self._pool, None
            if pool is not None:
                pool.close()


class _PgListener(Listener):
    """A connection of its own that LISTENs on the store's channel."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn
        self._fd = conn.fileno()

    def fileno(self) -> int:
        return self._fd

    def drain(self) -> bool:
        try:
            return bool(list(self._conn.notifies(timeout=0)))
        except psycopg.Error:
            self.close()
            return True  # the connection is gone: poll now, as without one

    @property
    def closed(self) -> bool:
        return self._conn.closed

    def close(self) -> None:
        try:
            self._conn.close()
        except Exception:
            pass


def _reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


class _PgTransaction(KeyValueTransaction):
    def __init__(
        self, conn: Any, *, writable: bool, clock: Clock | None, channel: str
    ) -> None:
        super().__init__(clock or self._database_clock)
        self._conn = conn
        self._tasks: dict[str, Record] | None = None
        self._breakers: Any = None  # the breakers, asked ahead (_catalog)
        # the moment, asked for at once and read where the first answer is
        # awaited anyway: no round trip of its own
        self._moment = (
            conn.execute("SELECT clock_timestamp()") if writable and not clock else None
        )
        # worker records to update at the commit: (fields, processed, default)
        self._worker_updates: dict[str, tuple[dict[str, Any], int, Any]] = {}
        self._writable = writable
        self._channel = channel
        self._woken = False
        # Fair-tag records written, held until a read of the lanes table or
        # the commit: a large submit would otherwise rewrite one org's row
        # once per job, and each rewrite of a row in one transaction costs
        # more than the last (its dead versions pile up).
        self._lanes: dict[str, Record] = {}
        # Counter increments, summed until a read of a counter or the
        # commit: one read of this process's shards per transaction.
        self._increments: dict[str, tuple[dict[str, Any], Any]] = {}
        # Jobs this writing transaction has read (each locked FOR UPDATE, so
        # no other transaction changes them until the commit) or written.
        self._docs: dict[str, Record] = {}

    def flush(self) -> None:
        """Write what is held back (see ``__init__``)."""
        self._flush_increments()
        if not self._lanes:
            return
        pending, self._lanes = self._lanes, {}
        with self._conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO lanes (key, doc) VALUES (%s, %s) "
                "ON CONFLICT (key) DO UPDATE SET doc = EXCLUDED.doc",
                [(key, Json(record)) for key, record in pending.items()],
            )

    # -- figures --------------------------------------------------------------

    def job_orgs(self, statuses: Collection[str]) -> list[str]:
        return [
            org
            for (org,) in self._rows(
                "SELECT DISTINCT org_id FROM jobs WHERE status = ANY(%(statuses)s) "
                "ORDER BY org_id",
                {"statuses": list(statuses)},
            )
        ]

    def count_matching(
        self, org: str, wanted: bulk.Criteria, up_to: int
    ) -> tuple[int, bool]:
        """One count of the rows ``Criteria.matches`` would take, in SQL."""
        where = ["org_id = %s", "status = ANY(%s)"]
        params: list[Any] = [org, list(wanted.statuses)]
        for value, test in (
            (wanted.queue, "queue = %s"),
            (wanted.task, "task = %s"),
            (wanted.error_type, ERROR_TYPE_IS),
            (wanted.failed_since, "finished_at >= %s"),
            (wanted.created_before, "created_at < %s"),
        ):
            if value is not None:
                where.append(test)
                params.append(value)
        # a running job asked to stop already is not matched again
        where.append(
            "NOT (status = 'running' AND doc->>'cancel_requested_at' IS NOT NULL)"
        )
        (count,) = self._rows(
            f"SELECT count(*) FROM (SELECT 1 FROM jobs WHERE {' AND '.join(where)} "
            "LIMIT %s) AS matched",
            [*params, up_to + 1],
        )[0]
        return min(count, up_to), count > up_to

    def queue_groups(self, org: str | None) -> list[observability.QueueGroup]:
        """One ``GROUP BY`` over the queued and running jobs (of one org)."""
        runnable = "status = 'queued' AND run_after <= %(stamp)s"
        where = "status IN ('queued', 'running')"
        if org is not None:
            where += " AND org_id = %(org)s"
        return [
            observability.QueueGroup(*row)
            for row in self._rows(
                "SELECT queue, status, task, count(*), "
                f"count(*) FILTER (WHERE {runnable}), "
                f"min(run_after) FILTER (WHERE {runnable}) "
                f"FROM jobs WHERE {where} "
                "GROUP BY queue, status, task ORDER BY queue, status, task",
                {"stamp": clocks.to_iso(self.now), "org": org},
            )
        ]

    def throughput(self, org: str, since: str) -> list[tuple[str, str, int]]:
        """One ``GROUP BY`` over the org's ended jobs, found by ``jobs_finished``."""
        return [
            (minute, status, count)
            for minute, status, count in self._rows(
                "SELECT left(finished_at, 16), status, count(*) FROM jobs "
                "WHERE status IN ('completed', 'failed', 'canceled') "
                "AND finished_at >= %(since)s AND org_id = %(org)s "
                "GROUP BY 1, 2 ORDER BY 1, 2",
                {"since": since, "org": org},
            )
        ]

    def failure_groups(self, org: str) -> list[observability.FailureGroup]:
        """The week's failed jobs counted by (task, error type) through
        ``jobs_finished``, then the newest of each group read by its id: each
        document is parsed once, for its error type (a ``json`` column is
        parsed on every access), and only the newest ones for their message."""
        now = self.now
        rows = self._rows(
            "WITH failed AS (SELECT task, job_id, finished_at, "
            "coalesce(doc->'error'->>'type', '') AS kind FROM jobs "
            "WHERE org_id = %(org)s AND status = 'failed' "
            "AND finished_at >= %(week)s), "
            "groups AS (SELECT task, kind, "
            "count(*) FILTER (WHERE finished_at >= %(hour)s) AS hour, "
            "count(*) FILTER (WHERE finished_at >= %(day)s) AS day, "
            "count(*) AS week, (array_agg(job_id ORDER BY finished_at DESC, "
            "job_id DESC))[1] AS newest FROM failed GROUP BY task, kind) "
            "SELECT g.task, g.kind, g.hour, g.day, g.week, j.finished_at, "
            "coalesce(j.doc->'error'->>'message', ''), j.job_id "
            "FROM groups g JOIN jobs j ON j.job_id = g.newest",
            {
                "org": org,
                **{
                    name: observability.since(now, observability.WINDOWS[w])
                    for name, w in (("hour", "1h"), ("day", "24h"), ("week", "7d"))
                },
            },
        )
        found = [observability.FailureGroup(*row) for row in rows]
        return sorted(found, key=lambda g: (-g.last_week, g.task, g.error_type))

    def change_mark(self) -> str:
        """The server's snapshot as text (``xmin:xmax:in-progress ids``):
        ``xmax`` follows the newest transaction id that ended, and the list
        those still running below it, so any commit of a transaction that
        wrote changes it (in any schema or database of the server: it also
        moves when this store did not change). A read takes no id and leaves
        it as it is. PostgreSQL 13 or later."""
        return str(self._rows("SELECT pg_current_snapshot()::text")[0][0])

    def summary(self, *, stale_seconds: float) -> dict[str, Any]:
        """``observability.summarize``'s figures from ``GROUP BY`` queries and an anti-join."""
        now = self.now
        breakers = list(self.scan("breakers"))
        figures = observability.JobFigures(
            now=now, open_tasks=observability.open_tasks(breakers, now)
        )
        terminal = "status IN ('completed', 'failed', 'canceled')"
        for status, queue, task, count, oldest, due, last, recent in self._rows(
            "SELECT status, queue, task, count(*), "
            "min(doc->>'updated_at') FILTER (WHERE status = 'queued'), "
            "count(*) FILTER (WHERE status = 'queued' AND run_after <= %(stamp)s), "
            f"max(finished_at) FILTER (WHERE {terminal}), "
            f"count(*) FILTER (WHERE {terminal} AND finished_at >= %(hour)s) "
            "FROM jobs GROUP BY status, queue, task ORDER BY status, queue, task",
            {"stamp": figures.stamp, "hour": figures.hour_ago},
        ):
            figures.add_group(
                status,
                queue,
                task,
                count=count,
                oldest_queued_at=oldest,
                due=due,
                last_finished=last,
                finished_1h=recent,
            )
        for worker_id, job_id in self._rows(
            "SELECT doc->>'worker_id', job_id FROM jobs WHERE status = 'running' "
            "ORDER BY job_id"
        ):
            if worker_id:
                figures.held.setdefault(worker_id, []).append(job_id)
        pruned = (self.get("counters", retention.PRUNED_CUTOFF) or {}).get("at")
        summary = observability.summarize(
            figures=figures,
            missing=self._missing_notifications(pruned),
            breakers=breakers,
            workers=list(self.scan("workers")),
            counters=dict(self.keyed("counters")),
            catalog=list(self.scan(task_catalog.KIND)),
            stale_seconds=stale_seconds,
        )
        summary["generation"] = self.generation
        return summary

    def _missing_notifications(self, pruned_before: str | None) -> list[str]:
        """``observability.missing_notifications`` as an anti-join on the dedupe key."""
        # the key of lifecycle.dedupe_key_of, built in SQL from its own pattern
        pattern = lifecycle.dedupe_key_of("\x00job", "\x00event", "\x00run")  # type: ignore[arg-type]
        parts = []
        for piece in pattern.split("\x00"):
            for name, column in (
                ("job", "j.job_id"),
                ("event", "e.event"),
                # run as Python's str() shows it: missing is 1, null None
                (
                    "run",
                    "CASE WHEN j.doc->'run' IS NULL THEN '1' "
                    "WHEN json_typeof(j.doc->'run') = 'null' THEN 'None' "
                    "ELSE j.doc->>'run' END",
                ),
            ):
                if piece.startswith(name):
                    parts.append(column)
                    piece = piece[len(name) :]
                    break
            if piece:
                parts.append(sql.Literal(piece).as_string(self._conn))
        events = ", ".join(
            f"({sql.Literal(s).as_string(self._conn)}, {sql.Literal(e).as_string(self._conn)})"
            for s, e in sorted(lifecycle.TERMINAL_EVENT_OF.items())
        )
        return [
            r[0]
            for r in self._rows(
                f"SELECT j.job_id FROM jobs j JOIN (VALUES {events}) e(status, event) "
                "ON e.status = j.status WHERE coalesce(j.finished_at, '') >= %s "
                "AND NOT EXISTS (SELECT 1 FROM notifications n WHERE "
                f"n.dedupe_key = concat({', '.join(parts)}) "
                "AND (n.doc->'channel' IS NULL OR n.channel = 'in_app')) "
                "ORDER BY j.job_id",
                (pruned_before or "",),
            )
        ]

    # -- retention ------------------------------------------------------------

    def purge(
        self,
        policy: retention.Policy,
        *,
        dry_run: bool,
        progress: Callable[[int], None] | None = None,
    ) -> retention.Plan:
        """``retention.plan``'s answer, found by queries, all in this one transaction.

        ``PostgresStore.purge`` runs the same batches, each in a transaction
        of its own.
        """
        plan = self.purge_totals(policy, self.now)
        here = functools.partial(nullcontext, self)  # every batch in this transaction
        _purge_batches(here, plan, policy, self.now, dry_run=dry_run, progress=progress)
        return plan

    def purge_totals(self, policy: retention.Policy, now: datetime) -> retention.Plan:
        """A plan with the counts of every kind and the workers judged, nothing else yet."""
        workers = [r[0] for r in self._rows("SELECT doc FROM workers")]
        # workers are few: the rule itself judges each; it also sets the cutoff
        plan = retention.plan({"workers": workers}, now=now, **policy.ttls())
        for kind, _ in retention.KINDS:
            table, _ = self._table(kind)
            plan.totals[kind] = self._rows(
                sql.SQL("SELECT count(*) FROM {}").format(table)
            )[0][0]
        plan.terminal_job_count = self._rows(
            f"SELECT count(*) FROM jobs WHERE status IN {_TERMINAL}"
        )[0][0]
        return plan

    def purge_batch(
        self,
        plan: retention.Plan,
        policy: retention.Policy,
        now: datetime,
        *,
        after: str,
        delete: bool,
    ) -> tuple[str, int]:
        """Judge the next terminal jobs after job id ``after`` and their records, into ``plan``.

        Times in the form this version writes compare in SQL; any other
        (rare) is read and judged by the rule (``retention.is_expired``).
        With ``delete``, what expired is deleted here and ``plan`` counts
        what the deletes returned. Returns the last job id read and how
        many were read (0: none left).
        """
        ttls = policy.ttls()
        # the next terminal jobs, with the finish of those in a rare form of time
        rows = self._rows(
            f"SELECT job_id, {_canonical('finished_at')}, finished_at, "
            f"CASE WHEN {_canonical('finished_at')} THEN NULL "
            "ELSE doc->'finished_at' END "
            f"FROM jobs WHERE job_id > %s AND status IN {_TERMINAL} "
            # deleting: a retry of one of them waits for this batch to commit
            "ORDER BY job_id LIMIT %s" + (" FOR UPDATE" if delete else ""),
            (after, _PURGE_JOB_BATCH),
        )
        if not rows:
            return after, 0
        ids = [r[0] for r in rows]
        found: dict[str, set[str]] = {kind: set() for kind, _ in retention.KINDS}
        files: list[str] = []
        jobs_ttl = ttls["jobs_ttl_seconds"]
        if jobs_ttl is not None:
            cutoff, moment = retention.cutoff_of(now, jobs_ttl)
            for job_id, plain, finished, stamp in rows:
                if plain:
                    expired: bool | None = finished < cutoff
                else:
                    expired = retention.is_expired(stamp, cutoff, moment)
                if expired is None:
                    plan.skipped_missing_timestamp += 1
                elif expired:
                    found["jobs"].add(job_id)
        gone = sorted(found["jobs"])
        for kind, key in retention.KINDS[:3]:
            ttl = ttls[f"{kind}_ttl_seconds"]
            file = "doc->>'value_file'" if kind == "results" else "NULL"
            params: dict[str, Any] = {"ids": ids, "gone": gone, "cut": ""}
            odd = "false"
            cutoff, moment = "", now
            if ttl is not None:
                cutoff, moment = retention.cutoff_of(now, ttl)
                params["cut"] = cutoff
                odd = f"NOT {_canonical('created_at')}"
            # those that go, and those whose time is in a rare form (the rule
            # judges); IN (SELECT …) is hashed, where = ANY would compare each
            # record with every gone job
            for record_id, value_file, judged, stamp in self._rows(
                f"SELECT {key}, {file}, job_id IN (SELECT unnest(%(gone)s::text[])) OR "
                f"({_canonical('created_at')} AND created_at < %(cut)s AND %(cut)s <> ''), "
                f"CASE WHEN {_canonical('created_at')} THEN NULL ELSE doc->'created_at' END "
                f"FROM {kind} WHERE job_id = ANY(%(ids)s) "
                "AND (job_id IN (SELECT unnest(%(gone)s::text[])) "
                f"OR ({_canonical('created_at')} AND created_at < %(cut)s) OR {odd})",
                params,
            ):
                if judged:
                    expired = True
                else:
                    expired = retention.is_expired(stamp, cutoff, moment)
                    if expired is None:
                        plan.skipped_missing_timestamp += 1
                if expired:
                    found[kind].add(record_id)
                    files += [value_file] if value_file else []
        if not delete:
            for kind, records in found.items():
                plan.deleted[kind] |= records
            plan.files += files
            return ids[-1], len(ids)
        for kind, key in retention.KINDS[:3]:
            if found[kind]:
                for gone_kind, record_id, value_file in self.delete_of_terminal(
                    kind, key, sorted(found[kind])
                ):
                    plan.deleted[gone_kind].add(record_id)
                    plan.files += [value_file] if value_file else []
        if gone and jobs_ttl is not None:
            cutoff = retention.cutoff_of(now, jobs_ttl)[0]
            for gone_kind, record_id, value_file in self.delete_jobs(gone, cutoff):
                plan.deleted[gone_kind].add(record_id)
                plan.files += [value_file] if value_file else []
        return ids[-1], len(ids)

    def delete_stale_workers(
        self, worker_ids: Collection[str], policy: retention.Policy, now: datetime
    ) -> set[str]:
        """Delete those workers still unseen since the cutoff (one may have come back)."""
        cutoff, moment = retention.cutoff_of(now, policy.workers_ttl_seconds)
        stale = {
            worker_id
            for worker_id, seen in self._rows(
                "SELECT worker_id, doc->'last_seen_at' FROM workers "
                "WHERE worker_id = ANY(%s) ORDER BY worker_id FOR UPDATE",
                (sorted(worker_ids),),
            )
            if retention.is_expired(seen, cutoff, moment)
        }
        self.delete_many("workers", stale)
        return stale

    def raise_pruned_cutoff(self, cutoff: str) -> None:
        """Notifications of jobs finished before ``cutoff`` may be gone (retention.py)."""
        old = self.get("counters", retention.PRUNED_CUTOFF) or {}
        self.put(
            "counters",
            retention.PRUNED_CUTOFF,
            {"name": retention.PRUNED_CUTOFF, "at": max(cutoff, old.get("at") or "")},
        )

    def delete_of_terminal(
        self, kind: str, key: str, ids: Sequence[str]
    ) -> list[tuple[str, str, str | None]]:
        """Delete those records of ``kind`` whose job is still terminal: (kind, id, file)."""
        file = "doc->>'value_file'" if kind == "results" else "NULL"
        return [
            (kind, found, value_file)
            for found, value_file in self._rows(
                f"DELETE FROM {kind} x WHERE {key} = ANY(%s) AND EXISTS "
                "(SELECT 1 FROM jobs j WHERE j.job_id = x.job_id "
                f"AND j.status IN {_TERMINAL}) "
                f"RETURNING {key}, {file}",
                (list(ids),),
            )
        ]

    def delete_jobs(
        self, job_ids: Sequence[str], cutoff: str
    ) -> list[tuple[str, str, str | None]]:
        """Delete those jobs still terminal, each with every record of it, in one statement.

        A job that finished again since (at or after ``cutoff``) is kept.
        """
        return [
            (kind, found, value_file)
            for kind, found, value_file in self._rows(
                "WITH gone AS (DELETE FROM jobs WHERE job_id = ANY(%s) "
                f"AND status IN {_TERMINAL} AND NOT ({_canonical('finished_at')} "
                "AND finished_at >= %s) RETURNING job_id), "
                "r AS (DELETE FROM results WHERE job_id IN (SELECT job_id FROM gone) "
                "RETURNING result_id, doc->>'value_file' AS file), "
                "e AS (DELETE FROM events WHERE job_id IN (SELECT job_id FROM gone) "
                "RETURNING event_id), "
                "n AS (DELETE FROM notifications WHERE job_id IN "
                "(SELECT job_id FROM gone) RETURNING notification_id) "
                "SELECT 'jobs', job_id, NULL FROM gone "
                "UNION ALL SELECT 'results', result_id, file FROM r "
                "UNION ALL SELECT 'events', event_id, NULL FROM e "
                "UNION ALL SELECT 'notifications', notification_id, NULL FROM n",
                (list(job_ids), cutoff),
            )
        ]

    def _database_clock(self) -> datetime:
        asked = self._moment or self._conn.execute("SELECT clock_timestamp()")
        return asked.fetchone()[0].astimezone(timezone.utc)

    @property
    def generation(self) -> int:
        return 0

    def _rows(self, query: Any, params: Sequence[Any] = ()) -> list[Any]:
        return self._conn.execute(query, params).fetchall()

    def _check_writable(self) -> None:
        if not self._writable:
            raise StoreError("this is a read-only transaction")

    @staticmethod
    def _table(kind: str) -> tuple[Any, Any]:
        if kind not in schema.KEYS:
            raise ValueError(f"unknown record kind {kind!r}")
        return sql.Identifier(kind), sql.Identifier(schema.KEYS[kind])

    # -- key-value primitives ------------------------------------------------

    def get(self, kind: str, key: str) -> Record | None:
        if not isinstance(key, str):
            return None
        if kind == "lanes" and key in self._lanes:
            return self._lanes[key]
        if kind == "jobs" and self._writable:
            if key not in self._docs:
                self._read_jobs("job_id = %s", (key,), ids=(key,))
            return self._docs.get(key)
        if kind in ("counters", "workers"):
            self._flush_increments()
        if kind == "counters":
            return _merge(
                r[0]
                for r in self._rows(
                    "SELECT doc FROM counters WHERE name = %s ORDER BY shard", (key,)
                )
            )
        self._table(kind)
        rows = self._rows(_GET[kind], (key,))
        return rows[0][0] if rows else None

    def _read_jobs(
        self,
        where: str,
        params: Sequence[Any],
        lock: str = "FOR UPDATE",
        *,
        ids: Sequence[str] = (),
    ) -> list[Record]:
        """Jobs of a writing transaction, locked as ``lock`` says (a claim skips locked ones).

        ``FOR UPDATE`` returns a row's newest version, even one committed
        while this statement waited; anything else the statement read (its
        snapshot) may be older, so the numbers of their last events are read
        by a statement of their own, after the locks: sent along at once
        when the ``ids`` are known, by ``_next_seq`` when they are not.
        """
        locked = self._conn.execute(
            f"SELECT doc FROM jobs WHERE {where} {lock}", params
        )
        numbers = None
        wanted = sorted(
            i for i in ids if i not in self._seqs and i not in self._new_jobs
        )
        if wanted:
            numbers = self._conn.execute(_LAST_SEQS, (wanted,))
        docs = [r[0] for r in locked.fetchall()]
        for doc in docs:
            self._docs[doc["job_id"]] = doc
        if numbers is not None:
            found = dict(numbers.fetchall())
            for job_id in wanted:
                if job_id in self._docs:
                    self._seqs[job_id] = found.get(job_id) or 0
        return docs

    def prefetch_jobs(self, job_ids: Collection[str]) -> None:
        if not self._writable:
            return
        wanted = sorted({i for i in job_ids if isinstance(i, str)} - set(self._docs))
        if wanted:
            # in one order, so two transactions never wait on each other's rows
            self._read_jobs("job_id = ANY(%s) ORDER BY job_id", (wanted,), ids=wanted)

    def put(self, kind: str, key: str, record: Record) -> None:
        self._check_writable()
        if kind == "lanes":
            self._lanes[key] = record
            return
        if kind == "jobs":
            self._docs[key] = record
        if kind == "workers":
            self._flush_increments()  # a held update must not land on top of this
        if kind == "counters":
            # a record written whole (the retention cutoff): one shard holds it
            self._flush_increments()
            self._conn.execute("DELETE FROM counters WHERE name = %s", (key,))
            self._conn.execute(
                "INSERT INTO counters (name, shard, doc) VALUES (%s, 0, %s)",
                (key, Json(record)),
            )
            return
        if kind == "breakers":
            self._breakers = None
        self._table(kind)  # a known kind: its statement is one of _UPSERT's
        self._conn.execute(_UPSERT[kind], (key, Json(record)))

    def delete(self, kind: str, key: str) -> None:
        self.delete_many(kind, [key])

    def delete_many(self, kind: str, keys: Iterable[str]) -> None:
        self._check_writable()
        keys = list(keys)
        if not keys:
            return
        if kind == "lanes":
            self.flush()
        if kind == "jobs":
            for key in keys:
                self._docs.pop(key, None)
        if kind == "breakers":
            self._breakers = None
        if kind in ("counters", "workers"):
            self._flush_increments()
        if kind == "counters":
            self._conn.execute("DELETE FROM counters WHERE name = ANY(%s)", (keys,))
            return
        table, column = self._table(kind)
        for start in range(0, len(keys), 10_000):
            self._conn.execute(
                sql.SQL("DELETE FROM {} WHERE {} = ANY(%s)").format(table, column),
                (keys[start : start + 10_000],),
            )

    def keyed(self, kind: str) -> Iterator[tuple[str, Record]]:
        """Every record of a kind with its key (export)."""
        if kind in ("lanes", "counters", "workers"):
            self.flush()
        if kind == "counters":
            names = [
                r[0]
                for r in self._rows("SELECT DISTINCT name FROM counters ORDER BY name")
            ]
            for name in names:
                merged = self.get("counters", name)
                if merged is not None:
                    yield name, merged
            return
        if kind == "breakers" and self._breakers is not None:
            if not isinstance(self._breakers, list):
                self._breakers = self._breakers.fetchall()  # asked with the catalog
            yield from self._breakers
            return
        self._table(kind)
        yield from self._rows(_SCAN[kind])

    def scan(self, kind: str) -> Iterator[Record]:
        for _, record in self.keyed(kind):
            yield record

    def find(self, index: str, value: Any) -> list[Record]:
        if index == "jobs_by_idempotency":
            org, key = value
            where, params = "org_id = %s AND idempotency_key = %s", (org, key)
            kind = "jobs"
        elif index == "jobs_by_periodic":
            org, task = value
            where = "org_id = %s AND task = %s AND idempotency_key LIKE 'periodic:%%'"
            params, kind = (org, task), "jobs"
        else:
            kind, where = _INDEX_WHERE[index]
            params = (value,)
        table, _ = self._table(kind)
        return [
            r[0]
            for r in self._rows(
                sql.SQL("SELECT doc FROM {} WHERE ").format(table) + sql.SQL(where),
                params,
            )
        ]

    def count(self, kind: str) -> int:
        if kind in ("lanes", "counters", "workers"):
            self.flush()
        if kind == "counters":
            return self._rows("SELECT count(DISTINCT name) FROM counters")[0][0]
        table, _ = self._table(kind)
        return self._rows(sql.SQL("SELECT count(*) FROM {}").format(table))[0][0]

    # -- the task catalog: a few records, read whole once per transaction ------

    def _catalog(self) -> dict[str, Record]:
        if self._tasks is None:
            if self._writable and self._breakers is None:
                # what a submit reads next (held-back tasks), in the same round trip
                self._breakers = self._conn.execute(_SCAN["breakers"])
            self._tasks = dict(self._rows(_SCAN["tasks"]))
        return self._tasks

    def catalog(self) -> list[Record]:
        return list(self._catalog().values())

    def catalog_entry(self, task: str) -> Record | None:
        return self._catalog().get(task) if isinstance(task, str) else None

    def catalog_size(self) -> int:
        return len(self._catalog())

    def publish_catalog(self, entries: Sequence[Record]) -> None:
        self._tasks = None
        super().publish_catalog(entries)

    # -- selection ------------------------------------------------------------

    def claim_order(
        self,
        queues: Collection[str],
        exclude_tasks: Collection[str] = (),
        *,
        want: int = 1,
    ) -> Iterator[Record]:
        seen: list[str] = []
        # the first read takes (and locks) what the caller wants; more only
        # when it passes some over
        sizes = itertools.chain([max(1, want)], _CHUNKS, itertools.repeat(_CHUNKS[-1]))
        order = "ORDER BY priority DESC, fair_tag, run_after, created_at, job_id"
        runnable = (
            "status = 'queued' AND fair_tag IS NOT NULL "
            "AND NOT (task = ANY(%s)) AND NOT (job_id = ANY(%s))"
        )
        lock = " FOR UPDATE SKIP LOCKED" if self._writable else ""
        names = sorted(set(queues))
        for size in sizes:
            if len(names) == 1:
                # one queue: the index of the claim order, read in order
                where = f"queue = %s AND {runnable} {order} LIMIT %s{lock}"
                params: tuple[Any, ...] = (names[0], list(exclude_tasks), seen, size)
            else:
                # several: the head of each queue in order (a list of queues
                # would make the index unordered), then merged
                where = (
                    "job_id IN (SELECT c.job_id FROM unnest(%s::text[]) q(name) "
                    "CROSS JOIN LATERAL (SELECT job_id FROM jobs WHERE "
                    f"queue = q.name AND {runnable} {order} LIMIT %s{lock}) c) "
                    f"{order} LIMIT %s"
                )
                params = (names, list(exclude_tasks), seen, size, size)
            if self._writable:
                # FOR UPDATE outside too (the rows are this transaction's
                # already): the newest version of each, not the snapshot's
                outer = "" if len(names) == 1 else "FOR UPDATE"
                rows = self._read_jobs(where, params, lock=outer)
            else:
                rows = [
                    r[0]
                    for r in self._rows(f"SELECT doc FROM jobs WHERE {where}", params)
                ]
            for doc in rows:
                seen.append(doc["job_id"])
                if doc["task"] in exclude_tasks:
                    continue  # held back since this chunk was read
                yield doc
            if len(rows) < size:
                return

    def lane_head(
        self, queue: str, priority: int, exclude_tasks: Collection[str] = ()
    ) -> int | None:
        return self._rows(
            f"SELECT ({_LANE_HEAD})", (queue, priority, list(exclude_tasks))
        )[0][0]

    def lane_state(
        self, queue: str, priority: int, exclude_tasks: Collection[str], key: str
    ) -> tuple[int | None, int, Record | None]:
        if key in self._lanes:
            return (
                self.lane_head(queue, priority, exclude_tasks),
                self.lane_next_tag(queue, priority),
                self._lanes[key],
            )
        self.flush()
        head, next_tag, record = self._rows(
            f"SELECT ({_LANE_HEAD}), ({_LANE_NEXT_TAG}), "
            "(SELECT doc FROM lanes WHERE key = %s)",
            (queue, priority, list(exclude_tasks), queue, priority, key),
        )[0]
        return head, next_tag, record

    def lane_next_tag(self, queue: str, priority: int) -> int:
        self.flush()
        return self._rows(f"SELECT ({_LANE_NEXT_TAG})", (queue, priority))[0][0]

    def due_untagged(self, queues: Collection[str], now: str) -> list[Record]:
        where = (
            "status = 'queued' AND fair_tag IS NULL "
            "AND queue = ANY(%s) AND run_after <= %s "
            "ORDER BY run_after, created_at, job_id LIMIT 1000"
        )
        if self._writable:
            return self._read_jobs(where, (list(queues), now), "FOR UPDATE SKIP LOCKED")
        return [
            r[0]
            for r in self._rows(
                f"SELECT doc FROM jobs WHERE {where}", (list(queues), now)
            )
        ]

    def lease_order(self) -> Iterator[Record]:
        for (doc,) in self._rows(
            "SELECT doc FROM jobs WHERE status = 'running' AND lease_expires_at IS NOT NULL "
            "ORDER BY lease_expires_at, job_id"
        ):
            yield doc

    def finished_since(self, org: str, status: str, since: str) -> Iterator[Record]:
        for (doc,) in self._rows(
            "SELECT doc FROM jobs WHERE status = %s AND finished_at >= %s "
            "AND org_id = %s ORDER BY finished_at DESC, job_id DESC",
            (status, since, org),
        ):
            yield doc

    def expired_leases(self, limit: int) -> list[Job]:
        if limit <= 0:
            return []
        where = (
            "status = 'running' AND lease_expires_at < %s "
            "ORDER BY lease_expires_at, job_id LIMIT %s"
        )
        params = (clocks.to_iso(self.now), limit)
        if self._writable:
            docs = self._read_jobs(where, params, lock="FOR UPDATE SKIP LOCKED")
        else:
            docs = [
                r[0] for r in self._rows(f"SELECT doc FROM jobs WHERE {where}", params)
            ]
        return [Job.from_dict(doc) for doc in docs]

    # -- writes with their own atomicity -------------------------------------

    def submit(self, new: Sequence[tuple[Job, Any]]) -> list[Job]:
        self._check_writable()
        jobs = []
        for job, event in new:
            key = job.idempotency_key
            if key is not None:
                found = self._keyed_job(job.org_id, key)
                if found is not None:
                    jobs.append(_deduplicated(found))
                    continue
            job = self._stamped(job)
            doc = job.to_dict()
            params = (job.job_id, Json(doc))
            if key is None:  # nothing to conflict with: not waited for
                self._conn.execute(_INSERT_JOB, params)
            elif not self._rows(_INSERT_JOB, params):
                # another submitter of the key committed first
                found = self._keyed_job(job.org_id, key)
                assert found is not None
                jobs.append(_deduplicated(found))
                continue
            self._new_jobs.add(job.job_id)
            self._docs[job.job_id] = doc
            self.save(event)
            jobs.append(job)
        added = sum(not job.deduplicated for job in jobs)
        if added:
            self.increment("jobs_submitted_total", {"value": added})
        return jobs

    def _stamped(self, job: Job) -> Job:
        stamped = super()._stamped(job)
        if stamped.fair_tag is not None and job.fair_tag is None and not self._woken:
            # one NOTIFY per transaction that made a job runnable, sent at commit
            self._conn.execute("SELECT pg_notify(%s, '')", (self._channel,))
            self._woken = True
        return stamped

    def _keyed_job(self, org: str, key: str) -> Job | None:
        rows = self._rows(
            "SELECT doc FROM jobs WHERE org_id = %s AND idempotency_key = %s",
            (org, key),
        )
        return Job.from_dict(rows[0][0]) if rows else None

    def save(self, *records: StoredRecord | None) -> None:
        for record in records:
            if isinstance(record, Notification):
                self._check_writable()
                self._conn.execute(
                    "INSERT INTO notifications (notification_id, doc) VALUES (%s, %s) "
                    "ON CONFLICT DO NOTHING",
                    (record.key, Json(record.to_dict())),
                )
            else:
                super().save(record)

    def _next_seq(self, job_id: str) -> int:
        if job_id not in self._seqs and job_id not in self._new_jobs:
            # the last numbers of every job read (and locked) so far, in one query
            # that starts after the locks were taken: it sees their events
            wanted = {job_id} | {
                j for j in self._docs if j not in self._seqs and j not in self._new_jobs
            }
            found = dict(self._rows(_LAST_SEQS, (sorted(wanted),)))
            for known in wanted:
                self._seqs[known] = found.get(known) or 0
        seq = self._seqs.get(job_id, 0) + 1
        self._seqs[job_id] = seq
        return seq

    def increment(
        self,
        counter: str,
        amounts: Any,
        *,
        initial: Any = None,
    ) -> None:
        self._check_writable()
        held, _ = self._increments.get(counter, ({}, None))
        self._increments[counter] = (_added(held, amounts), initial)

    def update_worker(
        self,
        worker_id: str,
        fields: Any,
        *,
        processed: int = 0,
        default: Record | None = None,
    ) -> None:
        # held to the commit, where its read shares a round trip with the counters'
        self._check_writable()
        held, count, known = self._worker_updates.get(worker_id, ({}, 0, None))
        self._worker_updates[worker_id] = (
            {**held, **fields},
            count + processed,
            default if default is not None else known,
        )

    def _flush_increments(self) -> None:
        """Write the held counter increments and worker updates.

        A plain count (``{"value": n}``) is added by the database in the
        upsert itself; a record of several fields (a histogram) and a worker
        record are read first, all in one round trip.
        """
        pending, self._increments = self._increments, {}
        workers, self._worker_updates = self._worker_updates, {}
        if not pending and not workers:
            return
        shard = os.getpid() % _SHARDS
        plain = sorted(
            n
            for n, (amounts, initial) in pending.items()
            if initial is None
            and set(amounts) == {"value"}
            and isinstance(amounts["value"], int)
        )
        whole = sorted(set(pending) - set(plain))
        asked_shards = asked_known = asked_workers = None
        if whole:
            asked_shards = self._conn.execute(
                "SELECT name, doc FROM counters WHERE name = ANY(%s) AND shard = %s "
                "ORDER BY name FOR UPDATE",
                (whole, shard),
            )
            asked_known = self._conn.execute(
                "SELECT DISTINCT name FROM counters WHERE name = ANY(%s)", (whole,)
            )
        if workers:
            asked_workers = self._conn.execute(
                "SELECT worker_id, doc FROM workers WHERE worker_id = ANY(%s) "
                "ORDER BY worker_id FOR UPDATE",
                (sorted(workers),),
            )
        with self._conn.cursor() as cursor:
            if plain:
                cursor.executemany(
                    "INSERT INTO counters (name, shard, doc) "
                    "VALUES (%s, %s, json_build_object('name', %s::text, 'value', %s::bigint)) "
                    "ON CONFLICT (name, shard) DO UPDATE SET doc = json_build_object("
                    "'name', EXCLUDED.name, 'value', "
                    "coalesce((counters.doc->>'value')::bigint, 0) + %s::bigint)",
                    [
                        (
                            name,
                            shard,
                            name,
                            pending[name][0]["value"],
                            pending[name][0]["value"],
                        )
                        for name in plain
                    ],
                )
            rows = []
            if asked_shards is not None and asked_known is not None:
                shards = dict(asked_shards.fetchall())
                counted = {r[0] for r in asked_known.fetchall()}
                for name in whole:
                    amounts, initial = pending[name]
                    record = dict(shards.get(name) or initial or {})
                    if name not in shards and name in counted:
                        # the initial record is counted once, in the first shard written
                        record = {k: _zero(v) for k, v in record.items()}
                    record["name"] = name
                    rows.append((name, shard, Json(_added(record, amounts))))
            if rows:
                cursor.executemany(
                    "INSERT INTO counters (name, shard, doc) VALUES (%s, %s, %s) "
                    "ON CONFLICT (name, shard) DO UPDATE SET doc = EXCLUDED.doc",
                    rows,
                )
            if asked_workers is not None:
                known = dict(asked_workers.fetchall())
                updated = []
                for worker_id, (fields, processed, default) in sorted(workers.items()):
                    old = known.get(worker_id) or default
                    if old is None:
                        continue
                    record = {**old, **fields}
                    if processed:
                        record["processed_count"] = (
                            old.get("processed_count", 0) + processed
                        )
                    updated.append((worker_id, Json(record)))
                if updated:
                    cursor.executemany(
                        "INSERT INTO workers (worker_id, doc) VALUES (%s, %s) "
                        "ON CONFLICT (worker_id) DO UPDATE SET doc = EXCLUDED.doc",
                        updated,
                    )

    def load(self, records: Any) -> int:
        self.refuse_unless_empty()
        written = 0
        with self._conn.cursor() as cursor:
            for kind in KINDS:
                rows = list(records.get(kind, {}).items())
                if not rows:
                    continue
                if kind == "counters":
                    query: Any = (
                        "INSERT INTO counters (name, shard, doc) VALUES (%s, 0, %s)"
                    )
                else:
                    table, column = self._table(kind)
                    query = sql.SQL("INSERT INTO {} ({}, doc) VALUES (%s, %s)").format(
                        table, column
                    )
                cursor.executemany(query, [(key, Json(doc)) for key, doc in rows])
                written += len(rows)
        return written

    def mark_read(
        self, org: str, notification_ids: Sequence[str] | None, at: str
    ) -> int:
        if notification_ids is None:
            self._check_writable()
            unread = self._rows(
                "SELECT notification_id, doc FROM notifications "
                "WHERE org_id = %s AND read_at IS NULL FOR UPDATE",
                (org,),
            )
            with self._conn.cursor() as cursor:
                cursor.executemany(
                    "UPDATE notifications SET doc = %s WHERE notification_id = %s",
                    [(Json({**doc, "read_at": at}), key) for key, doc in unread],
                )
            return len(unread)
        return super().mark_read(org, notification_ids, at)

    # -- pages ---------------------------------------------------------------

    def _page(
        self,
        kind: str,
        where: list[str],
        params: list[Any],
        order: tuple[str, ...],
        scope: paging.Scope,
        cursor: str | None,
        limit: int,
        *,
        newest_first: bool = True,
    ) -> PageOf:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        after = paging.decode(cursor, scope)  # InvalidInput before any read
        if after is not None:
            columns = ", ".join(order)
            marks = ", ".join(["%s"] * len(order))
            where = [*where, f"({columns}) {'<' if newest_first else '>'} ({marks})"]
            params = [*params, *after]
        direction = " DESC" if newest_first else ""
        query = (
            f"SELECT doc, {', '.join(order)} FROM {kind} WHERE {' AND '.join(where)} "
            f"ORDER BY {', '.join(c + direction for c in order)} LIMIT %s"
        )
        rows = self._rows(query, [*params, limit + 1])
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = paging.encode(scope, tuple(rows[-1][1:])) if more else None
        return [r[0] for r in rows], next_cursor

    def page_jobs(
        self,
        org: str,
        *,
        statuses: Collection[str] | None = None,
        queue: str | None = None,
        task: str | None = None,
        limit: int,
        cursor: str | None = None,
        error_type: str | None = None,
    ) -> PageOf:
        wanted = None if statuses is None else sorted(frozenset(statuses))
        scope = paging.scope(
            "jobs",
            org=org,
            statuses=wanted,
            queue=queue,
            task=task,
            **({} if error_type is None else {"error_type": error_type}),
        )
        where, params = ["org_id = %s"], [org]
        if wanted is not None:
            where.append("status = ANY(%s)")
            params.append(wanted)
        if queue is not None:
            where.append("queue = %s")
            params.append(queue)
        if task is not None:
            where.append("task = %s")
            params.append(task)
        if error_type is not None:
            where.append(ERROR_TYPE_IS)
            params.append(error_type)
        return self._page(
            "jobs",
            where,
            params,
            ("coalesce(created_at, '')", "job_id"),
            scope,
            cursor,
            limit,
        )

    def page_notifications(
        self,
        job_id: str,
        *,
        org: str,
        channel: str,
        limit: int,
        cursor: str | None = None,
    ) -> PageOf:
        scope = paging.scope("notifications", org=org, job_id=job_id, channel=channel)
        return self._page(
            "notifications",
            ["job_id = %s", "org_id = %s", "coalesce(channel, 'in_app') = %s"],
            [job_id, org, channel],
            ("coalesce(created_at, '')", "notification_id"),
            scope,
            cursor,
            limit,
        )

    def page_inbox(
        self, org: str, *, unread: bool, limit: int, cursor: str | None = None
    ) -> PageOf:
        scope = paging.scope("inbox", org=org, unread=unread)
        where = ["org_id = %s"] + (["read_at IS NULL"] if unread else [])
        return self._page(
            "notifications",
            where,
            [org],
            ("coalesce(created_at, '')", "notification_id"),
            scope,
            cursor,
            limit,
        )

    def page_events(
        self, job_id: str, *, org: str, limit: int, cursor: str | None = None
    ) -> PageOf:
        scope = paging.scope("events", org=org, job_id=job_id)
        return self._page(
            "events",
            ["job_id = %s", "org_id = %s"],
            [job_id, org],
            ("coalesce(seq, 0)", "coalesce(created_at, '')", "event_id"),
            scope,
            cursor,
            limit,
            newest_first=False,
        )


def _purge_batches(
    batches: Callable[[], AbstractContextManager[Any]],
    plan: retention.Plan,
    policy: retention.Policy,
    now: datetime,
    *,
    dry_run: bool,
    progress: Callable[[int], None] | None,
) -> None:
    """Run a cleanup's batches (``_PgTransaction.purge_batch``), each in ``batches()``."""
    if not dry_run and plan.notifications_cutoff is not None:
        with batches() as tx:
            tx.raise_pruned_cutoff(plan.notifications_cutoff)
    after, read = "", -1
    while read:
        with batches() as tx:
            after, read = tx.purge_batch(
                plan, policy, now, after=after, delete=not dry_run
            )
        if progress is not None and read:
            progress(read)
    if not dry_run and plan.workers_deleted:
        with batches() as tx:
            plan.workers_deleted = tx.delete_stale_workers(
                plan.workers_deleted, policy, now
            )
    plan.files.sort()


def _added(record: Record, amounts: Record) -> dict[str, Any]:
    """``record`` with ``amounts`` added: numbers, and lists element by element."""
    out = dict(record)
    for name, amount in amounts.items():
        if isinstance(amount, list):
            known = list(out.get(name) or [0] * len(amount))
            out[name] = [a + b for a, b in zip(known, amount)]
        else:
            out[name] = out.get(name, 0) + amount
    return out


def _zero(value: Any) -> Any:
    if isinstance(value, list):
        return [0] * len(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return 0
    return value


def _deduplicated(job: Job) -> Job:
    import dataclasses

    return dataclasses.replace(job, deduplicated=True)
