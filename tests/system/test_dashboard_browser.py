"""The dashboard in a real browser: headless Chromium against `asyncjobs serve --dashboard`.

A real server process serves a JSON store that a real worker filled; the
browser signs in with the link of `asyncjobs dashboard login-url`, clicks
through the pages and forms, and watches a live region update. A page
served from another port of 127.0.0.1 tries to post an action and is
refused. Every page is saved to artifacts/screenshots/ for people to look at.
Chromium comes from the distribution (`.ci/run` installs it); without it the
tests skip, except under CI=true, where they must run.
"""

from __future__ import annotations

import http.server
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from asyncjobs import Client
from tests.browser import CHROMIUM, Browser

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "artifacts" / "screenshots"
APP = "jobsapp:tasks"

if CHROMIUM is None and os.environ.get("CI") == "true":
    pytest.fail("the browser tests must run under CI=true: no chromium", pytrace=False)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium installed")


def asyncjobs(store: Path, *args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "asyncjobs", "--store", str(store), *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env={
            **os.environ,
            "PYTHONPATH": f"{ROOT / 'tests' / 'apps'}{os.pathsep}{ROOT}",
        },
        **kwargs,
    )


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store a real worker ran: completed, failed and canceled jobs of acme."""
    path = tmp_path_factory.mktemp("store") / "store.v1.json"
    asyncjobs(path, "store", "init")
    with Client(str(path)) as client:
        client.submit_many(
            [{"task": "echo", "org": "acme", "payload": {"n": n}} for n in range(5)]
            + [{"task": "fail", "org": "acme", "payload": {"message": "no route"}}] * 3
            + [{"task": "echo", "org": "globex", "queue": "default"}]
        )
    asyncjobs(path, "worker", "--app", APP, "--burst", "--log-level", "error")
    with Client(str(path)) as client:
        late = client.submit("echo", org="acme", delay=3600)
        client.cancel(late.job_id, org="acme")
    return path


@pytest.fixture(scope="module")
def base(store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`asyncjobs serve --dashboard` on a free loopback port."""
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with open(log, "w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "asyncjobs", "--store", str(store)]
            + ["serve", "--dashboard", "--port", "0"],
            stderr=err,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
    try:
        deadline = time.monotonic() + 30
        while not (found := re.search(r"http://127\.0\.0\.1:\d+", log.read_text())):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        yield found.group(0)
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert CHROMIUM is not None
    with Browser(CHROMIUM, width=1280, height=900) as opened:
        yield opened


def sign_in(
    browser: Browser,
    store: Path,
    base: str,
    role: str,
    orgs: tuple[str, ...] = ("acme",),
) -> None:
    """Open the link `dashboard login-url` prints, and sign in with its token."""
    chosen = [arg for org in orgs for arg in ("--org", org)]
    url = asyncjobs(
        store, "dashboard", "login-url", *chosen, "--role", role, "--url", base
    ).stdout.strip()
    browser.goto(url)
    browser.wait_for("!document.getElementById('from-link').hidden")
    assert "#" not in browser.url()  # the token is out of the address bar
    browser.submit("#login")
    landing = "/dashboard/o/acme/" if len(orgs) == 1 else "/dashboard/"
    browser.wait_for(f"location.pathname === {landing!r}")


def shot(browser: Browser, name: str) -> None:
    """Save the page, which must have run without a script error or a CSP refusal."""
    assert browser.problems() == [], name
    browser.screenshot(SHOTS / f"{name}.png")


def test_an_operator_signs_in_filters_opens_a_job_and_retries_failures_in_bulk(
    browser, store, base
):
    browser.goto(f"{base}/dashboard/")
    assert "Sign in" in browser.text()
    shot(browser, "sign-in")
    sign_in(browser, store, base, "operator")
    overview = browser.text()
    assert "failed in the last hour" in overview and "globex" not in overview
    shot(browser, "overview")

    browser.click_and_wait("a[href='/dashboard/o/acme/jobs']")
    browser.click("input[name=status][value=failed]")
    browser.submit("form.filters")
    assert "status=failed" in browser.url()
    rows = browser.evaluate("[...document.querySelectorAll('tbody tr')].length")
    assert rows == 3 and "completed" not in browser.text("tbody")
    shot(browser, "jobs")

    browser.click_and_wait("tbody tr a")
    page = browser.text()
    assert "Events" in page and "ValueError" in page and "no route" in page
    assert browser.evaluate("document.querySelector('details') !== null")
    shot(browser, "job")

    browser.goto(f"{base}/dashboard/o/acme/failures")
    assert re.search(r"fail\s+ValueError\s+3\s+3\s+3", browser.text())
    shot(browser, "failures")
    browser.click_and_wait("a[href*='bulk?action=retry']")
    assert "Retry 3 job(s)?" in browser.text()
    shot(browser, "bulk-preview")
    browser.submit("form[action$='/bulk'] button")
    assert "Retried 3 job(s)." in browser.text()
    with Client(str(store)) as client:
        assert len(client.list_jobs(org="acme", status="queued")) == 3

    for name in ("inbox", "queues", "workers", "schedules", "breakers", "system"):
        path = "/dashboard/o/acme/inbox" if name == "inbox" else f"/dashboard/{name}"
        browser.goto(base + path)
        assert browser.evaluate("document.querySelector('h1').textContent")
        shot(browser, name)


def test_a_live_region_shows_a_background_submit_without_a_reload(browser, store, base):
    sign_in(browser, store, base, "operator")
    browser.evaluate("localStorage.setItem('asyncjobs.dashboard.refresh', '2')")
    browser.goto(f"{base}/dashboard/o/acme/")
    browser.evaluate("window.notReloaded = true")
    counts = "document.querySelector('#live .counts').textContent"
    before = browser.evaluate(counts)
    with Client(str(store)) as client:
        client.submit_many([{"task": "echo", "org": "acme"}] * 7)
    browser.wait_for(f"{counts} !== {before!r} && window.notReloaded", timeout=20)
    assert runnable(browser.evaluate(counts)) == runnable(before) + 7


def runnable(counts: str) -> int:
    return int(re.match(r"([\d,]+)runnable", counts).group(1).replace(",", ""))


def test_a_token_of_two_orgs_picks_one_and_sees_only_its_own(browser, store, base):
    sign_in(browser, store, base, "viewer", orgs=("acme", "initech"))
    picker = browser.text("main")
    assert "acme" in picker and "initech" in picker and "globex" not in picker
    shot(browser, "orgs")
    browser.click_and_wait("a[href='/dashboard/o/acme/']")
    assert browser.url().endswith("/dashboard/o/acme/")


def test_a_viewer_sees_no_button(browser, store, base):
    sign_in(browser, store, base, "viewer")
    with Client(str(store)) as client:
        job_id = client.list_jobs(org="acme", status="canceled")[0].job_id
    for path in ("", "jobs", f"jobs/{job_id}", "failures", "inbox"):
        browser.goto(f"{base}/dashboard/o/acme/{path}")
        actions = browser.evaluate(
            "[...document.querySelectorAll('form[method=post]')]"
            ".map(f => new URL(f.action).pathname)"
        )
        assert actions == ["/dashboard/signout"], path
    shot(browser, "job-as-viewer")


class _Attacker(http.server.BaseHTTPRequestHandler):
    """A page on another port of 127.0.0.1 whose form posts to the dashboard."""

    target = ""

    def do_GET(self) -> None:
        page = (
            f'<form id="evil" method="post" action="{self.target}">'
            '<input name="csrf" value="guessed"><button>Win a prize</button></form>'
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(page)))
        self.end_headers()
        self.wfile.write(page)

    def log_message(self, *args: object) -> None:
        pass


def test_a_page_on_another_port_cannot_post_an_action(browser, store, base):
    sign_in(browser, store, base, "operator")  # the cookie is there to be sent
    with Client(str(store)) as client:
        job = client.submit("echo", org="acme", delay=3600)
    handler = type("Attacker", (_Attacker,), {})
    handler.target = f"{base}/dashboard/o/acme/jobs/{job.job_id}/cancel"
    attacker = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=attacker.serve_forever, daemon=True)
    thread.start()
    try:
        browser.goto(f"http://127.0.0.1:{attacker.server_address[1]}/")
        browser.submit("#evil")
        assert "same-site request cannot act here" in browser.text()
    finally:
        attacker.shutdown()
        attacker.server_close()
        thread.join(timeout=10)
    with Client(str(store)) as client:
        assert client.get_job(job.job_id, org="acme").status == "queued"
