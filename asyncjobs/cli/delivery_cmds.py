"""Delivery and operations: result, notifications, inbox, serve, info, telemetry, health."""

from __future__ import annotations

import ipaddress
import json
import logging
import time

import click

from .. import logs
from ..client import Client
from ..domain import validation
from ..store.jsonfile import format as jsonformat
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
    pass_client,
    settings_of,
)
from .jobs_cmds import _table, cursor_option, emit_page

log = logging.getLogger(__name__)


@cli.command()
@click.argument("result_id")
@org_option
@click.option(
    "--view",
    type=click.Choice(["latest", "pinned"]),
    default="latest",
    show_default=True,
    help="The newest version of the job, or exactly this one.",
)
@json_option
@pass_client
def result(client: Client, result_id: str, org: str, view: str, as_json: bool) -> None:
    """Read a result by its permalink."""
    doc = client.get_result(result_id, org=org, view=view)
    emit(doc, as_json, text=json.dumps(doc["value"], indent=2))


def _notification_rows(found: list) -> str:
    rows = [
        [n.notification_id, n.event_type, n.job_id, n.created_at, n.read_at or "-"]
        for n in found
    ]
    return _table(rows, ["NOTIFICATION_ID", "EVENT", "JOB_ID", "CREATED_AT", "READ_AT"])


@cli.command()
@click.argument("job_id")
@org_option
@click.option("--channel", default="in_app", show_default=True, help="The channel.")
@click.option(
    "--limit",
    type=Number(validation.LIMIT, whole=True),
    default=20,
    show_default=True,
    help="At most this many on this page.",
)
@cursor_option
@json_option
@pass_client
def notifications(
    client: Client,
    job_id: str,
    org: str,
    channel: str,
    limit: int,
    cursor: str | None,
    as_json: bool,
) -> None:
    """List a job's notifications, latest first, a page at a time."""
    found = client.page_notifications(
        job_id, org=org, channel=channel, limit=limit, cursor=cursor
    )
    emit_page(
        {"job_id": job_id, "notifications": [n.to_dict() for n in found]},
        found.next_cursor,
        as_json,
        text=_notification_rows(found.items),
    )


@cli.group(invoke_without_command=True)
@optional_org_option("The tenant (org id).")
@click.option("--unread", is_flag=True, help="Only unread notifications.")
@click.option(
    "--limit",
    type=Number(validation.LIMIT, whole=True),
    default=50,
    show_default=True,
    help="At most this many on this page.",
)
@cursor_option
@json_option
@click.pass_context
def inbox(
    ctx: click.Context,
    org: str | None,
    unread: bool,
    limit: int,
    cursor: str | None,
    as_json: bool,
) -> None:
    """List the org's in-app notifications, latest first, by page (or mark read)."""
    if ctx.invoked_subcommand is not None:
        return
    if not org:
        raise click.UsageError(
            "Missing option '--org' / '--tenant' (env var: 'ASYNCJOBS_ORG').", ctx
        )
    found = open_client(ctx).page_inbox(
        org=org, unread=unread, limit=limit, cursor=cursor
    )
    emit_page(
        {"org_id": org, "notifications": [n.to_dict() for n in found]},
        found.next_cursor,
        as_json,
        text=_notification_rows(found.items),
    )


@inbox.command("mark-read")
@click.argument("notification_ids", nargs=-1)
@org_option
@click.option(
    "--all", "every", is_flag=True, help="Mark every notification of the org read."
)
@json_option
@pass_client
def mark_read(
    client: Client,
    notification_ids: tuple[str, ...],
    org: str,
    every: bool,
    as_json: bool,
) -> None:
    """Mark notifications read."""
    changed = client.mark_read(org=org, notification_ids=notification_ids, every=every)
    emit({"marked_read": changed}, as_json, text=f"{changed} marked read")


