"""The command group and what every command shares: options, the Client, output.

stdout carries only the answer (with ``--json``, exactly one JSON document);
errors are one line ``error: <message>`` on stderr with the exit code of
their class (see ``errors.py``). Errors are translated here, in ``_Group``,
and nowhere else. No command at all (``asyncjobs``, ``asyncjobs store``) is
a usage error: the help goes to stderr, several lines, and the exit is 2, as
with click's ``no_args_is_help``.
"""

from __future__ import annotations

import functools
import json
import sys
import time
from collections.abc import Callable
from typing import Any

import click
from click.core import ParameterSource

from .. import __version__, logs
from ..client import Client
from ..config import Settings
from ..domain import validation
from ..errors import AsyncJobsError, InvalidInput
from ..store import DEFAULT_STORE
from ..store.jsonfile import format as jsonformat


class _Group(click.Group):
    """A click group that turns every error into one ``error:`` line."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            result = super().main(*args, standalone_mode=False, **kwargs)
        except click.exceptions.NoArgsIsHelpError as exc:
            try:
                click.echo(exc.ctx.get_help(), err=True)
            except OSError:
                pass
            raise SystemExit(exc.exit_code) from None
        except click.UsageError as exc:
            hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx else ""
            _fail(exc.format_message() + hint, exc.exit_code)
        except click.ClickException as exc:
            _fail(exc.format_message(), exc.exit_code)
        except click.Abort:
            _fail("aborted", 1)
        raise SystemExit(result if isinstance(result, int) else 0)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except AsyncJobsError as exc:
            _fail(exc.message, exc.exit_code)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except BrokenPipeError:
            # A reader like `head` went away: not an error of ours.
            sys.stderr.close()
            raise SystemExit(1) from None
        except Exception as exc:
            try:
                debug = settings_of(ctx).debug
            except AsyncJobsError as bad:  # the environment is wrong: that first
                _fail(bad.message, bad.exit_code)
            if debug:  # ASYNCJOBS_DEBUG=1: the traceback
                raise
            _fail(f"unexpected {type(exc).__name__}: {exc}", 1)


def _fail(message: str, code: int) -> None:
    try:
        click.echo(logs.error_line(" ".join(message.split()), code), err=True)
    except OSError:
        pass  # a full disk or a closed stderr: the exit code still tells
    raise SystemExit(code)


def emit(doc: Any, as_json: bool, *, text: str | None = None) -> None:
    """Print the answer: one JSON document, or the text form."""
    if as_json:
        click.echo(json.dumps(doc, indent=2, allow_nan=False))
    elif text is not None:
        click.echo(text)


class Number(click.ParamType):
    """A finite number in a closed range: seconds, or a whole number with ``whole``.

    Built on ``validation.number_problem``, so an option refuses exactly
    what the Python API refuses, with exit 2 before the command runs.
    """

    def __init__(
        self, bounds: tuple[float, float], *, whole: bool = False, unit: str = ""
    ) -> None:
        self.bounds, self.whole = bounds, whole
        self.unit = unit if whole else "seconds"
        self.name = "integer" if whole else "float"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> Any:
        if isinstance(value, str):
            text = value.strip()
            try:
                value = int(text) if self.whole else float(text)
            except ValueError:
                kind = "a whole number" if self.whole else "a number"
                self.fail(f"{value!r} is not {kind}", param, ctx)
        problem = validation.number_problem(
            value, *self.bounds, whole=self.whole, unit=self.unit
        )
        if problem is not None:
            self.fail(problem, param, ctx)
        return value

    def describe(self) -> str:
        """The range in words, as docs/cli.md lists it."""
        lo, hi = (validation.shown_bound(b) for b in self.bounds)
        text = f"{lo} to {hi}{' ' + self.unit if self.unit else ''}"
        return f"whole, {text}" if self.whole else text


class Progress:
    """A count on stderr for long steps, shown only when stderr is a terminal.

    ``step(label, threshold)`` starts a step; ``add(n)`` counts; nothing is
    shown until the count passes the threshold, so small runs stay quiet.
    The line is rewritten in place (``\\r``) at most ten times a second and
    ended with a newline, so stdout (the answer) is never touched.
    """

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        self.shown = self.stream.isatty()
        self.label, self.threshold, self.count = "", 0, 0
        self._drawn = 0.0
        self._open = False

    def step(self, label: str, threshold: int = 10_000) -> None:
        self.end()
        self.label, self.threshold, self.count = label, threshold, 0

    def add(self, n: int = 1) -> None:
        self.count += n
        if not self.shown or self.count <= self.threshold:
            return
        now = time.monotonic()
        if self._open and now - self._drawn < 0.1:
            return
        self._drawn, self._open = now, True
        self.stream.write(f"\r{self.label}: {self.count:,}")
        self.stream.flush()

    def end(self) -> None:
        if self._open:
            self.stream.write(f"\r{self.label}: {self.count:,} done\n")
            self.stream.flush()
        self._open = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.end()


json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON document."
)


def optional_org_option(
    help: str,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--org`` / ``--tenant`` / ``ASYNCJOBS_ORG``, for a command that checks it."""
    return click.option(
        "--org",
        "--tenant",
        "org",
        envvar="ASYNCJOBS_ORG",
        show_envvar=True,
        metavar="ORG",
        help=help,
    )


