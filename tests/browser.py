"""A tiny headless-Chromium driver for tests: the Chrome DevTools Protocol over `--remote-debugging-pipe`.

The browser reads JSON commands, each ended by a NUL byte, from its fd 3 and writes replies and events the same
way to its fd 4, so no websocket and no extra package are needed. Typical use:

    page = render(report_html, tmp_path / "report.png")
    assert external_requests(page) == []

or, to render several pages with one launch, `with Browser() as browser: browser.render(...)`.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# Debian's /usr/bin/chromium is a shell launcher that sources /etc/chromium.d (which loads extensions and adds
# flags); the binary it runs sits here, and we start that one directly.
DEBIAN_BINARY = Path("/usr/lib/chromium/chromium")

QUIET_OFFLINE_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-default-apps", "--disable-extensions",
    "--mute-audio", "--hide-scrollbars", "--disable-breakpad", "--disable-crash-reporter",
    "--disable-domain-reliability", "--disable-client-side-phishing-detection", "--metrics-recording-only",
    "--disable-features=Translate,MediaRouter,OptimizationHints,AutofillServerCommunication",
    "--password-store=basic", "--use-mock-keychain", "--force-color-profile=srgb",
    # no DNS: a host name never resolves, so a stray https://cdn... request fails at once instead of going out
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",  # a server a test started on loopback still answers
)

# Everything the tests look at, gathered in one evaluation after the load event.
PAGE_SUMMARY_JS = """JSON.stringify({
  images: Array.from(document.images, img => ({src: img.getAttribute('src') === null ? '' : img.src.slice(0, 30),
    naturalWidth: img.naturalWidth, naturalHeight: img.naturalHeight, complete: img.complete})),
  tables: Array.from(document.querySelectorAll('table'), table => table.rows.length),
  headings: Array.from(document.querySelectorAll('h1, h2'), h => h.innerText.trim()),
  text: document.body ? document.body.innerText : '',
})"""


class BrowserError(RuntimeError):
    """The browser did not answer in time, answered with an error, or went away."""


@dataclass
class Page:
    """What one rendered page requested, showed and complained about."""

    url: str
    screenshot: Path
    screenshot_size: tuple[int, int]  # (width, height) in CSS pixels at scale 1
    requests: list[str] = field(default_factory=list)  # every URL requested, the page itself included
    failed_requests: list[tuple[str, str]] = field(default_factory=list)  # (url, Chromium's error text)
    images: list[dict] = field(default_factory=list)  # per <img>: src (first 30 chars), naturalWidth, naturalHeight, complete
    tables: list[int] = field(default_factory=list)  # row count of each <table>, in document order
    headings: list[str] = field(default_factory=list)  # h1/h2 texts, in document order
    text: str = ""  # document.body.innerText
    console_errors: list[str] = field(default_factory=list)  # console.error calls and uncaught exceptions
    values: list = field(default_factory=list)  # the value of each expression passed to render(evaluate=...)


@dataclass
class Tab:
    """An open page that a test acts on, as a person would."""

    browser: "Browser"
    session: str

    def evaluate(self, expression: str):
        return self.browser.evaluate(expression, self.session)

    def pick_files(self, selector: str, paths: list) -> None:
        """Choose files in the file input SELECTOR (its change event fires, as when a person picks them)."""
        root = self.browser.send("DOM.getDocument", {}, self.session)["root"]["nodeId"]
        node = self.browser.send("DOM.querySelector", {"nodeId": root, "selector": selector}, self.session)["nodeId"]
        if not node:
            raise BrowserError(f"no element matches {selector!r}")
        self.browser.send("DOM.setFileInputFiles", {"nodeId": node, "files": [str(Path(p).resolve()) for p in paths]},
                          self.session)

    def wait_until(self, expression: str, timeout: float = 30) -> None:
        """Poll until the JavaScript EXPRESSION is truthy."""
        deadline = time.monotonic() + timeout
        while not self.evaluate(expression):
            if time.monotonic() > deadline:
                raise BrowserError(f"{expression!r} still false after {timeout} s")
            time.sleep(0.1)


def find_chromium() -> str | None:
    """Path of a Chromium or Chrome binary, or None when none is installed."""
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            if Path(found).resolve() == Path("/usr/bin/chromium") and DEBIAN_BINARY.exists():
                return str(DEBIAN_BINARY)
            return found
    return None


def external_requests(page: Page) -> list[str]:
    """Requested URLs that leave the page's own file and inline data: what a self-contained page must never make."""
    return [url for url in page.requests if urlparse(url).scheme not in ("file", "data")]


