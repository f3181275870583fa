"""Periodic schedules: slots, next runs and keys as the beat and `schedules` see them.

Client.schedules on a real store is checked in
tests/integration/test_schedules_listed.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from asyncjobs import TaskRegistry
from asyncjobs.domain import schedules
from asyncjobs.domain.cron import Cron

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


# -- the rows of `asyncjobs schedules` ------------------------------------------------


def entry(name: str, **periodic) -> dict:
    return {
        "name": name,
        "queue": "maintenance",
        "priority": 7,
        "periodic": {"every": None, "cron": None, "org": "ops", **periodic},
        "published_at": "2026-11-01T00:00:00.000000Z",
        "published_by": "wrk_1",
    }


def test_rows_give_each_periodic_task_its_last_slot_and_next_run():
    now = at("2026-11-01 12:34:56")
    found = schedules.rows(
        [
            entry("tick", every=60),
            entry("cleanup", cron="0 2 * * *"),
            {"name": "report", "queue": "default", "periodic": None},  # not periodic
        ],
        {"tick": "2026-11-01T12:34:00.000000Z"},
        now=now,
    )
    assert found == [
        {
            "name": "cleanup",
            "every": None,
            "cron": "0 2 * * *",
            "queue": "maintenance",
            "priority": 7,
            "org": "ops",
            "last_slot_at": None,
            "next_run_at": "2026-11-02T02:00:00.000000Z",
        },
        {
            "name": "tick",
            "every": 60,
            "cron": None,
            "queue": "maintenance",
            "priority": 7,
            "org": "ops",
            "last_slot_at": "2026-11-01T12:34:00.000000Z",
            "next_run_at": "2026-11-01T12:35:00.000000Z",
        },
    ]


def test_rows_read_what_they_can_of_entries_another_version_wrote():
    now = at("2026-11-01 12:00")
    found = schedules.rows(
        [
            {"name": "old", "periodic": {"every": 30, "org": "system"}},
            entry("future", cron="0 2 * * * 2027"),
            entry("broken", every="soon"),
            {"name": "no-org", "periodic": {"every": 30}},
            {"periodic": {"every": 30, "org": "system"}},
            "not an entry",
        ],
        {},
        now=now,
    )
    assert [
        (r["name"], r["queue"], r["priority"], r["next_run_at"]) for r in found
    ] == [
        ("broken", "maintenance", 7, None),
        ("future", "maintenance", 7, None),
        ("old", "default", 5, "2026-11-01T12:00:30.000000Z"),
    ]


def test_the_last_slot_is_the_newest_key_of_that_task_alone():
    keys = [
        "periodic:tick:2026-11-01T12:00:00.000000Z",
        "periodic:tick:2026-11-01T12:02:00.000000Z",
        "periodic:tick:2026-11-01T12:01:00.000000Z",
        "periodic:tick:later:2026-11-01T13:00:00.000000Z",  # task "tick:later"
        "periodic:ticker:2026-11-01T14:00:00.000000Z",
        "my-own-key",
        None,
    ]
    assert schedules.last_slot("tick", keys) == "2026-11-01T12:02:00.000000Z"
    assert schedules.last_slot("tock", keys) is None


def test_an_apps_periodic_tasks_read_like_catalog_entries():
    tasks = TaskRegistry()
    tasks.periodic(name="cleanup", cron="@daily", org="ops", queue="slow")(lambda: None)
    tasks.task(name="plain")(lambda: None)
    (described,) = [e for e in tasks.describe() if e["periodic"] is not None]
    assert {k: described[k] for k in ("name", "queue", "priority", "periodic")} == {
        "name": "cleanup",
        "queue": "slow",
        "priority": 5,
        "periodic": {"every": None, "cron": "@daily", "org": "ops", "payload": {}},
    }
