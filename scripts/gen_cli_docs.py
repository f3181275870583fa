#!/usr/bin/env python3
"""Write docs/cli.md from the command definitions (a test checks it is current)."""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from asyncjobs.cli import cli
from asyncjobs.cli.reference import render

with open(os.path.join(ROOT, "docs", "cli.md"), "w") as f:
    f.write(render(cli))
print("wrote docs/cli.md")
