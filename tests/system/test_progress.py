"""Long commands on a real terminal: a count on stderr, the answer alone on stdout."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import threading
from pathlib import Path

from ..injection import ENV, asyncjobs_cmd


def on_a_terminal(command: list[str], input: bytes = b"") -> tuple[int, bytes, str]:
    """Run with stderr on a pseudo-terminal: (exit code, stdout, what the terminal showed)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=slave,
        env=ENV,
    )
    os.close(slave)
    shown = bytearray()

    def read_terminal() -> None:
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the process closed its end
                return
            if not chunk:
                return
            shown.extend(chunk)

    reader = threading.Thread(target=read_terminal)
    reader.start()
    try:
        stdout, _ = proc.communicate(input, timeout=120)
    finally:
        reader.join(timeout=30)
        os.close(master)
    return proc.returncode, stdout, shown.decode(errors="replace")


def test_submit_many_and_cleanup_show_progress_on_a_terminal(store_path: Path):
    lines = b"".join(
        json.dumps({"task": "report", "payload": {"n": n}}).encode() + b"\n"
        for n in range(11_000)
    )
    code, stdout, terminal = on_a_terminal(
        asyncjobs_cmd(store_path, "submit-many", "-", "--org", "acme"), lines
    )
    assert code == 0, terminal
    assert len(stdout.split()) == 11_000  # the ids, and nothing else
    assert "reading jobs: 11,000 done" in terminal
    assert "submitting 11,000 jobs in one transaction" in terminal
    code, stdout, terminal = on_a_terminal(
        asyncjobs_cmd(
            store_path,
            "cleanup",
            "--results-ttl-seconds",
            "0",
            "--events-ttl-seconds",
            "0",
        )
    )
    assert code == 0, terminal
    assert "Traceback" not in terminal and "reading records: " in terminal
    assert "done" in terminal
    report = json.loads(stdout)
    assert report["dry_run"] is False


def test_a_small_run_on_a_terminal_shows_no_count(store_path: Path):
    code, stdout, terminal = on_a_terminal(
        asyncjobs_cmd(store_path, "submit-many", "-", "--org", "acme"),
        b'{"task": "report"}\n',
    )
    assert code == 0 and len(stdout.split()) == 1
    assert terminal == ""
