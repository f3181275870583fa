"""Running jobs: worker, run, workers, breakers."""

from __future__ import annotations

from typing import Any

import click

from .. import logs
from .. import tasks as task_module
from ..client import Client
from ..domain import validation
from ..errors import InvalidInput
from .common import (
    Number,
    app_option,
    cli,
    emit,
    json_option,
    log_options,
    open_client,
    optional_org_option,
    org_option,
    org_or_all_orgs,
    pass_client,
)
from .jobs_cmds import fail_unless_completed


def _queue_names(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> list[str]:
    """``-Q a,b -Q c``: each name checked, in order, each once."""
    names: list[str] = []
    for value in values:
        for name in (part.strip() for part in value.split(",")):
            try:
                validation.name(name, "queue")
            except InvalidInput as exc:
                raise click.BadParameter(exc.message, ctx, param) from None
            if name not in names:
                names.append(name)
    return names


@cli.command()
@app_option()
@click.option(
    "--queue",
    "-Q",
    "queues",
    multiple=True,
    callback=_queue_names,
    metavar="QUEUE[,QUEUE...]",
    help="Queues to take jobs from (comma-separated or repeated; default: the app's).",
)
@click.option(
    "--concurrency",
    "-c",
    type=Number(validation.CONCURRENCY, whole=True),
    default=1,
    show_default=True,
    help="Jobs run at once, each in its own process.",
)
@click.option("--burst", "-b", is_flag=True, help="Exit when no job is runnable.")
@click.option(
    "--max-jobs",
    type=Number(validation.MAX_JOBS, whole=True),
    metavar="N",
    help="Exit after claiming N jobs.",
)
@click.option(
    "--lease-seconds",
    type=Number(validation.LEASE_SECONDS),
    default=30.0,
    show_default=True,
    help="How long a claim lasts without a heartbeat.",
)
@click.option(
    "--heartbeat-seconds",
    type=Number(validation.HEARTBEAT_SECONDS),
    metavar="SECONDS",
    help="How often leases are renewed (default and maximum: a third of the lease).",
)
@click.option(
    "--grace",
    type=Number(validation.GRACE_SECONDS),
    default=30.0,
    show_default=True,
    metavar="SECONDS",
    help="On SIGTERM, how long running jobs may finish.",
)
@click.option(
    "--poll-seconds",
    type=Number(validation.POLL_SECONDS),
    default=1.0,
    show_default=True,
    help="How often an idle worker looks for jobs.",
)
@click.option(
    "--prefetch",
    type=Number(validation.PREFETCH, whole=True),
    metavar="N",
    help="Most jobs claimed ahead while jobs are short (default 32; 0: none).",
)
@click.option("--beat", "-B", is_flag=True, help="Also enqueue due periodic tasks.")
@log_options("info", "What the worker logs on stderr.")
@pass_client
def worker(
    client: Client,
    app: str,
    queues: list[str],
    concurrency: int,
    burst: bool,
    max_jobs: int | None,
    lease_seconds: float,
    heartbeat_seconds: float | None,
    grace: float,
    poll_seconds: float,
    prefetch: int | None,
    beat: bool,
    log_level: str,
    log_format: str,
) -> None:
    """Claim and run jobs until stopped."""
    from ..worker.loop import Worker

    logs.configure(log_level, log_format)
    registry = task_module.load_app(app)
    code = Worker(
        client,
        registry,
        queues=queues or None,
        concurrency=concurrency,
        lease_seconds=lease_seconds,
        heartbeat_seconds=heartbeat_seconds,
        burst=burst,
        max_jobs=max_jobs,
        beat=beat,
        grace=grace,
        poll_interval=poll_seconds,
        **({} if prefetch is None else {"prefetch": prefetch}),
    ).run()
    raise SystemExit(code)


@cli.command()
@click.argument("job_id")
@org_option
@app_option()
@json_option
@pass_client
def run(client: Client, job_id: str, org: str, app: str, as_json: bool) -> None:
    """Run one queued job now, in this process (exit 7 when its attempt fails)."""
    job = client.run_job(job_id, org=org, tasks=task_module.load_app(app))
    emit(job.to_dict(), as_json, text=f"{job.job_id} {job.status.value}")
    fail_unless_completed(job)


@cli.command()
@json_option
@pass_client
def workers(client: Client, as_json: bool) -> None:
    """List workers and whether they are still seen."""
    found = client.workers()
    rows = [
        [
            w["worker_id"],
            "gone" if w["gone"] else w["state"],
            w["host"],
            str(w["pid"]),
            ",".join(w["queues"]),
            str(len(w["running"])),
            str(w.get("processed_count", 0)),
            w["last_seen_at"],
        ]
        for w in found
    ]
    from .jobs_cmds import _table

    text = _table(
        rows,
        [
            "WORKER_ID",
            "STATE",
            "HOST",
            "PID",
            "QUEUES",
            "RUNNING",
            "PROCESSED",
            "LAST_SEEN_AT",
        ],
    )
    emit({"workers": found}, as_json, text=text)


@cli.command()
@optional_org_option("The tenant (org id) whose jobs are counted.")
@click.option(
    "--all-orgs",
    is_flag=True,
    help="Count the jobs of every org (instead of --org).",
)
@json_option
@click.pass_context
def queues(ctx: click.Context, org: str | None, all_orgs: bool, as_json: bool) -> None:
    """Show each queue: depth, runnable, delayed, running, lag, held by breakers.

    LAG_S is how long the oldest runnable job has waited since it became
    runnable; HELD counts runnable jobs an open breaker holds back.
    """
    found = open_client(ctx).queues(org=org_or_all_orgs(ctx, org, all_orgs))
    from .jobs_cmds import _table

    rows = [
        [
            q["queue"],
            str(q["depth"]),
            str(q["runnable"]),
            str(q["delayed"]),
            str(q["running"]),
            f"{q['lag_s']:g}",
            str(q["held"]),
        ]
        for q in found
    ]
    text = _table(
        rows, ["QUEUE", "DEPTH", "RUNNABLE", "DELAYED", "RUNNING", "LAG_S", "HELD"]
    )
    emit({"queues": found}, as_json, text=text)


def _schedule(row: dict[str, Any]) -> str:
    every = row["every"]
    if isinstance(every, int | float) and not isinstance(every, bool):
        return f"every {validation.shown_bound(every)}s"
    return str(row["cron"] if row["cron"] is not None else every)


@cli.command()
@app_option(
    required=False,
    help="Read the periodic tasks from this TaskRegistry (default: the task catalog).",
)
@json_option
@pass_client
def schedules(client: Client, app: str | None, as_json: bool) -> None:
    """List periodic tasks with their last slot and next run."""
    registry = task_module.load_app(app) if app else None
    found = client.schedules(app=registry)
    rows = [
        [
            s["name"],
            _schedule(s),
            str(s["queue"]),
            str(s["priority"]),
            s["org"],
            s["last_slot_at"] or "-",
            s["next_run_at"] or "-",
        ]
        for s in found
    ]
    from .jobs_cmds import _table

    text = _table(
        rows,
        ["NAME", "SCHEDULE", "QUEUE", "PRIORITY", "ORG", "LAST_SLOT_AT", "NEXT_RUN_AT"],
    )
    emit({"schedules": found}, as_json, text=text)


@cli.group(invoke_without_command=True)
@json_option
@click.pass_context
def breakers(ctx: click.Context, as_json: bool) -> None:
    """Show circuit breakers (or reset one)."""
    if ctx.invoked_subcommand is not None:
        return
    found = open_client(ctx).breakers()
    from .jobs_cmds import _table

    rows = [
        [b["name"], b["state"], str(b["failure_count"]), b.get("reopens_at") or "-"]
        for b in found
    ]
    emit(
        {"breakers": found},
        as_json,
        text=_table(rows, ["BREAKER", "STATE", "FAILURES", "REOPENS_AT"]),
    )


@breakers.command("reset")
@click.argument("name")
@json_option
@pass_client
def reset(client: Client, name: str, as_json: bool) -> None:
    """Close a breaker by hand."""
    breaker = client.reset_breaker(name)
    emit(breaker, as_json, text=f"{name} closed")
