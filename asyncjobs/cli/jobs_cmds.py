"""Job commands: submit, submit-many, status, wait, jobs, events, cancel, retry (one or in bulk)."""

from __future__ import annotations

from typing import IO, Any

import click

from .. import clock as clocks
from .. import logs
from .. import tasks as task_module
from ..client import Client
from ..domain import bulk, validation
from ..errors import InvalidInput, JobFailed, PayloadTooLarge
from ..records import Job, JobStatus
from .common import (
    Number,
    Progress,
    app_option,
    cli,
    emit,
    json_option,
    open_client,
    optional_org_option,
    org_option,
    org_or_all_orgs,
    pass_client,
)

PROGRESS_THRESHOLD = 10_000  # lines before a terminal shows a count

cursor_option = click.option(
    "--cursor",
    metavar="CURSOR",
    help="Start after the page that printed this next_cursor (same filters).",
)


def emit_page(
    doc: dict[str, Any], next_cursor: str | None, as_json: bool, *, text: str
) -> None:
    """Print a page; the next page's cursor goes in the JSON, or on stderr."""
    if next_cursor is not None:
        doc = {**doc, "next_cursor": next_cursor}
    emit(doc, as_json, text=text)
    if next_cursor is not None and not as_json:
        click.echo(f"next page: --cursor {next_cursor}", err=True)


def _read_limited(stream: IO[bytes], limit: int, what: str) -> bytes:
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise PayloadTooLarge(f"{what}: more than {limit} bytes")
    return data


def _payload(
    text: str | None, file: IO[bytes] | None, max_bytes: int
) -> dict[str, Any] | None:
    if text is not None and file is not None:
        raise InvalidInput("give either --payload or --payload-file, not both")
    if file is not None:
        raw = _read_limited(file, max_bytes * 4, "payload file")
        return validation.parse_json(raw, "payload")
    if text is not None:
        return validation.parse_json(text, "payload")
    return None


def fail_unless_completed(job: Job) -> None:
    """Exit 7 (JobFailed), once the answer is printed, for a job that did not complete.

    That is a failed or canceled job, or one queued again after a failed
    attempt; a job not run yet, or still running, passes.
    """
    if logs.did_not_complete(job):
        raise JobFailed(f"job {job.job_id} ({job.task}) {logs.attempt_text(job)}")


APP_HELP = "The TaskRegistry: the task's queue and priority, a payload check, --sync."
allow_unknown_option = click.option(
    "--allow-unknown",
    is_flag=True,
    help="Submit a task that neither the app nor the task catalog knows.",
)


def _submitted(job: Job) -> dict[str, Any]:
    return {**job.to_dict(), "deduplicated": job.deduplicated}


@cli.command()
@click.argument("task")
@org_option
@click.option(
    "--payload", "payload_text", metavar="JSON", help="The payload, a JSON object."
)
@click.option(
    "--payload-file",
    type=click.File("rb"),
    help="Read the payload from a file (- for stdin).",
)
@click.option(
    "--queue",
    metavar="QUEUE",
    help="The queue to put the job on (default: the task's, else default).",
)
@click.option(
    "--priority",
    type=Number(validation.PRIORITY, whole=True),
    help="0-9, 9 runs first (default: the task's, else 5).",
)
@click.option(
    "--delay",
    type=Number(validation.DELAY_SECONDS),
    metavar="SECONDS",
    help="Run no sooner than this many seconds from now.",
)
@click.option(
    "--at", "at", metavar="ISO", help="Run no sooner than this time (ISO 8601)."
)
@click.option(
    "--idempotency-key",
    metavar="KEY",
    help="Submit at most once per org with this key.",
)
@click.option(
    "--max-retries",
    type=Number(validation.RETRIES, whole=True),
    metavar="N",
    help="Retries after a failed attempt (default: the task's).",
)
@click.option(
    "--sync",
    is_flag=True,
    help="Run the job here, inline, before returning (fail-open; exit 7 if it fails).",
)
@app_option(required=False, help=APP_HELP)
@allow_unknown_option
@json_option
@pass_client
def submit(
    client: Client,
    task: str,
    org: str,
    payload_text: str | None,
    payload_file: IO[bytes] | None,
    queue: str | None,
    priority: int | None,
    delay: float | None,
    at: str | None,
    idempotency_key: str | None,
    max_retries: int | None,
    sync: bool,
    app: str | None,
    allow_unknown: bool,
    as_json: bool,
) -> None:
    """Queue a job and print its id."""
    if delay is not None and at is not None:
        raise InvalidInput("give either --delay or --at, not both")
    when = validation.at(at, clocks.now(), "--at") if at is not None else None
    if not client.settings.async_enabled:
        sync = True  # fail-open: no worker is relied on
    if sync and not app:
        raise InvalidInput(
            "--sync (or ASYNCJOBS_ASYNC_ENABLED=0) needs --app or ASYNCJOBS_APP"
        )
    registry = task_module.load_app(app) if app else None
    job = client.submit(
        task,
        org=org,
        payload=_payload(payload_text, payload_file, client.settings.max_payload_bytes),
        queue=queue,
        priority=priority,
        delay=delay or 0,
        at=when,
        idempotency_key=idempotency_key,
        max_retries=max_retries,
        sync=sync,
        tasks=registry,
        allow_unknown=allow_unknown,
    )
    emit(_submitted(job), as_json, text=job.job_id)
    if sync:
        fail_unless_completed(job)


