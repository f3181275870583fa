"""The operators' figures are the same whichever engine computes them.

The JSON store reads every job once in Python; PostgreSQL answers with
GROUP BY queries and an anti-join. One state, made on the JSON store and
imported into PostgreSQL, must give the same ``stats`` and the same check.
"""

from __future__ import annotations

import pytest

from asyncjobs import Client
from asyncjobs.clock import FixedClock
from asyncjobs.records import WorkerInfo
from asyncjobs.tasks import TaskRegistry

tasks = TaskRegistry()
tasks.breaker("dep", fail_max=1, reset_timeout=600)


@tasks.task(name="ok")
def ok() -> None:
    return None


@tasks.task(name="flaky", breaker="dep")
def flaky() -> None:
    return None


def worker(name: str, queues: list[str]) -> WorkerInfo:
    return WorkerInfo(
        worker_id=f"wrk_{name}",
        host="h",
        pid=1,
        queues=queues,
        concurrency=5,
        started_at="2026-11-01T12:00:00.000000Z",
        last_seen_at="2026-11-01T12:00:00.000000Z",
        heartbeat_seconds=10,
        lease_seconds=30,
    )


def build(client: Client, clock: FixedClock) -> str:
    """Every kind of job, on two queues; returns a job whose notification goes."""
    client.register_worker(worker("a", ["default", "mail"]), tasks)
    done = client.submit("ok", org="acme", tasks=tasks)
    client.submit("flaky", org="acme", tasks=tasks, max_retries=0)
    client.submit("ok", org="globex", queue="mail", tasks=tasks)
    a = worker("a", ["default", "mail"])
    claimed = client.exchange(a, [], want=5, registry=tasks)[1]
    outcomes = []
    for job, token in claimed:
        if job.task == "flaky":
            error = {"type": "Down", "message": "no"}
            outcomes.append((token, {"ok": False, "error": error}))
        elif job.queue == "default":
            outcomes.append((token, {"ok": True, "value": 1}))
    clock.advance(2)
    client.exchange(a, outcomes, want=0, registry=tasks)  # the mail job runs on
    canceled = client.submit("ok", org="acme", tasks=tasks)
    client.cancel(canceled.job_id, org="acme")
    client.submit("ok", org="acme", tasks=tasks)  # queued, due
    client.submit("ok", org="acme", tasks=tasks, delay=3600)  # queued, waiting
    client.submit("flaky", org="globex", tasks=tasks)  # held by the open breaker
    clock.advance(5)
    return done.job_id


@pytest.mark.parametrize("lose_a_notification", [False, True])
def test_stats_and_check_agree_on_json_and_postgresql(
    tmp_path, pg_url, lose_a_notification
):
    clock = FixedClock("2026-11-01T12:00:00Z")
    with Client(tmp_path / "store.v1.json", clock=clock) as source:
        source.init_store()
        job_id = build(source, clock)
        doc = source.export()
    if lose_a_notification:
        doc["notifications"] = {
            k: n for k, n in doc["notifications"].items() if n["job_id"] != job_id
        }
    with Client(tmp_path / "copy.v1.json", clock=clock) as json_store:
        json_store.init_store()
        json_store.import_store(doc)
        on_json = json_store.stats()
        json_check = json_store.check().problems
    with Client(pg_url, clock=clock) as pg:
        pg.init_store()
        pg.import_store(doc)
        on_pg = pg.stats()
        pg_check = pg.check().problems
    on_json.pop("generation"), on_pg.pop("generation")
    assert on_pg == on_json
    assert on_json["terminal_without_notification"] == (
        [job_id] if lose_a_notification else []
    )
    assert on_json["blocked"] == 1 and on_json["running"] == 1
    assert on_json["queues"]["mail"]["running"] == 1
    assert pg_check == json_check and bool(json_check) == lose_a_notification
