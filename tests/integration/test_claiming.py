"""Claim order, fairness, delays, backoff and fencing, through Client on a real store
with a fixed clock (no processes, no waiting)."""

from __future__ import annotations

import dataclasses

import pytest

from asyncjobs import Client
from asyncjobs.clock import FixedClock
from asyncjobs.records import WorkerInfo
from asyncjobs.services import running
from asyncjobs.tasks import TaskRegistry

from ..conftest import exported

pytestmark = pytest.mark.engines

tasks = TaskRegistry()


@tasks.task(
    name="t",
    max_retries=3,
    retry_backoff="exponential",
    retry_delay=2.0,
    retry_max_delay=5.0,
)
def t() -> None: ...


@tasks.task(name="lin", max_retries=3, retry_backoff="linear", retry_delay=3.0)
def lin() -> None: ...


@tasks.task(name="fix", max_retries=3, retry_backoff="fixed", retry_delay=4.0)
def fix() -> None: ...


@tasks.task(
    name="jit",
    max_retries=50,
    retry_backoff="fixed",
    retry_delay=10.0,
    retry_jitter=True,
)
def jit() -> None: ...


def make_worker(client, name: str = "w1", lease: float = 30.0) -> WorkerInfo:
    now = "2026-11-01T12:00:00.000000Z"
    return WorkerInfo(
        worker_id=f"wrk_{name}",
        host="h",
        pid=1,
        queues=["default"],
        concurrency=1,
        started_at=now,
        last_seen_at=now,
        heartbeat_seconds=lease / 3,
        lease_seconds=lease,
    )


def claim_all(client, worker, n: int = 1000):
    _, claimed = client.exchange(worker, [], want=n, registry=tasks)
    return [job for job, _ in claimed]


def fail(client, worker, token, *, retryable: bool = True):
    outcome = {
        "job_id": token.job_id,
        "ok": False,
        "retryable": retryable,
        "error": {"type": "ValueError", "message": "no"},
    }
    finished, _ = client.exchange(worker, [(token, outcome)], want=0, registry=tasks)
    return finished[0] if finished else None


def test_higher_priority_runs_first_then_the_oldest(client, clock):
    low = client.submit("t", org="acme", priority=1)
    clock.advance(1)
    high_old = client.submit("t", org="acme", priority=9)
    clock.advance(1)
    high_new = client.submit("t", org="acme", priority=9)
    mid = client.submit("t", org="acme", priority=5)
    worker = make_worker(client)
    order = [claim_all(client, worker, 1)[0].job_id for _ in range(4)]
    assert order == [high_old.job_id, high_new.job_id, mid.job_id, low.job_id]


def test_one_orgs_flood_does_not_starve_another_orgs_job(client, clock):
    client.submit_many([{"task": "t", "org": "flood"} for _ in range(500)])
    clock.advance(1)
    single = client.submit("t", org="small")
    clock.advance(1)
    worker = make_worker(client)
    first_two = [claim_all(client, worker, 1)[0] for _ in range(2)]
    assert single.job_id in {j.job_id for j in first_two}


def test_orgs_take_turns_in_one_claim(client, clock):
    client.submit_many([{"task": "t", "org": "a"} for _ in range(5)])
    clock.advance(1)  # in each turn, the org that queued first goes first
    client.submit_many([{"task": "t", "org": "b"} for _ in range(5)])
    clock.advance(1)
    client.submit_many([{"task": "t", "org": "c"} for _ in range(1)])
    claimed = claim_all(client, make_worker(client), 6)
    assert [j.org_id for j in claimed[:3]] == ["a", "b", "c"]
    rest = [j.org_id for j in claimed[3:]]  # c has no more: a and b alternate
    assert rest == ["a", "b", "a"]


def test_a_delayed_job_is_not_claimed_before_its_time(client, clock):
    later = client.submit("t", org="acme", delay=60)
    worker = make_worker(client)
    assert claim_all(client, worker) == []
    clock.advance(59)
    assert claim_all(client, worker) == []
    clock.advance(2)
    assert [j.job_id for j in claim_all(client, worker)] == [later.job_id]


