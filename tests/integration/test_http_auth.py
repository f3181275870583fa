"""Access tokens: the CLI that makes them, and the API with ``--auth tokens``.

The auth matrix runs every route with no token, a malformed one, an
expired, a revoked, another org's, a viewer's and an operator's, on every
engine, in process (a real ``serve --auth tokens`` is in
tests/system/test_http_served.py).
"""

from __future__ import annotations

import json

import pytest

from asyncjobs import Client
from asyncjobs.errors import Unauthorized
from asyncjobs.http.app import App

from ..conftest import exported
from .test_bulk import failed, tasks
from .test_claiming import make_worker
from .test_http import call, without_volatile

pytestmark = pytest.mark.engines

MISSING = "job_" + "0" * 26
# (method, path): every route; {job} is a job of acme's
ROUTES = [
    ("GET", "/telemetry"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("POST", "/analyze/jobs"),
    ("GET", "/analyze/jobs"),
    ("GET", "/analyze/jobs/{job}"),
    ("GET", "/analyze/jobs/{job}/notifications"),
    ("POST", "/analyze/jobs/{job}/retry"),
    ("POST", "/analyze/jobs/{job}/cancel"),
    ("POST", "/analyze/jobs/retry"),
    ("POST", "/analyze/jobs/cancel"),
    ("GET", "/analyze/results/res_00000000000000000000000000"),
    ("GET", "/analyze/inbox"),
    ("POST", "/analyze/inbox/mark-read"),
    ("GET", "/analyze/queues"),
    ("GET", "/analyze/breakers"),
    ("POST", "/analyze/breakers/smtp/reset"),
]
UNTENANTED = {"/telemetry", "/metrics", "/openapi.json"}
BODIES = {
    "/analyze/jobs": b'{"task": "reports.build"}',
    "/analyze/inbox/mark-read": b'{"all": true}',
}


@pytest.fixture
def keys(client, clock):
    """Tokens of every kind, and a failed job of acme's."""
    made = {}
    for name, orgs, role in [
        ("operator", ["acme"], "operator"),
        ("viewer", ["acme"], "viewer"),
        ("globex", ["globex"], "operator"),
        ("revoked", ["acme"], "operator"),
    ]:
        record, made[name] = client.create_token(orgs=orgs, role=role, label=name)
        if name == "revoked":
            client.revoke_token(record["token_id"])
    _, made["expired"] = client.create_token(
        orgs=["acme"], role="operator", expires_in=60
    )
    clock.advance(61)
    made["malformed"] = made["operator"][:-1] + (
        "A" if made["operator"][-1] != "A" else "B"
    )
    made["job"] = failed(client, "acme", "mail.send", 1)[0]
    return made


def ask(app, method, path, keys, token=None, org="acme"):
    url = path.format(job=keys["job"])
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    body = BODIES.get(url.split("?")[0]) if method == "POST" else None
    return call(app, method, url, org=org, headers=headers, body=body)


@pytest.fixture
def app(client):
    return App(client, auth="tokens")


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize("which", [None, "malformed", "expired", "revoked"])
def test_a_request_without_a_live_token_is_401_before_anything_is_read(
    app, client, keys, method, path, which
):
    before = exported(client, "jobs"), exported(client, "notifications")
    answer = ask(app, method, path, keys, token=keys.get(which) if which else None)
    assert answer.status == 401, (which, answer.body)
    assert answer.json["error"]["code"] == "unauthorized"
    assert answer.headers["WWW-Authenticate"] == 'Bearer realm="asyncjobs"'
    assert (exported(client, "jobs"), exported(client, "notifications")) == before


@pytest.mark.parametrize(
    ("method", "path"), [r for r in ROUTES if r[1] not in UNTENANTED]
)
def test_a_token_of_another_org_is_403_whether_the_job_exists_or_not(
    app, client, keys, method, path
):
    before = exported(client, "jobs")
    there = ask(app, method, path, keys, token=keys["globex"])
    missing = ask(
        app, method, path.replace("{job}", MISSING), keys, token=keys["globex"]
    )
    assert there.status == 403 and there.json["error"]["code"] == "forbidden"
    assert without_volatile(there) == without_volatile(missing)
    assert exported(client, "jobs") == before


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_a_viewer_reads_and_never_writes(app, client, keys, method, path):
    before = exported(client, "jobs")
    answer = ask(app, method, path, keys, token=keys["viewer"])
    if method == "POST" or path in {"/metrics", "/telemetry"}:
        assert answer.status == 403 and answer.json["error"]["code"] == "forbidden"
        assert exported(client, "jobs") == before
    else:
        assert answer.status in (200, 404), answer.body


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_an_operator_of_the_org_is_let_through(app, keys, method, path):
    answer = ask(app, method, path, keys, token=keys["operator"])
    assert answer.status not in (401, 403), answer.body


def test_health_needs_no_token(app, keys):
    assert call(app, "GET", "/health").status == 200


def test_a_traceback_is_shown_to_operators_only(client, keys, store_url):
    with Client(store_url) as other:
        job = other.submit("reports.build", org="acme")
    worker = make_worker(client)
    _, claimed = client.exchange(worker, [], want=10, registry=tasks)
    token = next(t for j, t in claimed if j.job_id == job.job_id)
    error = {"type": "KeyError", "message": "'x'", "traceback": "File /srv/app/x.py"}
    client.exchange(
        worker,
        [(token, {"job_id": job.job_id, "ok": False, "error": error})],
        want=0,
        registry=tasks,
    )
    path = f"/analyze/jobs/{job.job_id}"
    tokens_app, plain_app = App(client, auth="tokens"), App(client)
    seen = {
        "operator": ask(tokens_app, "GET", path, keys, token=keys["operator"]).json,
        "viewer": ask(tokens_app, "GET", path, keys, token=keys["viewer"]).json,
        "no auth": call(plain_app, "GET", path, org="acme").json,
    }
    assert seen["operator"]["error"] == error
    for who in ("viewer", "no auth"):
        assert seen[who]["error"] == {"type": "KeyError", "message": "'x'"}, who
    listed = ask(
        tokens_app, "GET", "/analyze/jobs?status=failed", keys, token=keys["viewer"]
    )
    assert all("traceback" not in (j["error"] or {}) for j in listed.json["jobs"])


# -- the CLI and the Python API --------------------------------------------------


def test_a_token_is_printed_once_and_only_its_hash_is_kept(client, cli):
    made = cli("tokens", "create", "--org", "acme", "--role", "viewer", "--json")
    doc = json.loads(made.stdout)
    assert made.exit_code == 0 and doc["token"].startswith(doc["id"] + ".")
    secret = doc["token"].split(".", 1)[1]
    (stored,) = exported(client, "tokens")
    assert secret not in json.dumps(stored) and len(stored["secret_sha256"]) == 64
    listed = cli("tokens", "list", "--json")
    assert secret not in listed.stdout and "secret_sha256" not in listed.stdout
    assert client.authenticate(doc["token"]).orgs == ["acme"]
    text = cli(
        "tokens", "create", "--org", "acme", "--org", "globex", "--role", "operator"
    )
    assert text.stdout.count("\n") == 1 and "not shown again" in text.stderr


def test_a_revoked_token_stops_at_once_and_revoking_again_changes_nothing(client, cli):
    record, token = client.create_token(orgs=["acme"], role="operator")
    first = cli("tokens", "revoke", record["token_id"])
    assert first.exit_code == 0 and first.stdout.strip().endswith("revoked")
    with pytest.raises(Unauthorized):
        client.authenticate(token)
    again = cli("tokens", "revoke", record["token_id"])
    assert again.exit_code == 0 and "already revoked at" in again.stdout
    assert cli("tokens", "revoke", "tok_" + "0" * 26).exit_code == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--role", "viewer"], "Missing option '--org'"),
        (["--org", "acme"], "Missing option '--role'"),
        (["--org", "acme", "--role", "admin"], "'admin' is not one of"),
        (["--org", "no/such", "--role", "viewer"], "org:"),
        (["--org", "acme", "--role", "viewer", "--expires-in", "5"], "--expires-in"),
    ],
)
def test_a_bad_token_request_is_refused_and_makes_nothing(client, cli, args, message):
    outcome = cli("tokens", "create", *args)
    assert outcome.exit_code == 2 and message in outcome.stderr
    assert exported(client, "tokens") == []
