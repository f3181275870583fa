"""Fair claims between orgs, as properties: through Client on a real store, fixed clock.

A hypothesis state machine submits batches (floods and single jobs, of a
few orgs, at three priorities, some delayed), claims one or three jobs at a
time and lets time pass. At every claim it checks, against a plain model of
the queued jobs:

- priority still wins: the job claimed is of the highest priority due;
- a delayed job never blocks due ones: nothing is claimed before its
  ``run_after``, and a claim comes back short only when nothing is due;
- a flood never delays another org's job: a job whose org had nothing else
  waiting in its lane when it became runnable is claimed within
  ``2 x (orgs waiting in that lane then)`` claims of its lane;
- backlogged orgs alternate: while an org still has jobs waiting, no other
  org of its lane gets more than 2 claims before its next one.

CI runs 100 examples of up to 40 steps; ``ASYNCJOBS_MODEL_EXAMPLES`` runs more.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule

from asyncjobs import Client
from asyncjobs.clock import FixedClock, to_iso
from asyncjobs.tasks import TaskRegistry

from .test_claiming import make_worker

pytestmark = pytest.mark.engines

tasks = TaskRegistry()


@tasks.task(name="f")
def f() -> None: ...


ORGS = ("flood", "a", "b", "c", "d")


class FairClaims(RuleBasedStateMachine):
    @initialize()
    def open(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="fairness-"))
        self.clock = FixedClock("2026-11-01T12:00:00Z")
        self.client = Client(self.folder / "store.v1.json", clock=self.clock)
        self.client.init_store()
        self.worker = make_worker(self.client, "w", lease=3600)
        # job_id -> {org, priority, run_after}: the jobs still queued
        self.queued: dict[str, dict] = {}
        self.due: set[str] = set()  # queued jobs the model has seen become runnable
        # a job that became runnable with nothing else of its org waiting in
        # its lane -> how many more claims of its lane may come before it
        self.budget: dict[str, int] = {}
        # (lane, org) that still waits -> claims of each other org since its last
        self.since: dict[tuple[int, str], Counter] = {}

    def teardown(self) -> None:
        if hasattr(self, "client"):
            report = self.client.check(strict=True)
            self.client.close()
            shutil.rmtree(self.folder, ignore_errors=True)
            assert report.ok, report.problems

    def _waiting(self, priority: int) -> Counter:
        """Runnable jobs of each org in the lane of ``priority``."""
        return Counter(
            self.queued[j]["org"]
            for j in self.due
            if self.queued[j]["priority"] == priority
        )

    def _becomes_runnable(self, job_id: str) -> None:
        job = self.queued[job_id]
        waiting = self._waiting(job["priority"])
        if not waiting[job["org"]]:
            self.budget[job_id] = 2 * (len(waiting) + 1)
        self.due.add(job_id)

    def _came_due(self) -> None:
        """Jobs whose run_after has come, in the order the claim tags them."""
        now = to_iso(self.clock.moment)
        came = [
            j
            for j, m in self.queued.items()
            if j not in self.due and m["run_after"] <= now
        ]
        for job_id in sorted(came, key=lambda j: (self.queued[j]["run_after"], j)):
            self._becomes_runnable(job_id)

    @rule(
        org=st.sampled_from(ORGS),
        count=st.one_of(st.just(1), st.integers(2, 8), st.just(150)),
        priority=st.sampled_from([5, 5, 5, 1, 9]),
        delay=st.sampled_from([0, 0, 0, 5, 30]),
    )
    def submit(self, org: str, count: int, priority: int, delay: int) -> None:
        self.clock.advance(0.001)  # arrivals never tie on time
        jobs = self.client.submit_many(
            [
                {"task": "f", "org": org, "priority": priority, "delay": delay}
                for _ in range(count)
            ]
        )
        for job in jobs:
            self.queued[job.job_id] = {
                "org": org,
                "priority": priority,
                "run_after": job.run_after,
            }
            if delay == 0:
                self._becomes_runnable(job.job_id)

    @rule(seconds=st.sampled_from([1, 10, 40]))
    def time_passes(self, seconds: int) -> None:
        self.clock.advance(seconds)

    @rule(want=st.sampled_from([1, 3, 10]))
    def claim(self, want: int) -> None:
        self.clock.advance(0.001)
        self._came_due()
        _, claimed = self.client.exchange(self.worker, [], want=want, registry=tasks)
        now = to_iso(self.clock.moment)
        for job, _ in claimed:
            self._claimed(job.job_id, now)
        if len(claimed) < want:
            assert not self.due, "a due job was left behind"  # nothing due is left

    def _claimed(self, job_id: str, now: str) -> None:
        assert job_id in self.due, "claimed before its run_after"
        model = self.queued[job_id]
        assert model["run_after"] <= now
        lane, org = model["priority"], model["org"]
        top = max(self.queued[j]["priority"] for j in self.due)
        assert lane == top, "a lower priority went first"
        for other in [j for j in self.budget if self.queued[j]["priority"] == lane]:
            if other != job_id:
                self.budget[other] -= 1
                assert self.budget[other] >= 0, (
                    f"{self.queued[other]['org']}'s job waited past its turn"
                )
        for (waiting_lane, waiting_org), others in self.since.items():
            if waiting_lane == lane and waiting_org != org:
                others[org] += 1
                assert others[org] <= 2, (
                    f"{org} went {others[org]} times while {waiting_org} waited"
                )
        self.budget.pop(job_id, None)
        self.due.discard(job_id)
        del self.queued[job_id]
        self.since.pop((lane, org), None)
        if self._waiting(lane)[org]:
            self.since[(lane, org)] = Counter()
        # an org whose backlog ran out no longer waits
        for key in [k for k in self.since if not self._waiting(k[0])[k[1]]]:
            del self.since[key]


FairClaims.TestCase.settings = settings(
    max_examples=int(os.environ.get("ASYNCJOBS_MODEL_EXAMPLES", "100")),
    stateful_step_count=40,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
test_claims_are_fair_between_orgs = FairClaims.TestCase


def test_a_flood_of_10000_jobs_delays_another_orgs_job_by_one_claim(client, clock):
    client.submit_many([{"task": "f", "org": "flood"} for _ in range(10_000)])
    worker = make_worker(client)
    for _ in range(3):
        client.exchange(worker, [], want=100, registry=tasks)
    clock.advance(1)
    single = client.submit("f", org="small")
    clock.advance(1)
    _, claimed = client.exchange(worker, [], want=3, registry=tasks)
    orgs = [job.org_id for job, _ in claimed]
    assert orgs == ["flood", "small", "flood"]
    assert claimed[1][0].job_id == single.job_id


def test_a_delayed_flood_that_comes_due_does_not_jump_the_queue(client, clock):
    client.submit_many([{"task": "f", "org": "early", "delay": 60} for _ in range(500)])
    client.submit_many([{"task": "f", "org": "busy"} for _ in range(50)])
    worker = make_worker(client)
    clock.advance(61)
    client.exchange(worker, [], want=10, registry=tasks)
    single = client.submit("f", org="single")
    _, claimed = client.exchange(worker, [], want=3, registry=tasks)
    assert single.job_id in {job.job_id for job, _ in claimed}


def test_a_claim_writes_only_the_job_and_its_event(client, clock):
    client.submit_many([{"task": "f", "org": org} for org in ("a", "b", "a")])
    worker = make_worker(client)
    before = client.export()
    ((job, _),) = client.exchange(worker, [], want=1, registry=tasks)[1]
    after = client.export()
    changed = {
        kind: sorted(
            key
            for key in before[kind].keys() | after[kind].keys()
            if before[kind].get(key) != after[kind].get(key)
        )
        for kind in after
        if isinstance(after[kind], dict)
    }
    changed = {kind: keys for kind, keys in changed.items() if keys}
    assert set(changed) == {"jobs", "events"}
    assert changed["jobs"] == [job.job_id] and len(changed["events"]) == 1


def test_a_retried_job_queues_behind_its_orgs_backlog(client, clock):
    worker = make_worker(client)
    first = client.submit("f", org="a")
    ((_, token),) = client.exchange(worker, [], want=1, registry=tasks)[1]
    clock.advance(1)
    client.submit_many([{"task": "f", "org": "a"} for _ in range(3)])
    clock.advance(1)
    other = client.submit("f", org="b")
    failure = {
        "job_id": first.job_id,
        "ok": False,
        "retryable": False,
        "error": {"type": "ValueError", "message": "no"},
    }
    client.exchange(worker, [(token, failure)], want=0, registry=tasks)
    retried = client.retry(first.job_id, org="a")
    assert retried.fair_tag is not None
    _, claimed = client.exchange(worker, [], want=5, registry=tasks)
    order = [job.job_id for job, _ in claimed]
    assert order.index(other.job_id) <= 1
    assert order[-1] == first.job_id  # behind the three a queued before it


def test_delays_and_backoffs_get_their_tag_when_they_come_due(client, clock):
    later = client.submit("f", org="a", delay=30)
    assert later.fair_tag is None
    clock.advance(31)
    worker = make_worker(client)
    ((claimed, _),) = client.exchange(worker, [], want=1, registry=tasks)[1]
    assert claimed.job_id == later.job_id and claimed.fair_tag is not None


held_back = TaskRegistry()
held_back.breaker("dependency", fail_max=1, reset_timeout=600)


@held_back.task(name="fragile", breaker="dependency")
def fragile() -> None: ...


@held_back.task(name="f")
def plain() -> None: ...


def test_jobs_a_breaker_holds_back_do_not_hold_back_the_turns(client, clock):
    """Newcomers start at the job the next claim takes, not at a held-back one."""
    worker = make_worker(client)
    client.submit_many([{"task": "fragile", "org": "held"} for _ in range(5)])
    ((job, token),) = client.exchange(worker, [], want=1, registry=held_back)[1]
    failure = {
        "job_id": job.job_id,
        "ok": False,
        "retryable": False,
        "error": {"type": "ValueError", "message": "down"},
    }
    client.exchange(worker, [(token, failure)], want=0, registry=held_back)
    assert client.breakers()[0]["state"] == "open"
    clock.advance(1)
    client.submit_many([{"task": "f", "org": "busy"} for _ in range(20)])
    client.exchange(worker, [], want=10, registry=held_back)
    clock.advance(1)
    client.submit_many([{"task": "f", "org": "new"} for _ in range(5)])
    _, claimed = client.exchange(worker, [], want=6, registry=held_back)
    orgs = [job.org_id for job, _ in claimed]
    assert orgs == ["busy", "new"] * 3


@pytest.mark.jsonfile  # older versions wrote JSON files only
def test_a_store_an_older_version_wrote_checks_claims_and_cleans_up(
    store_path, clock, cli
):
    """Turn rows (``orgs``), a ``claims_total`` counter and queued jobs without tags."""
    from asyncjobs.domain import lifecycle
    from asyncjobs.store import JsonFileStore

    with JsonFileStore(store_path) as store:
        store.initialize()
        with store.transaction() as tx:
            for n, org in enumerate(["flood"] * 20 + ["small"]):
                job, event = lifecycle.submit(
                    task="f",
                    org=org,
                    payload={},
                    queue="default",
                    priority=5,
                    run_after=clock.moment,
                    idempotency_key=None,
                    max_retries=None,
                    now=clock.moment,
                )
                record = job.to_dict()
                del record["fair_tag"]
                record["created_at"] = record["run_after"] = (
                    f"2026-11-01T11:00:{n:02d}Z"
                )
                tx.put("jobs", job.job_id, record)
                tx.put("events", event.event_id, event.to_dict())
            tx.put(
                "orgs",
                "flood",
                {"org_id": "flood", "last_served_at": "", "last_served_turn": 7},
            )
            tx.put("counters", "claims_total", {"name": "claims_total", "value": 7})
    checked = cli("store", "check", "--strict", "--json")
    assert checked.exit_code == 0, checked.stdout
    assert "'orgs' record(s) of an older version" in checked.stdout
    with Client(store_path, clock=clock) as client:
        worker = make_worker(client)
        _, claimed = client.exchange(worker, [], want=2, registry=tasks)
        assert [job.org_id for job, _ in claimed] == ["flood", "small"]
        ((job, token), _) = claimed
        done = {"job_id": job.job_id, "ok": True, "value": 1}
        client.exchange(worker, [(token, done)], want=0, registry=tasks)
        clock.advance(10)
        report = client.cleanup(
            results_ttl_seconds=0, events_ttl_seconds=0, jobs_ttl_seconds=0
        )
        assert report["jobs"]["deleted_ids"] == [job.job_id]
        assert client.export()["orgs"] == {
            "flood": {"org_id": "flood", "last_served_at": "", "last_served_turn": 7}
        }
        assert client.check(strict=True).ok


def test_store_check_reports_a_malformed_lanes_record(client, cli):
    client.submit("f", org="acme")
    assert cli("store", "check").exit_code == 0
    with client.store.transaction() as tx:
        tx.put("lanes", "default/5/acme", {"queue": "default", "next_tag": "1"})
    checked = cli("store", "check")
    assert checked.exit_code != 0
    assert "a lanes record is malformed" in checked.stdout + checked.stderr