def test_only_the_workers_queues_are_claimed(client):
    client.submit("t", org="acme", queue="reports")
    worker = make_worker(client)
    assert claim_all(client, worker) == []
    reports = dataclasses.replace(worker, queues=["reports", "default"])
    assert len(claim_all(client, reports)) == 1


@pytest.mark.parametrize(
    "task, delays",
    [
        ("t", [2.0, 4.0, 5.0]),  # exponential 2, 4, 8 capped at 5
        ("lin", [3.0, 6.0, 9.0]),  # linear
        ("fix", [4.0, 4.0, 4.0]),  # fixed
    ],
)
def test_every_backoff_sets_the_next_run(client, clock, task, delays):
    from datetime import timedelta

    from asyncjobs.clock import to_iso

    job = client.submit(task, org="acme")
    worker = make_worker(client)
    for attempt, delay in enumerate(delays, start=1):
        ((claimed, token),) = client.exchange(worker, [], want=1, registry=tasks)[1]
        assert claimed.attempts == attempt
        requeued = fail(client, worker, token)
        assert requeued.status == "queued"
        assert requeued.run_after == to_iso(clock.moment + timedelta(seconds=delay))
        clock.advance(delay)
    ((claimed, token),) = client.exchange(worker, [], want=1, registry=tasks)[1]
    assert fail(client, worker, token).status == "failed"  # max_retries=3: 4 attempts
    assert client.get_job(job.job_id, org="acme").attempts == 4


def test_jitter_spreads_the_wait_between_half_and_all_of_it(client, clock):
    job = client.submit("jit", org="acme")
    worker = make_worker(client)
    waits = set()
    for _ in range(20):
        clock.advance(20)
        ((_, token),) = client.exchange(worker, [], want=1, registry=tasks)[1]
        requeued = fail(client, worker, token)
        from asyncjobs.clock import parse_iso

        waits.add((parse_iso(requeued.run_after) - clock.moment).total_seconds())
    assert all(5.0 <= w <= 10.0 for w in waits) and len(waits) > 10
    assert client.get_job(job.job_id, org="acme").status == "queued"


def test_a_non_retryable_error_fails_at_once(client):
    job = client.submit("t", org="acme")
    worker = make_worker(client)
    ((_, token),) = client.exchange(worker, [], want=1, registry=tasks)[1]
    assert fail(client, worker, token, retryable=False).status == "failed"
    assert client.get_job(job.job_id, org="acme").attempts == 1


def test_an_outcome_under_an_expired_lease_is_refused_and_recorded(client, clock):
    job = client.submit("t", org="acme")
    slow = make_worker(client, "slow", lease=10)
    fast = make_worker(client, "fast", lease=10)
    ((_, stale_token),) = client.exchange(slow, [], want=1, registry=tasks)[1]
    clock.advance(11)  # the slow worker missed its heartbeats
    assert client.heartbeat(fast, []).lost == []
    # One exchange rescues the expired lease and claims the job again.
    ((reclaimed, token),) = client.exchange(fast, [], want=1, registry=tasks)[1]
    assert reclaimed.attempts == 2 and reclaimed.worker_id == "wrk_fast"
    late = {"job_id": job.job_id, "ok": True, "value": "late"}
    finished, _ = client.exchange(slow, [(stale_token, late)], want=0, registry=tasks)
    assert finished == []
    assert client.heartbeat(slow, [stale_token]).lost == [stale_token]
    current = client.get_job(job.job_id, org="acme")
    assert current.status == "running" and current.worker_id == "wrk_fast"
    ok = {"job_id": job.job_id, "ok": True, "value": "on time"}
    finished, _ = client.exchange(fast, [(token, ok)], want=0, registry=tasks)
    assert finished[0].status == "completed"
    types = [e.event_type for e in client.events(job.job_id, org="acme")]
    assert types.count("async.job.lease_expired") == 1
    assert (
        types.count("async.job.stale_outcome_refused") == 2
    )  # the outcome and the heartbeat
    assert len(exported(client, "results", job_id=job.job_id)) == 1
    assert len(exported(client, "notifications", job_id=job.job_id)) == 1


