"""What deploy/ holds runs as written: the units' commands, gunicorn, the crontab line.

Each file is read as an operator would copy it; only the install folder
``/srv/app`` is swapped for a temp folder (with ``.venv`` pointing at the
environment running the tests, and an ``app/tasks.py`` of its own), and
gunicorn's port for a free one on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import date
from pathlib import Path

import pytest

from asyncjobs import Client

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
UNITS = sorted(p.name for p in DEPLOY.glob("asyncjobs-*.*"))
APP = """
import asyncjobs.tasks

tasks = asyncjobs.tasks.TaskRegistry()


@tasks.task(name="reports.build")
def build(month: str = "") -> dict:
    return {"month": month}
"""


@pytest.fixture
def install(tmp_path: Path) -> Path:
    """A stand-in for /srv/app: the venv, the app's tasks, a store."""
    home = tmp_path / "srv-app"
    (home / "app").mkdir(parents=True)
    (home / "app" / "__init__.py").write_text("")
    (home / "app" / "tasks.py").write_text(APP)
    (home / ".venv").symlink_to(Path(sys.prefix))
    with Client(home / "runtime/async_jobs/store.v1.json") as client:
        client.init_store()
    return home


def placed(text: str, home: Path) -> str:
    return text.replace("/srv/app", str(home))


def service(name: str, home: Path) -> dict[str, list[str]]:
    """The [Service] settings of a unit, each key with its values in order."""
    settings: dict[str, list[str]] = {}
    section = None
    for line in placed((DEPLOY / name).read_text(), home).splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    return settings


def unit_env(settings: dict[str, list[str]]) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for assignment in settings.get("Environment", []):
        key, value = assignment.split("=", 1)
        env[key] = value
    return env


def command(value: str) -> list[str]:
    """An ExecStart line as systemd splits it (it unescapes %% to %)."""
    return shlex.split(value.replace("%%", "%"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="needs systemd-analyze"
)
def test_the_units_pass_systemd_analyze_verify(install, tmp_path):
    folder = tmp_path / "units"
    folder.mkdir()
    for name in UNITS:
        (folder / name).write_text(placed((DEPLOY / name).read_text(), install))
    checked = subprocess.run(
        ["systemd-analyze", "verify", *[str(folder / n) for n in UNITS]],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert checked.returncode == 0, checked.stderr


@pytest.mark.parametrize("unit", ["asyncjobs-worker.service", "asyncjobs-beat.service"])
def test_a_worker_unit_runs_jobs_and_stops_on_its_stop_signal_in_time(
    install, tmp_path, unit
):
    settings = service(unit, install)
    env = unit_env(settings)
    log = tmp_path / "worker.log"
    with Client(env["ASYNCJOBS_STORE"]) as client, log.open("w") as stderr:
        job = client.submit("reports.build", org="acme", payload={"month": "2026-10"})
        worker = subprocess.Popen(
            command(settings["ExecStart"][0]),
            cwd=settings["WorkingDirectory"][0],
            env=env,
            stderr=stderr,
        )
        try:
            done = client.wait(job.job_id, org="acme", timeout=60)
            assert done.status == "completed"
            assert settings["KillMode"] == ["mixed"]  # the signal goes to the worker
            worker.send_signal(getattr(signal, settings["KillSignal"][0]))
            code = worker.wait(timeout=float(settings["TimeoutStopSec"][0]))
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    lines = log.read_text().splitlines()
    assert code == 0, lines
    assert lines and all(json.loads(line)["level"] for line in lines)  # JSON lines


def test_gunicorn_serves_the_api_as_the_http_unit_says(install):
    settings = service("asyncjobs-http.service", install)
    argv = command(settings["ExecStart"][0])
    port = free_port()
    argv[argv.index("--bind") + 1] = f"127.0.0.1:{port}"
    server = subprocess.Popen(
        argv, cwd=settings["WorkingDirectory"][0], env=unit_env(settings)
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/health", timeout=5
                ) as answer:
                    assert answer.status == 200
                    assert json.load(answer)["status"] == "ok"
                    break
            except OSError:
                assert server.poll() is None, "gunicorn exited"
                assert time.monotonic() < deadline, "gunicorn never answered"
                time.sleep(0.1)
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/analyze/jobs",
            data=b'{"task": "reports.build"}',
            headers={"X-Org-Id": "acme"},
        )
        with urllib.request.urlopen(request, timeout=5) as answer:
            assert answer.status == 202
        server.send_signal(getattr(signal, settings["KillSignal"][0]))
        assert server.wait(timeout=float(settings["TimeoutStopSec"][0])) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def cron_line(home: Path) -> str:
    """The crontab's command, as cron hands it to sh (``\\%`` is a ``%``)."""
    (line,) = [
        raw
        for raw in (DEPLOY / "crontab").read_text().splitlines()
        if raw.strip() and not raw.startswith("#")
    ]
    fields = line.split(None, 5)
    assert fields[:5] == ["30", "2", "*", "*", "*"]
    return placed(fields[5], home).replace("\\%", "%")


def test_the_crontab_line_keeps_a_dry_run_then_cleans_up(install):
    ran = subprocess.run(
        ["sh", "-c", cron_line(install)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ran.returncode == 0, ran.stderr
    today = date.today().isoformat()
    dry = json.loads(
        (install / f"artifacts/async/retention-dry-run-{today}.json").read_text()
    )
    live = json.loads((install / f"artifacts/async/retention-{today}.json").read_text())
    assert dry["dry_run"] is True and live["dry_run"] is False


def test_the_crontab_line_skips_a_run_while_the_last_one_holds_the_lock(install):
    lock = install / "runtime/async_jobs/cleanup.lock"
    holder = subprocess.Popen(["flock", str(lock), "sleep", "60"])
    try:
        while not lock.exists():  # flock creates it before it sleeps
            assert holder.poll() is None
            time.sleep(0.01)
        ran = subprocess.run(
            ["sh", "-c", cron_line(install)],
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        holder.kill()
        holder.wait()
    assert ran.returncode == 1  # flock -n: taken, nothing run
    assert not (install / "artifacts").exists()


def test_the_cleanup_unit_runs_its_two_commands(install):
    settings = service("asyncjobs-cleanup.service", install)
    assert settings["Type"] == ["oneshot"]
    for line in settings["ExecStart"]:
        ran = subprocess.run(
            command(line),
            cwd=settings["WorkingDirectory"][0],
            env=unit_env(settings),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert ran.returncode == 0, ran.stderr
    today = date.today().isoformat()
    assert (install / f"artifacts/async/retention-dry-run-{today}.json").exists()
    assert (install / f"artifacts/async/retention-{today}.json").exists()
