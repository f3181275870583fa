"""/telemetry's graph: how fresh each named data layer is (the rule, as a function).

The whole way, from a real worker to a real server, is in
tests/system/test_graph_served.py.
"""

from __future__ import annotations

import pytest

from asyncjobs.clock import parse_iso
from asyncjobs.config import Settings
from asyncjobs.domain import observability
from asyncjobs.errors import InvalidInput

NOW = parse_iso("2026-11-01T12:00:00Z")


def summary_with(layers: dict[str, str | None]) -> dict:
    return {"layers": layers}


def graph_section(summary: dict | None, now) -> dict:
    """The rule under the settings the environment holds now, as /telemetry reads them."""
    settings = Settings.from_env()
    return observability.graph_section(
        summary, now, layers=settings.layers, stale_ms=settings.layer_stale_ms
    )


def test_a_layer_is_live_within_the_window_stale_beyond_and_unknown_without_a_time(
    monkeypatch,
):
    monkeypatch.delenv("ASYNCJOBS_LAYERS", raising=False)
    monkeypatch.setenv("ASYNCJOBS_LAYER_STALE_MS", "60000")
    graph = graph_section(
        summary_with(
            {
                "sales": "2026-11-01T11:59:00.000000Z",  # exactly 60 s: still live
                "stock": "2026-11-01T11:58:59.999000Z",
                "prices": None,
            }
        ),
        NOW,
    )
    assert graph["layers"] == [
        {"name": "prices", "status": "unknown", "last_update_ts": ""},
        {
            "name": "sales",
            "status": "live",
            "last_update_ts": "2026-11-01T11:59:00.000000Z",
        },
        {
            "name": "stock",
            "status": "stale",
            "last_update_ts": "2026-11-01T11:58:59.999000Z",
        },
    ]
    assert graph["summary"] == {
        "live_count": 1,
        "stale_count": 1,
        "unknown_count": 1,
        "integrity_degraded": True,
    }
    assert graph["stale_after_ms"] == 60000


def test_the_configured_list_fixes_which_layers_show_and_their_order(monkeypatch):
    monkeypatch.setenv("ASYNCJOBS_LAYERS", "stock, sales ,orders")
    monkeypatch.delenv("ASYNCJOBS_LAYER_STALE_MS", raising=False)
    graph = graph_section(
        summary_with(
            {
                "sales": "2026-11-01T11:59:00.000000Z",
                "stock": "2026-11-01T11:57:00.000000Z",
                "extra": "2026-11-01T11:59:00.000000Z",
            }
        ),
        NOW,
    )
    assert [(layer["name"], layer["status"]) for layer in graph["layers"]] == [
        ("stock", "live"),  # 3 minutes: within the default 5
        ("sales", "live"),
        ("orders", "unknown"),
    ]
    assert graph["summary"]["integrity_degraded"] is True


def test_all_layers_live_is_not_degraded(monkeypatch):
    monkeypatch.delenv("ASYNCJOBS_LAYERS", raising=False)
    graph = graph_section(summary_with({"sales": "2026-11-01T11:59:00.000000Z"}), NOW)
    assert graph["summary"] == {
        "live_count": 1,
        "stale_count": 0,
        "unknown_count": 0,
        "integrity_degraded": False,
    }


def test_an_unreadable_store_lists_every_configured_layer_as_unknown(monkeypatch):
    monkeypatch.setenv("ASYNCJOBS_LAYERS", "sales,stock")
    graph = graph_section(None, NOW)
    assert [layer["status"] for layer in graph["layers"]] == ["unknown", "unknown"]
    assert graph["summary"]["integrity_degraded"] is True
    monkeypatch.delenv("ASYNCJOBS_LAYERS")
    assert graph_section(None, NOW)["layers"] == []


@pytest.mark.parametrize(
    "name, value",
    [
        ("ASYNCJOBS_LAYER_STALE_MS", "0"),
        ("ASYNCJOBS_LAYER_STALE_MS", "soon"),
        ("ASYNCJOBS_LAYERS", "sales,../etc"),
    ],
)
def test_layer_settings_out_of_their_range_are_refused_naming_them(
    monkeypatch, name, value
):
    monkeypatch.setenv(name, value)
    with pytest.raises(InvalidInput) as raised:
        graph_section(summary_with({}), NOW)
    assert name in raised.value.message