@cli.command()
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="The address to listen on."
)
@click.option(
    "--port",
    type=Number(validation.PORT, whole=True),
    default=8080,
    show_default=True,
    help="The port (0 picks a free one).",
)
@click.option(
    "--max-connections",
    type=Number(validation.MAX_CONNECTIONS, whole=True, unit="connections"),
    default=256,
    show_default=True,
    help="Answer 503 busy to connections beyond this many at once.",
)
@click.option(
    "--idle-timeout",
    type=Number(validation.CONNECTION_TIMEOUT_SECONDS),
    default=10.0,
    show_default=True,
    metavar="SECONDS",
    help="Close a connection that sends nothing for this long.",
)
@click.option(
    "--request-timeout",
    type=Number(validation.CONNECTION_TIMEOUT_SECONDS),
    default=30.0,
    show_default=True,
    metavar="SECONDS",
    help="Close a connection whose request is not all in after this long.",
)
@app_option(
    required=False,
    help="The TaskRegistry submissions consult (default: the task catalog).",
)
@click.option(
    "--auth",
    type=click.Choice(["none", "tokens"]),
    default="none",
    show_default=True,
    envvar="ASYNCJOBS_AUTH",
    show_envvar=True,
    help="tokens: every route but /health takes a bearer token "
    "(asyncjobs tokens create); none: the tenant header alone.",
)
@click.option(
    "--dashboard",
    is_flag=True,
    envvar="ASYNCJOBS_DASHBOARD",
    show_envvar=True,
    help="Also serve the web dashboard under /dashboard/ (sign in with a token).",
)
@log_options("warning", "What the server logs on stderr (info: a line per request).")
def serve(
    host: str,
    port: int,
    max_connections: int,
    idle_timeout: float,
    request_timeout: float,
    app: str | None,
    auth: str,
    dashboard: bool,
    log_level: str,
    log_format: str,
) -> None:
    """Serve the HTTP API with a threaded stdlib server."""
    from ..http.app import App
    from ..http.server import Limits
    from ..http.server import serve as run_server

    logs.configure(log_level, log_format)
    jsonformat.allow_cold_reads(False)  # it reads on and on: load the store once
    ctx = click.get_current_context()
    # the request threads share a pool of connections to a PostgreSQL store
    client = open_client(ctx, app=app, connections=settings_of(ctx).store_connections)

    def ready(bound_host: str, bound_port: int) -> None:
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host  # IPv6
        logs.announce(log, "serving on http://%s:%d", shown, bound_port)
        if auth == "none" and not _loopback(bound_host):
            log.warning(
                "serving %s without --auth tokens: anyone who reaches it can name "
                "any org in X-Org-Id",
                shown,
            )

    limits = Limits(max_connections, idle_timeout, request_timeout)
    served = App(client, auth=auth, dashboard=dashboard)
    run_server(served, host, port, limits=limits, on_ready=ready)


def _loopback(host: str) -> bool:
    """Whether a bound address is this machine's alone (127.0.0.0/8, ::1)."""
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def _info_text(summary: dict) -> str:
    lines = [f"store generation {summary['generation']} at {summary['now']}", ""]
    rows = [
        [
            q,
            str(v["depth"]),
            str(v["running"]),
            "-" if v["oldest_age_s"] is None else f"{v['oldest_age_s']:.0f}s",
        ]
        for q, v in summary["queues"].items()
    ]
    lines.append(_table(rows, ["QUEUE", "QUEUED", "RUNNING", "OLDEST"]))
    seen = [w for w in summary["workers"] if not w["gone"]]
    lines += ["", f"workers seen: {len(seen)}"]
    lines += [
        f"  {w['worker_id']} {w['host']}:{w['pid']} running {len(w['running'])}"
        for w in seen
    ]
    lines += [
        "",
        f"running: {summary['running']}   failed in the last hour: "
        f"{summary['failed_1h']}   held by breakers: {summary['blocked']}",
    ]
    for b in summary["breakers"]:
        lines.append(
            f"breaker {b['name']}: {b['state']} ({b['failure_count']} failures)"
        )
    return "\n".join(lines)


def _info_doc(summary: dict) -> dict:
    return {
        "generation": summary["generation"],
        "now": summary["now"],
        "queues": summary["queues"],
        "running": summary["running"],
        "failed_1h": summary["failed_1h"],
        "blocked": summary["blocked"],
        "workers": [w for w in summary["workers"] if not w["gone"]],
        "breakers": summary["breakers"],
    }


@cli.command()
@click.option(
    "--watch",
    "--interval",
    "-i",
    "watch",
    type=Number(validation.WATCH_SECONDS),
    metavar="SECONDS",
    help="Refresh every SECONDS until interrupted.",
)
@json_option
@pass_client
def info(client: Client, watch: float | None, as_json: bool) -> None:
    """Show queues, running jobs, workers, breakers and recent failures."""
    while True:
        summary = client.stats()
        if watch and not as_json:
            click.clear()
        emit(_info_doc(summary), as_json, text=_info_text(summary))
        if not watch:
            return
        try:
            time.sleep(watch)
        except KeyboardInterrupt:
            return


@cli.command()
@pass_client
def telemetry(client: Client) -> None:
    """Print the /telemetry document (no requests: this is not a server)."""
    from ..errors import AsyncJobsError
    from ..http.app import RequestStats
    from ..http.app import telemetry as telemetry_doc

    try:
        summary, error = client.stats(), None
    except AsyncJobsError as exc:
        summary, error = None, exc.message
    started = summary["now"] if summary else None
    doc = telemetry_doc(
        summary,
        error,
        RequestStats().last_hour(),
        started or "",
        settings=client.settings,
    )
    click.echo(json.dumps(doc, indent=2))


@cli.command()
@pass_client
def health(client: Client) -> None:
    """Print the /health document; exit 5 when the store is not readable."""
    from ..errors import AsyncJobsError
    from ..http.app import health as health_doc

    try:
        doc = health_doc(client.stats(), None, settings=client.settings)
    except AsyncJobsError as exc:
        doc = health_doc(None, exc, settings=client.settings)
    click.echo(json.dumps(doc, indent=2))
    if doc["status"] != "ok":
        raise SystemExit(5)
