"""The tasks of scripts/demo.sh: `asyncjobs worker --app demo_app:tasks` (with examples/ importable)."""

from asyncjobs import TaskRegistry

tasks = TaskRegistry()


@tasks.task(name="reports.build", max_retries=2, retry_delay=0.1)
def build_report(job, month: str) -> dict:
    job.log.info("building the report for %s", month)
    return {"month": month, "rows": 1234}


@tasks.task(name="invoices.send", max_retries=2, retry_backoff="fixed", retry_delay=0)
def send_invoices(job, batch: int) -> dict:
    if job.attempt == 1:
        raise TimeoutError(
            "the mail server did not answer"
        )  # retried once, then it works
    return {"batch": batch, "sent": 12}


@tasks.task(name="payments.sync", max_retries=1, retry_backoff="fixed", retry_delay=0)
def sync_payments(account: str) -> None:
    raise ConnectionError(f"payment provider refused account {account}")
