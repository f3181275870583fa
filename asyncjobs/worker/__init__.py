"""The worker: ``loop`` (the parent that claims and commits, ``Worker``) and
``execution`` (running one task in a child process, and its outcome)."""
