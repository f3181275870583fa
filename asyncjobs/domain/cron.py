"""Cron lines: the five fields, and the minutes they name, in UTC.

A line is five fields, ``minute hour day-of-month month day-of-week``,
separated by blanks, or a macro::

    field = item ("," item)*
    item  = ("*" | value | value "-" value) ["/" step]
    value = a number, or a name: months jan-dec, weekdays sun-sat (any case)

A step runs over the item's values (``1-10/3`` is 1, 4, 7, 10); after a
single value it runs from that value to the end of the field (``5/10`` in the
minute field is 5, 15, ..., 55). A step may not be larger than the field's
span. Day of week is 0-7: both 0 and 7 are Sunday. Ranges run upwards:
``fri-mon`` and ``mon-sun`` are refused (write ``mon-fri``, ``1-7``).

The day rule is Vixie cron's, as cronie and Debian's cron keep it: when the
day of month or the day of week starts with ``*`` (``*``, ``*/2``), a day
must match both fields; otherwise it may match either
(``0 0 1,15 * mon`` runs on the 1st, the 15th and every Monday).

Macros: ``@hourly``, ``@daily`` (``@midnight``), ``@weekly``, ``@monthly``,
``@yearly`` (``@annually``). ``@reboot`` has no minute and is refused.

A line that no day can ever match (``0 0 30 2 *``, ``0 0 31 4,6 *``) is
refused when parsed, so ``next_after`` always finds a minute, within a few
decades, unless the year 9999 ends first.
"""

from __future__ import annotations

import bisect
import calendar
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import MAXYEAR, UTC, datetime, timedelta

from .. import clock
from ..errors import InvalidInput

MACROS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}

_MONTHS = (
    "jan", "feb", "mar", "apr", "may", "jun",
    "jul", "aug", "sep", "oct", "nov", "dec",
)  # fmt: skip
MONTH_NAMES = {name: number for number, name in enumerate(_MONTHS, start=1)}
_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
WEEKDAY_NAMES = {name: number for number, name in enumerate(_WEEKDAYS)}

# label, lowest, highest, names
_FIELDS: tuple[tuple[str, int, int, Mapping[str, int]], ...] = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, MONTH_NAMES),
    ("day of week", 0, 7, WEEKDAY_NAMES),
)

_LONGEST_MONTH = {
    m: 29 if m == 2 else calendar.monthrange(2001, m)[1] for m in range(1, 13)
}


@dataclass(frozen=True)
class Cron:
    """A parsed cron line: the values each field allows, sorted, and the day rule."""

    text: str
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: tuple[int, ...]
    months: tuple[int, ...]
    weekdays: tuple[int, ...]  # 0 = Sunday ... 6 = Saturday
    either_day: bool  # neither day field starts with "*": a day may match either

    @classmethod
    def parse(cls, text: str) -> Cron:
        """Parse a line; InvalidInput names the field that is wrong."""
        if not isinstance(text, str):
            raise InvalidInput(f"cron: {text!r} is not a string")
        line = text.strip()
        if line.startswith("@"):
            if line.lower() not in MACROS:
                raise InvalidInput(
                    f"cron: {line!r} is not a macro ({', '.join(MACROS)})"
                )
            line = MACROS[line.lower()]
        parts = line.split()
        if len(parts) != 5:
            raise InvalidInput(
                f"cron: {text!r} must have five fields (m h dom mon dow) or be a macro"
            )
        minutes, hours, days, months, weekdays = (
            _field(part, *spec) for part, spec in zip(parts, _FIELDS)
        )
        either_day = not parts[2].startswith("*") and not parts[4].startswith("*")
        if not either_day and days[0] > max(_LONGEST_MONTH[m] for m in months):
            raise InvalidInput(
                f"cron: {text!r} never runs: no month it names has day {days[0]}"
                " (day of month)"
            )
        return cls(
            text=text,
            minutes=minutes,
            hours=hours,
            days=days,
            months=months,
            weekdays=tuple(sorted({d % 7 for d in weekdays})),
            either_day=either_day,
        )

    def matches(self, moment: datetime) -> bool:
        """Whether the minute ``moment`` falls in is one the line names (UTC)."""
        moment = clock.utc(moment)
        return (
            moment.minute in self.minutes
            and moment.hour in self.hours
            and moment.month in self.months
            and self._day_matches(moment.day, moment.isoweekday() % 7)
        )

    def next_after(self, moment: datetime) -> datetime | None:
        """The first minute the line names strictly after ``moment`` (UTC).

        A time without an offset is taken as UTC. None only when no such
        minute comes before the end of the year 9999. The search jumps by
        month, day, hour and minute, so a line that runs once in decades
        (``0 0 29 2 */7``: a Sunday that is the 29th of February) costs a
        few hundred steps, not millions of minutes.
        """
        try:
            start = clock.utc(moment).replace(second=0, microsecond=0)
            start += timedelta(minutes=1)
        except OverflowError:  # the last minute of 9999
            return None
        year, month, day = start.year, start.month, start.day
        hour, minute = start.hour, start.minute
        while year <= MAXYEAR:
            if month not in self.months:
                year, month = self._month_after(year, month)
                day, hour, minute = 1, 0, 0
                continue
            found = self._day_from(year, month, day)
            if found is None:
                year, month = self._month_after(year, month)
                day, hour, minute = 1, 0, 0
                continue
            if found != day:
                day, hour, minute = found, 0, 0
            next_hour = _at_least(self.hours, hour)
            if next_hour is None:
                day, hour, minute = day + 1, 0, 0  # past the month's end: next turn
                continue
            if next_hour != hour:
                hour, minute = next_hour, 0
            next_minute = _at_least(self.minutes, minute)
            if next_minute is None:
                hour, minute = hour + 1, 0  # 24 finds no hour: the next day
                continue
            return datetime(year, month, day, hour, next_minute, tzinfo=UTC)
        return None

    def _day_matches(self, day: int, weekday: int) -> bool:
        in_days, in_weekdays = day in self.days, weekday in self.weekdays
        return in_days or in_weekdays if self.either_day else in_days and in_weekdays

    def _month_after(self, year: int, month: int) -> tuple[int, int]:
        """The first month the line names after ``month`` (it may be next year's)."""
        later = _at_least(self.months, month + 1)
        return (year, later) if later is not None else (year + 1, self.months[0])

    def _day_from(self, year: int, month: int, day: int) -> int | None:
        """The first day from ``day`` on, in this month, that the day rule allows."""
        first_weekday, length = calendar.monthrange(year, month)  # Monday = 0
        for candidate in range(day, length + 1):
            if self._day_matches(candidate, (first_weekday + candidate) % 7):
                return candidate
        return None


