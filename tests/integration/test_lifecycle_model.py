"""The whole job lifecycle against a plain model, with a fixed clock.

A hypothesis state machine submits, claims, heartbeats, completes, fails,
lets leases expire, sends stale outcomes, cancels queued, running and
finished jobs, stops canceled attempts, releases, retries, cleans up,
compacts and reopens, through ``Client`` on a real store. After every step
each job's status, attempts and run, its cancel request, its result
versions and its in-app notifications (one per terminal transition) must
match the model; a cancel request, once committed, is followed in its run
by nothing but the job's end as canceled (no retry, no other outcome); the
canceled and failed-attempt counters match; and a cleanup may only delete
records of jobs that were terminal. At the end, ``store check --strict``
passes. CI runs 200 examples of up to 50 steps;
``ASYNCJOBS_MODEL_EXAMPLES`` runs more.
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
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from asyncjobs import Client, Conflict
from asyncjobs.clock import FixedClock
from asyncjobs.tasks import TaskRegistry

from ..conftest import data_files, sha256_of
from .test_claiming import make_worker

MAX_RETRIES = 2
LEASE = 10.0
TERMINAL = ("completed", "failed", "canceled")

tasks = TaskRegistry()


@tasks.task(name="m", retry_backoff="fixed", retry_delay=0)
def m() -> None: ...


class Lifecycle(RuleBasedStateMachine):
    @initialize()
    def open(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="lifecycle-"))
        self.path = self.folder / "store.v1.json"
        self.clock = FixedClock("2026-11-01T12:00:00Z")
        self.client = Client(self.path, clock=self.clock)
        self.client.init_store()
        self.worker = make_worker(self.client, "w", lease=LEASE)
        self.jobs: dict[str, dict] = {}  # job_id -> the model of that job
        self.tokens: dict[str, object] = {}  # running job -> its live token
        self.stale: list = []  # tokens whose lease expired or whose job was canceled
        self.canceled_total = 0  # transitions to canceled
        self.failed_attempts = 0  # attempts that ended with an error

    def teardown(self) -> None:
        if hasattr(self, "client"):
            report = self.client.check(strict=True) if self.jobs else None
            self.client.close()
            shutil.rmtree(self.folder, ignore_errors=True)
            assert report is None or report.ok, report.problems

    def _with(self, status: str) -> list[str]:
        # In submission order: ids are random, so sorting them would make the
        # draws differ between runs of the same example.
        return [j for j, m in self.jobs.items() if m["status"] == status]

    def _attempt_ends(self, job_id: str, *, ok: bool) -> None:
        """What the rules say happens when a running attempt ends."""
        model = self.jobs[job_id]
        token = self.tokens.pop(job_id)
        if model["requested"]:  # a committed cancel request wins over the attempt
            model.update(status="canceled", notes=model["notes"] + 1)
            self.canceled_total += 1
            self.stale.append(token)
            return
        if ok:
            model.update(status="completed", results=model["results"] + 1)
        elif model["attempts"] > MAX_RETRIES:
            model["status"] = "failed"
        else:
            model["status"] = "queued"
        if model["status"] in TERMINAL:
            model["notes"] += 1

    # -- rules -------------------------------------------------------------------

    @rule(org=st.sampled_from(["acme", "globex"]))
    def submit(self, org: str) -> None:
        self.clock.advance(0.001)  # claim order then never depends on random ids
        job = self.client.submit("m", org=org, max_retries=MAX_RETRIES)
        self.jobs[job.job_id] = {
            "org": org,
            "status": "queued",
            "attempts": 0,
            "run": 1,
            "results": 0,
            "notes": 0,
            "requested": False,
        }

    @rule()
    def claim(self) -> None:
        _, claimed = self.client.exchange(self.worker, [], want=1, registry=tasks)
        if not claimed:
            assert not self._with("queued")
            return
        ((job, token),) = claimed
        model = self.jobs[job.job_id]
        assert model["status"] == "queued"
        model.update(status="running", attempts=model["attempts"] + 1)
        self.tokens[job.job_id] = token

    @precondition(lambda self: self.tokens)
    @rule(data=st.data(), ok=st.booleans())
    def finish(self, data: st.DataObject, ok: bool) -> None:
        job_id = data.draw(st.sampled_from([j for j in self.jobs if j in self.tokens]))
        token = self.tokens[job_id]
        outcome = (
            {"job_id": job_id, "ok": True, "value": {"n": self.jobs[job_id]["run"]}}
            if ok
            else {
                "job_id": job_id,
                "ok": False,
                "retryable": True,
                "error": {"type": "ValueError", "message": "no"},
            }
        )
        finished, _ = self.client.exchange(
            self.worker, [(token, outcome)], want=0, registry=tasks
        )
        assert [j.job_id for j in finished] == [job_id]
        if not ok and not self.jobs[job_id]["requested"]:
            self.failed_attempts += 1
        self._attempt_ends(job_id, ok=ok)

    @rule()
    def heartbeat(self) -> None:
        self.clock.advance(LEASE / 3)
        beat = self.client.heartbeat(self.worker, list(self.tokens.values()))
        assert beat.lost == []
        assert set(beat.stop) == {
            t for j, t in self.tokens.items() if self.jobs[j]["requested"]
        }

    @rule()
    def leases_expire(self) -> None:
        self.clock.advance(LEASE + 1)
        self.client.exchange(
            make_worker(self.client, "rescuer", lease=LEASE), [], want=0, registry=tasks
        )
        for job_id in list(self.tokens):
            self.stale.append(self.tokens[job_id])
            self._attempt_ends(job_id, ok=False)

    @precondition(lambda self: self.stale)
    @rule(data=st.data())
    def stale_outcome(self, data: st.DataObject) -> None:
        token = data.draw(st.sampled_from(self.stale))
        late = {"job_id": token.job_id, "ok": True, "value": "late"}
        finished, _ = self.client.exchange(
            self.worker, [(token, late)], want=0, registry=tasks
        )
        assert finished == []  # fencing: the model does not change

    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        queued = self._with("queued")
        if queued:
            job_id = data.draw(st.sampled_from(queued))
            self.client.cancel(job_id, org=self.jobs[job_id]["org"])
            model = self.jobs[job_id]
            model.update(status="canceled", notes=model["notes"] + 1)
            self.canceled_total += 1

    @precondition(lambda self: self.tokens)
    @rule(data=st.data())
    def cancel_running(self, data: st.DataObject) -> None:
        job_id = data.draw(st.sampled_from([j for j in self.jobs if j in self.tokens]))
        model = self.jobs[job_id]
        job = self.client.cancel(job_id, org=model["org"])
        assert job.status == "running" and job.cancel_requested_at is not None
        model["requested"] = True  # asking again changes nothing

    @rule(data=st.data())
    def cancel_finished(self, data: st.DataObject) -> None:
        done = [j for j, m in self.jobs.items() if m["status"] in TERMINAL]
        if done:
            job_id = data.draw(st.sampled_from(done))
            before = sha256_of(*data_files(self.path))
            with pytest.raises(Conflict, match="only a queued or running job"):
                self.client.cancel(job_id, org=self.jobs[job_id]["org"])
            assert sha256_of(*data_files(self.path)) == before

    @precondition(lambda self: any(self.jobs[j]["requested"] for j in self.tokens))
    @rule()
    def worker_stops_canceled(self) -> None:
        """The worker's heartbeat names the canceled attempts; it kills and reports them."""
        self.clock.advance(LEASE / 3)
        beat = self.client.heartbeat(self.worker, list(self.tokens.values()))
        assert beat.lost == [] and beat.stop
        stopped = [
            (t, {"job_id": t.job_id, "ok": False, "canceled": True, "error": {}})
            for t in beat.stop
        ]
        finished, _ = self.client.exchange(self.worker, stopped, want=0, registry=tasks)
        assert {j.status.value for j in finished} == {"canceled"}
        for token in beat.stop:
            self._attempt_ends(token.job_id, ok=False)

    @precondition(lambda self: self.tokens)
    @rule()
    def release(self) -> None:
        """A stopping worker gives its jobs back: queued, or canceled if asked."""
        self.client.release(list(self.tokens.values()), registry=tasks)
        for job_id in list(self.tokens):
            model = self.jobs[job_id]
            if model["requested"]:
                self._attempt_ends(job_id, ok=False)
            else:
                self.tokens.pop(job_id)
                model.update(status="queued", attempts=model["attempts"] - 1)

    @rule(data=st.data())
    def retry(self, data: st.DataObject) -> None:
        done = [j for j, m in self.jobs.items() if m["status"] in TERMINAL]
        if done:
            job_id = data.draw(st.sampled_from(done))
            job = self.client.retry(job_id, org=self.jobs[job_id]["org"])
            model = self.jobs[job_id]
            model.update(
                status="queued", attempts=0, run=model["run"] + 1, requested=False
            )
            assert job.run == model["run"] and job.cancel_requested_at is None

    @rule(dry_run=st.booleans(), ttl=st.sampled_from([0, 5, 3600]))
    def cleanup(self, dry_run: bool, ttl: int) -> None:
        self.clock.advance(1)
        # The worker keeps beating while time passes, as a real one would.
        assert self.client.heartbeat(self.worker, list(self.tokens.values())).lost == []
        terminal = {j for j, m in self.jobs.items() if m["status"] in TERMINAL}
        state = self.client.export()
        owner = {
            r[key]: r["job_id"]
            for kind, key in (("results", "result_id"), ("events", "event_id"))
            for r in state[kind].values()
        }
        before = sha256_of(*data_files(self.path))
        report = self.client.cleanup(
            results_ttl_seconds=ttl, events_ttl_seconds=ttl, dry_run=dry_run
        )
        for kind in ("results", "events"):
            for record_id in report[kind]["deleted_ids"]:
                assert owner[record_id] in terminal  # never a live job's record
        if dry_run:
            assert sha256_of(*data_files(self.path)) == before
        else:
            gone = Counter(owner[r] for r in report["results"]["deleted_ids"])
            for job_id, count in gone.items():
                self.jobs[job_id]["results"] -= count

    @rule()
    def compact(self) -> None:
        self.client.compact()

    @rule()
    def reopen(self) -> None:
        self.client.close()
        self.client = Client(self.path, clock=self.clock)

    # -- the model and the store agree --------------------------------------------

    @invariant()
    def jobs_match_the_model(self) -> None:
        if not hasattr(self, "client"):
            return
        state = self.client.export()  # one view of the whole state
        results = Counter(r["job_id"] for r in state["results"].values())
        notes = Counter(n["job_id"] for n in state["notifications"].values())
        counters = {
            name: (state["counters"].get(name) or {}).get("value", 0)
            for name in ("jobs_canceled_total", "attempts_failed_total")
        }
        for job_id, model in self.jobs.items():
            job = state["jobs"][job_id]
            seen = (job["status"], job["attempts"], job["run"])
            assert seen == (model["status"], model["attempts"], model["run"])
            assert (job.get("cancel_requested_at") is not None) == model["requested"]
            assert results[job_id] == model["results"], job_id
            assert notes[job_id] == model["notes"], job_id
        assert counters["jobs_canceled_total"] == self.canceled_total
        assert counters["attempts_failed_total"] == self.failed_attempts

    @invariant()
    def a_cancel_request_is_followed_only_by_the_cancel(self) -> None:
        """Once committed, a run's cancel request ends it canceled: no retry, no outcome.

        Cleanup may have deleted older events; what is left keeps its order.
        """
        if not hasattr(self, "client"):
            return
        events = sorted(
            self.client.export()["events"].values(), key=lambda e: e.get("seq", 0)
        )
        after: dict[tuple[str, int], list[str]] = {}
        for event in events:
            key = (event["job_id"], event["run"])
            if key in after:
                after[key].append(event["event_type"])
            elif event["event_type"] == "async.job.cancel_requested":
                after[key] = []
        allowed = {
            "async.job.lease_expired",
            "async.job.stale_outcome_refused",
            "async.job.canceled",
        }
        for key, types in after.items():
            assert set(types) <= allowed, (key, types)
            assert types.count("async.job.canceled") <= 1, (key, types)


Lifecycle.TestCase.settings = settings(
    max_examples=int(os.environ.get("ASYNCJOBS_MODEL_EXAMPLES", "200")),
    stateful_step_count=50,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_the_job_lifecycle_matches_its_model = Lifecycle.TestCase
