"""Real processes SIGKILLed at every write, fsync, rename and ftruncate.

strace (Debian's, which .ci/run installs) kills the command at its Nth call
of one syscall; N goes up from 1 until the command finishes untouched
(SQLite's crash loop, with a real kernel). The operations: submits (one
commit each), a compaction, a live cleanup writing its artifact, and an
inline job run (claim, then completion). After every kill the store must
open and pass ``store check --strict``, hold every acknowledged commit and
the killed one whole or not at all. Then 200 kills at random moments.
"""

from __future__ import annotations

import json
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from asyncjobs import Client
from asyncjobs.tasks import load_app

from ..injection import APPS, ENV, asyncjobs_cmd, under_strace

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace"),
]

SUBMITTER = Path(__file__).parents[1] / "helpers" / "submitter.py"
SYSCALLS = ("write", "fsync", "rename", "ftruncate")


def crash_loop(
    name: str,
    make_store: Callable[[Path], None],
    command: Callable[[Path], list[str]],
    check: Callable[[Path, subprocess.CompletedProcess], None],
    tmp_path: Path,
) -> int:
    """Kill ``command`` at each call of each syscall; returns the number of kills."""
    template = tmp_path / "template"
    template.mkdir()
    make_store(template / "store.v1.json")
    kills = 0
    for syscall in SYSCALLS:
        for n in range(1, 200):
            folder = tmp_path / f"{syscall}-{n}"
            shutil.copytree(template, folder)
            store = folder / "store.v1.json"
            proc = under_strace(syscall, f"signal=SIGKILL:when={n}", command(store))
            if proc.returncode == 0:
                check(store, proc)  # ran to the end: the same promises hold
                shutil.rmtree(folder)
                break
            assert proc.returncode in (-signal.SIGKILL, 128 + signal.SIGKILL), (
                proc.stderr
            )
            kills += 1
            check(store, proc)
            shutil.rmtree(folder)
    print(f"{name}: {kills} kills, all sound")
    return kills


def assert_sound(store: Path) -> None:
    with Client(store) as client:
        report = client.check(strict=True)
        assert report.ok, report.problems
        client.compact()  # a temp file left by the kill goes with the next fold
    assert not [p for p in store.parent.iterdir() if p.name.endswith(".tmp")]


def test_a_commit_killed_at_any_syscall_is_all_there_or_not_at_all(tmp_path):
    def check(store: Path, proc: subprocess.CompletedProcess) -> None:
        acked = {int(line.split()[1]) for line in proc.stdout.splitlines()}
        if not store.exists() and not Path(f"{store}.journal").exists():
            assert not acked
            return
        assert_sound(store)
        with Client(store) as client:
            jobs = client.list_jobs(org="acme")
            found = {job.payload["n"] for job in jobs}
            assert acked <= found <= {0, 1, 2}
            assert found == set(range(len(found)))  # commits land in order
            for job in jobs:  # the job and its queued event, together
                assert [
                    e.event_type for e in client.events(job.job_id, org="acme")
                ] == ["async.job.queued"]

    kills = crash_loop(
        "three submits",
        lambda store: None,
        lambda store: [sys.executable, str(SUBMITTER), str(store), "3"],
        check,
        tmp_path,
    )
    assert kills >= 10


def _jobs(store: Path, count: int) -> None:
    with Client(store) as client:
        for n in range(count):
            client.submit("echo", org="acme", payload={"n": n})


def test_a_compaction_killed_at_any_syscall_changes_nothing(tmp_path):
    before = {}

    def make(store: Path) -> None:
        _jobs(store, 20)
        with Client(store) as client:
            before.update(client.export())

    def check(store: Path, proc: subprocess.CompletedProcess) -> None:
        assert_sound(store)
        with Client(store) as client:
            after = client.export()
        assert {k: after[k] for k in ("jobs", "events")} == {
            k: before[k] for k in ("jobs", "events")
        }

    kills = crash_loop(
        "a compaction",
        make,
        lambda store: asyncjobs_cmd(store, "store", "compact"),
        check,
        tmp_path,
    )
    assert kills >= 4


def cleanup_cmd(store: Path, *more: str) -> list[str]:
    """A live cleanup that expires everything, with its artifact beside the store."""
    return asyncjobs_cmd(
        store,
        "cleanup",
        "--results-ttl-seconds",
        "60",
        "--events-ttl-seconds",
        "60",
        *more,
        "--now",
        "2099-01-01T00:00:00Z",
        "--output-json",
        str(store.parent / "audit" / "cleanup.json"),
    )


def _finished_jobs(store: Path) -> None:
    tasks = load_app("jobsapp:tasks")
    with Client(store) as client:
        for n in range(6):
            job = client.submit("echo", org="acme", payload={"n": n})
            client.run_job(job.job_id, org="acme", tasks=tasks)


