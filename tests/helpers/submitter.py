"""Submit N echo jobs one transaction at a time, printing each acknowledgement.

    python submitter.py STORE N

Payloads count from ``ASYNCJOBS_SUBMIT_OFFSET`` (0). Prints ``ack <n>`` (flushed) after submit number n has returned, so that a
test that kills this process knows which commits were acknowledged.
"""

from __future__ import annotations

import os
import sys

from asyncjobs import Client

offset = int(os.environ.get("ASYNCJOBS_SUBMIT_OFFSET", "0"))
with Client(sys.argv[1]) as client:
    for n in range(offset, offset + int(sys.argv[2])):
        client.submit("echo", org="acme", payload={"n": n})
        print(f"ack {n}", flush=True)
