"""Retry schedules: the rule (a function of the attempt and ``now``) and the declaration
that refuses contradictions. The waits a real worker keeps are checked in
tests/system/test_retry_waits.py."""

from __future__ import annotations

from datetime import timedelta

import pytest

from asyncjobs import InvalidInput, TaskRegistry
from asyncjobs import clock as clocks
from asyncjobs.domain import lifecycle


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


def test_backoff_formulas():
    assert lifecycle.backoff_seconds("exponential", 1, 100, 5, None) == 16
    assert lifecycle.backoff_seconds("exponential", 1, 100, 9, None) == 100
    assert lifecycle.backoff_seconds("linear", 2, 100, 5, None) == 10
    assert lifecycle.backoff_seconds("fixed", 2, 100, 5, 0.0) == 1.0


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
