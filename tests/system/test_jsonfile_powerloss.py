"""Simulated power loss at every operation of random workloads.

Each workload is a seeded series of transactions (puts, deletes, a large
deletion that commits as a snapshot), compactions and reopens of the JSON
backend over ``SimFS``. It runs once to count its file operations; then,
for each operation N, it runs again and the power is cut before operation N,
and several disks that cut could leave are opened. Each must open without
an error, pass ``verify(strict=True)``, hold exactly the state after some
prefix of the commits that includes every commit that had returned, and
take a new commit.
"""

from __future__ import annotations

import os
import random
import threading
import time

from asyncjobs.errors import StoreError
from asyncjobs.store import JsonFileStore
from asyncjobs.store.jsonfile import engine

from ..powerloss import Crash, SimFS, SimIO

SEED = int(os.environ.get("ASYNCJOBS_POWERLOSS_SEED", "20261123"))
WORKLOADS = int(os.environ.get("ASYNCJOBS_POWERLOSS_WORKLOADS", "50"))
DISKS_PER_CUT = 3
# Small, so that commits both extend the journal and overwrite its zeros.
RESERVE = 600
KINDS = ("jobs", "events")


def workload(rng: random.Random) -> list[tuple]:
    """Steps: ("commit", puts, deletes) | ("compact",) | ("reopen",)."""
    steps: list[tuple] = []
    keys: list[tuple[str, str]] = []
    for n in range(rng.randint(4, 14)):
        roll = rng.random()
        if roll < 0.1:
            steps.append(("compact",))
        elif roll < 0.2:
            steps.append(("reopen",))
        elif roll < 0.27 and keys:
            steps.append(("commit", {}, list(keys)))  # most of the store: a snapshot
            keys = []
        else:
            puts = {}
            for i in range(rng.randint(1, 3)):
                kind = rng.choice(KINDS)
                key = (
                    f"{kind[0]}{n}-{i}"
                    if rng.random() < 0.8 or not keys
                    else rng.choice(keys)[1]
                )
                puts[(kind, key)] = {
                    "id": key,
                    "n": n,
                    "blob": "x" * rng.randint(0, 900),
                }
                keys.append((kind, key))
            deletes = rng.sample(keys, k=min(len(keys), rng.randint(0, 1)))
            steps.append(("commit", puts, deletes))
    return steps


def run(
    path: str,
    steps: list[tuple],
    io: SimIO,
    models: list[dict],
    acknowledged: list[int],
) -> None:
    """Run the steps, appending the model of each commit before it starts
    and counting in ``acknowledged[0]`` the commits that returned."""
    state: dict[tuple[str, str], dict] = {}
    store = JsonFileStore(
        path, io=io, compact_min_bytes=1500, journal_reserve_bytes=RESERVE
    )
    try:
        store.initialize()  # as `asyncjobs store init` does first
        for step in steps:
            if step[0] == "compact":
                store.compact()
            elif step[0] == "reopen":
                store.close()
                store = JsonFileStore(
                    path, io=io, compact_min_bytes=1500, journal_reserve_bytes=RESERVE
                )
            else:
                _, puts, deletes = step
                nxt = dict(state)
                for key in deletes:
                    nxt.pop(key, None)
                nxt.update(puts)
                models.append(nxt)
                with store.transaction() as tx:
                    for kind, key in deletes:
                        tx.delete(kind, key)
                    for (kind, key), record in puts.items():
                        tx.put(kind, key, record)
                state = nxt
                acknowledged[0] += 1
    finally:
        store.close()


def recovered(path: str, fs: SimFS) -> dict:
    io = SimIO(fs)
    with JsonFileStore(path, io=io, journal_reserve_bytes=RESERVE) as store:
        state = {}
        if {path, f"{path}.journal"} & fs.names.keys():  # else no store yet: fine
            problems = store.verify(strict=True).problems
            assert problems == [], problems
            with store.read() as tx:
                state = {(kind, r["id"]): r for kind in KINDS for r in tx.scan(kind)}
        with store.transaction() as tx:  # the store takes a new commit
            tx.put("jobs", "after", {"id": "after"})
    with (
        JsonFileStore(path, io=SimIO(fs), journal_reserve_bytes=RESERVE) as store,
        store.read() as tx,
    ):
        assert tx.get("jobs", "after") == {"id": "after"}
    return state


