"""How `wait` and Client.wait look at the store: from 10 ms, doubling to a cap, the last
look at the deadline (the rule, on a clock that moves only when paused on). Exit codes
of `wait` and the rest are in tests/system/test_outcomes.py."""

from __future__ import annotations

import pytest

from asyncjobs.domain import waiting


class SteppedTime:
    """A monotonic clock that moves only when something pauses on it."""

    def __init__(self) -> None:
        self.now = 100.0
        self.pauses: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def pause(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds


def test_looks_back_off_from_10_ms_doubling_to_the_cap_and_end_at_the_deadline():
    time = SteppedTime()
    looks: list[float] = []

    def look() -> str:
        looks.append(time.now)
        return "queued"

    last = waiting.until(
        look,
        lambda status: status != "queued",
        timeout=5,
        monotonic=time.monotonic,
        pause=time.pause,
    )
    assert last == "queued"
    doubling = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64]
    assert time.pauses[:7] == doubling
    assert time.pauses[7:10] == [1.0, 1.0, 1.0]
    assert time.pauses[10] == pytest.approx(5 - sum(doubling) - 3)
    assert len(time.pauses) == 11 and len(looks) == 12
    assert looks[-1] == pytest.approx(105.0)  # the last look is at the deadline


def test_a_lower_cap_and_an_early_answer_stop_the_backoff():
    time = SteppedTime()
    answers = iter(["queued"] * 5 + ["completed"])
    found = waiting.until(
        lambda: next(answers),
        lambda status: status == "completed",
        timeout=None,
        cap=0.05,
        monotonic=time.monotonic,
        pause=time.pause,
    )
    assert found == "completed"
    assert time.pauses == [0.01, 0.02, 0.04, 0.05, 0.05]
