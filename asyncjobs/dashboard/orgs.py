"""An org's pages: overview, jobs, a job, failures, inbox, and bulk actions.

Each page function takes the ``Client`` and the signed-in request
(``views.Request``, whose org the session allows) and returns the page's
title and body. Everything shown comes from the org's own records; the
regions marked ``data-poll`` are what the page's script refreshes.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from .. import clock, ids
from ..client import Client
from ..domain import bulk as bulk_rules
from ..domain import observability, validation
from ..errors import AsyncJobsError, InvalidInput, NotFound
from ..records import Job, JobStatus
from .html import Html, html, join, link, pretty_json, table
from .widgets import ago, chart, counts, job_rows, number, org_url, queue_table

if TYPE_CHECKING:
    from .views import Request

PAGE_JOBS = 50
PAYLOAD_CHARS = 64 << 10  # shown of a payload or a result, then cut
MESSAGE_CHARS = 300  # of an error message in a list
BULK_SHOWN = 20  # ids listed on a bulk preview


def overview(client: Client, req: Request) -> tuple[str, Html]:
    org = req.org
    assert org is not None
    queues = client.queues(org=org)
    minutes = client.throughput(org=org, minutes=60)
    ended = {s: sum(m[s] for m in minutes) for s in observability.TERMINAL}
    figures = counts(
        [
            ("runnable", sum(q["runnable"] for q in queues)),
            ("delayed", sum(q["delayed"] for q in queues)),
            ("running", sum(q["running"] for q in queues)),
            ("completed in the last hour", ended["completed"]),
            ("failed in the last hour", ended["failed"]),
            ("canceled in the last hour", ended["canceled"]),
        ]
    )
    failed = client.page_jobs(org=org, status="failed", limit=5)
    body = html(
        '<h1>{}</h1><section id="live" data-poll>{}{}'
        "<h2>Jobs ended per minute</h2>{}<h2>Queues</h2>{}"
        "<h2>Failed jobs, newest submitted first</h2>{}</section><p>{} · {}</p>",
        org,
        _banners(client, queues),
        figures,
        chart(minutes),
        queue_table(queues),
        job_rows(org, failed.items, req.now, "No job has failed."),
        link(org_url(org, "jobs?status=failed"), "All failed jobs"),
        link(org_url(org, "failures"), "Failures by error"),
    )
    return "overview", body


def _banners(client: Client, queues: list[dict[str, Any]]) -> Html:
    notes = []
    if any(q["runnable"] for q in queues) and not any(
        not w["gone"] for w in client.workers()
    ):
        notes.append("No worker has been seen: runnable jobs are not being run.")
    opened = [b["name"] for b in client.breakers() if b.get("state") == "open"]
    if opened:
        notes.append(f"Open circuit breaker(s): {', '.join(opened)}.")
    return join(html('<p class="banner" role="alert">{}</p>', note) for note in notes)


def find(client: Client, org: str, wanted: str) -> str | None:
    """The id of the org's job that ``wanted`` names (its id or idempotency key)."""
    try:
        if ids.is_id(wanted, "job"):
            return client.get_job(wanted, org=org).job_id
        return client.job_by_key(wanted, org=org).job_id
    except (NotFound, InvalidInput):
        return None


def jobs(client: Client, req: Request) -> tuple[str, Html]:
    org = req.org
    assert org is not None
    statuses = req.args("status")
    unknown = [s for s in statuses if s not in {known.value for known in JobStatus}]
    if unknown:
        raise InvalidInput(
            f"status: {validation.shown(unknown[0])} is not one of "
            + ", ".join(s.value for s in JobStatus)
        )
    queue, task, cursor = req.arg("queue"), req.arg("task"), req.arg("cursor")
    kind = req.arg("error_type")
    page = client.page_jobs(
        org=org,
        status=statuses or None,
        queue=queue,
        task=task,
        limit=PAGE_JOBS,
        cursor=cursor,
        error_type=kind,
    )
    boxes = join(
        html(
            '<label><input type="checkbox" name="status" value="{}"{}> {}</label> ',
            s.value,
            Html(" checked") if s.value in statuses else Html(""),
            s.value,
        )
        for s in JobStatus
    )
    missing = req.arg("q")
    filters = html(
        '<form method="get" class="filters"><fieldset><legend>Status</legend>{}'
        "</fieldset>"
        '<label>Queue <input name="queue" value="{}"></label> '
        '<label>Task <input name="task" value="{}"></label> '
        '<label>Error type <input name="error_type" value="{}"></label> '
        "<button>Filter</button></form>"
        '<form method="get" class="filters"><label>Job id or idempotency key '
        '<input name="q" value="{}" size="34"></label> <button>Go</button></form>{}',
        boxes,
        queue or "",
        task or "",
        kind or "",
        missing or "",
        html('<p class="banner">No job of this org has id or key {}.</p>', missing)
        if missing
        else Html(""),
    )
    filter_args = [("status", s) for s in statuses]
    filter_args += [
        (k, v) for k, v in (("queue", queue), ("task", task), ("error_type", kind)) if v
    ]
    more = Html("")
    if page.next_cursor is not None:
        more = html(
            "<p>{}</p>",
            link(
                f"?{urlencode([*filter_args, ('cursor', page.next_cursor)])}",
                "Next page",
            ),
        )
    rows = job_rows(org, page.items, req.now, "No job matches.")
    listed = (
        html('<section id="jobs" data-poll>{}</section>', rows)
        if cursor is None
        else rows
    )
    body = html(
        "<h1>Jobs</h1>{}{}{}{}",
        filters,
        _bulk_buttons(org, statuses, filter_args) if req.operator else Html(""),
        listed,
        more,
    )
    return "jobs", body


