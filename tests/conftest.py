"""Shared fixtures: a real store in a temp folder, the CLI in-process and as a process."""

from __future__ import annotations

import hashlib
import os
import re
import signal
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


ENGINES = ("jsonfile", "postgres")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests marked ``engines`` run once per engine; ``jsonfile`` ones on the JSON file alone."""
    if "store_url" not in metafunc.fixturenames:
        return
    marks = {m.name for m in metafunc.definition.iter_markers()}
    if "engines" in marks and "jsonfile" not in marks:
        metafunc.parametrize("store_url", ENGINES, indirect=True)


@pytest.fixture
def store_url(request: pytest.FixtureRequest, store_path: Path) -> str:
    """Where the test's store is: the JSON file at ``store_path``, or a PostgreSQL schema.

    The ``client``, ``cli``, ``console`` and ``server`` fixtures use it, so a
    module marked ``pytest.mark.engines`` runs its tests on every engine.
    """
    if getattr(request, "param", "jsonfile") == "postgres":
        url = request.getfixturevalue("pg_url")
        with Client(url) as made:
            made.init_store()  # as `asyncjobs store init` makes it
        return url
    return str(store_path)


@pytest.fixture
def client(store_url: str, clock: FixedClock) -> Iterator[Client]:
    """A Client on a new store, made as `asyncjobs store init` makes it."""
    with Client(store_url, clock=clock) as c:
        c.init_store()
        yield c


@pytest.fixture
def cli(store_url: str):
    """Run an asyncjobs command in-process against the test store."""
    runner = CliRunner()

    def run(
        *args: str, input: str | None = None, env: dict[str, str] | None = None
    ) -> Outcome:
        result = runner.invoke(
            cli_group,
            ["--store", store_url, *args],
            input=input,
            env=env,
            catch_exceptions=False,
        )
        return Outcome(result.exit_code, result.stdout, result.stderr)

    return run


@pytest.fixture
def console(store_url: str):
    """Run asyncjobs as a real process against the test store."""

    def run(
        *args: str,
        input: str | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 60,
    ) -> Outcome:
        proc = subprocess.run(
            [sys.executable, "-m", "asyncjobs", "--store", store_url, *args],
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


def on_postgres(store_url: str) -> bool:
    return store_url.startswith(("postgresql://", "postgres://"))


def state_of(store_url: str, files: list[Path]) -> tuple[dict, dict[str, str | None]]:
    """What a refused command must leave as it was, on every engine.

    The whole state as the public API shows it, and the sha256 of ``files``
    (the JSON file's own files: on PostgreSQL there are none, so only the
    state counts there).
    """
    with Client(store_url) as c:
        doc = c.export()
    return doc, sha256_of(*files)


def make_unreadable(
    store_url: str, store_path: Path, snapshot: str = '{"schema": "store.v9"}'
) -> str:
    """Make the store one this asyncjobs cannot read: commands refuse it (exit 5).

    The JSON file gets ``snapshot`` (an unknown schema, or broken text) and an
    empty journal; a PostgreSQL schema gets a newer schema version. Returns
    words of the message the engine then gives.
    """
    if not on_postgres(store_url):
        store_path.write_text(snapshot)
        Path(f"{store_path}.journal").write_text("")
        return "unknown schema" if snapshot.startswith('{"schema"') else "not valid"
    import psycopg
    from psycopg import sql

    from asyncjobs.store.postgres import schema
    from asyncjobs.store.postgres.engine import split_url

    conninfo, name = split_url(store_url)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(
            sql.SQL("INSERT INTO {}.schema_version (version) VALUES (%s)").format(
                sql.Identifier(name)
            ),
            (schema.VERSION + 1,),
        )
    return "newer than this asyncjobs knows"


@pytest.fixture
def spawn(env: dict[str, str]) -> Iterator:
    """Start processes in their own process groups (stderr piped); all killed at the end."""
    started: list[subprocess.Popen] = []

    def start(command: list[str]) -> subprocess.Popen:
        proc = subprocess.Popen(
            command,
            env=env,
            text=True,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stderr.close()


@pytest.fixture
def server(store_url: str) -> Iterator[str]:
    """`asyncjobs serve` on a free loopback port; yields its base URL."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "asyncjobs",
            "--store",
            store_url,
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


# -- PostgreSQL ----------------------------------------------------------------


def throwaway_pg():
    """A new PostgreSQL server (scripts/pgserver.py), or skip saying why; under CI=true, fail."""
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import pgserver
    finally:
        sys.path.pop(0)
    try:
        return pgserver.start()
    except RuntimeError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL tests must run under CI=true: {exc}")
        pytest.skip(f"no PostgreSQL server: {exc}")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """The URL of a PostgreSQL server for this run.

    ``ASYNCJOBS_TEST_PG`` names one (``.ci/run`` starts it); otherwise a
    throwaway server is started here (scripts/pgserver.py) and stopped at
    the end. Without one, PostgreSQL tests skip, saying why, except under
    ``CI=true``, where they must run: there they fail.
    """
    url = os.environ.get("ASYNCJOBS_TEST_PG")
    if url:
        yield url
        return
    server = throwaway_pg()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    """A store URL with a schema of its own, dropped after the test."""
    import uuid

    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    yield f"{pg_server}?schema={name}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
