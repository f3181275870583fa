"""Wait for a go file, then submit N jobs for an org: `barrier_submitter.py STORE GO ORG N [TASK]`.

TASK defaults to ``echo``. With ASYNCJOBS_SUBMIT_KEY set, every submit
carries that idempotency key and prints ``<job_id> <deduplicated>``.
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
key = os.environ.get("ASYNCJOBS_SUBMIT_KEY")
with Client(store, lock_timeout=60) as client:
    for n in range(count):
        job = client.submit(task, org=org, payload={"n": n}, idempotency_key=key)
        print(f"{job.job_id} {job.deduplicated}" if key else job.job_id, flush=True)