@cli.command("submit-many")
@click.argument("file", type=click.File("rb"))
@org_option
@app_option(
    required=False, help="The TaskRegistry: the tasks' queues and priorities, payloads."
)
@allow_unknown_option
@json_option
@pass_client
def submit_many(
    client: Client,
    file: IO[bytes],
    org: str,
    app: str | None,
    allow_unknown: bool,
    as_json: bool,
) -> None:
    """Queue one job per line of a JSON-lines file (- reads stdin), all or none."""
    validation.org(org)
    specs, lines = [], []
    with Progress() as progress:
        progress.step("reading jobs", PROGRESS_THRESHOLD)
        for number, line in enumerate(file, start=1):
            if not line.strip():
                continue
            try:
                specs.append(validation.parse_json(line, "job"))
            except InvalidInput as exc:
                raise type(exc)(f"line {number}: {exc.message}") from exc
            lines.append(f"line {number}")
            progress.add()
        progress.end()
        if progress.shown and len(specs) > PROGRESS_THRESHOLD:
            click.echo(f"submitting {len(specs):,} jobs in one transaction", err=True)
        # One transaction for the whole file, every line checked first: a
        # failed commit leaves none of its jobs, so running the same file
        # again cannot queue one twice. A large one commits as a new snapshot.
        jobs = (
            client.submit_many(
                specs,
                org=org,
                tasks=task_module.load_app(app) if app else None,
                allow_unknown=allow_unknown,
                labels=lines,
            )
            if specs
            else []
        )
    doc = {
        "submitted": sum(not j.deduplicated for j in jobs),
        "deduplicated": sum(j.deduplicated for j in jobs),
        "jobs": [
            {
                "job_id": j.job_id,
                "status": j.status.value,
                "deduplicated": j.deduplicated,
            }
            for j in jobs
        ],
    }
    emit(doc, as_json, text="\n".join(j.job_id for j in jobs) if jobs else None)


def _job_text(job: Job) -> str:
    doc = job.to_dict()
    doc["error"] = (
        None
        if job.error is None
        else f"{job.error.get('type')}: {job.error.get('message')}"
    )
    del doc["payload"]
    width = max(map(len, doc))
    return "\n".join(
        f"{key:<{width}}  {'-' if value is None else value}"
        for key, value in doc.items()
    )


@cli.command()
@click.argument("job_id")
@org_option
@json_option
@pass_client
def status(client: Client, job_id: str, org: str, as_json: bool) -> None:
    """Show a job."""
    job = client.get_job(job_id, org=org)
    emit(job.to_dict(), as_json, text=_job_text(job))


@cli.command()
@click.argument("job_id")
@org_option
@click.option(
    "--timeout",
    type=Number(validation.WAIT_SECONDS),
    metavar="SECONDS",
    help="Give up after this long (exit 8); default: wait as long as it takes.",
)
@json_option
@pass_client
def wait(
    client: Client, job_id: str, org: str, timeout: float | None, as_json: bool
) -> None:
    """Wait until a job ends and show it (exit 7 if it failed or was canceled)."""
    job = client.wait(job_id, org=org, timeout=timeout)
    emit(job.to_dict(), as_json, text=f"{job.job_id} {job.status.value}")
    fail_unless_completed(job)


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join(
        "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip()
        for row in [header, *rows]
    )


