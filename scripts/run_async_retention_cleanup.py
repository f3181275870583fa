#!/usr/bin/env python3
"""Cron entry point for TTL retention, with the runbook's flags.

    scripts/run_async_retention_cleanup.py --store-file PATH --results-ttl-seconds N
        --events-ttl-seconds N [--dry-run] [--output-json PATH]
        [--notifications-ttl-seconds N] [--jobs-ttl-seconds N] [--metrics-file PATH] [--now ISO]

Runs from a checkout without installing asyncjobs (it uses the package beside
it; click and filelock must be importable). Exit 0 on success; otherwise
non-zero with one line `error: ...` on stderr (the exit codes of `asyncjobs`).
An --output-json or --metrics-file that names one of the store's own files,
the two naming one file, or a path that cannot take a file (a folder, a
folder that cannot be created or written) is refused with exit 2 before
anything is deleted. Exit 6: the deletions are committed, but the report or
the metrics file could not be written after all (a full disk, say); the
report is then printed on stdout, and the metrics file, if it can be
written, says 6.
"""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

try:
    import click  # noqa: F401
    import filelock  # noqa: F401
except ImportError as exc:
    venv = os.path.join(ROOT, ".venv")
    venv_python = os.path.join(venv, "bin", "python")
    if os.path.exists(venv_python) and os.path.realpath(sys.prefix) != os.path.realpath(
        venv
    ):
        os.execv(venv_python, [venv_python, os.path.abspath(__file__), *sys.argv[1:]])
    sys.stderr.write(
        f"error: asyncjobs needs click and filelock: {exc} "
        "(pip install click filelock, or run scripts/demo.sh once)\n"
    )
    sys.exit(1)

from asyncjobs.cli import cli


def main(argv: list[str]) -> None:
    args = list(argv)
    store = None
    for flag in ("--store-file",):
        for i, arg in enumerate(args):
            if arg == flag and i + 1 < len(args):
                store = args[i + 1]
                del args[i : i + 2]
                break
            if arg.startswith(flag + "="):
                store = arg.split("=", 1)[1]
                del args[i]
                break
    if store is None:
        sys.stderr.write("error: --store-file PATH is required\n")
        sys.exit(2)
    cli.main(
        ["--store", store, "cleanup", *args], prog_name="run_async_retention_cleanup.py"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