def _bulk_buttons(
    org: str, statuses: list[str], filter_args: list[tuple[str, str]]
) -> Html:
    """Links to the preview of a bulk action over this filter, where it applies."""
    offered = []
    for action, label in (("retry", "Retry"), ("cancel", "Cancel")):
        allowed = bulk_rules.STATUSES[action]
        if statuses and not set(statuses) & set(allowed):
            continue
        args = [("action", action), *filter_args]
        if statuses:
            args = [(k, v) for k, v in args if k != "status" or v in allowed]
        offered.append(
            link(org_url(org, f"bulk?{urlencode(args)}"), f"{label} all matching…")
        )
    return html("<p>{}</p>", join(offered, " · ")) if offered else Html("")


def job_id(value: str) -> str:
    """A job id from a path: NotFound (the same page as any other) when malformed."""
    if not ids.is_id(value, "job"):
        raise NotFound("no such page")
    return value


def job(
    client: Client, req: Request, job_id: str, redact: re.Pattern[str]
) -> tuple[str, Html]:
    org = req.org
    assert org is not None
    found = client.get_job(job_id, org=org)
    fields = table(
        ["Field", "Value"],
        (
            [name, value]
            for name, value in found.to_dict().items()
            if name not in ("payload", "error")
        ),
        "",
    )
    payload = pretty_json(_redacted(found.payload, redact), limit=PAYLOAD_CHARS)
    events = table(
        ["Seq", "Event", "Run", "Attempt", "At", "Data"],
        (
            [
                e.seq,
                e.event_type,
                e.run,
                e.attempt,
                ago(e.created_at, req.now),
                _data(e.data),
            ]
            for e in client.events(found.job_id, org=org)
        ),
        "No event.",
    )
    notes = table(
        ["Event", "At", "Read"],
        (
            [n.event_type, ago(n.created_at, req.now), n.read_at or "-"]
            for n in client.notifications(found.job_id, org=org, limit=20)
        ),
        "No notification.",
    )
    command = f"asyncjobs status {found.job_id} --org {org}"
    if found.status.terminal:
        command += f"\nasyncjobs retry {found.job_id} --org {org}"
    elif found.status in (JobStatus.QUEUED, JobStatus.RUNNING):
        command += f"\nasyncjobs cancel {found.job_id} --org {org}"
    body = html(
        '<h1>{}</h1><section id="live" data-poll><p>{} · <span class="status-{}">{}</span>'
        " · attempt {}</p>{}<h2>Fields</h2>{}<h2>Payload</h2>{}{}"
        "<h2>Events</h2>{}{}<h2>Notifications</h2>{}</section>"
        "<h2>From the shell</h2><pre>{}</pre>",
        found.job_id,
        found.task,
        found.status.value,
        found.status.value,
        found.attempts,
        _actions(found, req),
        fields,
        payload,
        _error(found, operator=req.operator),
        events,
        _result(client, found, org, redact),
        notes,
        command,
    )
    return found.job_id, body


def _actions(found: Job, req: Request) -> Html:
    """Retry and cancel buttons, for an operator only (a viewer sees none)."""
    if not req.operator or req.org is None:
        return Html("")
    buttons = []
    if found.status.terminal:
        buttons.append(("retry", "Retry"))
    if found.status is JobStatus.QUEUED or (
        found.status is JobStatus.RUNNING and found.cancel_requested_at is None
    ):
        buttons.append(("cancel", "Cancel"))
    return join(
        html(
            '<form method="post" class="inline" action="{}">{}<button>{}</button></form> ',
            org_url(req.org, f"jobs/{found.job_id}/{action}"),
            req.csrf(),
            label,
        )
        for action, label in buttons
    )


