"""Apps for the task catalog tests: ``tasks`` routes its task to a queue and priority
of its own; ``v1`` and ``v2`` are two versions of one app (v2 changes a and drops b)."""

from asyncjobs.tasks import TaskRegistry

tasks = TaskRegistry()
v1 = TaskRegistry()
v2 = TaskRegistry()


@tasks.task(name="routed", queue="reports", priority=8, layer="monthly_reports")
def routed(month: str = "2026-10"):
    return month


@v1.task(name="catalog.a", queue="slow", priority=3)
def a_v1():
    return 1


@v1.task(name="catalog.b")
def b_v1():
    return 1


@v2.task(name="catalog.a", queue="fast", priority=9, retry_delays=[60, 300, 1800])
def a_v2():
    return 2
