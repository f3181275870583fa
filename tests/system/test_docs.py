"""The docs stay true: the runbook keeps its sections and names, docs/cli.md matches the
commands, every flag the docs mention exists, and the sh and python blocks run."""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import click
import pytest

from asyncjobs.cli import cli
from asyncjobs.cli.reference import render, walk

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
RUNBOOK = DOCS / "async-v1.md"
FOREIGN_FLAGS = {
    "--store-file",  # the cron script's
    "--threads",  # gunicorn's
    "--bind",
    "--workers",
    "--graceful-timeout",
    "--postgres",  # demo.sh's
    "--system",  # useradd's (deploy.md)
    "--home",
}


def blocks(path: Path) -> list[tuple[str, str]]:
    """The fenced code blocks of a markdown file: (info string, text)."""
    return [
        (m.group(1), m.group(2))
        for m in re.finditer(r"^```([\w-]*)\n(.*?)^```", path.read_text(), re.M | re.S)
    ]


def cli_flags() -> set[str]:
    flags = {"--help", "-h"}
    for _, command in walk(cli):
        for param in command.params:
            if isinstance(param, click.Option):
                flags.update(param.opts)
                flags.update(param.secondary_opts)
    return flags


# -- markers -------------------------------------------------------------------------


def test_the_runbook_keeps_its_sections_metrics_and_checklists():
    text = RUNBOOK.read_text()
    for heading in (
        "## Prerequisites and environment",
        "## Operate and diagnose",
        "### 1. Result permalink check",
        "### 2. Job status and notifications",
        "### 3. Retention dry run",
        "### 4. Productive cleanup",
        "## Monitoring",
        "## Smoke checklist: staging",
        "## Smoke checklist: production",
        "## Incident triage",
        "## Cron example",
    ):
        assert heading in text, heading
    for alert in (
        "async_result_permalink_http_5xx_rate_5m",
        "async_result_permalink_p95_ms_15m",
        "async_retention_cleanup_exit_code",
        "async_retention_results_delete_count",
        "async_retention_events_delete_count",
        "async_notifications_terminal_jobs_without_in_app_10m",
    ):
        assert f"`{alert}`" in text.split("## Monitoring")[1], alert
    for series in (
        "asyncjobs_http_requests_total",
        "asyncjobs_http_request_duration_seconds",
        "asyncjobs_terminal_jobs_without_in_app_notification",
    ):
        assert series in text
    assert text.count("Expected outcome") >= 4
    assert "run_async_retention_cleanup.py --store-file" in text


def test_docs_cli_md_is_current():
    assert (DOCS / "cli.md").read_text() == render(cli), "run scripts/gen_cli_docs.py"


def test_every_command_and_flag_is_in_docs_cli_md():
    text = (DOCS / "cli.md").read_text()
    for path, command in walk(cli):
        assert f"## `{' '.join(('asyncjobs', *path))}`" in text
        for param in command.params:
            if isinstance(param, click.Option):
                for flag in param.opts:
                    assert f"`{flag}`" in text, (path, flag)


def test_every_flag_the_docs_mention_exists():
    known = cli_flags() | FOREIGN_FLAGS
    for path in [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]:
        for flag in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]+", path.read_text()):
            assert flag in known, f"{path.name} mentions {flag}, which no command has"


# -- running the docs ------------------------------------------------------------------


def sh_script(text: str) -> str:
    """Turn sh blocks into a bash script that checks each command's expectations."""
    lines = text.splitlines()
    out = ['__fail() { echo "DOC FAILURE: $*" >&2; exit 1; }']
    i = 0
    while i < len(lines):
        line = lines[i].rstrip()
        i += 1
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        expects, exit_code = [], "0"
        while i < len(lines) and lines[i].lstrip().startswith("# "):
            note = lines[i].strip()[2:]
            if note.startswith("expect: "):
                expects.append(note[len("expect: ") :])
            elif note.startswith("exit: "):
                exit_code = note[len("exit: ") :].strip()
            i += 1
        shown = shlex.quote(line)
        if re.match(r"^(export\s+)?[A-Za-z_][A-Za-z0-9_]*=", line):
            out.append(f"{line} || __fail {shown}")
            continue
        if line.endswith("&"):  # started in the background: $! must be this shell's
            out.append(f'echo "\\$ "{shown}')
            out.append(line)
            continue
        out.append(f'echo "\\$ "{shown}')
        out.append(f"__out=$( {line} 2>&1 ); __rc=$?")
        out.append('printf "%s\\n" "$__out"')
        message = shlex.quote(f"exit code not {exit_code}: {line}")
        out.append(f'[ "$__rc" = "{exit_code}" ] || __fail "$__rc: "{message}')
        for expect in expects:
            message = shlex.quote(f"no {expect!r} in the output of: {line}")
            out.append(
                f'case "$__out" in *{shlex.quote(expect)}*) ;; *) __fail {message} ;; esac'
            )
    return "\n".join(out) + "\n"


@pytest.fixture
def doc_env(tmp_path):
    """A fresh folder that looks like a checkout's working folder."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "scripts").symlink_to(ROOT / "scripts")
    (work / "examples").symlink_to(ROOT / "examples")
    (work / "runtime").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASYNCJOBS_")}
    env.update(
        {
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
            "PYTHONPATH": f"{ROOT / 'examples'}{os.pathsep}{ROOT}",
            "ASYNCJOBS_FSYNC": "never",
        }
    )
    return work, env


@pytest.fixture
def doc_server(doc_env):
    work, env = doc_env
    proc = subprocess.Popen(
        [sys.executable, "-m", "asyncjobs", "serve", "--port", "0"],
        cwd=work,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stderr.readline()
        match = re.search(r"http://127\.0\.0\.1:\d+", line)
        assert match, line
        yield match.group(0)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        proc.stderr.close()


DOC_PAGES = sorted(
    p.name
    for p in DOCS.glob("*.md")
    if any(info in ("sh", "python") for info, _ in blocks(p))
)


@pytest.mark.parametrize("page", DOC_PAGES)
def test_the_code_blocks_of_the_docs_run(page, doc_env, request):
    work, env = doc_env
    path = DOCS / page
    found = blocks(path)
    sh = "\n".join(text for info, text in found if info == "sh")
    python = "\n".join(text for info, text in found if info == "python")
    if "ASYNCJOBS_BASE_URL" in sh:
        if shutil.which("curl") is None:
            pytest.skip("needs curl (installed by .ci/run)")
        env = {**env, "ASYNCJOBS_BASE_URL": request.getfixturevalue("doc_server")}
    if python:
        proc = subprocess.run(
            [sys.executable, "-c", python],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, f"{page} python blocks:\n{proc.stderr}"
    if sh:
        # In a session of its own: a server a page starts in the background
        # is stopped with it even when the page fails half way.
        proc = subprocess.Popen(
            ["bash", "-c", sh_script(sh)],
            cwd=work,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            stdout, stderr = proc.communicate(timeout=300)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            proc.wait()
        assert proc.returncode == 0, (
            f"{page} sh blocks:\n{stdout[-3000:]}\n{stderr[-3000:]}"
        )
