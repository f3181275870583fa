"""A loop that works a store until a stop file appears: `busy.py STORE STOP ROLE [PAUSE]`.

PAUSE is seconds between rounds (0: none).

Roles: ``reader`` reads the generation and the job count over and over and
fails if the generation ever goes back; ``compactor`` folds the journal and
checks that the snapshot it wrote is followed only by newer journal lines;
``auditor`` runs dry-run cleanups. Prints the number of rounds done; any
error ends the process with a non-zero status.
"""

import json
import os
import sys
import time
from pathlib import Path

from asyncjobs import Client

store, stop, role = sys.argv[1], sys.argv[2], sys.argv[3]
pause = float(sys.argv[4]) if len(sys.argv) > 4 else 0.0
rounds = 0
last = 0
with Client(store, lock_timeout=60) as client:
    while not os.path.exists(stop):
        if role == "reader":
            with client.store.read() as tx:
                generation = tx.generation
                tx.count("jobs")
            if generation < last:
                sys.exit(f"generation went back from {last} to {generation}")
            last = generation
        elif role == "compactor":
            folded = client.compact()
            with client.store.read():  # the lock: no append half seen
                snapshot = json.loads(Path(store).read_text())["generation"]
                journal = Path(f"{store}.journal").read_bytes()
                lines = journal.rstrip(b"\0").splitlines()  # not the reserve
            if snapshot < folded["generation"]:
                sys.exit(f"snapshot {snapshot} older than the fold {folded}")
            for line in lines:
                g = json.loads(line[9:])["g"]
                if g <= snapshot:
                    sys.exit(f"journal line {g} not above the snapshot {snapshot}")
        else:
            client.cleanup(results_ttl_seconds=0, events_ttl_seconds=0, dry_run=True)
        rounds += 1
        time.sleep(pause)
print(rounds)
