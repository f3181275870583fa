"""Settings: every ASYNCJOBS_* variable is read in config.py alone, checked once, when
a Client (or a command, or the WSGI app) is made, and documented in one place.

How a Client, a command and the WSGI app take them is checked in
tests/integration/test_config_edges.py."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

import asyncjobs
from asyncjobs import InvalidInput, config
from asyncjobs.cli import cli as cli_group
from asyncjobs.cli.reference import walk
from asyncjobs.config import Settings

PACKAGE = Path(asyncjobs.__file__).parent
RUNBOOK = Path(__file__).resolve().parents[2] / "docs" / "async-v1.md"
TEST_ONLY = {"ASYNCJOBS_TEST_DISABLE_LOCK"}


class Recording(dict):
    """An environment that notes every variable read from it."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.read: set[str] = set()

    def get(self, key, default=None):
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key):
        self.read.add(key)
        return super().__getitem__(key)


def settings_variables() -> set[str]:
    environ = Recording()
    Settings.from_env(environ)
    return environ.read


def click_variables() -> set[str]:
    return {
        param.envvar
        for _, command in walk(cli_group)
        for param in command.params
        if isinstance(param.envvar, str)
    }


def test_an_empty_environment_is_every_default():
    assert Settings.from_env({}) == Settings()
    assert Settings() == Settings(
        store=None,
        app=None,
        fsync=True,
        artifacts="artifacts",
        max_payload_bytes=1 << 20,
        result_inline_bytes=64 << 10,
        async_enabled=True,
        stale_seconds=600,
        layer_stale_ms=300_000,
        layers=None,
        debug=False,
        test_disable_lock=False,
    )


def test_every_variable_reaches_its_field_as_the_docs_say():
    settings = Settings.from_env(
        {
            "ASYNCJOBS_STORE": "/srv/store.v1.json",
            "ASYNCJOBS_APP": "reports.app:tasks",
            "ASYNCJOBS_FSYNC": " Never ",
            "ASYNCJOBS_ARTIFACTS": "/srv/artifacts",
            "ASYNCJOBS_MAX_PAYLOAD_BYTES": "64",
            "ASYNCJOBS_RESULT_INLINE_BYTES": "0",
            "ASYNCJOBS_ASYNC_ENABLED": " Off",
            "ASYNCJOBS_STALE_SECONDS": "2.5",
            "ASYNCJOBS_LAYER_STALE_MS": "60000",
            "ASYNCJOBS_LAYERS": "stock, sales ,,stock,orders",
            "ASYNCJOBS_DEBUG": "1",
            "ASYNCJOBS_TEST_DISABLE_LOCK": "1",
        }
    )
    assert settings == Settings(
        store="/srv/store.v1.json",
        app="reports.app:tasks",
        fsync=False,
        artifacts="/srv/artifacts",
        max_payload_bytes=64,
        result_inline_bytes=0,
        async_enabled=False,
        stale_seconds=2.5,
        layer_stale_ms=60000,
        layers=("stock", "sales", "orders"),
        debug=True,
        test_disable_lock=True,
    )


@pytest.mark.parametrize(
    "environ, expected",
    [
        ({"ASYNCJOBS_STORE": "", "ASYNCJOBS_APP": ""}, {"store": None, "app": None}),
        ({"ASYNCJOBS_ARTIFACTS": ""}, {"artifacts": "artifacts"}),
        ({"ASYNCJOBS_STALE_SECONDS": ""}, {"stale_seconds": 600}),
        ({"ASYNCJOBS_LAYERS": " , "}, {"layers": ()}),  # set, naming none
        ({"ASYNCJOBS_ASYNC_ENABLED": "yes please"}, {"async_enabled": True}),
        ({"ASYNCJOBS_DEBUG": "true"}, {"debug": False}),  # exactly 1, as before
    ],
)
def test_empty_and_loose_values_read_as_they_always_did(environ, expected):
    settings = Settings.from_env(environ)
    assert {name: getattr(settings, name) for name in expected} == expected