def _result(client: Client, found: Job, org: str, redact: re.Pattern[str]) -> Html:
    if found.result_id is None:
        return Html("")
    try:
        value = client.get_result(found.result_id, org=org, view="pinned")
    except AsyncJobsError as exc:  # a result file gone or changed
        return html('<h2>Result</h2><p class="banner error">{}</p>', exc.message)
    return html(
        "<h2>Result</h2><p>{}</p>{}",
        found.result_id,
        pretty_json(_redacted(value.get("value"), redact), limit=PAYLOAD_CHARS),
    )


def _error(found: Job, *, operator: bool) -> Html:
    if not isinstance(found.error, dict):
        return Html("")
    trace = found.error.get("traceback")
    folded = (
        html("<details><summary>Traceback</summary><pre>{}</pre></details>", trace)
        if operator and trace
        else Html("")
    )
    return html(
        "<h2>Error</h2><p><strong>{}</strong>: {}</p>{}",
        found.error.get("type", ""),
        found.error.get("message", ""),
        folded,
    )


def _data(data: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in data.items())


def _redacted(value: Any, redact: re.Pattern[str]) -> Any:
    """The payload with the values of secret-looking keys hidden, at any depth."""
    if isinstance(value, dict):
        return {
            k: "[redacted]" if redact.search(str(k)) else _redacted(v, redact)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_redacted(v, redact) for v in value]
    return value


def failures(client: Client, req: Request) -> tuple[str, Html]:
    org = req.org
    assert org is not None
    week_ago = clock.to_iso(req.now - timedelta(days=7))
    rows = []
    for g in client.failure_groups(org=org):
        shown = {"status": "failed", "task": g["task"]}
        if g["error_type"] and len(g["error_type"]) <= bulk_rules.MAX_ERROR_TYPE_CHARS:
            shown["error_type"] = g["error_type"]
        listed = link(org_url(org, "jobs?" + urlencode(shown)), "jobs")
        retry = Html("")
        # A group without an error type, or with one no filter takes, is
        # retried from its jobs, not as a group.
        kind = g["error_type"]
        if req.operator and kind and len(kind) <= bulk_rules.MAX_ERROR_TYPE_CHARS:
            args = {
                "action": "retry",
                "status": "failed",
                "task": g["task"],
                "error_type": g["error_type"],
                "failed_since": week_ago,
            }
            retry = link(org_url(org, f"bulk?{urlencode(args)}"), "retry this group…")
        rows.append(
            [
                g["task"],
                g["error_type"] or "(no type)",
                number(g["last_hour"]),
                number(g["last_day"]),
                number(g["last_week"]),
                html(
                    "{} {}: {}",
                    ago(g["newest_at"], req.now),
                    link(org_url(org, f"jobs/{g['newest_job_id']}"), "newest"),
                    _cut(g["newest_message"]),
                ),
                html("{} {}", listed, retry),
            ]
        )
    groups = table(
        ["Task", "Error", "1 h", "24 h", "7 d", "Newest", ""],
        rows,
        "No job failed in the last week.",
    )
    body = html(
        "<h1>Failures</h1><p>Failed jobs of the last week, by task and error type.</p>"
        '<section id="groups" data-poll>{}</section>',
        groups,
    )
    return "failures", body


def _cut(text: str) -> str:
    return text if len(text) <= MESSAGE_CHARS else text[:MESSAGE_CHARS] + "…"


def inbox(client: Client, req: Request) -> tuple[str, Html]:
    org = req.org
    assert org is not None
    unread = req.arg("unread") == "1"
    cursor = req.arg("cursor")
    page = client.page_inbox(org=org, unread=unread, limit=PAGE_JOBS, cursor=cursor)
    rows = []
    for n in page.items:
        mark = Html("")
        if req.operator and n.read_at is None:
            mark = html(
                '<form method="post" class="inline" action="{}">{}'
                '<input type="hidden" name="notification_id" value="{}">'
                "<button>Mark read</button></form>",
                org_url(org, "inbox/mark-read"),
                req.csrf(),
                n.notification_id,
            )
        rows.append(
            [
                n.event_type,
                link(org_url(org, f"jobs/{n.job_id}"), n.job_id),
                ago(n.created_at, req.now),
                ago(n.read_at, req.now) if n.read_at else "unread",
                mark,
            ]
        )
    listed = table(["Event", "Job", "At", "Read", ""], rows, "No notification.")
    every = Html("")
    if req.operator:
        every = html(
            '<form method="post" action="{}">{}<input type="hidden" name="all" value="1">'
            "<button>Mark all read</button></form>",
            org_url(org, "inbox/mark-read"),
            req.csrf(),
        )
    toggle = (
        link(org_url(org, "inbox"), "Show all")
        if unread
        else link(org_url(org, "inbox?unread=1"), "Show unread only")
    )
    more = Html("")
    if page.next_cursor is not None:
        args = [("unread", "1")] if unread else []
        more = html(
            "<p>{}</p>",
            link(f"?{urlencode([*args, ('cursor', page.next_cursor)])}", "Next page"),
        )
    region = (
        html('<section id="inbox" data-poll>{}</section>', listed)
        if cursor is None
        else listed
    )
    body = html("<h1>Inbox</h1><p>{}</p>{}{}{}", toggle, every, region, more)
    return "inbox", body