@cli.command()
@org_option
@click.option("--status", "status_", metavar="STATUS", help="Only jobs in this status.")
@click.option("--queue", help="Only jobs of this queue.")
@click.option("--task", help="Only jobs of this task.")
@click.option("--error-type", help="Only jobs whose last error has this type.")
@click.option(
    "--limit",
    type=Number(validation.LIMIT, whole=True),
    default=50,
    show_default=True,
    help="At most this many jobs on this page.",
)
@cursor_option
@json_option
@pass_client
def jobs(
    client: Client,
    org: str,
    status_: str | None,
    queue: str | None,
    task: str | None,
    error_type: str | None,
    limit: int,
    cursor: str | None,
    as_json: bool,
) -> None:
    """List the org's jobs, newest first, a page at a time."""
    found = client.page_jobs(
        org=org,
        status=status_,
        queue=queue,
        task=task,
        limit=limit,
        cursor=cursor,
        error_type=error_type,
    )
    rows = [
        [
            j.job_id,
            j.status.value,
            j.task,
            j.queue,
            str(j.priority),
            str(j.attempts),
            j.created_at,
        ]
        for j in found
    ]
    text = _table(
        rows, ["JOB_ID", "STATUS", "TASK", "QUEUE", "PRI", "ATTEMPTS", "CREATED_AT"]
    )
    emit_page(
        {"jobs": [j.to_dict() for j in found]}, found.next_cursor, as_json, text=text
    )


@cli.command()
@click.argument("job_id")
@org_option
@click.option(
    "--limit",
    type=Number(validation.LIMIT, whole=True),
    default=1000,
    show_default=True,
    help="At most this many events on this page.",
)
@cursor_option
@json_option
@pass_client
def events(
    client: Client,
    job_id: str,
    org: str,
    limit: int,
    cursor: str | None,
    as_json: bool,
) -> None:
    """List a job's events, oldest first, a page at a time."""
    found = client.page_events(job_id, org=org, limit=limit, cursor=cursor)
    rows = [
        [
            e.created_at,
            e.event_type,
            str(e.run),
            str(e.attempt),
            " ".join(f"{k}={v}" for k, v in e.data.items()),
        ]
        for e in found
    ]
    text = _table(rows, ["CREATED_AT", "EVENT", "RUN", "ATTEMPT", "DATA"])
    emit_page(
        {"job_id": job_id, "events": [e.to_dict() for e in found]},
        found.next_cursor,
        as_json,
        text=text,
    )


def _bulk_options(action: str) -> Any:
    """The --all filter options of ``retry`` and ``cancel``."""
    statuses = ", ".join(bulk.STATUSES[action])
    default = " and ".join(bulk.DEFAULT_STATUSES[action])
    options = [
        click.option(
            "--all",
            "every",
            is_flag=True,
            help="Every job of the org that matches the filters below, not one id.",
        ),
        click.option(
            "--status",
            "status_",
            multiple=True,
            metavar="STATUS",
            help=f"With --all: jobs in this status ({statuses}; default {default}). "
            "Repeat for several.",
        ),
        click.option(
            "--all-orgs",
            is_flag=True,
            help="With --all: the jobs of every org, org by org (instead of --org).",
        ),
        click.option("--queue", help="With --all: only jobs of this queue."),
        click.option("--task", help="With --all: only jobs of this task."),
        click.option(
            "--created-before",
            metavar="TIME",
            help="With --all: only jobs submitted before this ISO 8601 time.",
        ),
        click.option(
            "--error-type",
            metavar="TYPE",
            help="With --all: only jobs whose last error has this type.",
        ),
        click.option(
            "--dry-run",
            is_flag=True,
            help="With --all: count the jobs it would change, change nothing.",
        ),
        click.option(
            "--limit",
            type=Number((1, bulk.MAX_JOBS), whole=True),
            help=f"With --all: at most this many jobs, newest first "
            f"[default: {bulk.MAX_JOBS}].",
        ),
    ]
    if action == "retry":
        options.insert(
            5,
            click.option(
                "--since",
                metavar="TIME",
                help="With --all: only jobs that ended at or after this ISO 8601 time.",
            ),
        )

    def decorate(function: Any) -> Any:
        for option in reversed(options):
            function = option(function)
        return function

    return decorate


