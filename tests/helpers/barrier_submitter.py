"""Wait for a go file, then submit N jobs for an org: `barrier_submitter.py STORE GO ORG N [TASK]`.

TASK defaults to ``echo``.
Prints each job id once its submit has returned.
"""

import os
import sys
import time

from asyncjobs import Client

store, go, org, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
task = sys.argv[5] if len(sys.argv) > 5 else "echo"
deadline = time.monotonic() + 30
while not os.path.exists(go):
    if time.monotonic() > deadline:
        sys.exit("no go signal")
    time.sleep(0.001)
with Client(store, lock_timeout=60) as client:
    for n in range(count):
        print(client.submit(task, org=org, payload={"n": n}).job_id, flush=True)
