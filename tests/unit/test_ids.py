"""Ids cannot be guessed, collide or count."""

from __future__ import annotations

from datetime import UTC, datetime

from asyncjobs import ids


def test_a_hundred_thousand_ids_of_each_kind_in_one_moment_never_repeat():
    moment = datetime(2026, 11, 23, tzinfo=UTC)  # all in the same millisecond
    for prefix in ids.PREFIXES:
        made = [ids.new_id(prefix, moment) for _ in range(100_000)]
        assert len(set(made)) == len(made)
        assert all(ids.is_id(i, prefix) for i in made[:1000])
        times = {i.split("_")[1][:10] for i in made}
        assert len(times) == 1  # the time part is the same: only randomness differs
        randoms = [i[-16:] for i in made]
        # 80 random bits: no counter, so neighbours share no long prefix
        assert sum(a[:4] == b[:4] for a, b in zip(randoms, randoms[1:])) < 10


def test_ids_sort_by_creation_time():
    early = ids.new_id("job", datetime(2026, 1, 1, tzinfo=UTC))
    late = ids.new_id("job", datetime(2026, 1, 1, 0, 0, 0, 1000, tzinfo=UTC))
    assert early < late
