"""Periodic schedules: slots, next runs and keys as the beat and `schedules` see them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from asyncjobs import TaskRegistry, schedules
from asyncjobs.cron import Cron

SETTINGS = settings(max_examples=200, deadline=None, derandomize=True)
NOW = st.datetimes(
    min_value=datetime(2000, 1, 1),
    max_value=datetime(2100, 1, 1),
    timezones=st.just(UTC),
)
LINES = st.sampled_from(
    ["* * * * *", "*/15 * * * *", "0 9 * * mon-fri", "30 2 1,15 * sun", "@daily"]
)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@SETTINGS
@given(every=st.integers(1, 7 * 86400), now=NOW)
def test_an_every_schedules_next_slot_is_the_slot_after_the_current_one(every, now):
    current = schedules.slot(every=every, cron=None, now=now)
    upcoming = schedules.next_slot(every=every, cron=None, now=now)
    assert current <= now < upcoming == current + timedelta(seconds=every)
    assert schedules.slot(every=every, cron=None, now=upcoming) == upcoming
    just_before = upcoming - timedelta(microseconds=1)
    assert schedules.slot(every=every, cron=None, now=just_before) == current


@SETTINGS
@given(line=LINES, now=NOW)
def test_a_cron_schedules_next_slot_is_the_next_minute_the_beat_enqueues(line, now):
    cron = Cron.parse(line)
    upcoming = schedules.next_slot(every=None, cron=cron, now=now)
    assert upcoming > now
    assert schedules.slot(every=None, cron=cron, now=upcoming) == upcoming
    assert schedules.slot(every=None, cron=cron, now=upcoming + timedelta(seconds=59))
    # no minute in between is a slot
    minute = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    while minute < upcoming and minute < now + timedelta(days=2):
        assert schedules.slot(every=None, cron=cron, now=minute) is None
        minute += timedelta(minutes=1)


def test_a_periodic_task_tells_its_slots():
    tasks = TaskRegistry()
    tasks.periodic(name="cleanup", cron="0 2 * * *")(lambda: None)
    tasks.periodic(name="tick", every=60)(lambda: None)
    cleanup, tick = tasks.periodics["cleanup"], tasks.periodics["tick"]
    assert cleanup.slot(at("2026-11-01 02:00:30")) == at("2026-11-01 02:00")
    assert cleanup.slot(at("2026-11-01 02:01")) is None
    assert cleanup.next_slot(at("2026-11-01 02:00")) == at("2026-11-02 02:00")
    assert tick.slot(at("2026-11-01 02:00:30")) == at("2026-11-01 02:00")
    assert tick.next_slot(at("2026-11-01 02:00:30")) == at("2026-11-01 02:01")


def test_a_slots_key_names_the_task_and_the_slot():
    assert (
        schedules.key("cleanup", at("2026-11-01 02:00"))
        == "periodic:cleanup:2026-11-01T02:00:00.000000Z"
    )
