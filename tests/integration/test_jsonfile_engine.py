"""The JSON file backend: commits, catch-up, compaction, damage, locking, durability."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import pytest

from asyncjobs import Client
from asyncjobs.errors import InvalidInput, StoreCorrupt, StoreError, StoreLocked
from asyncjobs.store import JsonFileStore
from asyncjobs.store.jsonfile.fileio import FileIO
from asyncjobs.store.jsonfile.format import encode_line

from ..conftest import (
    data_files,
    end_journal_with,
    journal_lines,
    sha256_of,
    store_files,
)

HELPERS = Path(__file__).parents[1] / "helpers"


def job(key: str, org: str = "acme", **extra: object) -> dict:
    """A job record with every field a job has, as the store keeps it."""
    stamp = "2026-11-01T12:00:00.000000Z"
    return {
        "job_id": key,
        "org_id": org,
        "task": "reports.build",
        "queue": "default",
        "priority": 5,
        "status": "queued",
        "payload": {},
        "created_at": stamp,
        "updated_at": stamp,
        "run_after": stamp,
        **extra,
    }


def journal(store_path: Path) -> Path:
    return Path(f"{store_path}.journal")


def put_jobs(store: JsonFileStore, *keys: str) -> None:
    for key in keys:
        with store.transaction() as tx:
            tx.put("jobs", key, job(key))


def job_keys(store_path: Path) -> set[str]:
    with JsonFileStore(store_path) as store, store.read() as tx:
        return {record["job_id"] for record in tx.scan("jobs")}


def spawn(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, *args],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
    )


@contextlib.contextmanager
def lock_holder(lock_path: str):
    """A process holding the lock with plain filelock until the block ends."""
    holder = spawn(str(HELPERS / "hold_lock.py"), lock_path)
    try:
        assert holder.stdout.readline().strip() == "held"
        yield holder
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()


# -- commits and reading back ---------------------------------------------


def test_committed_records_are_there_after_reopening(store_path):
    with JsonFileStore(store_path) as store:
        put_jobs(store, "a", "b")
        with store.transaction() as tx:
            tx.delete("jobs", "a")
            tx.put("events", "e1", {"event_id": "e1", "job_id": "b"})
    with JsonFileStore(store_path) as store, store.read() as tx:
        assert tx.get("jobs", "a") is None
        assert tx.get("jobs", "b") == job("b")
        assert [e["event_id"] for e in tx.find("events_by_job", "b")] == ["e1"]
        assert tx.generation == 3


def test_an_exception_in_a_transaction_writes_nothing(store_path):
    with JsonFileStore(store_path) as store:
        put_jobs(store, "a")
        before = sha256_of(*data_files(store_path))
        with pytest.raises(RuntimeError), store.transaction() as tx:
            tx.put("jobs", "b", job("b"))
            tx.delete("jobs", "a")
            raise RuntimeError("rule failed")
        assert sha256_of(*data_files(store_path)) == before
        with store.read() as tx:
            assert tx.get("jobs", "a") and tx.get("jobs", "b") is None


def test_a_transaction_reads_its_own_writes_through_indexes(store_path):
    with JsonFileStore(store_path) as store:
        put_jobs(store, "a")
        with store.transaction() as tx:
            tx.put("jobs", "b", job("b"))
            tx.put("jobs", "a", job("a", org="globex"))
            assert {r["job_id"] for r in tx.find("jobs_by_org", "acme")} == {"b"}
            assert tx.count("jobs") == 2
            tx.delete("jobs", "b")
            assert tx.find("jobs_by_org", "acme") == []
            assert tx.count("jobs") == 1


def test_a_record_that_is_not_json_is_refused_and_nothing_written(store_path):
    with JsonFileStore(store_path) as store:
        put_jobs(store, "a")
        before = sha256_of(*data_files(store_path))
        with pytest.raises(InvalidInput), store.transaction() as tx:
            tx.put("jobs", "b", {"job_id": "b", "value": float("nan")})
        assert sha256_of(*data_files(store_path)) == before


def test_an_integer_beyond_64_bits_is_refused_and_nothing_written(store_path):
    with JsonFileStore(store_path) as store:
        put_jobs(store, "a")
        before = sha256_of(*data_files(store_path))
        with pytest.raises(InvalidInput, match="does not fit in 64 bits"):
            with store.transaction() as tx:
                tx.put("jobs", "b", job("b", payload={"n": [1, 10**20]}))
        assert sha256_of(*data_files(store_path)) == before


@pytest.mark.parametrize("compact", [False, True], ids=["journal", "snapshot"])
def test_every_value_reads_back_exactly_after_a_reopen(store_path, compact):
    values = {
        "ints": [(1 << 64) - 1, -(1 << 63), 0, -1],
        "floats": [0.1, 1e300, -2.5e-308, 1.0],
        "text": ["\u00e9t\u00e9 \u6f22\u5b57 \U0001f600", "\ud800 lone surrogate", ""],
        "deep": json.loads("[" * 900 + "]" * 900),
        "none": None,
    }
    with JsonFileStore(store_path) as store:
        with store.transaction() as tx:
            tx.put("jobs", "a", job("a", payload=values))
        if compact:
            store.compact()
    with JsonFileStore(store_path) as store, store.read() as tx:
        assert tx.get("jobs", "a")["payload"] == values


def test_a_store_never_made_is_not_read_as_empty_and_nothing_is_created(
    tmp_path, console
):
    """A mistyped --store must not answer "no jobs", nor leave folders behind."""
    path = tmp_path / "nowhere" / "store.v1.json"
    with pytest.raises(StoreError, match="no store at"), JsonFileStore(path) as store:
        with store.read():
            pass
    for command in (
        ["jobs", "--org", "acme"],
        ["status", "job_00000000000000000000000000", "--org", "acme"],
        ["store", "export"],
        ["store", "compact"],
    ):
        outcome = console("--store", str(path), *command)
        assert outcome.exit_code == 5 and outcome.stderr.count("\n") == 1, command
        assert (
            f"no store at {path}" in outcome.stderr and "store init" in outcome.stderr
        )
    outcome = console("--store", str(path), "submit", "t", "--org", "acme")
    assert outcome.exit_code == 5
    assert f"{path.parent} does not exist" in outcome.stderr
    assert not path.parent.exists()
    assert console("--store", str(path), "store", "init").exit_code == 0
    assert path.parent.stat().st_mode & 0o777 == 0o700
    assert console("--store", str(path), "jobs", "--org", "acme").exit_code == 0


def test_a_store_folder_without_a_store_is_initialized_by_its_first_write(
    store_path, console
):
    assert console("jobs", "--org", "acme").exit_code == 5
    assert console("submit", "t", "--org", "acme").exit_code == 0
    assert console("jobs", "--org", "acme").exit_code == 0


# -- catching up with other writers ---------------------------------------


def test_two_store_objects_see_each_others_commits(store_path):
    with JsonFileStore(store_path) as one, JsonFileStore(store_path) as two:
        put_jobs(one, "a")
        with two.read() as tx:
            assert tx.get("jobs", "a")
        put_jobs(two, "b")
        with one.read() as tx:
            assert {r["job_id"] for r in tx.find("jobs_by_org", "acme")} == {"a", "b"}


def test_another_process_sees_commits_and_its_commits_are_seen(store_path):
    with JsonFileStore(store_path) as store:
        put_jobs(store, "mine")
        proc = spawn(str(HELPERS / "committer.py"), str(store_path), "other", "3")
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0 and out.split() == ["other-0", "other-1", "other-2"]
        with store.read() as tx:
            assert {r["job_id"] for r in tx.scan("jobs")} == {
                "mine",
                "other-0",
                "other-1",
                "other-2",
            }
            assert tx.get("counters", "commits")["value"] == 3


def test_a_process_catches_up_across_another_processes_compaction(store_path):
    with JsonFileStore(store_path) as reader, JsonFileStore(store_path) as writer:
        put_jobs(writer, "a")
        with reader.read() as tx:
            assert tx.get("jobs", "a")
        writer.compact()
        put_jobs(writer, "b", "c", "d")  # the journal grows past the reader's offset
        with reader.read() as tx:
            assert {r["job_id"] for r in tx.scan("jobs")} == {"a", "b", "c", "d"}
            assert tx.generation == 4


# -- compaction --------------------------------------------------------------


def test_compaction_leaves_the_whole_state_in_the_snapshot(store_path, cli):
    with JsonFileStore(store_path) as store:
        put_jobs(store, "a", "b")
        with store.transaction() as tx:
            tx.delete("jobs", "a")
        info = store.compact()
    assert info["folded_transactions"] == 3
    assert journal(store_path).read_bytes() == b""
    snapshot = json.loads(store_path.read_text())
    assert snapshot["schema"] == "store.v1" and snapshot["generation"] == 3
    assert list(snapshot["jobs"]) == ["b"]
    assert job_keys(store_path) == {"b"}


def test_a_long_journal_is_folded_into_the_snapshot_by_itself(store_path):
    with JsonFileStore(store_path, compact_min_bytes=2000) as store:
        put_jobs(store, *[f"job-{i}" for i in range(100)])
        assert len(journal_lines(store_path)) <= 2000 + 200
    assert len(json.loads(store_path.read_text())["jobs"]) > 50
    assert len(job_keys(store_path)) == 100


def test_journal_lines_already_in_the_snapshot_are_not_replayed(store_path):
    """A crash between the snapshot rename and the journal truncation."""
    with JsonFileStore(store_path) as store:
        put_jobs(store, "a", "b")
    lines = journal(store_path).read_bytes()
    with JsonFileStore(store_path) as store:
        with store.transaction() as tx:
            tx.delete("jobs", "a")
        store.compact()
    journal(store_path).write_bytes(lines)  # the old lines come back
    assert job_keys(store_path) == {"b"}
    with JsonFileStore(store_path) as store:
        put_jobs(store, "c")
    assert job_keys(store_path) == {"b", "c"}
    assert journal(store_path).read_bytes().count(b"\n") == 1  # stale lines cut


def test_two_processes_after_a_crash_in_a_compaction_both_see_each_others_lines(
    store_path,
):
    """Both start on a journal of lines already folded; the first to commit cuts
    them and writes at offset 0, below where the other one stopped reading."""
    with JsonFileStore(store_path) as store:
        put_jobs(store, "a", "b", "c")
    lines = journal(store_path).read_bytes()
    with JsonFileStore(store_path) as store:
        store.compact()
    journal(store_path).write_bytes(lines)  # the crash: lines not yet cut
    with JsonFileStore(store_path) as one, JsonFileStore(store_path) as two:
        for store in (one, two):
            with store.read() as tx:
                assert tx.count("jobs") == 3
        put_jobs(one, "x")
        put_jobs(two, "y")
        put_jobs(one, "z")
        with two.read() as tx:
            assert {r["job_id"] for r in tx.scan("jobs")} == set("abcxyz")
    assert job_keys(store_path) == set("abcxyz")
    assert JsonFileStore(store_path).verify(strict=True).problems == []


def test_compaction_removes_temp_files_left_by_a_crash(store_path):
    with JsonFileStore(store_path) as store:
        put_jobs(store, "a")
        leftover = store_path.parent / f".{store_path.name}.abc123.tmp"
        leftover.write_text("{half")
        store.compact()
    assert not leftover.exists()


# -- a torn tail and damage in the middle -----------------------------------


TORN_TAILS = {
    "half a line": lambda line: line[: len(line) // 2],
    "a bad checksum": lambda line: b"00000000" + line[8:],
    "4 KiB of zeros": lambda line: b"\0" * 4096,
}


@pytest.mark.parametrize("tail", TORN_TAILS, ids=list(TORN_TAILS))
def test_a_torn_last_line_is_ignored_then_cut_before_the_next_commit(store_path, tail):
    with JsonFileStore(store_path) as store:
        put_jobs(store, "a", "b")
    good = journal_lines(store_path)
    torn = encode_line({"g": 3, "b": 0, "put": {"jobs": {"c": job("c")}}, "del": {}})
    end_journal_with(store_path, TORN_TAILS[tail](torn))
    assert job_keys(store_path) == {"a", "b"}
    with JsonFileStore(store_path) as store:
        put_jobs(store, "d")
    assert job_keys(store_path) == {"a", "b", "d"}
    data = journal_lines(store_path)  # then only the zeros reserved ahead
    assert data.startswith(good) and data.count(b"\n") == 3 and b"\0" not in data
    assert data.endswith(b"\n")


def test_a_writer_killed_mid_line_leaves_a_torn_line_over_the_zeros(store_path):
    """A process still running sees the torn line for what it is, then writes over it."""
    with JsonFileStore(store_path) as live:
        put_jobs(live, "a", "b")
        lines = journal_lines(store_path)
        reserve = journal(store_path).stat().st_size - len(lines)
        assert reserve > 0  # the zeros the next lines go over
        torn = encode_line(
            {"g": 3, "b": 0, "put": {"jobs": {"c": job("c")}}, "del": {}}
        )
        with open(journal(store_path), "r+b") as f:  # killed mid-write
            f.seek(len(lines))
            f.write(torn[: len(torn) // 2])
        with live.read() as tx:
            assert tx.get("jobs", "c") is None and tx.generation == 2
        put_jobs(live, "d")
    assert job_keys(store_path) == {"a", "b", "d"}
    assert journal_lines(store_path).count(b"\n") == 3
    assert JsonFileStore(store_path).verify(strict=True).problems == []


def test_corruption_in_the_middle_stops_every_command_and_changes_nothing(
    store_path, cli
):
    with JsonFileStore(store_path) as store:
        put_jobs(store, "a", "b", "c")
    data = bytearray(journal(store_path).read_bytes())
    data[data.index(b'"a"') + 1] ^= 0x01  # flip a bit in line 1
    journal(store_path).write_bytes(bytes(data))
    before = sha256_of(*data_files(store_path))
    for command in (
        ["store", "check"],
        ["store", "export"],
        ["store", "compact"],
        ["store", "init"],
    ):
        outcome = cli(*command)
        assert outcome.exit_code == 5, command
        lines = outcome.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ")
        assert f"{store_path}.journal: line 1" in lines[0]
    with pytest.raises(StoreCorrupt), JsonFileStore(store_path) as store:
        put_jobs(store, "d")
    assert sha256_of(*data_files(store_path)) == before


@pytest.mark.parametrize(
    "content, words",
    [
        (b'{"schema": "store.v9", "generation": 0}', "unknown schema 'store.v9'"),
        (b'{"schema": "store.v1", "jobs": {', "not valid JSON"),
        (b"[" * 200_000, "nested too deeply"),
        (b'{"schema": "store.v1", "generation": -1}', "generation"),
        (b'{"schema": "store.v1", "generation": 0, "jobs": []}', "'jobs' is not"),
    ],
    ids=["unknown schema", "cut JSON", "deep nesting", "bad generation", "bad kind"],
)
def test_a_snapshot_that_is_not_ours_stops_commands_with_exit_5(
    store_path, cli, content, words
):
    store_path.parent.mkdir(parents=True, exist_ok=True)
    store_path.write_bytes(content)
    before = sha256_of(*data_files(store_path))
    for command in (["store", "check"], ["store", "export"], ["store", "compact"]):
        outcome = cli(*command)
        assert outcome.exit_code == 5
        assert outcome.stderr.count("\n") == 1
        assert str(store_path) in outcome.stderr and words in outcome.stderr
    assert sha256_of(*data_files(store_path)) == before


@pytest.mark.parametrize("tail", [b"\n", b""], ids=["a line", "a tail"])
def test_a_journal_line_over_the_cap_stops_commands_quickly(store_path, console, tail):
    with JsonFileStore(store_path) as store:
        put_jobs(store, "a")
    body = json.dumps(
        {"g": 2, "b": 0, "put": {"jobs": {"b": job("b", note="x" * (17 << 20))}}}
    ).encode()
    # A good checksum, but 17 MiB.
    end_journal_with(store_path, b"%08x %s%s" % (zlib.crc32(body), body, tail))
    before = sha256_of(*store_files(store_path))
    for command in (["status", "a", "--org", "acme"], ["store", "check"]):
        started = time.monotonic()
        outcome = console(*command)
        assert time.monotonic() - started < 5
        assert outcome.exit_code == 5 and outcome.stderr.count("\n") == 1
        assert f"{store_path}.journal: line 2 is longer than the 16 MiB" in (
            outcome.stderr
        )
    assert sha256_of(*store_files(store_path)) == before


def someone_elses(path: Path) -> Path:
    """A store snapshot that another user owns (root hands one to nobody)."""
    if os.geteuid() != 0:
        return Path("/etc/hostname")  # root's, and not ours to touch
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('{"schema": "store.v1", "generation": 0}')
    os.chown(path, 65534, 65534)
    return path


def test_a_store_symlinked_to_another_users_file_is_refused(
    tmp_path, store_path, console
):
    target = someone_elses(tmp_path / "victim" / "store.v1.json")
    link = store_path  # where the commands look
    link.parent.mkdir(exist_ok=True)
    link.symlink_to(target)
    folder = sorted(target.parent.iterdir())
    before = sha256_of(target)
    for command in (["submit", "echo", "--org", "acme"], ["store", "compact"]):
        outcome = console(*command)
        assert outcome.exit_code == 5 and outcome.stderr.count("\n") == 1
        assert f"{link} is a symlink to {target}, and another user" in outcome.stderr
    assert sha256_of(target) == before and sorted(target.parent.iterdir()) == folder


@pytest.mark.skipif(os.geteuid() != 0, reason="handing a link to another user")
def test_a_symlink_another_user_planted_is_not_followed(tmp_path, console):
    target = tmp_path / "mine" / "store.v1.json"
    with JsonFileStore(target) as store:
        store.initialize()
        put_jobs(store, "a")
    link = tmp_path / "shared" / "store.v1.json"
    link.parent.mkdir(exist_ok=True)
    link.symlink_to(target)
    os.lchown(link, 65534, 65534)
    before = sha256_of(*store_files(target))
    outcome = console("--store", str(link), "store", "compact")
    assert outcome.exit_code == 5 and "another user (uid 65534)" in outcome.stderr
    assert sha256_of(*store_files(target)) == before


def test_a_store_symlinked_to_ones_own_file_is_used_by_its_real_path(tmp_path):
    target = tmp_path / "real" / "store.v1.json"
    link = tmp_path / "store.v1.json"
    target.parent.mkdir()
    link.symlink_to(target)
    with JsonFileStore(link) as store:
        put_jobs(store, "a")
        store.compact()
        put_jobs(store, "b")
    assert link.is_symlink() and job_keys(target) == {"a", "b"}
    assert journal(target).exists() and not journal(link).exists()


# -- the lock ------------------------------------------------------------------


def test_a_held_lock_gives_exit_5_naming_the_lock_file_within_the_timeout(
    store_path, console
):
    with JsonFileStore(store_path) as store:
        put_jobs(store, "a")
    with lock_holder(f"{store_path}.lock"):
        started = time.monotonic()
        outcome = console("--lock-timeout", "0.3", "store", "compact")
        elapsed = time.monotonic() - started
        assert outcome.exit_code == 5
        assert f"{store_path}.lock" in outcome.stderr and "locked" in outcome.stderr
        assert elapsed < 0.3 + 2.0  # the timeout plus one interpreter start-up
        with (
            pytest.raises(StoreLocked),
            JsonFileStore(store_path, lock_timeout=0.1) as s,
        ):
            put_jobs(s, "b")


def test_the_lock_of_a_killed_holder_is_free_at_once(store_path):
    store_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_holder(f"{store_path}.lock") as holder:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    started = time.monotonic()
    with JsonFileStore(store_path, lock_timeout=5) as store:
        put_jobs(store, "a")
    assert time.monotonic() - started < 1.0
    assert Path(f"{store_path}.lock").exists()  # never deleted


@pytest.mark.skipif(
    shutil.which("strace") is None, reason="needs strace (installed by .ci/run)"
)
def test_a_file_system_without_flock_is_refused_not_soft_locked(store_path, console):
    store_path.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [
            "strace",
            "-f",
            "-o",
            "/dev/null",
            "-e",
            "inject=flock:error=ENOSYS",
            sys.executable,
            "-m",
            "asyncjobs",
            "--store",
            str(store_path),
            "store",
            "init",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if "ptrace" in proc.stderr and proc.returncode != 5:
        pytest.skip("ptrace is not permitted here")
    assert proc.returncode == 5
    assert "does not support flock" in proc.stderr
    assert not store_path.exists()


def test_threads_sharing_one_store_lose_no_update(store_path):
    with JsonFileStore(store_path) as store:

        def work(name: str) -> None:
            for i in range(50):
                with store.transaction() as tx:
                    counter = tx.get("counters", "n") or {"value": 0}
                    tx.put("counters", "n", {"value": counter["value"] + 1})
                    tx.put("jobs", f"{name}-{i}", job(f"{name}-{i}"))

        threads = [threading.Thread(target=work, args=(f"t{n}",)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        with store.read() as tx:
            assert tx.get("counters", "n")["value"] == 400
            assert tx.count("jobs") == 400


def test_processes_committing_at_once_lose_and_duplicate_nothing(store_path, tmp_path):
    go = tmp_path / "go"
    procs = [
        spawn(str(HELPERS / "committer.py"), str(store_path), f"p{n}", "100", str(go))
        for n in range(6)
    ]
    go.touch()
    acknowledged = []
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0
        acknowledged += out.split()
    with JsonFileStore(store_path) as store, store.read() as tx:
        keys = [r["job_id"] for r in tx.scan("jobs")]
        assert sorted(keys) == sorted(acknowledged) and len(set(keys)) == 600
        assert tx.get("counters", "commits")["value"] == 600
        assert tx.generation == 600
    lines = journal_lines(store_path).splitlines()
    generations = [json.loads(line[9:])["g"] for line in lines]
    snapshot_gen = (
        json.loads(store_path.read_text())["generation"] if store_path.exists() else 0
    )
    assert generations == list(range(snapshot_gen + 1, 601))


# -- failing disks and durability settings ---------------------------------------


class FailingIO(FileIO):
    """The real file system, but the next `fail` operations named raise EIO."""

    def __init__(self) -> None:
        super().__init__(fsync=True)
        self.fail: dict[str, int] = {}
        self.calls: dict[str, int] = {}

    def _maybe_fail(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1
        if self.fail.get(name, 0) > 0:
            self.fail[name] -= 1
            raise OSError(5, "Input/output error")

    def write_all(self, fd: int, data: bytes) -> None:
        self._maybe_fail("write")
        super().write_all(
            fd, data[: len(data) // 2] if self.fail.get("short") else data
        )

    def fsync(self, fd: int) -> None:
        self._maybe_fail("fsync")
        super().fsync(fd)


@pytest.mark.parametrize("operation", ["write", "fsync"])
def test_a_failed_write_or_fsync_is_a_failed_commit_and_the_next_one_works(
    store_path, operation
):
    io = FailingIO()
    with JsonFileStore(store_path, io=io) as store:
        put_jobs(store, "a")
        io.fail[operation] = 1
        with pytest.raises(StoreError, match="cannot write .*journal"):
            put_jobs(store, "b")
        with store.read() as tx:
            assert tx.get("jobs", "b") is None  # never reported, never visible
        put_jobs(store, "c")
    assert job_keys(store_path) == {"a", "c"}
    assert JsonFileStore(store_path).verify().problems == []


def test_fsync_never_skips_every_fsync_and_always_does_them(store_path, monkeypatch):
    for setting, expected in (("never", 0), ("always", 2)):
        monkeypatch.setenv("ASYNCJOBS_FSYNC", setting)
        calls = []
        monkeypatch.setattr(
            os, "fsync", lambda fd, real=os.fsync: calls.append(fd) or real(fd)
        )
        with Client(store_path) as client:  # a Client hands the setting to its store
            put_jobs(client.store, f"{setting}-1", f"{setting}-2")
        monkeypatch.undo()
        assert len(calls) == expected, setting


def test_an_unknown_fsync_setting_is_invalid_input(store_path, cli):
    outcome = cli("store", "init", env={"ASYNCJOBS_FSYNC": "sometimes"})
    assert outcome.exit_code == 2 and "ASYNCJOBS_FSYNC" in outcome.stderr


@pytest.mark.parametrize("umask", [0o000, 0o022])
def test_store_files_are_private_whatever_the_umask(store_path, umask):
    old = os.umask(umask)
    try:
        with JsonFileStore(store_path) as store:
            put_jobs(store, "a")
            store.compact()
            put_jobs(store, "b")
    finally:
        os.umask(old)
    assert store_path.parent.stat().st_mode & 0o777 == 0o700
    for path in store_files(store_path):
        assert path.stat().st_mode & 0o777 == 0o600, path


def test_a_very_large_transaction_commits_as_a_new_snapshot(store_path, monkeypatch):
    from asyncjobs.store.jsonfile import engine as jsonfile

    monkeypatch.setattr(jsonfile, "LARGE_COMMIT_BYTES", 2000)
    with JsonFileStore(store_path) as store, JsonFileStore(store_path) as other:
        put_jobs(store, "small")
        with other.read() as tx:
            assert tx.generation == 1
        with store.transaction() as tx:
            for i in range(50):
                tx.put("jobs", f"big-{i}", job(f"big-{i}", note="x" * 50))
            tx.delete("jobs", "small")
        assert journal(store_path).read_bytes() == b""
        assert json.loads(store_path.read_text())["generation"] == 2
        with other.read() as tx:
            assert (
                tx.generation == 2
                and tx.count("jobs") == 50
                and tx.get("jobs", "small") is None
            )
        put_jobs(store, "after")
    assert len(job_keys(store_path)) == 51
    assert JsonFileStore(store_path).verify().problems == []


def test_a_checksummed_line_of_the_wrong_shape_is_corruption_not_a_crash(
    store_path, cli
):
    with JsonFileStore(store_path) as store:
        put_jobs(store, "a")
    before = journal_lines(store_path)
    odd = encode_line({"g": 2, "b": 0, "put": ["not", "an", "object"], "del": {}})
    end_journal_with(store_path, odd)
    for command in (
        ["store", "check"],
        ["store", "export"],
        ["status", "job_x", "--org", "a"],
    ):
        outcome = cli(*command)
        assert outcome.exit_code == 5, command
        assert "generation 2: 'put' and 'del' must be JSON objects" in outcome.stderr
    assert journal(store_path).read_bytes() == before + odd


def test_store_check_notes_a_torn_tail_without_failing(store_path, cli):
    with JsonFileStore(store_path) as store:
        put_jobs(store, "a", "b")
    end_journal_with(store_path, b"0badc0de {half a li")
    outcome = cli("store", "check")
    assert outcome.exit_code == 0 and "note:" in outcome.stdout
    assert "torn last line (19 bytes" in outcome.stdout


# -- store check --strict: the oracle of the fault tests ----------------------------


def test_strict_check_passes_through_commits_compaction_and_a_torn_tail(
    store_path, cli
):
    with JsonFileStore(store_path, compact_min_bytes=0) as store:
        put_jobs(store, *"abcdef")  # each commit folds the journal at once
    with JsonFileStore(store_path) as store:
        put_jobs(store, "g", "h")
        with store.transaction() as tx:
            tx.delete_many("jobs", ["a", "b", "zz"])
    end_journal_with(store_path, b"0000")  # a torn last line
    outcome = cli("store", "check", "--strict")
    assert outcome.exit_code == 0, outcome.stderr
    assert "jobs 6" in outcome.stdout and "torn last line" in outcome.stdout


def test_strict_check_catches_what_the_loader_reads_differently(store_path, cli):
    with JsonFileStore(store_path) as store:
        put_jobs(store, "a")
        generation = store.verify().generation
    # A line written by another tool, well formed and checksummed, with an
    # integer this version would never have let in: it reads it as a float.
    entry = {
        "g": generation + 1,
        "b": 0,
        "put": {"jobs": {"b": job("b", n=2**70)}},
        "del": {},
    }
    body = json.dumps(entry, separators=(",", ":")).encode()
    end_journal_with(store_path, b"%08x %s\n" % (zlib.crc32(body), body))
    assert cli("store", "check").exit_code == 0
    outcome = cli("store", "check", "--strict")
    assert outcome.exit_code == 5
    assert "jobs: 1 record(s) differ from a plain replay, first b" in outcome.stderr


def test_an_export_is_a_copy_that_later_commits_do_not_change(store_path):
    with JsonFileStore(store_path) as store:
        put_jobs(store, "a")
        exported = store.export()
        with store.transaction() as tx:
            tx.delete("jobs", "a")
            tx.put("jobs", "b", job("b"))
        exported["jobs"]["c"] = job("c")  # and editing it changes nothing stored
        assert set(exported["jobs"]) == {"a", "c"}
        with store.read() as tx:
            assert {r["job_id"] for r in tx.scan("jobs")} == {"b"}


@pytest.mark.parametrize(
    "mode, warned", [(0o777, True), (0o1777, False), (0o700, False)]
)
def test_a_folder_others_can_write_to_is_named_in_a_warning(
    store_path, console, mode, warned
):
    with JsonFileStore(store_path) as store:
        put_jobs(store, "a")
    store_path.parent.chmod(mode)
    outcome = console("store", "export")
    assert outcome.exit_code == 0
    said = f"{store_path.parent} is writable by other users" in outcome.stderr
    assert said == warned, outcome.stderr


def test_threads_committing_at_once_share_lines_and_lose_nothing(store_path):
    """Group commit: a commit that finds other threads waiting writes their
    transactions with its own, one line and one fsync for all."""
    with Client(store_path) as client:
        client.init_store()
        start = threading.Barrier(8)
        made: list[list[str]] = [[] for _ in range(8)]

        def submit(n: int) -> None:
            start.wait()
            for i in range(100):
                job = client.submit(
                    "reports.build", org=f"org-{n % 2}", payload={"i": i}
                )
                made[n].append(job.job_id)

        threads = [threading.Thread(target=submit, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        state = client.export()
        assert sorted(j for ids in made for j in ids) == sorted(state["jobs"])
        assert client.check(strict=True).ok
        assert (
            state["generation"] < 1 + 800
        )  # store init, then fewer lines than submits


def two_in_a_group(store, first, second) -> dict[str, BaseException | None]:
    """Run ``first(tx)`` and ``second(tx)`` in two threads' transactions, the
    first holding the lock until the second waits for it: the first joins a
    group and the second ends it. Returns what each raised."""
    inside, go = threading.Event(), threading.Event()
    raised: dict[str, BaseException | None] = {}

    def run(name, body, hold=False):
        try:
            with store.transaction() as tx:
                if hold:
                    inside.set()
                    go.wait(10)
                body(tx)
            raised[name] = None
        except BaseException as exc:  # what the test looks at
            raised[name] = exc

    threads = [threading.Thread(target=run, args=("first", first, True))]
    threads[0].start()
    inside.wait(10)
    threads.append(threading.Thread(target=run, args=("second", second)))
    threads[1].start()
    deadline = time.monotonic() + 10
    while store._lock.waiting < 1:
        assert time.monotonic() < deadline
        time.sleep(0.001)
    go.set()
    for thread in threads:
        thread.join(10)
    return raised


def test_a_refused_record_fails_only_its_own_transaction_not_its_group(store_path):
    with JsonFileStore(store_path) as store:
        put_jobs(store, "a")
        raised = two_in_a_group(
            store,
            lambda tx: tx.put("jobs", "b", job("b")),
            lambda tx: tx.put("jobs", "c", job("c", note=float("nan"))),
        )
        assert raised["first"] is None
        assert isinstance(raised["second"], InvalidInput)
    assert job_keys(store_path) == {"a", "b"}
    assert JsonFileStore(store_path).verify().problems == []


def test_a_group_that_cannot_be_written_fails_each_transaction_that_saw_it(
    store_path,
):
    """Also one that changed nothing: what it read was never written."""
    io = FailingIO()
    with JsonFileStore(store_path, io=io) as store:
        put_jobs(store, "a")
        io.fail["fsync"] = 1
        raised = two_in_a_group(
            store,
            lambda tx: tx.put("jobs", "b", job("b")),
            lambda tx: tx.get("jobs", "b"),  # finds b, which is not on disk
        )
        assert isinstance(raised["first"], StoreError)
        assert isinstance(raised["second"], StoreError)
        with store.read() as tx:
            assert tx.get("jobs", "b") is None
        put_jobs(store, "c")
    assert job_keys(store_path) == {"a", "c"}