@pytest.mark.parametrize(
    "variable, value",
    [
        ("ASYNCJOBS_FSYNC", "sometimes"),
        ("ASYNCJOBS_FSYNC", ""),
        ("ASYNCJOBS_MAX_PAYLOAD_BYTES", ""),
        ("ASYNCJOBS_MAX_PAYLOAD_BYTES", "1.5"),
        ("ASYNCJOBS_RESULT_INLINE_BYTES", str(16 << 20 | 1)),
        ("ASYNCJOBS_STALE_SECONDS", "0.5"),
        ("ASYNCJOBS_STALE_SECONDS", "soon"),
        ("ASYNCJOBS_LAYER_STALE_MS", "-1"),
        ("ASYNCJOBS_LAYERS", "sales,../etc"),
    ],
)
def test_a_bad_value_is_invalid_input_naming_its_variable(variable, value):
    with pytest.raises(InvalidInput) as raised:
        Settings.from_env({variable: value})
    assert variable in raised.value.message and "\n" not in raised.value.message


@pytest.mark.parametrize(
    "field, value",
    [
        ("max_payload_bytes", 0),
        ("result_inline_bytes", float("nan")),
        ("stale_seconds", float("inf")),
        ("layer_stale_ms", True),
        ("layers", ("sales", "no/slash")),
    ],
)
def test_settings_made_in_code_keep_the_same_ranges(field, value):
    with pytest.raises(InvalidInput, match=f"^{field}: "):
        Settings(**{field: value})


def environment_reads(tree: ast.AST) -> list[int]:
    """The lines that read the process environment: os.environ, os.getenv, ..."""
    names = {"environ", "environb", "getenv", "getenvb"}
    found = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and node.attr in names
            and isinstance(node.value, ast.Name)
            and node.value.id == "os"
        ) or (
            isinstance(node, ast.ImportFrom)
            and node.module == "os"
            and any(alias.name in names for alias in node.names)
        ):
            found.append(node.lineno)
    return found


def test_no_module_but_config_reads_the_environment():
    readers = {
        str(path.relative_to(PACKAGE)): lines
        for path in sorted(PACKAGE.rglob("*.py"))
        if (lines := environment_reads(ast.parse(path.read_text())))
    }
    assert readers == {"config.py": readers.get("config.py")}
    assert readers["config.py"], "config.py reads the environment"


def imports_config(tree: ast.AST) -> bool:
    return any(
        (isinstance(node, ast.ImportFrom) and (node.module or "").endswith("config"))
        or (
            isinstance(node, ast.ImportFrom)
            and any(alias.name == "config" for alias in node.names)
        )
        for node in ast.walk(tree)
    )


def test_only_the_edges_build_settings_rules_and_engines_take_plain_values():
    importers = {
        str(path.relative_to(PACKAGE))
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "config.py" and imports_config(ast.parse(path.read_text()))
    }
    # The Client, the CLI and the WSGI app; tasks.py for a periodic task's
    # payload, declared before any Client; __init__.py exports the type.
    assert importers == {
        "__init__.py",
        "client.py",
        "cli/common.py",
        "http/app.py",
        "tasks.py",
    }


def test_click_reads_only_its_options_variables_and_config_says_which():
    """The one documented place: config.py's docstring lists every variable and reader."""
    assert click_variables() == {
        "ASYNCJOBS_STORE",
        "ASYNCJOBS_LOCK_TIMEOUT",
        "ASYNCJOBS_ORG",
        "ASYNCJOBS_APP",
        "ASYNCJOBS_AUTH",
        "ASYNCJOBS_DASHBOARD",
    }
    table = {
        line.split()[0]: line
        for line in (config.__doc__ or "").splitlines()
        if line.strip().startswith("ASYNCJOBS_")
    }
    table = {name.strip(): row for name, row in table.items()}
    assert set(table) == settings_variables() | click_variables()
    for name in click_variables():
        assert "click" in table[name], name
    for name in settings_variables():
        assert "Settings" in table[name], name
    fields = {field.name for field in dataclasses.fields(Settings)}
    assert {row.split()[-1] for row in table.values()} - {"-"} == fields


def test_the_runbook_lists_every_variable_a_user_may_set():
    section = RUNBOOK.read_text().split("## Prerequisites and environment")[1]
    listed = {
        line.split("`")[1] for line in section.splitlines() if line.startswith("| `")
    }
    assert (settings_variables() | click_variables()) - TEST_ONLY <= listed


def test_settings_are_public_api():
    assert "Settings" in asyncjobs.__all__ and asyncjobs.Settings is Settings
