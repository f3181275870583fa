"""The rules: plain functions of records, values and ``now``; no I/O, no engine.

``lifecycle`` (a job's transitions, retries, leases, cancels), ``breakers``,
``scheduling`` (fair tags and the claim order), ``retention`` (what a cleanup
deletes), ``results`` (permalinks), ``validation`` (input and ranges),
``cron`` and ``schedules`` (periodic slots), ``catalog`` (routing by the
task catalog), ``paging`` (cursors), ``observability`` and ``metrics``
(what operators see), ``integrity`` (what ``store check`` reports), and
``waiting`` (the backoff of ``Client.wait``). They import ``records``,
``errors``, ``ids`` and ``clock``, and nothing above them.
"""
