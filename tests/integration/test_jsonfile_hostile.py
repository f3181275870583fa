"""The store against what no crash makes: damage, planted files, forks, read-only media.

Each test names the defect it guards against; each fails on a store that
cuts damage silently, follows planted files, shares a forked lock, or needs
write access to read.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from asyncjobs import Client
from asyncjobs.store import JsonFileStore

from ..conftest import data_files, sha256_of, store_files
from ..injection import ENV, asyncjobs_cmd, under_strace

ROOT = Path(__file__).resolve().parents[2]


def journal(store_path: Path) -> Path:
    return Path(f"{store_path}.journal")


def submit(store_path: Path, *orgs: str) -> list[str]:
    with Client(store_path) as client:
        client.init_store()
        return [client.submit("reports.build", org=org).job_id for org in orgs]


def assert_refused(outcome, *words: str) -> None:
    assert outcome.exit_code == 5, outcome
    assert outcome.stderr.count("\n") == 1 and outcome.stderr.startswith("error: ")
    for word in words:
        assert word in outcome.stderr, outcome.stderr


COMMANDS = (
    ["status", "job_00000000000000000000000000", "--org", "acme"],
    ["jobs", "--org", "acme"],
    ["submit", "reports.build", "--org", "acme"],
    ["store", "check", "--strict"],
    ["store", "compact"],
)


# -- damage beyond the last journal line -------------------------------------


def flip_a_bit_in_each_of_the_last_lines(path: Path, count: int) -> None:
    data = bytearray(path.read_bytes())
    end = len(data.rstrip(b"\0"))
    starts = [i + 1 for i in range(end - 1) if data[i] == ord("\n")]
    for start in starts[-count:]:
        data[start + 40] ^= 0x04  # inside the JSON: the checksum no longer holds
    path.write_bytes(bytes(data))


def overwrite_with_random_bytes(path: Path) -> None:
    path.write_bytes(os.urandom(path.stat().st_size))


DAMAGE = {
    "a bit flipped in each of the last two lines": lambda path: (
        flip_a_bit_in_each_of_the_last_lines(path, 2)
    ),
    "the whole journal overwritten": overwrite_with_random_bytes,
}


@pytest.mark.parametrize("damage", DAMAGE, ids=list(DAMAGE))
def test_damage_to_more_than_the_last_line_stops_every_command_and_changes_nothing(
    store_path, cli, damage
):
    submit(store_path, "acme", "acme", "acme", "acme")
    DAMAGE[damage](journal(store_path))
    before = sha256_of(*data_files(store_path))
    for command in COMMANDS:
        outcome = cli(*command)
        assert_refused(outcome, f"{store_path}.journal", "damage")
    assert sha256_of(*data_files(store_path)) == before


def test_one_torn_last_line_is_still_an_interrupted_write(store_path, cli):
    submit(store_path, "acme", "acme", "acme")
    flip_a_bit_in_each_of_the_last_lines(journal(store_path), 1)
    assert cli("jobs", "--org", "acme", "--json").exit_code == 0
    outcome = cli("store", "check", "--strict")
    assert outcome.exit_code == 0 and "torn last line" in outcome.stdout


# -- change detection --------------------------------------------------------


def test_a_newer_snapshot_with_the_same_times_and_size_is_seen(store_path):
    """A long-lived process cannot take a new snapshot for the one it read.

    Two compactions by another process free the inode of the snapshot read
    first; the newest snapshot has the same size and, set back by hand, the
    same times: only the inode number can tell them apart, and only while
    the old one cannot be handed out again.
    """
    with JsonFileStore(store_path) as writer:
        with writer.transaction() as tx:
            tx.put("jobs", "a", {"job_id": "a", "note": "first"})
        writer.compact()
    first = os.stat(store_path)
    with JsonFileStore(store_path) as reader:
        with reader.read() as tx:
            assert tx.get("jobs", "a")["note"] == "first"
        with JsonFileStore(store_path) as writer:
            for note in ("other", "newer"):
                with writer.transaction() as tx:
                    tx.put("jobs", "a", {"job_id": "a", "note": note})
                writer.compact()
        newest = os.stat(store_path)
        assert newest.st_size == first.st_size
        os.utime(store_path, ns=(first.st_atime_ns, first.st_mtime_ns))
        with reader.read() as tx:
            assert tx.get("jobs", "a")["note"] == "newer"


# -- files planted at the store's paths --------------------------------------


def planted_by_nobody(link: Path, target: Path) -> None:
    link.symlink_to(target)
    os.lchown(link, 65534, 65534)


@pytest.mark.skipif(os.geteuid() != 0, reason="handing a link to another user")
def test_a_link_another_user_planted_in_a_parent_folder_is_not_followed(
    tmp_path, console
):
    real = tmp_path / "real"
    submit(real / "store.v1.json", "acme")
    before = sha256_of(*store_files(real / "store.v1.json"))
    planted_by_nobody(tmp_path / "shared", real)
    outcome = console(
        "--store", str(tmp_path / "shared" / "store.v1.json"), "jobs", "--org", "acme"
    )
    assert_refused(outcome, f"{tmp_path / 'shared'} is a symlink owned by another user")
    report = tmp_path / "reports" / "cleanup.json"
    (tmp_path / "reports").mkdir()
    planted_by_nobody(tmp_path / "reports" / "sub", real)
    outcome = console(
        "cleanup",
        "--results-ttl-seconds",
        "0",
        "--events-ttl-seconds",
        "0",
        "--output-json",
        str(tmp_path / "reports" / "sub" / "cleanup.json"),
    )
    assert outcome.exit_code == 5 and "symlink owned by another user" in outcome.stderr
    assert not report.exists() and not (real / "cleanup.json").exists()
    assert sha256_of(*store_files(real / "store.v1.json")) == before


def test_folders_made_on_the_way_are_private_whatever_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        submit(tmp_path / "a" / "b" / "c" / "store.v1.json", "acme")
    finally:
        os.umask(old)
    for folder in ("a", "a/b", "a/b/c"):
        assert (tmp_path / folder).stat().st_mode & 0o777 == 0o700, folder


@pytest.mark.parametrize("which", ["", ".journal", ".lock"])
def test_a_fifo_at_a_store_path_fails_fast_naming_it(store_path, console, which):
    submit(store_path, "acme")
    planted = Path(f"{store_path}{which}")
    planted.unlink(missing_ok=True)
    os.mkfifo(planted, 0o600)
    started = time.monotonic()
    outcome = console("jobs", "--org", "acme", timeout=20)
    assert time.monotonic() - started < 5
    assert_refused(outcome, str(planted), "not a regular file")


def test_a_snapshot_rewritten_in_place_while_read_never_kills_the_reader(
    store_path, tmp_path
):
    """A mapping of a file cut short under it raises SIGBUS; a read comes back short."""
    with JsonFileStore(store_path) as store:
        with store.transaction() as tx:
            for n in range(20_000):
                tx.put("jobs", f"j{n}", {"job_id": f"j{n}", "note": "x" * 500})
        store.compact()
    original = store_path.read_bytes()
    assert len(original) > 8 << 20
    rewriter = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import os, sys\n"
            "path, data = sys.argv[1], open(sys.argv[1], 'rb').read()\n"
            "fd = os.open(path, os.O_RDWR)\n"
            "while True:\n"
            "    os.ftruncate(fd, 4096)\n"
            "    os.pwrite(fd, data, 0)\n",
            str(store_path),
        ]
    )
    try:
        codes = set()
        for _ in range(15):
            proc = subprocess.run(
                asyncjobs_cmd(store_path, "store", "check"),
                capture_output=True,
                text=True,
                env=ENV,
                timeout=60,
            )
            codes.add(proc.returncode)
            if proc.returncode == 5:
                assert str(store_path) in proc.stderr and "Traceback" not in proc.stderr
    finally:
        rewriter.kill()
        rewriter.wait()
    assert codes <= {0, 5}, codes


def write_snapshot(store_path: Path, jobs: dict) -> None:
    store_path.parent.mkdir(parents=True, exist_ok=True)
    store_path.write_text(
        json.dumps({"schema": "store.v1", "generation": 1, "jobs": jobs})
    )


def test_a_snapshot_record_that_is_not_an_object_stops_commands_with_exit_5(
    store_path, cli
):
    write_snapshot(store_path, {"job_01": 5})
    for command in COMMANDS:
        assert_refused(cli(*command), str(store_path), "'job_01' is not a JSON object")


def test_a_job_record_missing_its_fields_fails_the_check_and_reads_of_it(
    store_path, cli
):
    job_id = submit(store_path, "acme")[0]
    with JsonFileStore(store_path) as store, store.transaction() as tx:
        tx.put("jobs", job_id, {"job_id": job_id, "org_id": "acme"})
    outcome = cli("store", "check", "--strict")
    assert outcome.exit_code == 5
    assert f"job {job_id}" in outcome.stderr and "'task'" in outcome.stderr
    assert_refused(
        cli("status", job_id, "--org", "acme"),
        job_id,
        "missing 'status'",
        "store check",
    )


def test_a_job_record_with_an_unknown_status_fails_reads_of_it(store_path, cli):
    job_id = submit(store_path, "acme")[0]
    with JsonFileStore(store_path) as store, store.transaction() as tx:
        tx.put("jobs", job_id, {**tx.get("jobs", job_id), "status": "paused"})
    assert_refused(
        cli("status", job_id, "--org", "acme"),
        f"job {job_id} is a malformed record",
        "'paused' is not a valid JobStatus",
    )


# -- a store on read-only media ----------------------------------------------


@contextlib.contextmanager
def mounted_read_only(folder: Path) -> Iterator[Path]:
    view = folder.parent / f"{folder.name}-ro"
    view.mkdir()
    try:
        subprocess.run(["mount", "--bind", str(folder), str(view)], check=True)
        try:
            subprocess.run(["mount", "-o", "remount,bind,ro", str(view)], check=True)
            yield view
        finally:
            subprocess.run(["umount", str(view)], check=True)
    finally:
        view.rmdir()


def can_mount() -> bool:
    return os.geteuid() == 0 and shutil.which("mount") is not None


@pytest.mark.skipif(not can_mount(), reason="a read-only bind mount needs root")
def test_a_store_on_read_only_media_can_be_read_checked_and_exported(
    tmp_path, store_path
):
    store_path = tmp_path / "backup" / "store.v1.json"
    ids = submit(store_path, "acme", "acme")
    with JsonFileStore(store_path) as store:
        store.compact()
    submit(store_path, "acme")  # and a journal line after the snapshot
    with mounted_read_only(store_path.parent) as view:
        mounted = view / "store.v1.json"

        def run(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run(
                asyncjobs_cmd(mounted, *args),
                capture_output=True,
                text=True,
                env=ENV,
                timeout=60,
            )

        listed = run("jobs", "--org", "acme", "--json")
        assert listed.returncode == 0, listed.stderr
        assert len(json.loads(listed.stdout)["jobs"]) == 3
        assert run("status", ids[0], "--org", "acme").returncode == 0
        assert run("events", ids[0], "--org", "acme").returncode == 0
        checked = run("store", "check", "--strict")
        assert checked.returncode == 0, checked.stderr
        exported = run("store", "export")
        assert (
            exported.returncode == 0 and len(json.loads(exported.stdout)["jobs"]) == 3
        )
        refused = run("submit", "reports.build", "--org", "acme")
        assert refused.returncode == 5 and refused.stderr.count("\n") == 1
        assert "Read-only file system" in refused.stderr
        assert sorted(p.name for p in view.iterdir()) == sorted(
            p.name for p in store_path.parent.iterdir()
        )


# -- a fork after using a Client ---------------------------------------------


def test_a_child_forked_after_a_transaction_commits_and_leaves_the_lock_free(
    store_path,
):
    """As under gunicorn --preload or multiprocessing's fork: the child gets its own lock."""
    with Client(store_path) as client:
        client.submit("reports.build", org="acme")
        done_r, done_w = os.pipe()
        go_r, go_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: one transaction, then it lives on until told
            code = 1
            try:
                client.submit("reports.build", org="acme")
                code = 0
            finally:
                os.write(done_w, bytes([code]))
                os.read(go_r, 1)
                os._exit(code)
        os.close(done_w)
        os.close(go_r)
        try:
            assert os.read(done_r, 1) == b"\0", "the child's transaction failed"
            other = subprocess.run(
                asyncjobs_cmd(
                    store_path,
                    "--lock-timeout",
                    "2",
                    "submit",
                    "reports.build",
                    "--org",
                    "acme",
                ),
                capture_output=True,
                text=True,
                env=ENV,
                timeout=60,
            )
            assert other.returncode == 0, other.stderr
            client.submit("reports.build", org="acme")  # the parent goes on
        finally:
            os.write(go_w, b"x")
            _, status = os.waitpid(pid, 0)
            os.close(done_r)
            os.close(go_w)
        assert os.waitstatus_to_exitcode(status) == 0
        assert len(client.list_jobs(org="acme")) == 4


# -- a compaction killed half way ---------------------------------------------


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")
def test_a_killed_compaction_leaves_no_temp_file_past_the_next_command(store_path):
    submit(store_path, "acme")
    killed = under_strace(
        "rename", "signal=SIGKILL", asyncjobs_cmd(store_path, "store", "compact")
    )
    assert killed.returncode != 0
    temps = [p for p in store_path.parent.iterdir() if p.name.endswith(".tmp")]
    assert temps, "the kill came before the temp file"
    done = subprocess.run(
        asyncjobs_cmd(store_path, "submit", "reports.build", "--org", "acme"),
        capture_output=True,
        text=True,
        env=ENV,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert not [p for p in store_path.parent.iterdir() if p.name.endswith(".tmp")]
