"""A small driver of headless Chromium for the dashboard's browser tests.

It speaks the Chrome DevTools Protocol over ``--remote-debugging-pipe``:
Chromium reads NUL-terminated JSON commands on its fd 3 and writes replies
and events on its fd 4, so no websocket client is needed (standard library
only). ``/bin/sh`` (dash) cannot redirect descriptors above 9, so bash moves
the pipe ends, first lifted above 9 so they cannot clash, onto 3 and 4.
Chromium's stderr (D-Bus noise, crash reasons) goes to ``chromium.log`` in
the profile's temp folder; its tail is quoted when the browser goes away.
"""

from __future__ import annotations

import base64
import collections
import contextlib
import fcntl
import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

CHROMIUM: str | None = (
    os.environ.get("ASYNCJOBS_CHROMIUM")
    or shutil.which("chromium")
    or shutil.which("chromium-browser")
)

FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--remote-debugging-pipe",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)

# Installed in every document before its own scripts: see Browser.problems.
WATCH = """
window.__problems = [];
addEventListener("error", e => __problems.push(
  "error: " + (e.message || (e.target && (e.target.src || e.target.href)))), true);
addEventListener("unhandledrejection", e => __problems.push("rejected: " + e.reason));
addEventListener("securitypolicyviolation",
  e => __problems.push("refused by CSP: " + e.violatedDirective + " " + e.blockedURI));
"""

# Runs BODY with `el` bound to the first match of a selector, or reports none.
ON_ELEMENT = "(el => el === null ? {{missing: true}} : {{value: (() => {{{}}})()}})"


def _exited(proc: subprocess.Popen[bytes]) -> bool:
    """Whether the process has ended, leaving it unreaped (a zombie)."""
    if proc.returncode is not None:
        return True
    flags = os.WEXITED | os.WNOHANG | os.WNOWAIT
    return os.waitid(os.P_PID, proc.pid, flags) is not None


class BrowserError(Exception):
    """The browser failed, went away or timed out, or a page script threw."""


