"""``python -m asyncjobs``."""

from asyncjobs.cli import main

main()
