"""The ``asyncjobs`` command: parse input, call ``Client``, print the answer.

stdout carries only the answer (with ``--json``, exactly one JSON document);
errors are one line ``error: <message>`` on stderr with the exit code of
their class (see ``errors.py``), translated in one place (``common._Group``).
The group and what commands share live in ``common.py``; each ``*_cmds``
module adds its commands to the group when it is imported, here.
"""

from __future__ import annotations

from . import (
    access_cmds,
    delivery_cmds,
    jobs_cmds,
    retention_cmds,
    store_cmds,
    worker_cmds,
)
from .common import Number, Progress, cli, main

del access_cmds, delivery_cmds, jobs_cmds, retention_cmds, store_cmds, worker_cmds

__all__ = ["Number", "Progress", "cli", "main"]
