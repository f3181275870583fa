"""A throwaway PostgreSQL server for tests, demos and benchmarks.

    python scripts/pgserver.py start   # prints: export ASYNCJOBS_TEST_PG=postgresql://… and its folder
    python scripts/pgserver.py stop FOLDER

The server is the distribution's (``/usr/lib/postgresql/*/bin``, or
``initdb`` on the PATH), runs as the ``postgres`` user when started by root
(PostgreSQL refuses to run as root), listens on 127.0.0.1 only, on a free
port, with its socket and data in a new folder under /tmp. ``fast=True``
turns fsync off: for tests only, never for benchmarks.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass


@dataclass
class Server:
    folder: str
    port: int
    bindir: str
    user: str | None  # the user the server runs as, when not this one

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        command = [os.path.join(self.bindir, args[0]), *args[1:]]
        if self.user is not None:
            command = ["runuser", "-u", self.user, "--", *command]
        subprocess.run(command, check=True, capture_output=True, text=True)

    def stop(self) -> None:
        try:
            self._run(
                "pg_ctl", "-D", f"{self.folder}/data", "-m", "immediate", "-w", "stop"
            )
        except (subprocess.CalledProcessError, FileNotFoundError):
            pass
        shutil.rmtree(self.folder, ignore_errors=True)


def bindir() -> str | None:
    """Where the distribution's server programs are, or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return os.path.dirname(found[-1])
    initdb = shutil.which("initdb")
    return os.path.dirname(initdb) if initdb else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(*, fast: bool = True) -> Server:
    """Start a server; raises RuntimeError with the reason when it cannot."""
    where = bindir()
    if where is None:
        raise RuntimeError("no PostgreSQL server programs (initdb) are installed")
    user = None
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            raise RuntimeError(
                "running as root, and there is no 'postgres' user"
            ) from None
        user = "postgres"
    folder = tempfile.mkdtemp(prefix="asyncjobs-pg.")
    os.chmod(folder, 0o755)
    if user is not None:
        shutil.chown(folder, user)
    server = Server(folder, _free_port(), where, user)
    options = f"-p {server.port} -k {folder} -c listen_addresses=127.0.0.1"
    if fast:
        options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    options += " -c max_connections=200"
    try:
        server._run(
            "initdb",
            "-D",
            f"{folder}/data",
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        )
        server._run(
            "pg_ctl",
            "-D",
            f"{folder}/data",
            "-l",
            f"{folder}/server.log",
            "-w",
            "-t",
            "30",
            "-o",
            options,
            "start",
        )
    except subprocess.CalledProcessError as exc:
        server.stop()
        raise RuntimeError(
            f"cannot start PostgreSQL: {(exc.stderr or exc.stdout or '').strip()[-300:]}"
        ) from None
    return server


def main() -> int:
    if sys.argv[1:2] == ["start"]:
        server = start(fast="--durable" not in sys.argv)
        print(f"export ASYNCJOBS_TEST_PG={server.url}")
        print(f"export ASYNCJOBS_TEST_PG_FOLDER={server.folder}")
        return 0
    if sys.argv[1:2] == ["stop"] and len(sys.argv) == 3:
        folder = sys.argv[2]
        where = bindir() or ""
        user = "postgres" if os.geteuid() == 0 else None
        Server(folder, 0, where, user).stop()
        return 0
    print(__doc__.strip().splitlines()[2], file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
