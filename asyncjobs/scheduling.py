"""Which runnable job goes next: the order rule, a plain function.

Highest priority first. Among equal priority, orgs take turns: each org's
wait starts when its oldest runnable job became runnable, or when the org was
last served if that is later; the org that has waited longest goes next, so
one org's flood never starves another org's single job. Within an org, the
job that became runnable first goes first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .records import Job


def _ready_key(job: Job) -> tuple[str, str, str]:
    return (job.run_after, job.created_at, job.job_id)


def pick(
    heads: Sequence[Job], last_served: Mapping[str, tuple[str, int]]
) -> Job | None:
    """The next job among group heads (each the first runnable job of its group).

    ``last_served`` maps an org to when it last had a job claimed: the time
    (ISO) and the store-wide claim number, which orders turns taken at the
    same instant (an org never served has none and goes before them).
    """
    if not heads:
        return None
    top = max(job.priority for job in heads)
    first_of_org: dict[str, Job] = {}
    for job in heads:
        if job.priority != top:
            continue
        current = first_of_org.get(job.org_id)
        if current is None or _ready_key(job) < _ready_key(current):
            first_of_org[job.org_id] = job

    def waiting_since(org: str) -> tuple[str, int, tuple[str, str, str], str]:
        job = first_of_org[org]
        served_at, turn = last_served.get(org, ("", 0))
        return (max(job.run_after, served_at), turn, _ready_key(job), org)

    return first_of_org[min(first_of_org, key=waiting_since)]