class Browser:
    """One headless Chromium with one page (tab). Use as a context manager.

    Every command and wait gives up after ``timeout`` seconds. JavaScript
    dialogs (``alert``, ``confirm``) are accepted at once.
    """

    def __init__(
        self,
        executable: str,
        *,
        width: int = 1200,
        height: int = 900,
        timeout: float = 15.0,
    ) -> None:
        self.timeout = timeout
        self.events: collections.deque[dict[str, Any]] = collections.deque(maxlen=500)
        self._loads = 0  # Page.loadEventFired seen on our page
        self._ids = 0
        self._buffer = b""
        self._replies: dict[int, dict[str, Any]] = {}
        self._session: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._tmp = tempfile.mkdtemp(prefix="asyncjobs-chromium-")
        self._log = os.path.join(self._tmp, "chromium.log")
        to_r, self._to_w = os.pipe()
        self._from_r, from_w = os.pipe()
        r, w = (fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (to_r, from_w))
        os.close(to_r)
        os.close(from_w)
        script = f'exec "$0" "$@" 3<&{r} 4>&{w} {r}<&- {w}>&-'
        argv = ["/bin/bash", "-c", script, executable, *FLAGS]
        argv += [f"--user-data-dir={self._tmp}", "about:blank"]
        # Crash reports (~/.config) and dconf (~/.cache) go in the temp folder too.
        env = {**os.environ, "XDG_CONFIG_HOME": self._tmp, "XDG_CACHE_HOME": self._tmp}
        try:
            with open(self._log, "wb") as log:
                self._proc = subprocess.Popen(
                    argv,
                    pass_fds=(r, w),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    start_new_session=True,
                    env=env,
                )
            os.close(r)
            os.close(w)
            r = w = -1
            targets = self._call("Target.getTargets")["targetInfos"]
            pages = [t["targetId"] for t in targets if t["type"] == "page"]
            page = (
                pages[0]
                if pages
                else self._call("Target.createTarget", url="")["targetId"]
            )
            attached = self._call("Target.attachToTarget", targetId=page, flatten=True)
            self._session = attached["sessionId"]
            self._call("Page.enable")
            self._call("Runtime.enable")
            # Every document records what its page got wrong: a script error
            # or something its Content-Security-Policy refused (problems()).
            self._call("Page.addScriptToEvaluateOnNewDocument", source=WATCH)
            self._call(
                "Emulation.setDeviceMetricsOverride",
                width=width,
                height=height,
                deviceScaleFactor=1,
                mobile=False,
            )
        except BaseException as exc:
            for fd in (r, w):
                if fd >= 0:
                    os.close(fd)
            tail = "" if "chromium stderr" in str(exc) else self._tail()
            self.close()
            if isinstance(exc, BrowserError):
                raise BrowserError(f"starting Chromium: {exc}{tail}") from None
            raise

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Ask Chromium to quit, kill it if it does not, free every resource."""
        proc, self._proc = self._proc, None
        if proc is not None:
            with contextlib.suppress(BrowserError, OSError):
                self._send("Browser.close", {}, session=None)
                deadline = time.monotonic() + 3.0
                while self._read(deadline):  # until Chromium closes its end
                    pass
        for fd in (self._to_w, self._from_r):
            if fd >= 0:
                os.close(fd)
        self._to_w = self._from_r = -1
        if proc is not None:
            # Give Chromium 2 s to exit, then kill what is left of its session
            # (helpers orphaned by a crash too) while the unreaped leader keeps
            # the group id from being reused, and only then reap it.
            deadline = time.monotonic() + 2.0
            while not _exited(proc) and time.monotonic() < deadline:
                time.sleep(0.01)
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        shutil.rmtree(self._tmp, ignore_errors=True)

    # --- protocol -----------------------------------------------------------

    def _tail(self, size: int = 2000) -> str:
        """The end of Chromium's stderr, without its D-Bus complaints."""
        try:
            lines = Path(self._log).read_text(errors="replace").splitlines()
        except OSError:
            return ""
        text = "\n".join(line for line in lines if "dbus" not in line)[-size:]
        return f"\n--- chromium stderr (tail) ---\n{text}" if text.strip() else ""

    def _send(self, method: str, params: dict[str, Any], session: str | None) -> int:
        self._ids += 1
        message: dict[str, Any] = {"id": self._ids, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        data = json.dumps(message).encode() + b"\0"
        try:
            while data:
                data = data[os.write(self._to_w, data) :]
        except BrokenPipeError:
            raise BrowserError(f"Chromium is gone: {method}{self._tail()}") from None
        return self._ids

    def _read(self, deadline: float) -> bool:
        """Read until whole messages arrive and dispatch them; False at EOF."""
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_r], [], [], left)[0]:
                raise BrowserError("timed out")
            chunk = os.read(self._from_r, 1 << 20)
            if not chunk:
                return False
            self._buffer += chunk
        *messages, self._buffer = self._buffer.split(b"\0")
        for message in map(json.loads, messages):
            if "id" in message:
                self._replies[message["id"]] = message
                continue
            self.events.append(message)
            if message.get("sessionId") != self._session:
                continue
            if message["method"] == "Page.loadEventFired":
                self._loads += 1
            elif message["method"] == "Page.javascriptDialogOpening":
                self._send(
                    "Page.handleJavaScriptDialog", {"accept": True}, self._session
                )
        return True

    def _until(self, done: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + self.timeout
        while not done():
            try:
                alive = self._read(deadline)
            except BrowserError:
                raise BrowserError(
                    f"timed out after {self.timeout} s: {what}"
                ) from None
            if not alive:
                raise BrowserError(f"Chromium closed the pipe: {what}{self._tail()}")

    def _call(self, method: str, **params: Any) -> dict[str, Any]:
        """Run one command on the page (on the browser before attaching)."""
        self._replies.clear()  # commands run one at a time: older replies are stray
        n = self._send(method, params, self._session)
        self._until(lambda: n in self._replies, method)
        reply = self._replies.pop(n)
        if "error" in reply:
            raise BrowserError(f"{method}: {reply['error'].get('message')}")
        result: dict[str, Any] = reply.get("result", {})
        return result

    def _wait_load(self, since: int, what: str) -> None:
        self._until(lambda: self._loads > since, f"page load after {what}")

    def _on(self, selector: str, body: str, what: str) -> Any:
        found = f"document.querySelector({json.dumps(selector)})"
        result = self.evaluate(f"{ON_ELEMENT.format(body)}({found})")
        if result.get("missing"):
            raise BrowserError(f"{what}: no element matches {selector!r}")
        return result.get("value")

    # --- page ---------------------------------------------------------------

    def goto(self, url: str) -> None:
        """Open ``url`` and wait until its load event."""
        since = self._loads
        result = self._call("Page.navigate", url=url)
        if result.get("errorText"):
            raise BrowserError(f"navigating to {url}: {result['errorText']}")
        if "loaderId" in result:  # else it only moved to an anchor: no load event
            self._wait_load(since, f"goto {url}")

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression, awaited if it is a promise."""
        result = self._call(
            "Runtime.evaluate",
            expression=expression,
            returnByValue=True,
            awaitPromise=True,
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details["text"]
            raise BrowserError(f"{expression}: {text}")
        return result["result"].get("value")

    def wait_for(self, expression: str, *, timeout: float | None = None) -> Any:
        """Poll ``expression`` every 50 ms until it is truthy, and return it.

        An error counts as "not yet" (an element not there yet, a page still
        loading) unless Chromium is gone; the last one is quoted on timeout.
        """
        limit = self.timeout if timeout is None else timeout
        deadline, last = time.monotonic() + limit, ""
        while True:
            try:
                value = self.evaluate(expression)
                if value:
                    return value
            except BrowserError as exc:
                if self._proc is None or _exited(self._proc):
                    raise
                last = f" (last error: {exc})"
            if time.monotonic() >= deadline:
                raise BrowserError(f"timed out after {limit} s: {expression}{last}")
            time.sleep(0.05)

    def click(self, selector: str) -> None:
        """Click the first element matching ``selector``."""
        self._on(selector, "el.click()", "click")

    def click_and_wait(self, selector: str) -> None:
        """Click a link or submit button that loads a new page; wait for it."""
        since = self._loads
        self.click(selector)
        self._wait_load(since, f"click {selector}")

    def fill(self, selector: str, value: str) -> None:
        """Set a field's value and fire ``input`` and ``change``, as typing does."""
        self._on(
            selector,
            f"el.value = {json.dumps(value)}; for (const t of ['input', 'change'])"
            " el.dispatchEvent(new Event(t, {bubbles: true}));",
            "fill",
        )

    def submit(self, selector: str) -> None:
        """Submit a form, or the form of a field or button, and wait for the load.

        A submit button given here is the submitter: its name and value are sent.
        """
        since = self._loads
        self._on(
            selector,
            "const form = el.tagName === 'FORM' ? el : el.form || el.closest('form');"
            " if (!form) throw new Error('not in a form');"
            " const by = form !== el && el.type === 'submit' ? el : undefined;"
            " form.requestSubmit ? form.requestSubmit(by) : form.submit();",
            "submit",
        )
        self._wait_load(since, f"submit {selector}")

    def text(self, selector: str = "body") -> str:
        """The rendered text (``innerText``) of the first match of ``selector``."""
        return str(self._on(selector, "return el.innerText", "text"))

    def problems(self) -> list[str]:
        """Script errors and Content-Security-Policy refusals of the current page."""
        return list(self.evaluate("window.__problems || []"))

    def url(self) -> str:
        """The page's current address."""
        return str(self.evaluate("location.href"))

    def screenshot(self, path: str | os.PathLike[str]) -> None:
        """Save a PNG of the whole page, beyond the viewport, to ``path``."""
        size = self._call("Page.getLayoutMetrics")["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"]}
        shot = self._call(
            "Page.captureScreenshot",
            format="png",
            captureBeyondViewport=True,
            clip={**clip, "scale": 1},
        )
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(base64.b64decode(shot["data"]))