def test_a_live_lease_is_never_rescued(client, clock):
    client.submit("t", org="acme")
    one, two = (
        make_worker(client, "one", lease=10),
        make_worker(client, "two", lease=10),
    )
    ((job, token),) = client.exchange(one, [], want=1, registry=tasks)[1]
    for _ in range(5):
        clock.advance(3)
        assert client.heartbeat(one, [token]).lost == []
        assert client.exchange(two, [], want=1, registry=tasks)[1] == []
    assert client.get_job(job.job_id, org="acme").attempts == 1


@pytest.mark.jsonfile  # on PostgreSQL every host reads the database's clock
def test_a_clock_an_hour_ahead_does_not_take_a_live_lease(client, clock, store_url):
    """A worker's watch: its wall clock alone cannot end a lease another renews."""
    client.submit("t", org="acme")
    holder = make_worker(client, "holder", lease=10)
    client.register_worker(holder)
    ((job, token),) = client.exchange(holder, [], want=1, registry=tasks)[1]
    rescuer = make_worker(client, "rescuer", lease=2)  # a shorter lease of its own
    monotonic = [100.0]
    watch = running.LeaseWatch(lambda: monotonic[0])
    ahead = Client(store_url, clock=FixedClock("2026-11-01T13:00:00Z"))

    def rescue() -> list:
        return ahead.exchange(rescuer, [], want=1, registry=tasks, watch=watch)[1]

    assert rescue() == []  # every lease looks over to it; the watch starts
    for _ in range(5):
        monotonic[0] += 9  # under the holder's 10 s lease each time
        clock.advance(9)
        assert rescue() == []
        assert client.heartbeat(holder, [token]).lost == []  # renewed: seen anew
        assert rescue() == []
    monotonic[0] += 9.9
    assert rescue() == []  # unrenewed for 9.9 s of the holder's 10 s
    monotonic[0] += 0.1
    ((again, _),) = rescue()  # a whole lease period without a renewal: over
    assert again.job_id == job.job_id and again.attempts == 2
    types = [e.event_type for e in client.events(job.job_id, org="acme")]
    assert types.count("async.job.lease_expired") == 1
    ahead.close()


def test_the_same_terminal_transition_twice_makes_one_notification(client):
    job = client.submit("t", org="acme")
    worker = make_worker(client)
    ((_, token),) = client.exchange(worker, [], want=1, registry=tasks)[1]
    ok = {"job_id": job.job_id, "ok": True, "value": 1}
    client.exchange(worker, [(token, ok), (token, ok)], want=0, registry=tasks)
    assert len(exported(client, "notifications", job_id=job.job_id)) == 1
    assert len(exported(client, "results", job_id=job.job_id)) == 1


held = TaskRegistry()
held.breaker("dep", fail_max=2, reset_timeout=60)


@held.task(name="plain")
def plain() -> None: ...


@held.task(name="guarded", breaker="dep")
def guarded() -> None: ...


@held.task(name="once", max_retries=0)
def once() -> None: ...


@pytest.mark.parametrize("stopper", ["guarded", "once"])
def test_jobs_claimed_ahead_never_pass_one_that_may_not_be_held(client, stopper):
    """A worker holds only the head of the claim order: not a job behind a
    breaker (it might open meanwhile), nor one left no retry (a crash would
    fail it unrun), nor anything after such a job."""
    first, stop, after = client.submit_many(
        [{"task": name, "org": "acme"} for name in ("plain", stopper, "plain")],
        tasks=held,
    )
    worker = make_worker(client)
    _, claimed = client.exchange(worker, [], want=1, ahead=5, registry=held)
    assert [job.job_id for job, _ in claimed] == [first.job_id]
    _, claimed = client.exchange(worker, [], want=1, ahead=5, registry=held)
    assert [job.job_id for job, _ in claimed] == [stop.job_id, after.job_id]
