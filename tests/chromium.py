"""Headless Chromium driven through the DevTools protocol over a pipe, with nothing but the standard library.

``chromium --remote-debugging-pipe`` reads protocol messages (JSON, each ending in a NUL byte) from
file descriptor 3 and writes its replies and events to descriptor 4: no port, no websocket library.
A page records what a user would see as an error: uncaught exceptions, ``console.error`` and failed
loads (``Log.entryAdded`` at level ``error``).
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REQUIRE_ENV = "LVLM_HEAT_REQUIRE_BROWSER"
"""Set (CI does) to make a missing Chromium fail the browser tests instead of skipping them."""


def find_chromium() -> str | None:
    """The Chromium (or Chrome) executable on ``PATH``, or ``None``."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


def browser_or_skip() -> str:
    """The chromium binary; without one the test skips, or fails when ``LVLM_HEAT_REQUIRE_BROWSER`` is set."""
    import pytest

    binary = find_chromium()
    if binary is None:
        if os.environ.get(REQUIRE_ENV):
            pytest.fail(f"{REQUIRE_ENV} is set but no chromium is on PATH (apt-get install chromium)")
        pytest.skip("no chromium on PATH: apt-get install chromium to run the report in a browser")
    return binary


def _high(*descriptors: int) -> list[int]:
    """The descriptors moved to numbers of 10 and up (moving them onto 3 and 4 must not overwrite them)."""
    import fcntl

    moved = [fcntl.fcntl(d, fcntl.F_DUPFD_CLOEXEC, 10) for d in descriptors]
    for descriptor in descriptors:
        os.close(descriptor)
    return moved


class Browser:
    """One headless Chromium process (a context manager)."""

    def __init__(self, binary: str, width: int = 1280, height: int = 900) -> None:
        self.width, self.height = width, height
        self.profile = tempfile.mkdtemp(prefix="lvlm-heat-chromium-")
        command_read, self.commands = _high(*os.pipe())
        self.replies, reply_write = _high(*os.pipe())
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--no-default-browser-check", "--hide-scrollbars", "--mute-audio", "--remote-debugging-pipe",
                 f"--user-data-dir={self.profile}", f"--window-size={width},{height}", "about:blank"]
        # a small Python trampoline puts the pipe ends (numbered 10 and up, clear of 3 and 4) on descriptors
        # 3 and 4 and becomes Chromium (a shell would do, but dash cannot name descriptors above 9)
        trampoline = (f"import os, sys; os.dup2({command_read}, 3); os.dup2({reply_write}, 4); "
                      f"os.close({command_read}); os.close({reply_write}); os.execv(sys.argv[1], sys.argv[1:])")
        with open(Path(self.profile) / "stderr.log", "wb") as log:
            self.process = subprocess.Popen([sys.executable, "-c", trampoline, binary, *flags],
                                            pass_fds=(command_read, reply_write), stdout=subprocess.DEVNULL, stderr=log)
        os.close(command_read)
        os.close(reply_write)
        self.buffer, self.last_id, self.events = b"", 0, []

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _next_message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self.buffer:
            ready, _, _ = select.select([self.replies], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise TimeoutError("chromium did not answer in time")
            chunk = os.read(self.replies, 1 << 20)
            if not chunk:
                log = (Path(self.profile) / "stderr.log").read_text(errors="replace").strip().splitlines()
                raise RuntimeError(f"chromium closed its DevTools pipe: {' / '.join(log[-5:]) or 'no message'}")
            self.buffer += chunk
        raw, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(raw)

    def send(self, method: str, params: dict | None = None, session: str | None = None,
             timeout: float = 30.0) -> dict[str, Any]:
        """Send one command and return its result; events that arrive meanwhile are kept in ``events``."""
        self.last_id += 1
        message: dict[str, Any] = {"id": self.last_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self.commands, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._next_message(deadline)
            if reply.get("id") == self.last_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, timeout: float = 30.0) -> dict[str, Any]:
        """The first event named ``method`` (taken out of ``events``)."""
        deadline = time.monotonic() + timeout
        while True:
            for k, event in enumerate(self.events):
                if event.get("method") == method:
                    return self.events.pop(k)
            self.events.append(self._next_message(deadline))

    def open(self, url: str) -> Page:
        return Page(self, url)

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=5)
        except (OSError, RuntimeError, TimeoutError):
            pass
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self.commands)
        os.close(self.replies)
        shutil.rmtree(self.profile, ignore_errors=True)


class Page:
    """A tab showing ``url`` (loaded when the constructor returns)."""

    def __init__(self, browser: Browser, url: str) -> None:
        self.browser = browser
        target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable")
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": browser.width, "height": browser.height, "deviceScaleFactor": 1, "mobile": False})
        self.call("Page.navigate", {"url": url})
        browser.wait_for("Page.loadEventFired")

    def call(self, method: str, params: dict | None = None) -> dict[str, Any]:
        return self.browser.send(method, params, self.session)

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page."""
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def count(self, selector: str) -> int:
        return self.evaluate(f"document.querySelectorAll({json.dumps(selector)}).length")

    def click(self, selector: str) -> None:
        """A real mouse click (pressed and released) in the middle of the first element ``selector`` matches."""
        x, y = self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)}); e.scrollIntoView({{block: 'center'}});"
            " const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()")
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1})

    def errors(self) -> list[str]:
        """What the page reported as errors so far: exceptions, ``console.error``, failed loads."""
        found = []
        for event in self.browser.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown":
                details = params["exceptionDetails"]
                found.append(details.get("exception", {}).get("description") or details.get("text", "exception"))
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                found.append(" ".join(str(a.get("value", a.get("description"))) for a in params.get("args", [])))
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                found.append(f"{params['entry'].get('text')} {params['entry'].get('url', '')}".strip())
        return found

    def screenshot(self, path: Path, full_page: bool = False) -> Path:
        """A PNG of the viewport (or of the whole page) at ``path``."""
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            params["captureBeyondViewport"] = True
            size = self.call("Page.getLayoutMetrics")["cssContentSize"]
            params["clip"] = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
        Path(path).write_bytes(base64.b64decode(self.call("Page.captureScreenshot", params)["data"]))
        return Path(path)
