"""I/O errors injected into real commands.

strace makes one syscall of a real ``asyncjobs submit`` fail with ENOSPC or
EIO, at its Nth call, once (``when=N``) or from then on (``when=N+``); a
``store compact`` gets EXDEV from rename. Each failing command must exit 5
with one line and print no job id; nothing it reported may be missing; and
once the fault is gone the next command works and ``store check --strict``
passes. Short writes (probability 0.3) over 500 commits check that torn
lines are never taken as data. ``open`` faults are aimed at one file with ``strace -P``:
the interpreter's own hundreds of opens come first, and would stop it
before it ever reached the store.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from asyncjobs import Client
from asyncjobs.errors import StoreError
from asyncjobs.store import JsonFileStore
from asyncjobs.store.jsonfile.fileio import FileIO

from ..conftest import end_journal_with
from ..injection import ENV, asyncjobs_cmd, under_strace

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace"),
]


def faulty(store: Path, syscall: str, error: str, when: str, *args: str):
    return under_strace(
        syscall, f"error={error}:when={when}", asyncjobs_cmd(store, *args)
    )


def submitted(store: Path) -> set[str]:
    with Client(store) as client:
        assert client.check(strict=True).ok
        return {job.job_id for job in client.list_jobs(org="acme", limit=1000)}


@pytest.mark.parametrize("error", ["ENOSPC", "EIO"])
@pytest.mark.parametrize("syscall", ["write", "fsync", "ftruncate"])
def test_a_failing_disk_fails_the_command_cleanly_and_the_next_one_works(
    tmp_path, syscall, error
):
    store = tmp_path / "store" / "store.v1.json"
    store.parent.mkdir()
    with Client(store) as client:
        before = {client.submit("echo", org="acme").job_id}
    failures = 0
    for n in range(1, 30):
        for when in (str(n), f"{n}+"):  # once, then for good
            if syscall == "ftruncate":  # a torn tail the commit must cut first
                end_journal_with(store, b"0badc0de {")
            proc = faulty(
                store, syscall, error, when, "submit", "echo", "--org", "acme"
            )
            if proc.returncode == 0:
                before.add(proc.stdout.strip())
                continue
            failures += 1
            assert proc.stdout == "" and "Traceback" not in proc.stderr
            now = submitted(store)
            assert before <= now  # nothing reported is missing
            if proc.returncode != 5:
                # Only the answer could not be written (stdout fails too):
                # the commit itself went through, and is there.
                assert syscall == "write" and len(now - before) == 1, proc.stderr
                before = now
                continue
            assert now == before  # a failed commit leaves no trace
            if not (syscall == "write" and when.endswith("+")):  # stderr writes too
                assert proc.stderr.startswith("error: "), proc.stderr
                assert proc.stderr.count("\n") == 1, proc.stderr
        if proc.returncode == 0 and when.endswith("+"):
            break  # the command no longer reaches that call
    assert failures > 0
    with Client(store) as client:  # the fault is gone: the store takes commits
        before.add(client.submit("echo", org="acme").job_id)
    assert submitted(store) == before


@pytest.mark.parametrize("error", ["EIO", "EACCES", "EMFILE"])
@pytest.mark.parametrize(
    "target,command",
    [
        ("store.v1.json", ("submit", "echo", "--org", "acme")),
        ("store.v1.json.journal", ("submit", "echo", "--org", "acme")),
        ("store.v1.json.lock", ("submit", "echo", "--org", "acme")),
        ("", ("store", "compact")),  # the folder: listed, then fsynced
    ],
)
def test_a_file_that_will_not_open_fails_the_command_cleanly(
    tmp_path, target, command, error
):
    store = tmp_path / "store" / "store.v1.json"
    store.parent.mkdir()
    with Client(store) as client:  # a snapshot and a journal, both in use
        before = {client.submit("echo", org="acme").job_id}
        client.compact()
        before.add(client.submit("echo", org="acme").job_id)
    path = store.parent / target if target else store.parent
    failures = 0
    for n in range(1, 10):
        for when in (str(n), f"{n}+"):  # once, then for good
            proc = under_strace(
                "openat",
                f"error={error}:when={when}",
                asyncjobs_cmd(store, *command),
                path=path,
            )
            if proc.returncode == 0:
                if command[0] == "submit":
                    before.add(proc.stdout.strip())
                continue
            failures += 1
            assert proc.returncode == 5, proc.stderr
            assert proc.stdout == "" and proc.stderr.startswith("error: cannot ")
            assert proc.stderr.count("\n") == 1 and str(path) in proc.stderr
            assert submitted(store) == before  # nothing lost, nothing half-done
        if proc.returncode == 0:
            break  # the command no longer opens that file that often
    assert failures > 0
    proc = subprocess.run(asyncjobs_cmd(store, *command), env=ENV, capture_output=True)
    assert proc.returncode == 0, proc.stderr
    if command[0] == "submit":
        before.add(proc.stdout.decode().strip())
    assert submitted(store) == before


def test_a_rename_across_devices_fails_a_compaction_and_loses_nothing(tmp_path):
    store = tmp_path / "store.v1.json"
    with Client(store) as client:
        ids = {client.submit("echo", org="acme").job_id for _ in range(5)}
    proc = faulty(store, "rename", "EXDEV", "1+", "store", "compact")
    assert proc.returncode == 5 and proc.stderr.count("\n") == 1, proc.stderr
    assert "cannot write" in proc.stderr
    assert submitted(store) == ids
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    with Client(store) as client:
        client.compact()
    assert submitted(store) == ids


class ShortWrites(FileIO):
    """A write puts out only part of its bytes, then fails (probability 0.3)."""

    def __init__(self, seed: int) -> None:
        super().__init__(fsync=True)
        self.rng = random.Random(seed)

    def write_all(self, fd: int, data: bytes) -> None:
        if self.rng.random() < 0.3:
            os.write(fd, data[: self.rng.randrange(1, max(2, len(data)))])
            raise OSError(28, "No space left on device")
        super().write_all(fd, data)


def test_short_writes_over_500_commits_never_leave_a_torn_line_as_data(tmp_path):
    """libfiu's ``write/reduce`` at probability 0.3, in process."""
    path = tmp_path / "store.v1.json"
    committed = set()
    with (
        JsonFileStore(path, io=ShortWrites(7), compact_min_bytes=8192) as store,
        JsonFileStore(path) as reader,  # another process, reading along
    ):
        for n in range(500):
            try:
                with store.transaction() as tx:
                    tx.put("jobs", f"j{n}", {"job_id": f"j{n}", "n": n})
            except StoreError:  # the commit failed: it must not show up
                pass
            else:
                committed.add(f"j{n}")
            with reader.read() as tx:
                assert {r["job_id"] for r in tx.scan("jobs")} == committed
    with JsonFileStore(path) as store:
        assert store.verify(strict=True).problems == []
        with store.read() as tx:
            assert {r["job_id"] for r in tx.scan("jobs")} == committed
    assert 250 < len(committed) < 450
