"""`store import`: a store moves between engines, whole, or not at all."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from asyncjobs import Client
from asyncjobs.clock import FixedClock

pytestmark = pytest.mark.engines


def without_generation(doc: dict) -> dict:
    return {k: v for k, v in doc.items() if k != "generation"}


@pytest.fixture
def exported_file(tmp_path: Path) -> Path:
    """An export of a JSON store where jobs ran, failed, were canceled and read."""
    source = tmp_path / "source" / "store.v1.json"
    source.parent.mkdir()
    with Client(source, clock=FixedClock("2026-11-01T12:00:00Z")) as c:
        c.init_store()
        done = c.submit("t", org="acme", payload={"n": 1}, idempotency_key="k1")
        c.submit("t", org="acme", delay=60)
        other = c.submit("u", org="globex")
        c.cancel(other.job_id, org="globex")
        c.mark_read(org="globex", every=True)
        c.retry(other.job_id, org="globex")
        assert done.job_id
        path = tmp_path / "export.json"
        path.write_text(json.dumps(c.export()))
    return path


def test_an_export_imported_into_a_new_store_is_the_same_state(
    cli, exported_file, store_url
):
    outcome = cli("store", "import", str(exported_file), "--json")
    assert outcome.exit_code == 0, outcome.stderr
    answer = json.loads(outcome.stdout)
    assert answer["problems"] == [] and answer["counts"]["jobs"] == 3
    with Client(store_url) as c:
        assert without_generation(c.export()) == without_generation(
            json.loads(exported_file.read_text())
        )
        assert c.check().ok
        # the idempotency key still names its job after the move
        again = c.submit("t", org="acme", idempotency_key="k1")
        assert again.deduplicated


def test_importing_into_a_store_that_holds_records_changes_nothing(
    cli, exported_file, client
):
    client.submit("t", org="acme")
    before = client.export()
    outcome = cli("store", "import", str(exported_file))
    assert outcome.exit_code == 4
    assert "not empty" in outcome.stderr
    assert without_generation(client.export()) == without_generation(before)


@pytest.mark.parametrize(
    "text, message",
    [
        ("[1, 2]", "not an asyncjobs store export"),
        (
            '{"schema": "store.v1", "jobs": {"j": 5}}',
            "jobs must map keys to JSON objects",
        ),
        ('{"schema": "store.v1", "extra": {}}', "unknown field(s) extra"),
        ("{not json", "not JSON"),
    ],
)
def test_a_document_that_is_not_an_export_is_refused_before_anything_is_written(
    cli, client, text, message
):
    before = client.export()
    outcome = cli("store", "import", "-", input=text)
    assert outcome.exit_code == 2
    assert message in outcome.stderr
    assert without_generation(client.export()) == without_generation(before)
