"""What every engine promises (store/ports.py), checked through its operations only."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest

from asyncjobs import clock as clocks
from asyncjobs.domain import bulk, lifecycle, retention, scheduling
from asyncjobs.errors import InvalidInput, NotFound
from asyncjobs.records import Job, JobStatus
from asyncjobs.services import running
from asyncjobs.store import Store

T0 = clocks.parse_iso("2026-11-01T12:00:00Z")


def at(seconds: float) -> clocks.FixedClock:
    return clocks.FixedClock(T0 + timedelta(seconds=seconds))


def new(
    org: str = "acme",
    *,
    task: str = "t",
    queue: str = "default",
    priority: int = 5,
    key: str | None = None,
    now: datetime = T0,
    delay: float = 0,
) -> tuple[Job, object]:
    return lifecycle.submit(
        task=task,
        org=org,
        payload={},
        queue=queue,
        priority=priority,
        run_after=now + timedelta(seconds=delay),
        idempotency_key=key,
        max_retries=3,
        now=now,
    )


def submit(store: Store, *specs: dict, seconds: float = 0) -> list[Job]:
    clock = at(seconds)
    with store.transaction(clock=clock) as tx:
        return tx.submit([new(now=clock(), **spec) for spec in specs])


def claim(
    store: Store, n: int, *, seconds: float = 0, lease: float = 60, queues=("default",)
):
    with store.transaction(clock=at(seconds)) as tx:
        return running.claim(
            tx,
            worker_id="wrk_1",
            queues=list(queues),
            limit=n,
            lease_seconds=lease,
            registry=None,
            now=tx.now,
        )


# -- now ---------------------------------------------------------------------


def test_the_moment_of_a_transaction_is_the_engines_unless_a_clock_overrides_it(
    backend,
):
    before = clocks.now()
    with backend.read() as tx:
        moment = tx.now
    assert before <= moment <= clocks.now()
    with backend.read(clock=at(5)) as tx:
        assert tx.now == T0 + timedelta(seconds=5)


# -- submit ------------------------------------------------------------------


def test_submit_inserts_jobs_in_order_and_a_known_key_gets_the_first_job(backend):
    first, second = submit(backend, {"key": "k1"}, {})
    again = submit(backend, {"key": "k1"}, {"org": "other", "key": "k1"})
    assert again[0].job_id == first.job_id and again[0].deduplicated
    assert (
        again[1].job_id != first.job_id and not again[1].deduplicated
    )  # keys are per org
    with backend.read() as tx:
        assert tx.job(second.job_id).status is JobStatus.QUEUED
        page, _ = tx.page_events(first.job_id, org="acme", limit=10)
    assert [e["seq"] for e in page] == [1]  # the deduplicated submit wrote no event


def test_the_same_key_twice_in_one_submit_makes_one_job(backend):
    a, b = submit(backend, {"key": "k"}, {"key": "k"})
    assert a.job_id == b.job_id and b.deduplicated and not a.deduplicated


def test_concurrent_submitters_of_one_key_make_one_job(
    opener: Callable[[], Store], backend
):
    stores = [opener() for _ in range(6)]
    barrier = threading.Barrier(len(stores))
    got: list[Job] = []

    def submitter(store: Store) -> None:
        barrier.wait()
        got.extend(submit(store, {"key": "race"}))

    threads = [threading.Thread(target=submitter, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for store in stores:
        store.close()
    assert len({job.job_id for job in got}) == 1
    assert sorted(job.deduplicated for job in got) == [False] + [True] * 5
    with backend.read() as tx:
        jobs, _ = tx.page_jobs("acme", limit=10)
    assert len(jobs) == 1


# -- claim order -------------------------------------------------------------


def test_claims_take_higher_priority_first_then_orgs_in_turn(backend):
    submit(backend, *[{"org": "flood"} for _ in range(50)])
    submit(backend, {"org": "small"}, {"org": "small"}, seconds=1)
    submit(backend, {"org": "urgent", "priority": 9}, seconds=2)
    taken = [job.org_id for job, _ in claim(backend, 6, seconds=3)]
    assert taken[0] == "urgent"
    # the later org is not behind the whole flood: orgs alternate
    assert taken[1:5].count("small") == 2


def test_a_worker_on_several_queues_claims_in_one_order_across_them(backend):
    submit(backend, *[{"queue": "bulk"} for _ in range(20)])
    submit(backend, {"queue": "mail", "priority": 9}, seconds=1)
    submit(backend, {"queue": "other", "priority": 9}, seconds=1)
    submit(backend, *[{"queue": "mail", "org": f"o{n}"} for n in range(3)], seconds=2)
    queued = [j for j in backend.export()["jobs"].values() if j["queue"] != "other"]
    taken = claim(backend, 25, seconds=3, queues=("bulk", "mail"))
    assert [job.queue for job, _ in taken[:1]] == ["mail"]  # priority first
    assert len(taken) == 24  # every job of both queues, none of the third
    # one claim order, whichever queue a job is in (domain/scheduling.py)
    in_order = sorted(queued, key=scheduling.claim_key)
    assert [job.job_id for job, _ in taken] == [j["job_id"] for j in in_order]


def test_a_flood_from_one_org_delays_another_orgs_single_job_by_a_handful_of_claims(
    backend,
):
    with backend.transaction(clock=at(0)) as tx:
        tx.submit([new("flood", now=T0) for _ in range(10_000)])
    submit(backend, {"org": "single"}, seconds=1)
    position = None
    for n in range(1, 20):
        ((job, _),) = claim(backend, 1, seconds=2)
        if job.org_id == "single":
            position = n
            break
    assert position is not None and position <= 3


def test_a_delayed_job_is_not_claimed_before_its_time_and_is_after_it(backend):
    (late,) = submit(backend, {"delay": 30})
    assert claim(backend, 1, seconds=10) == []
    ((job, token),) = claim(backend, 1, seconds=31)
    assert job.job_id == late.job_id and token.attempt == 1


def test_two_claimers_never_take_the_same_job(opener: Callable[[], Store], backend):
    submit(backend, *[{} for _ in range(40)])
    stores = [opener() for _ in range(4)]
    taken: list[str] = []
    lock = threading.Lock()

    def claimer(store: Store) -> None:
        while True:
            got = claim(store, 3)
            if not got:
                return
            with lock:
                taken.extend(job.job_id for job, _ in got)

    threads = [threading.Thread(target=claimer, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for store in stores:
        store.close()
    assert len(taken) == 40 and len(set(taken)) == 40


# -- fencing, leases ---------------------------------------------------------


def test_an_outcome_under_a_superseded_token_is_refused_and_recorded(backend):
    submit(backend, {})
    ((job, token),) = claim(backend, 1, lease=10)
    with backend.transaction(clock=at(20)) as tx:
        assert [j.job_id for j in tx.expired_leases(10)] == [job.job_id]
        running.expire_leases(tx, None, tx.now)
    ((_, second),) = claim(backend, 1, seconds=21, lease=10)
    assert second.attempt == 2
    with backend.transaction(clock=at(22)) as tx:
        assert running.finish(tx, token, {"ok": True, "value": 1}, None, tx.now) is None
    with backend.read() as tx:
        assert tx.job(job.job_id).status is JobStatus.RUNNING
        events, _ = tx.page_events(job.job_id, org="acme", limit=20)
    assert "async.job.stale_outcome_refused" in [e["event_type"] for e in events]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))


def test_expired_leases_are_those_ended_before_now_oldest_first_and_bounded(backend):
    submit(backend, *[{} for _ in range(5)])
    claimed = [claim(backend, 1, seconds=n, lease=10)[0][0] for n in range(5)]
    with backend.read(clock=at(12.5)) as tx:
        over = tx.expired_leases(limit=10)
    assert [j.job_id for j in over] == [j.job_id for j in claimed[:3]]
    with backend.read(clock=at(100)) as tx:
        assert [j.job_id for j in tx.expired_leases(limit=2)] == [
            j.job_id for j in claimed[:2]
        ]


def test_a_terminal_transition_makes_one_notification(backend):
    (job,) = submit(backend, {})
    ((job, token),) = claim(backend, 1)
    with backend.transaction(clock=at(1)) as tx:
        done = running.finish(tx, token, {"ok": True, "value": 7}, None, tx.now)
        _, added = lifecycle.complete(done, result_id="res_x", now=tx.now)
        tx.save(*added)  # the same transition again
    with backend.read() as tx:
        notes, _ = tx.page_notifications(
            job.job_id, org="acme", channel="in_app", limit=10
        )
        result = tx.result(done.result_id)
    assert len(notes) == 1
    assert result.value == 7 and result.org_id == "acme"


# -- pages -------------------------------------------------------------------


def test_a_walk_of_pages_is_newest_first_and_stable_under_concurrent_submits(backend):
    jobs = []
    for n in range(25):
        jobs += submit(backend, {}, seconds=n)
    seen = []
    cursor = None
    while True:
        with backend.read() as tx:
            page, cursor = tx.page_jobs("acme", limit=7, cursor=cursor)
        seen += [r["job_id"] for r in page]
        submit(
            backend, {}, seconds=100 + len(seen)
        )  # newer ones never show up mid-walk
        if cursor is None:
            break
    assert seen == [j.job_id for j in reversed(jobs)]


def test_a_cursor_is_bound_to_its_org_and_filters(backend):
    submit(backend, *[{} for _ in range(3)])
    with backend.read() as tx:
        _, cursor = tx.page_jobs("acme", limit=1)
        with pytest.raises(InvalidInput):
            tx.page_jobs("other", limit=1, cursor=cursor)
        with pytest.raises(InvalidInput):
            tx.page_jobs("acme", statuses=["queued"], limit=1, cursor=cursor)


def test_mark_read_refuses_another_orgs_notification_before_changing_any(backend):
    for org in ("acme", "other"):
        submit(backend, {"org": org})
    with backend.transaction(clock=at(1)) as tx:
        for job in [
            tx.job(r["job_id"])
            for org in ("acme", "other")
            for r in tx.page_jobs(org, limit=5)[0]
        ]:
            tx.save(*lifecycle.cancel(job, now=tx.now)[1])
    with backend.read() as tx:
        mine = tx.page_inbox("acme", unread=True, limit=5)[0][0]["notification_id"]
        theirs = tx.page_inbox("other", unread=True, limit=5)[0][0]["notification_id"]
    with pytest.raises(NotFound):
        with backend.transaction() as tx:
            tx.mark_read("acme", [mine, theirs], "2026-11-01T12:00:02.000000Z")
    with backend.transaction() as tx:
        assert tx.page_inbox("acme", unread=True, limit=5)[0]  # still unread
        assert tx.mark_read("acme", None, "2026-11-01T12:00:02.000000Z") == 1


# -- store-wide --------------------------------------------------------------


def test_summary_counts_jobs_by_status(backend):
    submit(backend, *[{} for _ in range(4)])
    claim(backend, 1)
    with backend.read(clock=at(1)) as tx:
        summary = tx.summary(stale_seconds=300)
    assert summary["by_status_queue"] == {
        ("queued", "default"): 3,
        ("running", "default"): 1,
    }
    assert summary["running"] == 1 and summary["runnable"] == 3
    assert summary["counters"]["jobs_submitted_total"] == 4


def end(store: Store, seconds: float, *specs: tuple[str, str, str]) -> list[Job]:
    """Submit one job per (org, task, error type) and end it ``seconds`` after T0:
    failed with that error, or canceled for an empty error type."""
    jobs = [
        j for org, task, _ in specs for j in submit(store, {"org": org, "task": task})
    ]
    with store.transaction(clock=at(seconds)) as tx:
        for job, (_, _, kind) in zip(jobs, specs, strict=True):
            if kind:
                error = {"type": kind, "message": f"{kind} at {seconds:g}"}
                ended, added = lifecycle._failed(job, error, tx.now)
            else:
                ended, added = lifecycle.cancel(job, now=tx.now)
            tx.save(ended, *added)
    return jobs


def test_failure_groups_count_an_orgs_failures_by_task_and_error_per_window(backend):
    end(backend, -8 * 86400, ("acme", "t", "Old"))  # over a week ago
    end(backend, -2 * 86400, ("acme", "t", "KeyError"))
    end(backend, -1800, ("acme", "t", "KeyError"), ("acme", "u", "OSError"))
    end(backend, -60, ("acme", "t", "KeyError"), ("acme", "t", ""))
    end(backend, -30, ("other", "t", "KeyError"))  # another org's
    with backend.read(clock=at(0)) as tx:
        groups = tx.failure_groups("acme")
    assert [tuple(g[:5]) for g in groups] == [
        ("t", "KeyError", 2, 2, 3),
        ("u", "OSError", 1, 1, 1),
    ]
    newest = groups[0]
    assert newest.newest_message == "KeyError at -60"
    assert newest.newest_at == clocks.to_iso(T0 - timedelta(seconds=60))


def test_throughput_counts_an_orgs_ended_jobs_by_minute_and_status(backend):
    end(backend, -3600, ("acme", "t", "KeyError"))  # before the window
    end(backend, -125, ("acme", "t", "KeyError"), ("acme", "t", ""))
    end(backend, -5, ("acme", "t", ""), ("other", "t", ""))
    with backend.read(clock=at(0)) as tx:
        rows = tx.throughput("acme", clocks.to_iso(T0 - timedelta(seconds=600)))
    assert rows == [
        ("2026-11-01T11:57", "canceled", 1),
        ("2026-11-01T11:57", "failed", 1),
        ("2026-11-01T11:59", "canceled", 1),
    ]


def test_a_transaction_sees_the_jobs_it_ended_in_its_own_figures(backend):
    jobs = submit(backend, {}, {})
    with backend.transaction(clock=at(10)) as tx:
        failed, added = lifecycle._failed(jobs[0], {"type": "E"}, tx.now)
        tx.save(failed, *added)
        assert [g.last_hour for g in tx.failure_groups("acme")] == [1]
        retried, event = lifecycle.retry(tx.job(jobs[0].job_id), now=tx.now)
        tx.save(retried, event)
        assert tx.failure_groups("acme") == []
        assert tx.throughput("acme", clocks.to_iso(T0)) == []


def test_a_page_of_jobs_filters_by_error_type_and_its_cursor_keeps_to_it(backend):
    end(backend, -60, *[("acme", "t", "KeyError")] * 3, ("acme", "t", "OSError"))
    with backend.read() as tx:
        page, cursor = tx.page_jobs("acme", error_type="KeyError", limit=2)
        rest, last = tx.page_jobs("acme", error_type="KeyError", limit=2, cursor=cursor)
        with pytest.raises(InvalidInput):
            tx.page_jobs("acme", error_type="OSError", limit=2, cursor=cursor)
    assert len(page) == 2 and len(rest) == 1 and last is None
    assert {r["error"]["type"] for r in page + rest} == {"KeyError"}


def test_a_count_of_matches_applies_every_filter_of_a_bulk_action(backend):
    end(backend, -7200, ("acme", "t", "KeyError"))
    end(backend, -60, ("acme", "t", "KeyError"), ("acme", "u", "KeyError"))
    end(backend, -60, ("acme", "t", "OSError"), ("other", "t", "KeyError"))
    (running,) = submit(backend, {"queue": "q"})
    claim(backend, 1, queues=("q",))
    submit(backend, {"queue": "q"})
    with backend.transaction() as tx:
        asked, added = lifecycle.cancel(tx.job(running.job_id), now=tx.now)
        assert asked.status == "running" and asked.cancel_requested_at is not None
        tx.save(asked, *added)

    def count(action: str, up_to: int = 100, **filters) -> tuple[int, bool]:
        with backend.read(clock=at(0)) as tx:
            wanted = bulk.criteria(action, **filters)
            return tx.count_matching("acme", wanted, up_to)

    assert count("retry") == (4, False)
    assert count("retry", up_to=3) == (3, True)
    assert count("retry", error_type="KeyError", task="t") == (2, False)
    assert count("retry", failed_since=clocks.to_iso(T0 - timedelta(seconds=600))) == (
        3,
        False,
    )
    assert count("retry", created_before=clocks.to_iso(T0)) == (0, False)
    later = clocks.to_iso(T0 + timedelta(seconds=1))
    assert count("retry", created_before=later) == (4, False)
    assert count("cancel", queue="q") == (1, False)  # not the one asked to stop


def test_an_error_type_that_is_no_text_matches_no_filter(backend):
    (job,) = submit(backend, {})
    with backend.transaction() as tx:
        failed, added = lifecycle._failed(job, {"type": 5}, tx.now)
        tx.save(failed, *added)
    with backend.read() as tx:
        assert tx.page_jobs("acme", error_type="5", limit=5)[0] == []
        wanted = bulk.criteria("retry", error_type="5")
        assert tx.count_matching("acme", wanted, 10) == (0, False)
        assert tx.count_matching("acme", bulk.criteria("retry"), 10) == (1, False)


def test_the_change_mark_moves_with_every_commit(backend):
    with backend.read() as tx:
        before = tx.change_mark()
    submit(backend, {})
    with backend.read() as tx:
        after = tx.change_mark()
    assert after != before


def test_purge_deletes_only_expired_records_of_terminal_jobs_and_a_dry_run_nothing(
    backend,
):
    submit(backend, {}, {})
    ((job, token),) = claim(backend, 1)
    with backend.transaction(clock=at(1)) as tx:
        running.finish(tx, token, {"ok": True, "value": 1}, None, tx.now)
    policy = retention.Policy(
        results_ttl_seconds=0, events_ttl_seconds=0, jobs_ttl_seconds=0
    )
    with backend.read(clock=at(3600)) as tx:
        dry = tx.purge(policy, dry_run=True)
    assert dry.deleted["jobs"] == {job.job_id}
    with backend.transaction(clock=at(3600)) as tx:
        plan = tx.purge(policy, dry_run=False)
    assert plan.deleted == dry.deleted
    with backend.read() as tx:
        assert tx.job(job.job_id) is None
        left, _ = tx.page_jobs("acme", limit=10)
        assert [r["status"] for r in left] == ["queued"]
        assert tx.problems() == ([], [])