# -- bulk retry and cancel: a preview, then one confirmed POST -------------------------

_BULK_FIELDS = ("queue", "task", "error_type", "failed_since")


def _criteria(action: str | None, values: dict[str, Any]) -> dict[str, Any]:
    if action not in bulk_rules.ACTIONS:
        raise InvalidInput("action: retry or cancel")
    wanted = {k: values.get(k) or None for k in _BULK_FIELDS}
    if action == "cancel":
        if wanted.pop("failed_since"):
            raise InvalidInput("failed_since: only a retry takes it")
    wanted["status"] = values.get("status") or None
    return wanted


def _matching(
    client: Client, org: str, action: str, wanted: dict[str, Any], *, dry_run: bool
):
    act = client.retry_matching if action == "retry" else client.cancel_matching
    return act(org=org, dry_run=dry_run, **wanted)


def bulk_preview(client: Client, req: Request) -> tuple[str, Html]:
    org = req.org
    assert org is not None
    action = req.arg("action")
    given = {k: req.arg(k) for k in _BULK_FIELDS}
    given["status"] = req.args("status")
    wanted = _criteria(action, given)
    assert action is not None
    answer = _matching(client, org, action, wanted, dry_run=True)
    statuses = wanted["status"] or list(bulk_rules.DEFAULT_STATUSES[action])
    described = ", ".join(
        [f"status {' or '.join(statuses)}"]
        + [
            f"{k.replace('_', ' ')} {v}"
            for k, v in wanted.items()
            if v and k != "status"
        ]
    )
    back = link(
        org_url(org, "jobs?" + urlencode([("status", s) for s in statuses])),
        "Back to the jobs",
    )
    if not answer.count:
        body = html(
            "<h1>Nothing to {}</h1><p>No job of {} matches {}.</p><p>{}</p>",
            action,
            org,
            described,
            back,
        )
        return f"{action}: nothing matches", body
    total = (
        client.count_matching(action, org=org, **wanted)
        if answer.more
        else bulk_rules.Count(answer.count, more=False)
    )
    matching = number(total.jobs) + ("+" if total.more else "")
    capped = (
        html(
            "<p><strong>More than one confirmation takes (capped at {}):</strong> "
            "this one changes the newest {}; preview again for the rest.</p>",
            number(bulk_rules.MAX_JOBS),
            number(answer.count),
        )
        if answer.more
        else Html("")
    )
    hidden = join(
        html('<input type="hidden" name="{}" value="{}">', k, v)
        for k, v in [
            ("action", action),
            ("status", ",".join(wanted["status"] or [])),
            *((k, wanted.get(k) or "") for k in _BULK_FIELDS),
        ]
    )
    shown = join(
        html("<li>{}</li>", link(org_url(org, f"jobs/{i}"), i))
        for i in answer.ids[:BULK_SHOWN]
    )
    body = html(
        "<h1>{} {} job(s)?</h1><p>{} the {} job(s) of {} matching {}, newest first."
        "</p>{}"
        '<form method="post" action="{}">{}{}<button>Confirm: {} {} job(s)</button></form>'
        "<p>{}</p><h2>The first of them</h2><ul>{}</ul>",
        action.title(),
        matching,
        action.title(),
        matching,
        org,
        described,
        capped,
        org_url(org, "bulk"),
        req.csrf(),
        hidden,
        action,
        number(answer.count),
        back,
        shown,
    )
    return f"{action} {matching} jobs?", body


def bulk(client: Client, org: str, form: dict[str, str]) -> str:
    """Carry out a confirmed bulk action; the page to go to after it."""
    action = form.get("action")
    given: dict[str, Any] = {k: form.get(k) for k in _BULK_FIELDS}
    given["status"] = [s for s in (form.get("status") or "").split(",") if s]
    wanted = _criteria(action, given)
    assert action is not None
    answer = _matching(client, org, action, wanted, dry_run=False)
    statuses = wanted["status"] or []
    args = [("status", s) for s in statuses]
    args += [(k, wanted[k]) for k in ("queue", "task", "error_type") if wanted.get(k)]
    args += [("done", action), ("n", str(answer.count))]
    if answer.more:
        args.append(("more", "1"))
    return org_url(org, f"jobs?{urlencode(args)}")
