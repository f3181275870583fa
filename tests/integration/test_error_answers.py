"""The CLI and the HTTP API each answer an error from the attributes of its class alone
(the tree itself is checked in tests/unit/test_errors.py)."""

from __future__ import annotations

import pytest

from asyncjobs import Client, errors
from asyncjobs.http.app import App

from ..unit.test_errors import JOB_ID, SEEN
from .test_http import call

pytestmark = pytest.mark.engines


@pytest.mark.parametrize("name", sorted(SEEN))
def test_each_error_a_route_raises_is_answered_with_the_status_of_its_class(
    client, monkeypatch, name
):
    exit_code, status, code = SEEN[name]
    message = f"{name} raised   on purpose"

    def fail(self, job_id, *, org):
        raise getattr(errors, name)(message)

    monkeypatch.setattr(Client, "get_job", fail)
    answer = call(App(client), "GET", f"/analyze/jobs/{JOB_ID}", org="acme")
    assert answer.status == status
    assert answer.json == {
        "error": {"code": code, "message": f"{name} raised on purpose"}
    }


@pytest.mark.parametrize("name", sorted(SEEN))
def test_each_error_a_command_raises_exits_with_the_code_of_its_class(
    cli, client, monkeypatch, name
):
    exit_code, status, code = SEEN[name]

    def fail(self, job_id, *, org):
        raise getattr(errors, name)(f"{name} raised on purpose")

    monkeypatch.setattr(Client, "get_job", fail)
    outcome = cli("status", JOB_ID, "--org", "acme")
    assert outcome.exit_code == exit_code
    assert (
        outcome.stdout == "" and outcome.stderr == f"error: {name} raised on purpose\n"
    )
