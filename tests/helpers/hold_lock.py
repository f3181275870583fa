"""Hold a store's lock with a plain filelock.FileLock until killed: `hold_lock.py LOCK_PATH`.

Prints "held" once the lock is taken. Using FileLock on the path (not the
store's own code) also shows that the store's lock contends with filelock's.
"""

import sys
import time

from filelock import FileLock

lock = FileLock(sys.argv[1], fallback_to_soft=False, preserve_lock_file=True)
lock.acquire()
print("held", flush=True)
while True:
    time.sleep(1)