def render(html_path, screenshot_path, width: int = 1280, height: int = 900, full_page: bool = True,
           timeout: float = 60, evaluate: tuple[str, ...] | list[str] = (), act=None) -> Page:
    """Open HTML_PATH (or an http:// URL) in a fresh headless Chromium, let `act(tab)` use it, write a PNG
    screenshot and return what the page did."""
    with Browser(timeout=timeout) as browser:
        return browser.render(html_path, screenshot_path, width, height, full_page, evaluate, act)


class Browser:
    """One headless Chromium process, driven over its DevTools pipe; close() (or `with`) always ends it."""

    def __init__(self, binary: str | None = None, timeout: float = 60):
        binary = binary or find_chromium()
        if binary is None:
            raise BrowserError(f"no Chromium found (looked for {', '.join(CHROMIUM_NAMES)})")
        self.timeout = timeout
        self.profile = tempfile.TemporaryDirectory(prefix="plait-chromium-", ignore_cleanup_errors=True)
        self.stderr = open(Path(self.profile.name) / "stderr.log", "wb")
        self.next_id = 0
        self.closed = False
        self.buffer = b""
        self.events: list[dict] = []
        # The browser reads commands from its fd 3 and writes to its fd 4; in the child, dup2 puts our pipe ends
        # there. They are first moved above 4 so that neither dup2 overwrites the other end.
        to_browser_read, self.to_browser = map(fd_above_4, os.pipe())
        self.from_browser, from_browser_write = map(fd_above_4, os.pipe())
        command = [binary, *QUIET_OFFLINE_FLAGS, f"--user-data-dir={self.profile.name}/profile",
                   "--remote-debugging-pipe", "about:blank"]
        self.process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=self.stderr, stderr=self.stderr, pass_fds=(3, 4),
            start_new_session=True,  # its own process group, so helpers (zygote, renderers) can be killed together
            preexec_fn=lambda: (os.dup2(to_browser_read, 3), os.dup2(from_browser_write, 4)))
        os.close(to_browser_read)
        os.close(from_browser_write)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def send(self, method: str, params: dict | None = None, session_id: str | None = None) -> dict:
        """Send one command and wait for its reply; events that arrive meanwhile are kept in self.events."""
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session_id:
            message["sessionId"] = session_id
        data = json.dumps(message).encode() + b"\0"
        while data:
            data = data[os.write(self.to_browser, data):]
        reply = self._read_until(lambda m: m.get("id") == self.next_id, f"the reply to {method}")
        if "error" in reply:
            raise BrowserError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def wait_for_event(self, method: str, session_id: str | None = None) -> dict:
        """The params of the first event METHOD (for SESSION_ID) not yet waited for."""
        def matches(message):
            return message.get("method") == method and message.get("sessionId") == session_id

        for index, event in enumerate(self.events):
            if matches(event):
                return self.events.pop(index)["params"]
        return self._read_until(matches, f"event {method}")["params"]

    def _read_until(self, wanted, what: str) -> dict:
        """Read messages until WANTED(message) holds, keeping the events that come before it."""
        deadline = time.monotonic() + self.timeout
        while True:
            message = self._next_message(deadline, what)
            if wanted(message):
                return message
            if "method" in message:
                self.events.append(message)

    def _next_message(self, deadline: float, what: str) -> dict:
        while b"\0" not in self.buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([self.from_browser], [], [], remaining)[0]:
                raise BrowserError(f"no {what} within {self.timeout} s{self._stderr_tail()}")
            chunk = os.read(self.from_browser, 1 << 20)
            if not chunk:
                raise BrowserError(f"Chromium exited while waiting for {what}{self._stderr_tail()}")
            self.buffer += chunk
        message, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(message)

    def _stderr_tail(self) -> str:
        self.stderr.flush()
        tail = (Path(self.profile.name) / "stderr.log").read_bytes()[-2000:].decode(errors="replace")
        return f"; Chromium's stderr ends:\n{tail}" if tail else ""

    def render(self, html_path, screenshot_path, width: int = 1280, height: int = 900, full_page: bool = True,
               evaluate: tuple[str, ...] | list[str] = (), act=None) -> Page:
        """Load HTML_PATH (or an http:// URL) in a new tab, wait for its load event, let `act(tab)` use the page (a
        `Tab`: type, pick files, click, wait), then screenshot it and summarise it."""
        url = html_path if str(html_path).startswith(("http://", "https://")) else Path(html_path).resolve().as_uri()
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        try:
            self.send("Emulation.setDeviceMetricsOverride",
                      {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, session)
            for domain in ("Page", "Network", "Runtime"):
                self.send(f"{domain}.enable", {}, session)
            self.events = [e for e in self.events if e.get("sessionId") != session]  # about:blank's, not the page's
            navigation = self.send("Page.navigate", {"url": url}, session)
            if "errorText" in navigation:
                raise BrowserError(f"cannot open {url}: {navigation['errorText']}")
            self.wait_for_event("Page.loadEventFired", session)
            if act is not None:
                act(Tab(self, session))
            summary = json.loads(self.evaluate(PAGE_SUMMARY_JS, session))
            values = [self.evaluate(expression, session) for expression in evaluate]
            size = self._screenshot(Path(screenshot_path), width, height, full_page, session)
        finally:
            self.send("Target.closeTarget", {"targetId": target})
        page = Page(url=url, screenshot=Path(screenshot_path), screenshot_size=size, values=values, **summary)
        self._record_events(page, session)
        return page

    def evaluate(self, expression: str, session_id: str):
        """The JSON value of a JavaScript expression in the page (promises are awaited)."""
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": True}, session_id)
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression!r} threw: {describe_exception(result['exceptionDetails'])}")
        return result["result"].get("value")

    def _screenshot(self, path: Path, width: int, height: int, full_page: bool, session: str) -> tuple[int, int]:
        """Write a PNG of the whole page (or just the viewport) and return its size."""
        if full_page:
            content = self.send("Page.getLayoutMetrics", {}, session)["cssContentSize"]
            width, height = max(1, round(content["width"])), max(1, round(content["height"]))
        clip = {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}
        shot = self.send("Page.captureScreenshot",
                         {"format": "png", "clip": clip, "captureBeyondViewport": full_page}, session)
        path.write_bytes(base64.b64decode(shot["data"]))
        return width, height

    def _record_events(self, page: Page, session: str) -> None:
        """Move this tab's network and console events from self.events into PAGE."""
        url_of_request = {}
        for event in [e for e in self.events if e.get("sessionId") == session]:
            method, params = event["method"], event["params"]
            if method == "Network.requestWillBeSent":
                url_of_request[params["requestId"]] = params["request"]["url"]
                page.requests.append(params["request"]["url"])
            elif method == "Network.loadingFailed":
                page.failed_requests.append((url_of_request.get(params["requestId"], "?"), params["errorText"]))
            elif method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
                page.console_errors.append(" ".join(describe_value(arg) for arg in params["args"]))
            elif method == "Runtime.exceptionThrown":
                page.console_errors.append(describe_exception(params["exceptionDetails"]))
        self.events = [e for e in self.events if e.get("sessionId") != session]

    def close(self) -> None:
        """Ask the browser to quit; kill its whole process group if it does not, or if anything went wrong."""
        if self.closed:
            return
        self.closed = True
        try:
            if self.process.poll() is None:
                self.send("Browser.close")
                self.process.wait(timeout=10)
        except (BrowserError, OSError, subprocess.TimeoutExpired):
            pass
        finally:
            self._kill_group()
            for fd in (self.to_browser, self.from_browser):
                os.close(fd)
            self.stderr.close()
            self.profile.cleanup()

    def _kill_group(self) -> None:
        """SIGKILL whatever is left of the browser's process group, then reap the browser."""
        group = self.process.pid  # start_new_session made the browser its group's leader
        if self.process.poll() is None or process_group_members(group):
            try:
                os.killpg(group, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait()


def fd_above_4(fd: int) -> int:
    """FD moved to a number above 4 (closed on exec), the original closed."""
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 5)
    os.close(fd)
    return moved


def process_group_members(group: int) -> list[int]:
    """PIDs of the live processes in process group GROUP (from /proc; empty where there is no /proc)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # the fields after the ")" that ends the command name: state, ppid, pgrp, ...
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


def describe_value(remote_object: dict) -> str:
    """A console argument (a CDP RemoteObject) as text."""
    if "value" in remote_object:
        return str(remote_object["value"])
    return remote_object.get("description", remote_object.get("type", "?"))


def describe_exception(details: dict) -> str:
    """An uncaught exception (CDP ExceptionDetails) as text: its description when there is one."""
    exception = details.get("exception") or {}
    return exception.get("description") or details.get("text", "exception")