def power_cuts(
    path: str, io_class: type[SimIO], workloads: int
) -> tuple[int, list[str]]:
    """Cut the power at every operation of seeded workloads; (disks, failures)."""
    rng = random.Random(SEED)
    disks, failures = 0, []
    for _ in range(workloads):
        steps = workload(rng)
        counter = io_class(SimFS())
        total = [0]
        run(path, steps, counter, [], total)
        assert total[0] == sum(step[0] == "commit" for step in steps)
        for cut in range(1, counter.ops + 1):
            fs, models, acked = SimFS(), [{}], [0]
            try:
                run(path, steps, io_class(fs, crash_at=cut), models, acked)
            except Crash:
                pass
            for _ in range(DISKS_PER_CUT):
                disks += 1
                try:
                    state = recovered(path, fs.after_power_loss(rng))
                except (
                    Exception
                ) as exc:  # a failure to open is a finding, reported below
                    failures.append(f"cut {cut}: {exc!r}")
                    continue
                prefixes = [i for i, model in enumerate(models) if model == state]
                if not prefixes:
                    failures.append(f"cut {cut}: a state no prefix of commits gives")
                elif max(prefixes) < acked[0]:
                    failures.append(
                        f"cut {cut}: acknowledged commit lost "
                        f"(recovered {max(prefixes)} of {acked[0]})"
                    )
    return disks, failures


def test_a_power_cut_at_any_operation_loses_no_acknowledged_commit(tmp_path):
    disks, failures = power_cuts(str(tmp_path / "store.v1.json"), SimIO, WORKLOADS)
    print(f"{WORKLOADS} workloads, {disks} disks after a power cut")
    assert failures == [] and disks >= 1000, failures[:5]


class _DiskThatIgnoresFsync(SimIO):
    def fsync(self, fd: int) -> None:
        self._tick()  # returns, but nothing becomes durable


def test_the_power_cut_checker_catches_a_missing_fsync(tmp_path):
    disks, failures = power_cuts(
        str(tmp_path / "store.v1.json"), _DiskThatIgnoresFsync, 5
    )
    assert any("acknowledged commit lost" in f for f in failures), failures[:5]


def grouped_commits(path: str, io: SimIO) -> set[str]:
    """Three threads' transactions, made to share one line; the keys acknowledged.

    The first holds the lock until the other two wait for it, so it joins a
    group, the next joins too, and the last writes the three together.
    """
    acked: set[str] = set()
    store = JsonFileStore(path, io=io, journal_reserve_bytes=RESERVE)
    inside, go = threading.Event(), threading.Event()

    def commit(key: str, hold: bool = False) -> None:
        try:
            with store.transaction() as tx:
                if hold:
                    inside.set()
                    go.wait(10)
                tx.put("jobs", key, {"id": key})
            acked.add(key)
        except (Crash, StoreError):
            pass  # not acknowledged
        finally:
            inside.set()

    try:
        store.initialize()
        commit("before")
        first = threading.Thread(target=commit, args=("a", True))
        first.start()
        inside.wait(10)
        others = [threading.Thread(target=commit, args=(k,)) for k in "bc"]
        for thread in others:
            thread.start()
        deadline = time.monotonic() + 10
        while store._lock.waiting < 2 and first.is_alive():
            assert time.monotonic() < deadline, "the others never waited"
            time.sleep(0.001)
        go.set()
        for thread in (first, *others):
            thread.join(10)
    except Crash:
        pass
    finally:
        go.set()
        try:
            store.close()
        except Crash:
            pass
    return acked


def test_a_power_cut_during_a_group_commit_keeps_it_whole(tmp_path, monkeypatch):
    """Transactions of several threads that share one journal line (group
    commit) are all there after a power cut at any operation, or none is;
    none that returned is lost."""
    monkeypatch.setattr(engine, "GROUP_WAIT_SECONDS", 10.0)  # no early writes
    path = str(tmp_path / "store.v1.json")
    counter = SimIO(SimFS())
    assert grouped_commits(path, counter) == {"before", "a", "b", "c"}
    with JsonFileStore(path, io=SimIO(counter.fs)) as store:
        assert store.verify().problems == []
    lines = counter.fs.names[f"{path}.journal"].durable.rstrip(b"\0").splitlines()
    assert len(lines) == 2  # "before", then a, b and c in one line
    rng = random.Random(SEED)
    outcomes = set()
    for cut in range(1, counter.ops + 1):
        fs = SimFS()
        acked = grouped_commits(path, SimIO(fs, crash_at=cut))
        for _ in range(DISKS_PER_CUT):
            state = recovered(path, fs.after_power_loss(rng))
            present = {key for _, key in state}
            assert acked <= present, (cut, acked, present)
            assert present & {"a", "b", "c"} in (set(), {"a", "b", "c"}), (cut, present)
            outcomes.add(frozenset(present))
    assert frozenset({"before"}) in outcomes
    assert frozenset({"before", "a", "b", "c"}) in outcomes
