"""The settings of asyncjobs: every ``ASYNCJOBS_*`` variable, read in this one place.

``Settings.from_env()`` reads the environment once and checks every value
against its range in ``domain/validation.py``; a bad one raises ``InvalidInput``
naming the variable, so that a command stops with exit 2 before it writes
anything, never in the middle of a commit. The edges build one: ``Client``
(``settings=``, by default ``Settings.from_env()`` when the Client is made),
the CLI (once per command, for its Client and its own error handling) and
``asyncjobs.wsgi:application``. Below them nothing reads the environment:
the store is handed ``fsync`` and the lock switch, the rules plain numbers.

Who reads which variable:

    variable                     read by                           field
    ASYNCJOBS_STORE              click (--store); Settings, for    store
                                 asyncjobs.wsgi:application
    ASYNCJOBS_APP                click (--app); Settings, for      app
                                 asyncjobs.wsgi:application
    ASYNCJOBS_ORG                click (--org, --tenant)           -
    ASYNCJOBS_LOCK_TIMEOUT       click (--lock-timeout)            -
    ASYNCJOBS_FSYNC              Settings                          fsync
    ASYNCJOBS_ARTIFACTS          Settings                          artifacts
    ASYNCJOBS_MAX_PAYLOAD_BYTES  Settings                          max_payload_bytes
    ASYNCJOBS_RESULT_INLINE_BYTES  Settings                        result_inline_bytes
    ASYNCJOBS_ASYNC_ENABLED      Settings                          async_enabled
    ASYNCJOBS_STALE_SECONDS      Settings                          stale_seconds
    ASYNCJOBS_LAYER_STALE_MS     Settings                          layer_stale_ms
    ASYNCJOBS_LAYERS             Settings                          layers
    ASYNCJOBS_DEBUG              Settings                          debug
    ASYNCJOBS_STORE_CONNECTIONS  Settings, for serve and           store_connections
                                 asyncjobs.wsgi:application
    ASYNCJOBS_AUTH               click (serve --auth); Settings,   auth
                                 for asyncjobs.wsgi:application
    ASYNCJOBS_DASHBOARD          click (serve --dashboard); Settings, dashboard
                                 for asyncjobs.wsgi:application
    ASYNCJOBS_DASHBOARD_REDACT   Settings                          dashboard_redact
    ASYNCJOBS_TEST_DISABLE_LOCK  Settings (tests only)             test_disable_lock

The CLI's options read their variables through click (``envvar=``), which
checks them as it checks the options. The Python API takes the org on each
call and the lock timeout as ``Client(lock_timeout=)``, and the default
store path from its argument, so ``ASYNCJOBS_ORG`` and
``ASYNCJOBS_LOCK_TIMEOUT`` reach the CLI only and are no fields here.
Variables the tests and scripts read for themselves (``ASYNCJOBS_TEST_RUNS``,
``ASYNCJOBS_BASE_URL``) are not the package's.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from .domain import validation
from .errors import InvalidInput

DEFAULT_RESULT_INLINE_BYTES = 64 << 10
DEFAULT_STALE_SECONDS = 600.0
DEFAULT_LAYER_STALE_MS = 300_000
DEFAULT_STORE_CONNECTIONS = 8
_OFF = ("0", "false", "no", "off")
DEFAULT_REDACT = "pass|secret|token|key|auth|cookie|session|credential"
AUTH_MODES = ("none", "tokens")


@dataclass(frozen=True, slots=True)
class Settings:
    """What the environment sets, checked; ``Settings()`` is every default."""

    store: str | None = None  # None: the caller's default path
    app: str | None = None  # MODULE:ATTR
    fsync: bool = True  # ASYNCJOBS_FSYNC=always; False is never
    artifacts: str = "artifacts"  # large result values live under it
    max_payload_bytes: int = validation.DEFAULT_MAX_PAYLOAD_BYTES
    result_inline_bytes: int = DEFAULT_RESULT_INLINE_BYTES
    async_enabled: bool = True  # False: submissions run inline (fail-open)
    stale_seconds: float = DEFAULT_STALE_SECONDS  # window of materializer_stale
    layer_stale_ms: int = DEFAULT_LAYER_STALE_MS
    layers: tuple[str, ...] | None = None  # None: the declared layers, by name
    debug: bool = False  # an unexpected error in the CLI shows its traceback
    # Connections an HTTP server process keeps to a PostgreSQL store, shared by
    # its request threads (a worker or a command uses one).
    store_connections: int = DEFAULT_STORE_CONNECTIONS
    # How the HTTP API knows its callers: "none" (the tenant header alone) or
    # "tokens" (a bearer token bound to orgs, domain/tokens.py).
    auth: str = "none"
    # Whether the HTTP server also serves the web dashboard under /dashboard/.
    dashboard: bool = False
    # Payload keys whose values the dashboard never shows: a regular
    # expression searched in each key, case-insensitive.
    dashboard_redact: str = DEFAULT_REDACT
    # Test-only: no store lock, so that the concurrency tests can show that
    # they fail without it. Never set it anywhere else.
    test_disable_lock: bool = False

    def __post_init__(self) -> None:
        """Settings made in code keep the ranges of the environment's."""
        for field, bounds, unit in (
            ("max_payload_bytes", validation.MAX_PAYLOAD_BYTES, "bytes"),
            ("result_inline_bytes", validation.RESULT_INLINE_BYTES, "bytes"),
            ("layer_stale_ms", validation.LAYER_STALE_MS, "milliseconds"),
            ("store_connections", validation.STORE_CONNECTIONS, "connections"),
        ):
            whole = validation.count(getattr(self, field), field, bounds, unit=unit)
            object.__setattr__(self, field, whole)  # 3.0 is kept as 3
        validation.seconds(
            self.stale_seconds, "stale_seconds", validation.STALE_SECONDS
        )
        for name in self.layers or ():
            validation.name(name, "layers")
        object.__setattr__(
            self,
            "dashboard_redact",
            _pattern("dashboard_redact", self.dashboard_redact),
        )
        if self.auth not in AUTH_MODES:
            raise InvalidInput(
                f"ASYNCJOBS_AUTH: {validation.shown(self.auth)} is not none or tokens"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        """The settings ``environ`` holds; InvalidInput names a variable out of range."""
        return cls(
            store=environ.get("ASYNCJOBS_STORE") or None,
            app=environ.get("ASYNCJOBS_APP") or None,
            fsync=_fsync(environ.get("ASYNCJOBS_FSYNC", "always")),
            artifacts=environ.get("ASYNCJOBS_ARTIFACTS") or "artifacts",
            max_payload_bytes=validation.whole_setting(
                "ASYNCJOBS_MAX_PAYLOAD_BYTES",
                environ.get("ASYNCJOBS_MAX_PAYLOAD_BYTES"),
                validation.DEFAULT_MAX_PAYLOAD_BYTES,
                validation.MAX_PAYLOAD_BYTES,
            ),
            result_inline_bytes=validation.whole_setting(
                "ASYNCJOBS_RESULT_INLINE_BYTES",
                environ.get("ASYNCJOBS_RESULT_INLINE_BYTES"),
                DEFAULT_RESULT_INLINE_BYTES,
                validation.RESULT_INLINE_BYTES,
            ),
            async_enabled=environ.get("ASYNCJOBS_ASYNC_ENABLED", "1").strip().lower()
            not in _OFF,
            stale_seconds=validation.seconds_setting(
                "ASYNCJOBS_STALE_SECONDS",
                environ.get("ASYNCJOBS_STALE_SECONDS"),
                DEFAULT_STALE_SECONDS,
                validation.STALE_SECONDS,
            ),
            layer_stale_ms=validation.whole_setting(
                "ASYNCJOBS_LAYER_STALE_MS",
                environ.get("ASYNCJOBS_LAYER_STALE_MS"),
                DEFAULT_LAYER_STALE_MS,
                validation.LAYER_STALE_MS,
                unit="milliseconds",
            ),
            layers=_layers(environ.get("ASYNCJOBS_LAYERS")),
            debug=environ.get("ASYNCJOBS_DEBUG") == "1",
            auth=(environ.get("ASYNCJOBS_AUTH") or "none").strip().lower(),
            dashboard=environ.get("ASYNCJOBS_DASHBOARD", "0").strip().lower()
            not in (*_OFF, ""),
            dashboard_redact=_pattern(
                "ASYNCJOBS_DASHBOARD_REDACT", environ.get("ASYNCJOBS_DASHBOARD_REDACT")
            ),
            store_connections=validation.whole_setting(
                "ASYNCJOBS_STORE_CONNECTIONS",
                environ.get("ASYNCJOBS_STORE_CONNECTIONS"),
                DEFAULT_STORE_CONNECTIONS,
                validation.STORE_CONNECTIONS,
                unit="connections",
            ),
            test_disable_lock=environ.get("ASYNCJOBS_TEST_DISABLE_LOCK") == "1",
        )


def _fsync(raw: str) -> bool:
    """``always`` (every commit on disk before it returns) or ``never``."""
    value = raw.strip().lower()
    if value not in ("always", "never"):
        raise InvalidInput(
            f"ASYNCJOBS_FSYNC must be 'always' or 'never', not {value!r}"
        )
    return value == "always"


def _pattern(name: str, raw: str | None) -> str:
    """A regular expression (the default when unset or blank)."""
    if raw is None or not raw.strip():
        return DEFAULT_REDACT
    try:
        re.compile(raw)
    except re.error as exc:
        raise InvalidInput(f"{name}: not a regular expression: {exc}") from None
    return raw


def _layers(raw: str | None) -> tuple[str, ...] | None:
    """Comma-separated layer names, in order, each once; None when not set."""
    if raw is None or not raw.strip():
        return None
    names = [part.strip() for part in raw.split(",") if part.strip()]
    for name in names:
        validation.name(name, "ASYNCJOBS_LAYERS")
    return tuple(dict.fromkeys(names))