def test_a_cleanup_killed_at_any_syscall_deletes_all_or_nothing(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(APPS))

    def command(store: Path) -> list[str]:
        return cleanup_cmd(store, "--notifications-ttl-seconds", "60")

    def check(store: Path, proc: subprocess.CompletedProcess) -> None:
        assert_sound(store)
        with Client(store) as client:
            state = client.export()
        counts = [len(state[k]) for k in ("results", "events", "notifications")]
        assert counts in ([6, 18, 6], [0, 0, 0])
        artifact = store.parent / "audit" / "cleanup.json"
        if artifact.exists():  # never partial
            report = json.loads(artifact.read_text())
            assert report["results"]["delete_count"] == 6 and counts == [0, 0, 0]

    kills = crash_loop("a cleanup", _finished_jobs, command, check, tmp_path)
    assert kills >= 6


def test_a_completion_killed_at_any_syscall_is_whole_or_absent(tmp_path):
    job_ids = []

    def make(store: Path) -> None:
        with Client(store) as client:
            job_ids.append(client.submit("echo", org="acme", payload={"n": 1}).job_id)

    def check(store: Path, proc: subprocess.CompletedProcess) -> None:
        assert_sound(store)
        with Client(store) as client:
            job = client.get_job(job_ids[0], org="acme")
            state = client.export()
        results = list(state["results"].values())
        notes = list(state["notifications"].values())
        if job.status == "completed":
            assert len(results) == 1 and len(notes) == 1
        else:
            assert job.status in ("queued", "running") and not results and not notes

    kills = crash_loop(
        "a completion",
        make,
        lambda store: asyncjobs_cmd(
            store, "run", job_ids[0], "--org", "acme", "--app", "jobsapp:tasks"
        ),
        check,
        tmp_path,
    )
    assert kills >= 6


def test_two_hundred_kills_at_random_moments_lose_no_acknowledged_commit(tmp_path):
    rng = random.Random(20261123)
    store = tmp_path / "store.v1.json"
    acknowledged: set[int] = set()
    offset = 0
    for _ in range(200):
        proc = subprocess.Popen(
            [sys.executable, str(SUBMITTER), str(store), "1000"],
            stdout=subprocess.PIPE,
            text=True,
            env={**ENV, "ASYNCJOBS_SUBMIT_OFFSET": str(offset)},
        )
        time.sleep(rng.uniform(0.05, 0.4))  # the kill lands at a random moment
        proc.kill()
        out, _ = proc.communicate()
        acknowledged |= {int(line.split()[1]) for line in out.splitlines()}
        offset += 1000
    with Client(store) as client:
        assert client.check(strict=True).ok
        found = {job["payload"]["n"] for job in client.export()["jobs"].values()}
    assert acknowledged <= found and len(acknowledged) > 0


def test_a_hundred_cleanups_killed_at_random_moments_delete_all_or_nothing(
    tmp_path, monkeypatch
):
    """The record goes first, its result file after; the artifact is whole."""
    monkeypatch.syspath_prepend(str(APPS))
    monkeypatch.setenv("ASYNCJOBS_RESULT_INLINE_BYTES", "10")  # values in files
    rng = random.Random(20261123)

    def fresh(n: int) -> Path:
        folder = tmp_path / f"round-{n}"
        folder.mkdir()
        monkeypatch.setenv("ASYNCJOBS_ARTIFACTS", str(folder / "artifacts"))
        _finished_jobs(folder / "store.v1.json")
        return folder / "store.v1.json"

    def command(store: Path) -> list[str]:
        return cleanup_cmd(store)

    store = fresh(0)
    started = time.perf_counter()
    subprocess.run(command(store), env=ENV, check=True, capture_output=True)
    whole = time.perf_counter() - started
    applied = Counter()
    for n in range(1, 101):
        store = fresh(n)
        with Client(store) as client:
            files = [r["value_file"] for r in client.export()["results"].values()]
        assert len(files) == 6 and all(Path(f).exists() for f in files)
        proc = subprocess.Popen(command(store), env=ENV, stdout=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.6, 1.15) * whole)  # mostly in the cleanup itself
        proc.kill()
        proc.wait()
        assert_sound(store)
        with Client(store) as client:
            state = client.export()
        left = [r["value_file"] for r in state["results"].values()]
        counts = [len(state[k]) for k in ("results", "events")]
        assert counts in ([6, 18], [0, 0])  # one transaction: all or nothing
        assert all(Path(f).exists() for f in left)  # no record without its file
        artifact = store.parent / "audit" / "cleanup.json"
        if artifact.exists():
            assert json.loads(artifact.read_text())["results"]["delete_count"] == 6
        applied[counts == [0, 0]] += 1
    print(f"100 random cleanup kills: {applied[True]} applied, {applied[False]} not")
    assert applied[True] and applied[False]  # the kills landed on both sides
