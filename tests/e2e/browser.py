"""A headless Chromium driven over the Chrome DevTools protocol (websocket-client, which
the kubernetes client already depends on): no WebDriver, no browser download. Debian's
``chromium`` package is the browser (`make browser` installs it)."""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import websocket

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "chrome")


def executable() -> str | None:
    given = os.environ.get("KUBEHATCH_CHROMIUM")
    if given:
        return given
    return next((found for name in CANDIDATES if (found := shutil.which(name))), None)


class BrowserError(AssertionError):
    pass


class Browser:
    """One headless browser with one page."""

    def __init__(self, width: int = 1440, height: int = 1000) -> None:
        path = executable()
        if path is None:
            raise BrowserError("no chromium: apt-get install chromium (make browser)")
        self._profile = tempfile.mkdtemp(prefix="kubehatch-chromium-")
        self._proc = subprocess.Popen(
            [
                path,
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-dev-shm-usage",
                "--remote-debugging-port=0",
                "--hide-scrollbars",
                f"--user-data-dir={self._profile}",
                f"--window-size={width},{height}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        port_file = Path(self._profile) / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not port_file.exists() or not port_file.read_text().strip():
            if time.monotonic() > deadline or self._proc.poll() is not None:
                self.close()
                raise BrowserError("chromium did not start its DevTools endpoint")
            time.sleep(0.1)
        port = port_file.read_text().split()[0]
        import urllib.request

        targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list").read())
        page = next(t for t in targets if t.get("type") == "page")
        self._ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=60)
        self._ids = itertools.count(1)
        self.console: list[str] = []
        self.send("Page.enable")
        self.send("Runtime.enable")
        # A headless window may not hold the focus: keyboard tests would then flake.
        self.send("Emulation.setFocusEmulationEnabled", {"enabled": True})

    def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        number = next(self._ids)
        self._ws.send(json.dumps({"id": number, "method": method, "params": params or {}}))
        while True:
            message = json.loads(self._ws.recv())
            if message.get("method") == "Runtime.exceptionThrown":
                details = message["params"]["exceptionDetails"]
                self.console.append(str(details.get("exception", {}).get("description", details)))
            elif message.get("method") == "Runtime.consoleAPICalled":
                args = message["params"].get("args", [])
                self.console.append(
                    " ".join(str(a.get("value", a.get("description"))) for a in args)
                )
            if message.get("id") == number:
                if "error" in message:
                    raise BrowserError(f"{method}: {message['error']}")
                return dict(message.get("result") or {})

    def js(self, expression: str) -> Any:
        """The value of a JavaScript expression (promises awaited)."""
        answer = self.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        if "exceptionDetails" in answer:
            raise BrowserError(f"{expression[:80]}: {answer['exceptionDetails']}")
        return answer.get("result", {}).get("value")

    def go(self, url: str) -> None:
        self.send("Page.navigate", {"url": url})

    def wait(self, expression: str, timeout: float = 30, what: str | None = None) -> Any:
        """Until the expression is truthy; its value."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            try:
                last = self.js(expression)
            except BrowserError:
                last = None
            if last:
                return last
            time.sleep(0.2)
        raise BrowserError(
            f"waited {timeout:.0f}s for {what or expression}; page: {self.text()[:1500]!r}; "
            f"console: {self.console[-5:]}"
        )

    def click(self, selector: str) -> None:
        self.wait(f"!!document.querySelector({json.dumps(selector)})", what=selector)
        self.js(
            f"document.querySelector({json.dumps(selector)})"
            ".dispatchEvent(new MouseEvent('click', {bubbles: true, cancelable: true}))"
        )

    def key(self, key: str, code: str | None = None, text: str | None = None) -> None:
        """A key press sent as the keyboard would (focus moves, keydown handlers run)."""
        base = {"key": key, "code": code or key, "windowsVirtualKeyCode": KEYCODES.get(key, 0)}
        self.send(
            "Input.dispatchKeyEvent",
            {"type": "keyDown", **base, **({"text": text} if text else {})},
        )
        self.send("Input.dispatchKeyEvent", {"type": "keyUp", **base})

    def text(self) -> str:
        try:
            return str(self.js("document.body ? document.body.innerText : ''"))
        except BrowserError:
            return ""

    def screenshot(self, path: Path, full_page: bool = False) -> None:
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            params["captureBeyondViewport"] = True
        data = self.send("Page.captureScreenshot", params)["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        try:
            if getattr(self, "_ws", None):
                self._ws.close()
        finally:
            if self._proc.poll() is None:
                self._proc.terminate()
                try:
                    self._proc.wait(10)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
            shutil.rmtree(self._profile, ignore_errors=True)


KEYCODES = {
    "Tab": 9,
    "Enter": 13,
    "ArrowLeft": 37,
    "ArrowUp": 38,
    "ArrowRight": 39,
    "ArrowDown": 40,
    "Escape": 27,
    " ": 32,
    "Home": 36,
    "End": 35,
}
