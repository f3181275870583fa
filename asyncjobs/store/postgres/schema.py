"""The schema of the PostgreSQL engine, as forward-only migrations.

Each record kind is a table of ``(key, doc json)``: the document is the
record exactly as the JSON store keeps it (``records.py``), so an export is
the same JSON document on both engines. ``json``, not ``jsonb``: ``jsonb``
would sort a record's keys (a worker's or catalog record would print in
another order than on the JSON file) and turn a float such as ``1e300``
into an integer. The fields the engine selects and
orders by are generated columns with indexes, compared byte for byte
(``COLLATE "C"``), as Python compares the same strings.

``store init`` applies the migrations a schema lacks, never a worker or a
server; ``store check`` compares the schema's version with ``VERSION``.
"""

from __future__ import annotations

VERSION = 3

# The tables of each kind, with their key column (records.py's KEY).
KEYS = {
    "jobs": "job_id",
    "results": "result_id",
    "events": "event_id",
    "notifications": "notification_id",
    "workers": "worker_id",
    "breakers": "name",
    "tasks": "name",
    "lanes": "key",
    "orgs": "key",
    "tokens": "token_id",
}


def _text(field: str) -> str:
    return f"{field} text COLLATE \"C\" GENERATED ALWAYS AS (doc->>'{field}') STORED"


def _int(field: str, sql_type: str = "bigint") -> str:
    return (
        f"{field} {sql_type} GENERATED ALWAYS AS "
        f"(CASE WHEN json_typeof(doc->'{field}') = 'number' "
        f"THEN (doc->>'{field}')::numeric::{sql_type} END) STORED"
    )


def _table(kind: str, *columns: str) -> str:
    body = ",\n  ".join(
        [f'{KEYS[kind]} text COLLATE "C" PRIMARY KEY', "doc json NOT NULL", *columns]
    )
    return f"CREATE TABLE {kind} (\n  {body}\n)"


MIGRATIONS: dict[int, list[str]] = {
    1: [
        "CREATE TABLE schema_version (version int NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())",
        _table(
            "jobs",
            _text("org_id"),
            _text("status"),
            _text("queue"),
            _text("task"),
            _int("priority", "int"),
            _int("fair_tag"),
            _text("run_after"),
            _text("created_at"),
            _text("lease_expires_at"),
            _text("finished_at"),
            _text("idempotency_key"),
        ),
        # the claim order (domain/scheduling.py) of runnable jobs, per queue
        "CREATE INDEX jobs_claim ON jobs (queue, priority DESC, fair_tag, run_after, "
        "created_at, job_id) WHERE status = 'queued' AND fair_tag IS NOT NULL",
        # queued jobs waiting for their run_after, tagged when they come due
        "CREATE INDEX jobs_waiting ON jobs (queue, run_after, created_at, job_id) "
        "WHERE status = 'queued' AND fair_tag IS NULL",
        "CREATE INDEX jobs_lease ON jobs (lease_expires_at, job_id) WHERE status = 'running'",
        "CREATE INDEX jobs_org ON jobs (org_id, created_at, job_id)",
        "CREATE UNIQUE INDEX jobs_idempotency ON jobs (org_id, idempotency_key) "
        "WHERE idempotency_key IS NOT NULL",
        "CREATE INDEX jobs_periodic ON jobs (org_id, task) "
        "WHERE idempotency_key LIKE 'periodic:%'",
        "CREATE INDEX jobs_terminal ON jobs (finished_at) "
        "WHERE status IN ('completed', 'failed', 'canceled')",
        _table("results", _text("job_id"), _text("org_id"), _text("created_at")),
        "CREATE INDEX results_job ON results (job_id)",
        _table(
            "events",
            _text("job_id"),
            _text("org_id"),
            _int("seq"),
            _text("created_at"),
        ),
        "CREATE INDEX events_job ON events (job_id, seq, created_at, event_id)",
        _table(
            "notifications",
            _text("job_id"),
            _text("org_id"),
            _text("channel"),
            _text("dedupe_key"),
            _text("created_at"),
            _text("read_at"),
        ),
        "CREATE UNIQUE INDEX notifications_dedupe ON notifications (dedupe_key)",
        "CREATE INDEX notifications_job ON notifications (job_id, created_at, notification_id)",
        "CREATE INDEX notifications_org ON notifications (org_id, created_at, notification_id)",
        "CREATE INDEX notifications_unread ON notifications (org_id, created_at, notification_id) "
        "WHERE read_at IS NULL",
        _table("workers", _text("last_seen_at")),
        _table("breakers"),
        _table("tasks"),
        _table("lanes", _text("queue"), _int("priority", "int"), _int("next_tag")),
        "CREATE INDEX lanes_lane ON lanes (queue, priority, next_tag DESC)",
        _table("orgs"),
        # counters as shards: each process adds to its own row, reads sum them
        'CREATE TABLE counters (name text COLLATE "C" NOT NULL, shard int NOT NULL, '
        "doc json NOT NULL, PRIMARY KEY (name, shard))",
        "ALTER TABLE jobs SET (autovacuum_vacuum_scale_factor = 0.01, fillfactor = 80)",
    ],
    # access tokens for the HTTP API (domain/tokens.py), looked up by id
    2: [_table("tokens")],
    # Pages order by coalesce(created_at, '') (the JSON store's order of a
    # record without one): indexes on that expression let a page read one
    # page instead of sorting the org's rows. And an org's queued and
    # running jobs by queue, and its ended ones by status and end, for the
    # figures a dashboard polls.
    3: [
        "CREATE INDEX jobs_org_page ON jobs "
        "(org_id, (coalesce(created_at, '')), job_id)",
        "CREATE INDEX notifications_org_page ON notifications "
        "(org_id, (coalesce(created_at, '')), notification_id)",
        "CREATE INDEX notifications_unread_page ON notifications "
        "(org_id, (coalesce(created_at, '')), notification_id) WHERE read_at IS NULL",
        "CREATE INDEX notifications_job_page ON notifications "
        "(job_id, (coalesce(created_at, '')), notification_id)",
        "CREATE INDEX jobs_live ON jobs (org_id, queue, status, task) "
        "WHERE status IN ('queued', 'running')",
        # an org's ended jobs by status and end: throughput and failure groups
        "CREATE INDEX jobs_finished ON jobs (org_id, status, finished_at) "
        "WHERE status IN ('completed', 'failed', 'canceled')",
        # last: a DROP INDEX holds off reads of its table until the commit
        "DROP INDEX jobs_org",
        "DROP INDEX notifications_org",
        "DROP INDEX notifications_unread",
        "DROP INDEX notifications_job",
    ],
}
