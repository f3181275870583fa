"""docs/cli.md, generated from the click tree: `python scripts/gen_cli_docs.py` writes it."""

from __future__ import annotations

from collections.abc import Iterator

import click

from ..domain import validation
from .common import Number


def walk(
    command: click.Command, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    """Every command under ``command`` with its path, depth first, in name order."""
    yield path, command
    if isinstance(command, click.Group):
        for name in sorted(command.commands):
            yield from walk(command.commands[name], (*path, name))


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def render(root: click.Group, prog: str = "asyncjobs") -> str:
    lines = [
        "# Command reference",
        "",
        "Generated from the command definitions by `scripts/gen_cli_docs.py`; a test",
        "keeps it current. Every command prints only its answer on stdout and errors",
        "as one line `error: …` on stderr, with these exit codes:",
        "",
        "| exit | meaning |",
        "| --- | --- |",
        "| 0 | done |",
        "| 1 | anything else |",
        "| 2 | invalid usage or input |",
        "| 3 | not found |",
        "| 4 | conflict |",
        "| 5 | store unreadable, corrupt or locked |",
        "| 6 | `cleanup`: the deletions are committed, but the report or the metrics "
        "file could not be written (a report that could not be written is printed "
        "on stdout) |",
        "| 7 | the job failed: `submit --sync` or `run` ran an attempt that failed "
        "(a retry scheduled or not), or `wait` saw it end failed or canceled; the "
        "job is still printed on stdout |",
        "| 8 | `wait`: timed out before the job ended |",
        "",
        "Given no command, `asyncjobs` (or a group such as `asyncjobs store`) prints",
        "its usage and commands on stderr and exits 2; `--help` prints them on",
        "stdout and exits 0.",
        "",
        "## Pages",
        "",
        "`jobs`, `events`, `notifications` and `inbox` print one page of their",
        f"list: at most `--limit` records, 1 to {validation.MAX_LIMIT:,} a page. When",
        'more follow, `--json` adds `"next_cursor"` to the document (absent on the',
        "last page) and the text form ends with `next page: --cursor CURSOR` on",
        "stderr. Give that to `--cursor`, with the same org and filters, for the",
        "next page, and so on to the end, however long the list. The order is a",
        "key (jobs and notifications newest first by time and id, events oldest",
        "first by sequence), so a walk shows each record once and skips none,",
        "even while jobs are submitted. A cursor of another org, job or filters,",
        "or a damaged one, exits 2.",
        "",
        *ranges(root, prog),
    ]
    for path, command in walk(root):
        name = " ".join((prog, *path))
        ctx = click.Context(command, info_name=name)
        usage = " ".join(command.collect_usage_pieces(ctx))
        lines += [f"## `{name}`", "", f"```text\n{name} {usage}\n```", ""]
        if command.help:
            lines += [command.help.strip(), ""]
        rows = []
        for param in command.params:
            if isinstance(param, click.Argument):
                rows.append(
                    (
                        param.make_metavar(ctx)
                        if _takes_ctx(param)
                        else param.name.upper(),
                        "argument",
                        "",
                        "",
                    )
                )
                continue
            if not isinstance(param, click.Option) or param.hidden:
                continue
            flags = ", ".join(
                f"`{flag}`" for flag in (*param.opts, *param.secondary_opts)
            )
            env = f"`{param.envvar}`" if isinstance(param.envvar, str) else ""
            default = ""
            if param.show_default and param.default not in (None, False, ()):
                default = f"`{param.default}`"
            rows.append((flags, _cell(param.help or ""), env, default))
        if rows:
            lines += [
                "| option | meaning | env | default |",
                "| --- | --- | --- | --- |",
            ]
            lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
            lines.append("")
    return "\n".join(lines)


def ranges(root: click.Group, prog: str = "asyncjobs") -> list[str]:
    """The "Ranges" section: every number and time a user gives, and its range."""
    lines = [
        "## Ranges",
        "",
        "Every number and time has a finite range. A value outside it (NaN and",
        "infinities included) is refused with exit 2 and one line naming it,",
        "before anything is written; the Python API raises `InvalidInput` and the",
        "HTTP API answers 400 for the same values.",
        "",
        "| option or variable | command | range |",
        "| --- | --- | --- |",
    ]
    for path, command in walk(root):
        for param in command.params:
            if isinstance(param, click.Option) and isinstance(param.type, Number):
                flags = ", ".join(f"`{flag}`" for flag in param.opts)
                if isinstance(param.envvar, str):
                    flags += f", `{param.envvar}`"
                name = f"`{' '.join((prog, *path))}`" if path else "every command"
                lines.append(f"| {flags} | {name} | {param.type.describe()} |")
    delay = validation.MAX_DELAY_SECONDS
    earliest, latest = (
        t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in validation.CLEANUP_NOW
    )
    lines += [
        f"| `--at`, the `at` of a job | `{prog} submit`, `{prog} submit-many` | an "
        f"ISO 8601 time at most {delay} seconds (ten years) ahead; an earlier one "
        "runs at once |",
        f"| `--now` | `{prog} cleanup` | an ISO 8601 time from {earliest} to "
        f"{latest} |",
    ]
    for variable, bounds, unit in (
        ("ASYNCJOBS_MAX_PAYLOAD_BYTES", validation.MAX_PAYLOAD_BYTES, "bytes"),
        ("ASYNCJOBS_RESULT_INLINE_BYTES", validation.RESULT_INLINE_BYTES, "bytes"),
        ("ASYNCJOBS_STALE_SECONDS", validation.STALE_SECONDS, "seconds"),
        ("ASYNCJOBS_STORE_CONNECTIONS", validation.STORE_CONNECTIONS, "connections"),
    ):
        lo, hi = (validation.shown_bound(b) for b in bounds)
        whole = "whole, " if unit in ("bytes", "connections") else ""
        lines.append(f"| `{variable}` | every command | {whole}{lo} to {hi} {unit} |")
    lines += [
        "",
        "`--heartbeat-seconds` is also at most a third of `--lease-seconds`, so a",
        "live lease never runs out. The task options of `TaskRegistry` (`retry_delay`,",
        "`retry_max_delay`, `timeout`, `soft_timeout`, `every`, `reset_timeout`) are",
        f"at most {delay} seconds too.",
    ]
    return [*lines, ""]


def _takes_ctx(param: click.Parameter) -> bool:
    import inspect

    return "ctx" in inspect.signature(param.make_metavar).parameters
