"""Settings at the edges: a Client, a command and the WSGI app each read them once, when
made, and a bad one stops them before the store is touched (the parsing itself is
checked in tests/unit/test_config.py)."""

from __future__ import annotations

import pytest

from asyncjobs import Client, InvalidInput
from asyncjobs.config import Settings
from asyncjobs.http.app import create_app

from ..conftest import store_files


def test_a_client_reads_the_environment_once_when_it_is_made(store_path, monkeypatch):
    monkeypatch.setenv("ASYNCJOBS_MAX_PAYLOAD_BYTES", "64")
    with Client(store_path) as client:
        monkeypatch.setenv("ASYNCJOBS_MAX_PAYLOAD_BYTES", "4096")
        assert client.settings == Settings.from_env(
            {"ASYNCJOBS_MAX_PAYLOAD_BYTES": "64"}
        )
        with pytest.raises(InvalidInput, match="over the limit of 64"):
            client.submit("t", org="acme", payload={"x": "a" * 80})


def test_settings_handed_to_a_client_win_over_the_environment(store_path, monkeypatch):
    monkeypatch.setenv("ASYNCJOBS_MAX_PAYLOAD_BYTES", "not a number")
    with Client(store_path, settings=Settings(max_payload_bytes=64)) as client:
        client.submit("t", org="acme", payload={"x": "a" * 40})
        with pytest.raises(InvalidInput, match="over the limit of 64"):
            client.submit("t", org="acme", payload={"x": "a" * 80})


def test_a_bad_setting_stops_a_client_before_its_store_is_touched(
    tmp_path, monkeypatch
):
    store = tmp_path / "fresh" / "store.v1.json"
    monkeypatch.setenv("ASYNCJOBS_FSYNC", "sometimes")
    with pytest.raises(InvalidInput, match="ASYNCJOBS_FSYNC"):
        Client(store)
    assert not any(path.exists() for path in store_files(store))


def test_the_wsgi_application_takes_its_store_and_app_from_the_settings(store_path):
    app = create_app(
        settings=Settings.from_env(
            {"ASYNCJOBS_STORE": str(store_path), "ASYNCJOBS_FSYNC": "never"}
        )
    )
    try:
        assert app.client.store_file(store_path) == "snapshot"
        assert app.client.settings.fsync is False and app.client.app is None
    finally:
        app.client.close()


def test_debug_lets_an_unexpected_error_out_with_its_traceback(cli, monkeypatch):
    def broken(self, job_id, *, org):
        raise RuntimeError("boom")

    monkeypatch.setattr(Client, "get_job", broken)
    args = ("status", "job_01JC0000000000000000000000", "--org", "acme")
    quiet = cli(*args)
    assert (
        quiet.exit_code == 1
        and quiet.stderr == "error: unexpected RuntimeError: boom\n"
    )
    with pytest.raises(RuntimeError, match="boom"):
        cli(*args, env={"ASYNCJOBS_DEBUG": "1"})
