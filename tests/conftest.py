"""Shared fixtures: a real store in a temp folder, the CLI in-process and as a process."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from asyncjobs import Client
from asyncjobs.cli import cli as cli_group
from asyncjobs.clock import FixedClock

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Outcome:
    """What a user sees of one command: exit code, stdout, stderr."""

    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    """Where the test's store goes; its folder exists (as after `store init`)."""
    folder = tmp_path / "store"
    folder.mkdir(mode=0o700)
    return folder / "store.v1.json"


@pytest.fixture
def runs_file(tmp_path: Path) -> Path:
    """Where the test app's counting tasks write a line per start and end."""
    return tmp_path / "runs.log"


@pytest.fixture
def env(runs_file: Path) -> dict[str, str]:
    """The environment of worker processes running the test app (tests/apps)."""
    return {
        **os.environ,
        "PYTHONPATH": f"{ROOT / 'tests' / 'apps'}{os.pathsep}{ROOT}",
        "ASYNCJOBS_TEST_RUNS": str(runs_file),
        "ASYNCJOBS_FSYNC": "never",
    }


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock("2026-11-01T12:00:00Z")


@pytest.fixture
def client(store_path: Path, clock: FixedClock) -> Iterator[Client]:
    """A Client on a new store, made as `asyncjobs store init` makes it."""
    with Client(store_path, clock=clock) as c:
        c.init_store()
        yield c


@pytest.fixture
def cli(store_path: Path):
    """Run an asyncjobs command in-process against the test store."""
    runner = CliRunner()

    def run(
        *args: str, input: str | None = None, env: dict[str, str] | None = None
    ) -> Outcome:
        result = runner.invoke(
            cli_group,
            ["--store", str(store_path), *args],
            input=input,
            env=env,
            catch_exceptions=False,
        )
        return Outcome(result.exit_code, result.stdout, result.stderr)

    return run


@pytest.fixture
def console(store_path: Path):
    """Run asyncjobs as a real process against the test store."""

    def run(
        *args: str,
        input: str | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 60,
    ) -> Outcome:
        proc = subprocess.run(
            [sys.executable, "-m", "asyncjobs", "--store", str(store_path), *args],
            input=input,
            capture_output=True,
            text=True,
            env={**os.environ, **(env or {})},
            timeout=timeout,
        )
        return Outcome(proc.returncode, proc.stdout, proc.stderr)

    return run


def sha256_of(*paths: Path) -> dict[str, str | None]:
    """The sha256 of each file, None for a missing one."""
    return {
        str(p): hashlib.sha256(p.read_bytes()).hexdigest() if p.exists() else None
        for p in paths
    }


def store_files(store_path: Path) -> list[Path]:
    return [store_path, Path(f"{store_path}.journal"), Path(f"{store_path}.lock")]


def journal_lines(store_path: Path) -> bytes:
    """The journal's lines: its bytes without the zeros reserved after them."""
    return Path(f"{store_path}.journal").read_bytes().rstrip(b"\0")


def end_journal_with(store_path: Path, tail: bytes) -> None:
    """Make the journal its lines and then ``tail`` (what a crash or a tool leaves)."""
    Path(f"{store_path}.journal").write_bytes(journal_lines(store_path) + tail)


def exported(client: Client, kind: str, **fields: object) -> list[dict]:
    """The ``kind`` records of ``client.export()`` whose ``fields`` are as given.

    The whole state as the public API shows it, the same for every backend: what
    behaviour tests read instead of the engine's transactions and indexes.
    """
    return [
        record
        for record in client.export()[kind].values()
        if all(record.get(name) == value for name, value in fields.items())
    ]


def data_files(store_path: Path) -> list[Path]:
    """The files that hold records: snapshot and journal (the lock file holds none)."""
    return [store_path, Path(f"{store_path}.journal")]


@pytest.fixture
def server(store_path: Path) -> Iterator[str]:
    """`asyncjobs serve` on a free loopback port; yields its base URL."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "asyncjobs",
            "--store",
            str(store_path),
            "serve",
            "--port",
            "0",
        ],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        line = proc.stderr.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        assert match, line
        yield f"http://127.0.0.1:{match.group(1)}"
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
        proc.stderr.close()
