"""Which runnable job goes next: the claim order and the fair tags it sorts by.

Jobs are claimed in one total order::

    (priority desc, fair_tag, run_after, created_at, job_id)

Fairness between orgs is decided when a job becomes runnable, not when it
is claimed: the job gets a **fair tag**, by start-time fair queueing over
its org's virtual time. Tags are compared only between jobs of one *lane*,
a (queue, priority) pair, which the order already separates by priority and
the claim by queue. In each lane:

- ``V``, the lane's virtual time, is the tag of the job the next claim in
  the lane would take (its first queued job whose task no open breaker
  holds back); when the lane has none, it is the lane's highest next tag, so
  that a lane that empties never starts again below the tags it gave out.
- each org has a next tag ``F`` (0 before its first job). A job becoming
  runnable gets ``tag = max(V, F)``, and ``F`` becomes ``tag + 1``: each
  job costs its org one turn.

So an org with no jobs waiting starts at the front (``V``), right behind
the job the next claim takes; an org with a backlog queues behind its own
last job; backlogged orgs take one turn each per tag, in order of arrival
(``run_after``, ``created_at``). A flood of 10,000 jobs from one org takes
tags V..V+9999, and another org's single job, tagged V, is claimed second.

Lanes are per priority, not per queue alone: an org's backlog of low
priority jobs must not push its one urgent job behind another org's urgent
flood.

A job gets its tag when it becomes runnable: at submit, when it is queued
again (a retry by hand, a failed attempt's retry, a released or expired
lease), and a job that waits for its ``run_after`` (a delay, a retry's
backoff) when that time has come (the claim stages it first). Until then
its ``fair_tag`` is None, and the claim order does not hold it.

These are plain functions of values; the engine stores the tags and the
next tags and keeps the order as an index.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

ClaimKey = tuple[int, int, str, str, str]


def claim_key(job: Mapping[str, Any]) -> ClaimKey:
    """Where a queued job with a fair tag stands in the claim order (lowest first)."""
    return (
        -job["priority"],
        job["fair_tag"],
        job["run_after"],
        job["created_at"],
        job["job_id"],
    )


def virtual_time(head_tag: int | None, lane_next_tag: int) -> int:
    """A lane's virtual time ``V``.

    ``head_tag`` is the fair tag of the lane's first claimable job, None when
    it has none; ``lane_next_tag`` is the highest next tag of any org in the
    lane (0 for a lane never used).
    """
    return head_tag if head_tag is not None else lane_next_tag


def fair_tag(virtual: int, org_next_tag: int) -> tuple[int, int]:
    """A job's fair tag, and its org's next tag in the lane after it."""
    tag = max(virtual, org_next_tag)
    return tag, tag + 1


def lane_key(queue: str, priority: int, org: str) -> str:
    """The key of an org's record in a lane (names cannot hold ``/``)."""
    return f"{queue}/{priority}/{org}"