def _which_org(
    ctx: click.Context, org: str | None, every: bool, all_orgs: bool
) -> str | None:
    """The org a retry or cancel acts for; None for --all --all-orgs."""
    if all_orgs and not every:
        raise InvalidInput("--all-orgs goes with --all")
    if not every and org is None:
        raise InvalidInput("give --org ORG")
    return org_or_all_orgs(ctx, org, all_orgs)


def _one_or_all(job_id: str | None, every: bool, filters: dict[str, Any]) -> None:
    """InvalidInput unless exactly one of a job id and --all is given."""
    if job_id is not None and every:
        raise InvalidInput("give a job id or --all, not both")
    if job_id is None and not every:
        raise InvalidInput("give a job id, or --all with filters")
    if job_id is not None:
        given = [
            name for name, value in filters.items() if value not in (None, (), False)
        ]
        if given:
            option = "--" + given[0].replace("_", "-")
            raise InvalidInput(f"{option} goes with --all, not with a job id")


def _emit_bulk(done: bulk.Bulk, as_json: bool) -> None:
    verb = {"retry": ("retried", "would retry"), "cancel": ("canceled", "would cancel")}
    said = verb[done.action][done.dry_run]
    jobs = "job" if done.count == 1 else "jobs"
    text = f"{said} {done.count} {jobs}"
    if done.dry_run:
        text += " (dry run: nothing changed)"
    lines = [text, *done.ids]
    emit(done.to_dict(), as_json, text="\n".join(lines))
    if done.more and not as_json:
        click.echo("more jobs match: run it again", err=True)


def _retry_or_cancel(
    ctx: click.Context,
    action: str,
    job_id: str | None,
    org: str | None,
    every: bool,
    all_orgs: bool,
    as_json: bool,
    dry_run: bool,
    limit: int | None,
    **criteria: Any,
) -> None:
    """One job by id, or every job that matches (--all): ``retry`` and ``cancel``."""
    criteria["status"] = criteria.pop("status_") or None  # -> --status
    _one_or_all(job_id, every, {**criteria, "dry_run": dry_run, "limit": limit})
    org = _which_org(ctx, org, every, all_orgs)
    client = open_client(ctx)
    if every:
        if "since" in criteria:
            criteria["failed_since"] = criteria.pop("since")
        matching = (
            client.retry_matching if action == "retry" else client.cancel_matching
        )
        try:
            done = matching(
                org=org,
                dry_run=dry_run,
                limit=bulk.MAX_JOBS if limit is None else limit,
                **criteria,
            )
        except InvalidInput as exc:
            if exc.message.startswith("failed_since:"):
                raise InvalidInput("--since" + exc.message[12:]) from exc
            raise
        _emit_bulk(done, as_json)
        return
    assert job_id is not None and org is not None
    if action == "retry":
        job = client.retry(job_id, org=org)
        text = f"{job.job_id} {job.status.value} (run {job.run})"
    else:
        job = client.cancel(job_id, org=org)
        pending = (
            job.status is JobStatus.RUNNING and job.cancel_requested_at is not None
        )
        text = f"{job.job_id} {job.status.value}" + (
            ", cancel requested" if pending else ""
        )
    emit(job.to_dict(), as_json, text=text)


@cli.command()
@click.argument("job_id", required=False)
@optional_org_option("The tenant (org id); with --all, --all-orgs may take its place.")
@_bulk_options("cancel")
@json_option
@click.pass_context
def cancel(
    ctx: click.Context, job_id: str | None, org: str | None, **options: Any
) -> None:
    """Cancel a queued job, or have a running job's worker stop it.

    With --all instead of JOB_ID: every queued and running job of the org
    that matches the filters, up to --limit in one transaction, newest
    first (a running job whose cancel is already requested is not counted
    again). When more match, it says so: run it again.
    """
    _retry_or_cancel(ctx, "cancel", job_id, org, **options)


@cli.command()
@click.argument("job_id", required=False)
@optional_org_option("The tenant (org id); with --all, --all-orgs may take its place.")
@_bulk_options("retry")
@json_option
@click.pass_context
def retry(
    ctx: click.Context, job_id: str | None, org: str | None, **options: Any
) -> None:
    """Queue a failed, canceled or completed job again.

    With --all instead of JOB_ID: every failed job of the org (or those of
    --status) that matches the filters, up to --limit in one transaction,
    newest first. When more match, it says so: run it again.
    """
    _retry_or_cancel(ctx, "retry", job_id, org, **options)
