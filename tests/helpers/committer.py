"""A separate process that commits to a store: `committer.py STORE NAME COUNT [GO_FILE]`.

Each transaction adds one job record `NAME-i` and increments the shared counter
`commits` by read-modify-write, so a lost update or a lost record shows. It
waits for GO_FILE (a barrier) first, and prints each key once committed.
"""

import os
import sys
import time

from asyncjobs.config import Settings
from asyncjobs.store import JsonFileStore

store_path, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
go_file = sys.argv[4] if len(sys.argv) > 4 else None
deadline = time.monotonic() + 30
while go_file and not os.path.exists(go_file):
    if time.monotonic() > deadline:
        sys.exit("no go signal")
    time.sleep(0.001)
settings = Settings.from_env()  # ASYNCJOBS_TEST_DISABLE_LOCK, as a Client reads it
with JsonFileStore(
    store_path,
    lock_timeout=60,
    fsync=settings.fsync,
    lock_disabled=settings.test_disable_lock,
) as store:
    for i in range(count):
        key = f"{name}-{i}"
        with store.transaction() as tx:
            counter = tx.get("counters", "commits") or {"name": "commits", "value": 0}
            tx.put(
                "counters",
                "commits",
                {"name": "commits", "value": counter["value"] + 1},
            )
            tx.put("jobs", key, {"job_id": key, "org_id": name})
        print(key, flush=True)
