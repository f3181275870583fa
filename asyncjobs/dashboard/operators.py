"""The store-wide pages, an operator's: queues, workers, schedules, breakers, system.

They show what the HTTP API shows an operator's token (``/metrics``,
``/telemetry``, ``/analyze/breakers``): figures per queue, task and
breaker, and workers as hosts and processes. Breakers are shared by every
org, with the id of a trial job whatever its org, as the API shows them.
Otherwise no other org's job is listed: a worker shows how many jobs it
runs, not which, and the schedules listed are those of the session's orgs.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING
from urllib.parse import quote

from .. import __version__
from ..client import Client
from ..errors import NotFound
from ..records import Job
from .html import Html, html, link, table
from .widgets import age, ago, number, org_url, queue_table

if TYPE_CHECKING:
    from .views import Request


def queues(client: Client, req: Request) -> tuple[str, Html]:
    rows = queue_table(client.queues(org=None))
    body = html(
        "<h1>Queues</h1><p>Every org's queued and running jobs, by queue.</p>"
        '<section id="queues" data-poll>{}</section>',
        rows,
    )
    return "queues", body


def workers(client: Client, req: Request) -> tuple[str, Html]:
    rows = table(
        [
            "Worker",
            "Host",
            "Pid",
            "Queues",
            "Concurrency",
            "State",
            "Started",
            "Last seen",
            "Running",
            "Processed",
        ],
        (
            [
                w["worker_id"],
                w["host"],
                w["pid"],
                ", ".join(w["queues"]),
                w["concurrency"],
                "gone" if w["gone"] and w["state"] != "stopped" else w["state"],
                ago(w["started_at"], req.now),
                f"{age(w['seen_seconds_ago'])} ago",
                number(len(w.get("running", []))),
                number(w.get("processed_count", 0)),
            ]
            for w in client.workers()
        ),
        "No worker has started.",
    )
    body = html(
        "<h1>Workers</h1><p>A worker is gone when it stopped or missed three "
        'heartbeats.</p><section id="workers" data-poll>{}</section>',
        rows,
    )
    return "workers", body


def schedules(client: Client, req: Request) -> tuple[str, Html]:
    rows = []
    for s in client.schedules():
        if s["org"] not in req.token.orgs:
            continue
        every = s["every"]
        plan = s["cron"] or (
            f"every {every:g} s" if isinstance(every, int | float) else "-"
        )
        enqueue = html(
            '<form method="post" class="inline" action="{}">{}'
            "<button>Enqueue now</button></form>",
            f"/dashboard/schedules/{quote(s['name'], safe='')}/enqueue",
            req.csrf(),
        )
        rows.append(
            [
                s["name"],
                plan,
                link(org_url(s["org"]), s["org"]),
                s["queue"],
                ago(s["last_slot_at"], req.now),
                ago(s["next_run_at"], req.now),
                enqueue,
            ]
        )
    body = html(
        "<h1>Schedules</h1><p>The periodic tasks of the task catalog that "
        "<code>worker --beat</code> enqueues, for the orgs of this session.</p>"
        '<section id="schedules" data-poll>{}</section>',
        table(
            ["Task", "Schedule", "Org", "Queue", "Last slot", "Next run", ""],
            rows,
            "No periodic task is published (a worker publishes its app's).",
        ),
    )
    return "schedules", body


def enqueue(client: Client, req: Request, name: str) -> Job:
    """Submit a periodic task now, as its schedule would, in one of the session's orgs."""
    for row in client.schedules():
        if row["name"] == name and row["org"] in req.token.orgs:
            break
    else:
        raise NotFound(f"no schedule {name}")
    entry = next((e for e in client.catalog() if e.get("name") == name), {})
    payload = (entry.get("periodic") or {}).get("payload") or {}
    return client.submit(
        name,
        org=row["org"],
        queue=row["queue"],
        priority=row["priority"],
        payload=payload,
    )


def breakers(client: Client, req: Request) -> tuple[str, Html]:
    rows = []
    for b in client.breakers():
        reset = Html("")
        if b["state"] != "closed":
            reset = html(
                '<form method="post" class="inline" action="{}">{}'
                "<button>Reset</button></form>",
                f"/dashboard/breakers/{quote(b['name'], safe='')}/reset",
                req.csrf(),
            )
        rows.append(
            [
                b["name"],
                b["state"],
                number(b.get("failure_count") or 0),
                ago(b.get("opened_at"), req.now),
                ago(b.get("reopens_at"), req.now),
                b.get("trial_job_id") or "-",
                ", ".join(b.get("tasks") or []),
                reset,
            ]
        )
    body = html(
        "<h1>Breakers</h1><p>An open breaker holds its tasks' jobs back until it "
        'lets a trial through; reset closes it now.</p><section id="breakers" data-poll>{}</section>',
        table(
            [
                "Breaker",
                "State",
                "Failures",
                "Opened",
                "Trial",
                "Trial job",
                "Tasks",
                "",
            ],
            rows,
            "No breaker is declared or has opened.",
        ),
    )
    return "breakers", body


def system(client: Client, req: Request) -> tuple[str, Html]:
    store = client.store
    sizes = []
    for what, attr in (
        ("snapshot", "path"),
        ("journal (with room reserved)", "journal_path"),
    ):
        name = getattr(store, attr, None)  # the JSON file's; PostgreSQL has none
        if isinstance(name, str) and os.path.exists(name):
            sizes.append([what, f"{os.path.getsize(name):,} bytes"])
    queued = client.queues(org=None)
    seen = sum(not w["gone"] for w in client.workers())
    facts = table(
        ["", ""],
        [
            ["asyncjobs", __version__],
            ["store", store.url],
            ["change mark", client.change_mark()],
            *sizes,
            ["jobs queued", number(sum(q["depth"] for q in queued))],
            ["jobs running", number(sum(q["running"] for q in queued))],
            ["workers seen", number(seen)],
            ["notifications deleted before", client.pruned_before() or "none deleted"],
        ],
        "",
    )
    check = Html("")
    if req.arg("check") == "1":
        report = client.check()
        check = html(
            '<p class="banner {}">{} problem(s), {} note(s). Run '
            "<code>asyncjobs store check</code> for the details.</p>",
            "ok" if report.ok else "error",
            number(len(report.problems)),
            number(len(report.notes)),
        )
    body = html(
        "<h1>System</h1>{}{}<p>{} (reads the whole store)</p><p>All the figures: "
        "<code>asyncjobs info</code>, or <code>/metrics</code> and "
        "<code>/telemetry</code> with an operator's bearer token.</p>",
        facts,
        check,
        link("/dashboard/system?check=1", "Check the store"),
    )
    return "system", body


PAGES = {
    "queues": queues,
    "workers": workers,
    "schedules": schedules,
    "breakers": breakers,
    "system": system,
}