org_option = click.option(
    "--org",
    "--tenant",
    "org",
    required=True,
    envvar="ASYNCJOBS_ORG",
    show_envvar=True,
    metavar="ORG",
    help="The tenant (org id).",
)


def org_or_all_orgs(ctx: click.Context, org: str | None, all_orgs: bool) -> str | None:
    """The org a command acts for; None for --all-orgs.

    An --org given on the command line and --all-orgs exclude each other;
    ASYNCJOBS_ORG in the environment yields to --all-orgs.
    """
    if all_orgs:
        if ctx.get_parameter_source("org") is ParameterSource.COMMANDLINE:
            raise InvalidInput("give --org or --all-orgs, not both")
        return None
    if org is None:
        raise InvalidInput("give --org ORG, or --all-orgs")
    return org


def app_option(
    *, required: bool = True, help: str = "The TaskRegistry to run tasks from."
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--app`` / ``-A`` / ``ASYNCJOBS_APP``: the TaskRegistry as MODULE:ATTR."""
    return click.option(
        "--app",
        "-A",
        "app",
        required=required,
        envvar="ASYNCJOBS_APP",
        show_envvar=True,
        metavar="MODULE:ATTR",
        help=help,
    )


def log_options(
    default_level: str, level_help: str
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--log-level`` / ``-l`` and ``--log-format`` (text or json lines)."""

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        command = click.option(
            "--log-format",
            type=click.Choice(logs.FORMATS),
            default="text",
            show_default=True,
            help="Log lines as text, or as one JSON object each.",
        )(command)
        return click.option(
            "--log-level",
            "-l",
            type=click.Choice(logs.LEVELS),
            default=default_level,
            show_default=True,
            help=level_help,
        )(command)

    return decorate


def settings_of(ctx: click.Context) -> Settings:
    """The command's settings, read from the environment once, on first use.

    Not before: ``--help`` answers whatever the environment holds. A bad
    value raises InvalidInput naming its variable, before the store opens.
    """
    root = ctx.find_root()
    if root.obj is None:
        root.obj = {}
    if "settings" not in root.obj:
        root.obj["settings"] = Settings.from_env()
    return root.obj["settings"]


def open_client(
    ctx: click.Context, *, app: str | None = None, connections: int = 1
) -> Client:
    """A Client on the store named by the global options, closed with the command.

    ``app`` (``MODULE:ATTR``) is the TaskRegistry its submissions consult;
    ``connections``, how many a database store keeps for its threads.
    """
    options = ctx.find_root().obj
    client = Client(
        options["store"],
        lock_timeout=options["lock_timeout"],
        app=app,
        settings=settings_of(ctx),
        connections=connections,
    )
    ctx.call_on_close(client.close)
    return client


def pass_client(command: Callable[..., Any]) -> Callable[..., Any]:
    """Hand the command a Client on the store named by the global options."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return command(open_client(click.get_current_context()), *args, **kwargs)

    return wrapper


@click.group(
    cls=_Group,
    context_settings={"help_option_names": ["-h", "--help"]},
    # No command after the global options is answered like no arguments at
    # all (the callback raises NoArgsIsHelpError), not with "Missing command".
    invoke_without_command=True,
    no_args_is_help=True,
    subcommand_metavar="COMMAND [ARGS]...",
)
@click.option(
    "--store",
    "store",
    default=DEFAULT_STORE,
    show_default=True,
    envvar="ASYNCJOBS_STORE",
    show_envvar=True,
    metavar="PATH",
    help="The store file.",
)
@click.option(
    "--lock-timeout",
    type=Number(validation.LOCK_TIMEOUT_SECONDS),
    default=10.0,
    show_default=True,
    envvar="ASYNCJOBS_LOCK_TIMEOUT",
    show_envvar=True,
    metavar="SECONDS",
    help="How long to wait for the store lock.",
)
@click.version_option(__version__, prog_name="asyncjobs")
@click.pass_context
def cli(ctx: click.Context, store: str, lock_timeout: float) -> None:
    """A durable job store and runner in one JSON file: no server needed."""
    if ctx.invoked_subcommand is None:
        raise click.exceptions.NoArgsIsHelpError(ctx)
    ctx.obj = {"store": store, "lock_timeout": lock_timeout}


def main() -> None:
    """The console script."""
    jsonformat.freeze_parsed_snapshots()  # a one-process command owns its heap
    jsonformat.allow_cold_reads()  # status, result, events: read the records asked for
    cli(prog_name="asyncjobs")
