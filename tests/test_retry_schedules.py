"""Retry schedules: the rule (a function of the attempt and ``now``), the declaration
that refuses contradictions, and the waits a real worker keeps."""

from __future__ import annotations

from datetime import timedelta

import pytest

from asyncjobs import InvalidInput, TaskRegistry
from asyncjobs import clock as clocks
from asyncjobs.domain import lifecycle

from . import test_worker

# The real-worker fixtures of the worker tests.
burst = test_worker.burst  # env and runs_file come from conftest.py


def waits(policy: lifecycle.RetryPolicy, fixed: clocks.FixedClock, attempts: int):
    """The seconds each failed attempt waits, failing one a minute on the clock."""
    out = []
    for attempt in range(1, attempts + 1):
        now = fixed.advance(60)
        out.append((lifecycle.retry_at(policy, attempt, now) - now).total_seconds())
    return out


def test_listed_delays_are_waited_exactly_and_the_last_repeats(clock):
    policy = lifecycle.RetryPolicy(delays=(60, 300, 1800))
    assert waits(policy, clock, 5) == [60, 300, 1800, 1800, 1800]


def test_listed_delays_express_a_linear_minute_exactly(clock):
    listed = lifecycle.RetryPolicy(delays=(60, 120, 180))
    computed = lifecycle.RetryPolicy("linear", 60, 3600)
    assert waits(listed, clock, 3) == waits(computed, clock, 3) == [60, 120, 180]


def test_computed_backoffs_are_unchanged(clock):
    assert waits(lifecycle.RetryPolicy(), clock, 4) == [1, 2, 4, 8]
    assert waits(lifecycle.RetryPolicy("fixed", 5, 3600), clock, 2) == [5, 5]
    assert waits(lifecycle.RetryPolicy("exponential", 1000, 3600), clock, 3) == [
        1000,
        2000,
        3600,
    ]


def test_jitter_spreads_listed_delays_only_when_asked(clock):
    plain = lifecycle.RetryPolicy(delays=(60,))
    jittered = lifecycle.RetryPolicy(delays=(60,), jitter=True)
    now = clock()
    assert lifecycle.retry_at(plain, 1, now, jitter=0.0) == now + timedelta(seconds=60)
    assert lifecycle.retry_at(jittered, 1, now, jitter=0.0) == now + timedelta(
        seconds=30
    )
    assert lifecycle.retry_at(jittered, 1, now, jitter=0.5) == now + timedelta(
        seconds=45
    )


def test_retry_delays_set_max_retries_to_their_number_unless_given():
    tasks = TaskRegistry()

    @tasks.task(name="a", retry_delays=[60, 300, 1800])
    def a() -> None: ...

    @tasks.task(name="b", retry_delays=[60], max_retries=5)
    def b() -> None: ...

    assert tasks.get("a").max_retries == 3 and tasks.get("a").retry_delays == (
        60,
        300,
        1800,
    )
    assert tasks.get("b").max_retries == 5
    assert tasks.get("a").retry_backoff is None  # no computed backoff to speak of


@pytest.mark.parametrize(
    "options, words",
    [
        ({"retry_delays": []}, "retry_delays: give at least one delay"),
        ({"retry_delays": "60"}, "retry_delays: '60' is not a list"),
        ({"retry_delays": [60, -1]}, "retry_delays[1]: -1 is not a finite number"),
        ({"retry_delays": [float("nan")]}, "retry_delays[0]: nan"),
        ({"retry_delays": [True]}, "retry_delays[0]: True"),
        ({"retry_delays": [1] * 101}, "101 delays is more than the 100"),
        (
            {"retry_delays": [60], "retry_backoff": "fixed"},
            "give it or retry_backoff, not both",
        ),
        (
            {"retry_delays": [60], "retry_delay": 2, "retry_max_delay": 10},
            "give it or retry_delay and retry_max_delay, not both",
        ),
        ({"retry_delays": [60], "max_retries": 0}, "no retry to wait for"),
        ({"retry_backoff": "cubic"}, "retry_backoff: 'cubic' is not one of"),
        ({"retry_delay": -1}, "retry_delay: -1"),
    ],
)
def test_a_retry_schedule_that_contradicts_itself_is_refused_at_declaration(
    options, words
):
    tasks = TaskRegistry()
    with pytest.raises(InvalidInput) as refused:
        tasks.task(name="t", **options)
    assert words in str(refused.value)
    assert tasks.tasks == {}


def test_a_worker_waits_each_listed_delay_before_the_next_attempt(client, burst):
    job = client.submit("stepped", org="acme")
    for _ in range(100):  # a burst exits while a retry is not due; the next runs it
        burst()
        if client.get_job(job.job_id, org="acme").status != "queued":
            break
    failed = client.get_job(job.job_id, org="acme")
    assert failed.status == "failed" and failed.attempts == 4  # max_retries=3
    events = client.events(job.job_id, org="acme")
    scheduled = [e for e in events if e.event_type == "async.job.retry_scheduled"]
    started = [e for e in events if e.event_type == "async.job.started"]
    assert [e.data["delay_seconds"] for e in scheduled] == [0.2, 0.5, 0.5]
    for retry, wait, next_start in zip(scheduled, (0.2, 0.5, 0.5), started[1:]):
        at = clocks.parse_iso(retry.created_at)
        assert retry.data["run_after"] == clocks.to_iso(at + timedelta(seconds=wait))
        assert next_start.created_at >= retry.data["run_after"]  # never early
    assert failed.run_after == scheduled[-1].data["run_after"]