def _at_least(values: Sequence[int], value: int) -> int | None:
    """The smallest of the sorted ``values`` that is >= ``value``, or None."""
    i = bisect.bisect_left(values, value)
    return values[i] if i < len(values) else None


def _field(
    text: str, label: str, low: int, high: int, names: Mapping[str, int]
) -> tuple[int, ...]:
    spec = _Spec(text, label, low, high, names)
    values: set[int] = set()
    for item in text.split(","):
        values.update(_item(item, spec))
    return tuple(sorted(values))


@dataclass(frozen=True)
class _Spec:
    """One field of one line: its text, for messages, and what it may hold."""

    text: str
    label: str
    low: int
    high: int
    names: Mapping[str, int]

    def bad(self, reason: str) -> InvalidInput:
        return InvalidInput(f"cron: {self.label} field {self.text!r}: {reason}")


def _item(item: str, spec: _Spec) -> range:
    body, slash, step_text = item.partition("/")
    if body == "*":
        start, end = spec.low, spec.high
    elif "-" in body:
        first, _, last = body.partition("-")
        start, end = _value(first, spec), _value(last, spec)
        if start > end:
            raise spec.bad(f"the range {body!r} runs backwards")
    else:
        start = _value(body, spec)
        end = spec.high if slash else start
    step = 1
    if slash:
        span = spec.high - spec.low + 1
        step = _number(step_text, span + 1)
        if step is None:
            raise spec.bad(f"the step {step_text!r} is not a number")
        if not 1 <= step <= span:
            raise spec.bad(f"the step {step_text} is not within 1-{span}")
    return range(start, end + 1, step)


def _value(text: str, spec: _Spec) -> int:
    if text.lower() in spec.names:
        return spec.names[text.lower()]
    value = _number(text, spec.high + 1)
    if value is None:
        names = f" or a name ({', '.join(spec.names)})" if spec.names else ""
        raise spec.bad(f"{text!r} is not a number {spec.low}-{spec.high}{names}")
    if not spec.low <= value <= spec.high:
        raise spec.bad(f"{text} is out of range ({spec.low}-{spec.high})")
    return value


def _number(text: str, too_big: int) -> int | None:
    """ASCII digits as a number (``too_big`` for one int() refuses), else None."""
    if not (text.isascii() and text.isdigit()):
        return None  # int() would take " 5", "+5", "5_0" and other scripts' digits
    try:
        return int(text)
    except ValueError:  # over 4300 digits
        return too_big
