"""A minimal Chrome DevTools Protocol client over `--remote-debugging-pipe` (standard library only).

Chromium reads commands from fd 3 and writes replies and events to fd 4, each a JSON message ending
with a NUL byte. The tests use it to load the listening page in a real headless Chromium, click, play
audio and download the ratings, without Playwright, Selenium or a WebSocket package.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import time

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--no-default-browser-check",
         "--autoplay-policy=no-user-gesture-required", "--remote-debugging-pipe", "--mute-audio"]


def find_chromium() -> str | None:
    for name in (os.environ.get("PAIRMINER_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


class CDPError(RuntimeError):
    """The page or the protocol failed (a test failure)."""


class ChromiumUnavailable(CDPError):
    """Chromium did not start or answer at all (an environment problem: the tests skip)."""


class Browser:
    """One headless Chromium with a fresh profile; `page()` opens a tab and attaches to it."""

    def __init__(self, exe: str, download_dir: str | None = None, timeout_s: float = 30.0) -> None:
        self.profile = tempfile.mkdtemp(prefix="pm-chromium-")
        self.timeout_s = timeout_s
        cmd_r, cmd_w = os.pipe()   # we write, Chromium reads on fd 3
        ev_r, ev_w = os.pipe()     # Chromium writes on fd 4, we read

        def _child() -> None:  # runs in the child before exec: put the pipe ends on fds 3 and 4
            hi_r = fcntl.fcntl(cmd_r, fcntl.F_DUPFD, 10)  # out of the way: a pipe end may already be 3 or 4
            hi_w = fcntl.fcntl(ev_w, fcntl.F_DUPFD, 10)
            os.dup2(hi_r, 3)
            os.dup2(hi_w, 4)
            os.set_inheritable(3, True)
            os.set_inheritable(4, True)

        self.proc = subprocess.Popen([exe, *FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, close_fds=False, preexec_fn=_child)
        os.close(cmd_r)
        os.close(ev_w)
        self._w, self._r = cmd_w, ev_r
        self._buf = b""
        self._id = 0
        self.events: list[dict] = []
        self.session: str | None = None
        try:
            self.send("Browser.getVersion", browser=True)
        except (CDPError, OSError) as exc:
            self.close()
            raise ChromiumUnavailable(f"{exe} did not answer on its DevTools pipe ({exc})") from None
        if download_dir:
            self.send("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": download_dir,
                                                      "eventsEnabled": True}, browser=True)

    # -- transport ------------------------------------------------------------------------------
    def _read_message(self, deadline: float) -> dict:
        import select

        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CDPError("timed out waiting for Chromium")
            ready, _, _ = select.select([self._r], [], [], left)
            if ready:
                chunk = os.read(self._r, 1 << 16)
                if not chunk:
                    raise CDPError("Chromium closed the DevTools pipe")
                self._buf += chunk
        msg, self._buf = self._buf.split(b"\0", 1)
        return json.loads(msg)

    def send(self, method: str, params: dict | None = None, *, browser: bool = False) -> dict:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params or {}}
        if self.session and not browser:
            msg["sessionId"] = self.session
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + self.timeout_s
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise CDPError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, method: str, timeout_s: float | None = None, pred=lambda p: True) -> dict:
        deadline = time.monotonic() + (timeout_s or self.timeout_s)
        while True:
            for i, ev in enumerate(self.events):
                if ev.get("method") == method and pred(ev.get("params", {})):
                    return self.events.pop(i)["params"]
            self.events.append(self._read_message(deadline))

    # -- page -----------------------------------------------------------------------------------
    def page(self, url: str) -> None:
        target = self.send("Target.createTarget", {"url": "about:blank"}, browser=True)["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True},
                                 browser=True)["sessionId"]
        self.send("Page.enable")
        self.send("Runtime.enable")
        self.send("Page.navigate", {"url": url})
        self.wait_event("Page.loadEventFired")

    def js(self, expression: str, *, await_promise: bool = True):
        res = self.send("Runtime.evaluate", {"expression": expression, "awaitPromise": await_promise,
                                             "returnByValue": True, "userGesture": True})
        if "exceptionDetails" in res:
            d = res["exceptionDetails"]
            raise CDPError(f"page error: {d.get('exception', {}).get('description') or d.get('text')}")
        return res.get("result", {}).get("value")

    def console_errors(self) -> list[str]:
        out = []
        for ev in self.events:
            if ev.get("method") == "Runtime.exceptionThrown":
                out.append(ev["params"]["exceptionDetails"].get("exception", {}).get("description", "?"))
            if ev.get("method") == "Runtime.consoleAPICalled" and ev["params"].get("type") == "error":
                out.append(" ".join(str(a.get("value")) for a in ev["params"].get("args", [])))
        return out

    def close(self) -> None:
        try:
            self.session = None
            self.send("Browser.close", browser=True)
        except (CDPError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._w, self._r):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
