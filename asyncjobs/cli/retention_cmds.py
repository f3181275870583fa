"""``asyncjobs cleanup``: TTL retention with a JSON audit artifact and a metrics file."""

from __future__ import annotations

import os
import time
from typing import Any

import click
import orjson

from ..client import Client
from ..domain import retention, validation
from ..errors import AsyncJobsError, InvalidInput, ReportNotWritten, StoreError
from ..store.jsonfile.fileio import private_file_target, write_private_file
from .common import Number, Progress, cli, pass_client

PROGRESS_THRESHOLD = 10_000


def metrics_text(
    exit_code: int, report: dict[str, Any] | None, seconds: float, dry_run: bool
) -> str:
    """The run's outcome for node_exporter's textfile collector."""
    mode = "dry_run" if dry_run else "live"
    lines = [
        "# HELP async_retention_cleanup_exit_code Exit code of the last retention cleanup.",
        "# TYPE async_retention_cleanup_exit_code gauge",
        f'async_retention_cleanup_exit_code{{mode="{mode}"}} {exit_code}',
        "# HELP async_retention_cleanup_duration_seconds How long the last cleanup took.",
        "# TYPE async_retention_cleanup_duration_seconds gauge",
        f'async_retention_cleanup_duration_seconds{{mode="{mode}"}} {seconds:.6f}',
        "# HELP async_retention_cleanup_timestamp_seconds When the last cleanup ended.",
        "# TYPE async_retention_cleanup_timestamp_seconds gauge",
        f'async_retention_cleanup_timestamp_seconds{{mode="{mode}"}} {time.time():.3f}',
    ]
    for kind in ("results", "events", "notifications", "jobs", "workers"):
        count = report[kind]["delete_count"] if report else 0
        lines += [
            f"# HELP async_retention_{kind}_delete_count {kind.capitalize()} the last cleanup deleted.",
            f"# TYPE async_retention_{kind}_delete_count gauge",
            f'async_retention_{kind}_delete_count{{mode="{mode}"}} {count}',
        ]
    return "\n".join(lines) + "\n"


