"""Cron lines: the grammar, Vixie's day rule, and next_after, checked against cronsim.

cronsim (a test dependency only) reads five-field lines as Debian's Vixie
cron does: a day field that starts with ``*`` makes both day fields count,
and 7 is Sunday. Random lines drawn from the grammar must be accepted or
refused alike, and name the same minutes.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cronsim import CronSim, CronSimError
from hypothesis import given, settings
from hypothesis import strategies as st

from asyncjobs import InvalidInput, TaskRegistry
from asyncjobs.domain.cron import MONTH_NAMES, WEEKDAY_NAMES, Cron


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def runs(line: str, after: str, count: int = 3) -> list[str]:
    cron, moment, found = Cron.parse(line), at(after), []
    for _ in range(count):
        moment = cron.next_after(moment)
        found.append(moment.strftime("%Y-%m-%d %H:%M %a"))
    return found


# -- the grammar ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "after", "expected"),
    [
        ("*/15 * * * *", "2026-11-01 12:07", ["12:15", "12:30", "12:45"]),
        ("5/10 * * * *", "2026-11-01 12:07", ["12:15", "12:25", "12:35"]),
        ("1-5/2 9 * * *", "2026-11-01 00:00", ["09:01", "09:03", "09:05"]),
        ("0,30 8-9 * * *", "2026-11-01 08:10", ["08:30", "09:00", "09:30"]),
    ],
)
def test_lists_ranges_and_steps_name_the_minutes_cron_would(line, after, expected):
    assert [r[11:16] for r in runs(line, after)] == expected


def test_month_and_weekday_names_are_read_in_any_case():
    assert runs("0 9 * JAN-mar Mon-Fri", "2026-11-01 00:00", 2) == [
        "2027-01-01 09:00 Fri",
        "2027-01-04 09:00 Mon",
    ]
    assert Cron.parse("0 0 * dec sun").weekdays == (0,)


def test_a_range_of_one_value_keeps_that_value_whatever_its_step():
    assert Cron.parse("3-3/5 * * * *").minutes == (3,)
    assert Cron.parse("3/20 * * * *").minutes == (3, 23, 43)


def test_seven_is_sunday_as_well_as_zero():
    sundays = ["2026-11-08 00:00 Sun", "2026-11-15 00:00 Sun"]
    assert runs("0 0 * * 7", "2026-11-01 12:00", 2) == sundays
    assert runs("0 0 * * 0", "2026-11-01 12:00", 2) == sundays
    assert Cron.parse("0 0 * * 5-7").weekdays == (0, 5, 6)


def test_macros_are_their_five_field_lines():
    for macro, line in [
        ("@hourly", "0 * * * *"),
        ("@daily", "0 0 * * *"),
        ("@weekly", "0 0 * * 0"),
        ("@monthly", "0 0 1 * *"),
        ("@yearly", "0 0 1 1 *"),
        ("@ANNUALLY", "0 0 1 1 *"),
    ]:
        assert runs(macro, "2026-11-01 12:34") == runs(line, "2026-11-01 12:34")
    assert Cron.parse("@daily").text == "@daily"


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("* * * *", "five fields"),
        ("* * * * * *", "five fields"),
        ("@reboot", "not a macro"),
        ("60 * * * *", "minute field '60'"),
        ("* 24 * * *", "hour field '24'"),
        ("* * 0 * *", "day of month field '0'"),
        ("* * * 13 *", "month field '13'"),
        ("* * * * 8", "day of week field '8'"),
        ("* * * * mon-sun", "runs backwards"),
        ("* * * fri *", "month field 'fri'"),
        ("* * * * january", "day of week field 'january'"),
        ("*/0 * * * *", "the step 0"),
        ("*/61 * * * *", "the step 61"),
        ("1-5/x * * * *", "the step 'x'"),
        ("1,,2 * * * *", "minute field '1,,2'"),
        ("*-5 * * * *", "minute field"),
        ("+5 * * * *", "minute field '+5'"),
        ("L * * * *", "minute field 'L'"),
        ("* * L * *", "day of month field 'L'"),
        ("* * * * 5#2", "day of week field '5#2'"),
        ("* * ? * *", "day of month field '?'"),
        ("9" * 5000 + " * * * *", "out of range"),
    ],
)
def test_anything_else_is_refused_naming_the_field(line, words):
    with pytest.raises(InvalidInput) as refused:
        Cron.parse(line)
    assert words in str(refused.value)


# -- Vixie's day rule -------------------------------------------------------------


def test_a_day_may_match_either_field_when_both_are_restricted():
    # the 1st and the 15th, and every Monday
    assert runs("0 0 1,15 * mon", "2026-11-01 12:00", 4) == [
        "2026-11-02 00:00 Mon",
        "2026-11-09 00:00 Mon",
        "2026-11-15 00:00 Sun",
        "2026-11-16 00:00 Mon",
    ]


def test_a_day_field_starting_with_a_star_makes_both_fields_count():
    # */2 is "odd days", and it starts with *: odd days that are Mondays
    assert runs("0 0 */2 * mon", "2026-11-01 12:00", 3) == [
        "2026-11-09 00:00 Mon",
        "2026-11-23 00:00 Mon",
        "2026-12-07 00:00 Mon",
    ]
    # the first seven days and */7 (Sunday): the first Sunday of the month
    assert runs("0 0 1-7 * */7", "2026-11-02 00:00", 2) == [
        "2026-12-06 00:00 Sun",
        "2027-01-03 00:00 Sun",
    ]
    # a bare * in one field: the other alone decides
    assert runs("0 0 * * mon", "2026-11-01 12:00", 1) == ["2026-11-02 00:00 Mon"]
    assert runs("0 0 13 * *", "2026-11-01 12:00", 1) == ["2026-11-13 00:00 Fri"]


# -- next_after and matches -------------------------------------------------------


def test_next_after_is_strictly_after_and_on_the_minute():
    cron = Cron.parse("* * * * *")
    assert cron.next_after(at("2026-11-01 12:00")) == at("2026-11-01 12:01")
    assert cron.next_after(at("2026-11-01 12:00:59.999999")) == at("2026-11-01 12:01")
    noon = Cron.parse("0 12 * * *")
    assert noon.next_after(at("2026-11-01 11:59:30")) == at("2026-11-01 12:00")
    assert noon.next_after(at("2026-11-01 12:00")) == at("2026-11-02 12:00")


def test_next_after_reads_other_offsets_and_answers_in_utc():
    plus_two = datetime.fromisoformat("2026-11-01T13:30:00+02:00")  # 11:30 UTC
    found = Cron.parse("0 12 * * *").next_after(plus_two)
    assert found == at("2026-11-01 12:00") and found.tzinfo is UTC
    assert Cron.parse("0 12 * * *").next_after(datetime(2026, 11, 1, 11, 30)) == found


def test_rare_lines_are_found_in_few_steps(monkeypatch):
    months_read = []
    day_from = Cron._day_from

    def counted(self, year, month, day):
        months_read.append((year, month))
        return day_from(self, year, month, day)

    monkeypatch.setattr(Cron, "_day_from", counted)
    # the 29th of February
    assert runs("0 0 29 2 *", "2026-11-01 00:00", 2) == [
        "2028-02-29 00:00 Tue",
        "2032-02-29 00:00 Sun",
    ]
    # a 31st or a Monday (either: both restricted)
    assert runs("0 0 31 * 1", "2026-11-01 00:00", 2) == [
        "2026-11-02 00:00 Mon",
        "2026-11-09 00:00 Mon",
    ]
    # the 29th of February that is a Sunday: 2032, then 28 years later
    assert runs("0 0 29 2 */7", "2026-11-01 00:00", 2) == [
        "2032-02-29 00:00 Sun",
        "2060-02-29 00:00 Sun",
    ]
    # no Sunday 29th of February between 2088 and 2128 (2100 is no leap year)
    assert runs("0 0 29 2 */7", "2089-01-01 00:00", 1) == ["2128-02-29 00:00 Sun"]
    # one look at each February in those years, not a walk through their minutes
    assert len(months_read) < 200


def test_a_line_that_can_never_run_is_refused_when_parsed():
    for line in ("0 0 30 2 *", "0 0 31 4,6,9,11 *", "0 0 30-31 feb */2"):
        with pytest.raises(InvalidInput) as refused:
            Cron.parse(line)
        assert "never runs" in str(refused.value)
        with pytest.raises(CronSimError):
            CronSim(line, at("2026-11-01 00:00"))
    # either day counts when both are restricted: the Mondays of February run
    assert runs("0 0 30 2 mon", "2026-11-01 00:00", 1) == ["2027-02-01 00:00 Mon"]


def test_next_after_answers_none_only_past_the_year_9999():
    assert Cron.parse("0 0 1 1 *").next_after(at("9999-06-01 00:00")) is None
    assert Cron.parse("* * * * *").next_after(at("9999-12-31 23:59")) is None
    assert Cron.parse("* * * * *").next_after(at("9999-12-31 23:58")) == at(
        "9999-12-31 23:59"
    )


def test_matches_is_the_minute_next_after_lands_on():
    cron = Cron.parse("*/20 9-17 * * mon-fri")
    assert cron.matches(at("2026-11-02 09:40:59"))
    assert not cron.matches(at("2026-11-02 09:41"))
    assert not cron.matches(at("2026-11-01 09:40"))  # a Sunday
    moment = at("2026-11-01 00:00")
    for _ in range(50):
        found = cron.next_after(moment)
        assert cron.matches(found)
        minute = moment.replace(second=0, microsecond=0) + timedelta(minutes=1)
        while minute < found:
            assert not cron.matches(minute)
            minute += timedelta(minutes=1)
        moment = found


# -- the same answers as cronsim ---------------------------------------------------

FIELDS = [  # lowest, highest, names
    (0, 59, {}),
    (0, 23, {}),
    (1, 31, {}),
    (1, 12, MONTH_NAMES),
    (0, 7, WEEKDAY_NAMES),
]


@st.composite
def values(draw, low: int, high: int, names: dict[str, int]) -> tuple[str, int]:
    number = draw(st.integers(low, high))
    by_name = {n: name for name, n in names.items()}
    if number in by_name and draw(st.booleans()):
        name = by_name[number]
        return draw(st.sampled_from([name, name.upper(), name.title()])), number
    return str(number), number


@st.composite
def items(draw, low: int, high: int, names: dict[str, int]) -> str:
    form = draw(st.sampled_from(["*", "value", "value", "range", "range", "range"]))
    stepped = draw(st.integers(0, 2)) == 0
    if form == "*":
        body = "*"
    elif form == "value":
        body = draw(values(low, high, names))[0]
    else:
        ends = [draw(values(low, high, names)), draw(values(low, high, names))]
        if draw(st.integers(0, 9)):
            ends.sort(key=lambda end: end[1])  # else now and then backwards: refused
        (first, a), (last, b) = ends
        body = f"{first}-{last}"
        # cronsim reads a one-value range with a step ("3-3/5") as "3/5", to the
        # field's end; Vixie cron reads it as 3 alone, and so does Cron
        stepped = stepped and a != b
    if not stepped:
        return body
    return f"{body}/{draw(st.integers(1, high - low + 1))}"


@st.composite
def fields(draw, low: int, high: int, names: dict[str, int]) -> str:
    if draw(st.integers(0, 3)) == 0:
        return "*"
    return ",".join(draw(st.lists(items(low, high, names), min_size=1, max_size=3)))


LINES = st.tuples(*(fields(*spec) for spec in FIELDS)).map(" ".join)
TIMES = st.datetimes(
    min_value=datetime(1970, 1, 1),
    max_value=datetime(2200, 1, 1),
    timezones=st.just(UTC),
)


def cronsim_runs(line: str, after: datetime, count: int) -> list[datetime] | None:
    """cronsim's next runs, or None where it gives up (no run within 50 years)."""
    found = []
    schedule = CronSim(line, after)
    for _ in range(count):
        try:
            found.append(next(schedule))
        except StopIteration:
            return None
    return found


@settings(max_examples=400, deadline=None, derandomize=True)
@given(line=LINES, after=TIMES)
def test_random_lines_run_when_cronsim_says(line, after):
    try:
        expected = cronsim_runs(line, after, 3)
    except CronSimError:
        with pytest.raises(InvalidInput):
            Cron.parse(line)
        return
    cron = Cron.parse(line)
    found, moment = [], after
    for _ in range(3):
        moment = cron.next_after(moment)
        found.append(moment)
    if expected is not None:
        assert found == expected
    minute = after.replace(second=0, microsecond=0)
    (sim_next,) = cronsim_runs(line, minute - timedelta(seconds=1), 1) or [None]
    assert cron.matches(after) == (sim_next == minute)
    assert all(cron.matches(m) for m in found)


def test_a_periodic_task_with_a_bad_line_is_refused_when_declared():
    tasks = TaskRegistry()
    with pytest.raises(InvalidInput) as refused:
        tasks.periodic(name="report", cron="0 9 * * mon-sun")
    assert "day of week field 'mon-sun'" in str(refused.value)
    tasks.periodic(name="report", cron="0 9 * * MON-FRI")(lambda: None)
    assert tasks.periodics["report"].cron == Cron.parse("0 9 * * MON-FRI")