@cli.command()
@click.option(
    "--results-ttl-seconds",
    type=Number(validation.TTL_SECONDS, whole=True, unit="seconds"),
    required=True,
    help="Delete results of terminal jobs older than this.",
)
@click.option(
    "--events-ttl-seconds",
    type=Number(validation.TTL_SECONDS, whole=True, unit="seconds"),
    required=True,
    help="Delete events of terminal jobs older than this.",
)
@click.option(
    "--notifications-ttl-seconds",
    type=Number(validation.TTL_SECONDS, whole=True, unit="seconds"),
    help="Delete notifications of terminal jobs older than this (default: keep).",
)
@click.option(
    "--jobs-ttl-seconds",
    type=Number(validation.TTL_SECONDS, whole=True, unit="seconds"),
    help="Delete terminal jobs finished longer ago, with all of theirs (default: keep).",
)
@click.option(
    "--workers-ttl-seconds",
    type=Number(validation.TTL_SECONDS, whole=True, unit="seconds"),
    default=retention.DEFAULT_WORKERS_TTL_SECONDS,
    show_default=True,
    help="Delete records of workers not seen for this long.",
)
@click.option("--dry-run", is_flag=True, help="Report what would go; change nothing.")
@click.option(
    "--output-json", metavar="PATH", help="Write the report there (atomically)."
)
@click.option(
    "--metrics-file",
    metavar="PATH",
    help="Write the outcome in Prometheus text format (atomically).",
)
@click.option("--now", "now_text", metavar="ISO", help="Judge ages as of this time.")
@pass_client
def cleanup(
    client: Client,
    results_ttl_seconds: int,
    events_ttl_seconds: int,
    notifications_ttl_seconds: int | None,
    jobs_ttl_seconds: int | None,
    workers_ttl_seconds: int,
    dry_run: bool,
    output_json: str | None,
    metrics_file: str | None,
    now_text: str | None,
) -> None:
    """Delete expired records of terminal jobs (TTL retention)."""
    started = time.monotonic()
    _check_artifacts(client, output_json=output_json, metrics_file=metrics_file)
    report = None
    try:
        now = (
            validation.moment(now_text, "--now", validation.CLEANUP_NOW)
            if now_text
            else None
        )
        with Progress() as progress:
            progress.step("reading records", PROGRESS_THRESHOLD)
            report = client.cleanup(
                results_ttl_seconds=results_ttl_seconds,
                events_ttl_seconds=events_ttl_seconds,
                notifications_ttl_seconds=notifications_ttl_seconds,
                jobs_ttl_seconds=jobs_ttl_seconds,
                workers_ttl_seconds=workers_ttl_seconds,
                dry_run=dry_run,
                now=now,
                progress=progress.add if progress.shown else None,
            )
    except AsyncJobsError as exc:
        if metrics_file:
            write_private_file(
                metrics_file,
                metrics_text(
                    exc.exit_code, report, time.monotonic() - started, dry_run
                ).encode(),
            )
        raise
    # orjson: the stdlib's indented writer is pure Python, 0.3 s for the
    # 500,000 ids of a large cleanup; the same layout, text as UTF-8.
    text = orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)
    failure: AsyncJobsError | None = None
    if output_json:
        try:
            write_private_file(output_json, text)
        except StoreError as exc:
            if dry_run:
                failure = exc
            else:
                # The deletions are committed: their record must not be lost.
                click.echo(text, nl=False)
                failure = _committed(exc, on_stdout=True)
    else:
        click.echo(text, nl=False)
    if metrics_file:
        code = failure.exit_code if failure else 0
        try:
            write_private_file(
                metrics_file,
                metrics_text(
                    code, report, time.monotonic() - started, dry_run
                ).encode(),
            )
        except StoreError as exc:
            failure = failure or (exc if dry_run else _committed(exc))
    if failure is not None:
        raise failure


def _committed(exc: StoreError, *, on_stdout: bool = False) -> ReportNotWritten:
    """Exit 6: the deletions are committed, an artifact of them is not written."""
    where = "; the report is on stdout" if on_stdout else ""
    return ReportNotWritten(
        f"cleanup committed its deletions, but {exc.message}{where}"
    )


def _check_artifacts(client: Client, **paths: str | None) -> None:
    """Refuse artifact paths that would replace a store file, each other, or fail.

    Checked before the store is touched, and before the metrics file of a
    failure is written: a report written over the journal would lose
    every commit in it, and one that cannot be written after the commit
    loses the record of what was deleted.
    """
    seen: dict[str, str] = {}
    for name, path in paths.items():
        if path is None:
            continue
        option = "--" + name.replace("_", "-")
        kind = client.store_file(path)
        if kind is not None:
            raise InvalidInput(
                f"{option}: {path} is the store's {kind}; write it somewhere else"
            )
        # The file a write replaces: a symlink in the last place is replaced,
        # not followed (write_private_file), so only the folder is resolved.
        folder, base = os.path.split(os.path.abspath(path))
        written = os.path.join(os.path.realpath(folder), base)
        if written in seen:
            raise InvalidInput(f"{option}: {path} is also the path of {seen[written]}")
        seen[written] = option
    for name, path in paths.items():
        if path is not None:  # only once no path is refused: this makes folders
            _check_writable(path, "--" + name.replace("_", "-"))


def _check_writable(path: str, option: str) -> None:
    """Refuse a path that cannot take a file: a folder, or a folder that takes none.

    Does what writing it does up to the rename: creates the folders and a
    private temp file beside the target, then removes the temp file.
    """
    path = os.path.abspath(path)
    try:
        private_file_target(path)
    except IsADirectoryError:
        raise InvalidInput(f"{option}: {path} is a folder") from None
    except OSError as exc:
        raise InvalidInput(
            f"{option}: cannot write {path}: {exc.strerror or exc}"
        ) from exc
