"""Headless Chromium screenshots of the logged-in Airflow UI, over the DevTools protocol (spec §2.4).

The Airflow JWT is set as the UI's ``_token`` cookie, the page is loaded and given time to render (a React SPA:
a plain ``--screenshot`` comes out blank or shows the login page), then the PNG and the visible text are returned,
the text including that of same-origin iframes (the plugin's page is one), so tests assert on content, not on a file.
Chromium runs in its own process group on a loopback debugging port and is stopped by that group.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from orderhub_airflow.launcher import LOOPBACK, free_port, group_members

TEXT_JS = """(() => {
  const parts = [document.body ? document.body.innerText : ''];
  for (const f of document.querySelectorAll('iframe')) {
    try { parts.push(f.contentDocument.body.innerText); } catch (e) { parts.push('[iframe not readable]'); }
  }
  return parts.join('\\n');
})()"""


def chromium_path() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    raise FileNotFoundError("chromium is not installed: apt-get install -y chromium (make test does it)")


@dataclass
class Shot:
    path: Path
    text: str


def screenshot(url: str, out: Path, token: str, *, wait_for: list[str] | None = None, timeout: float = 30,
               width: int = 1400, height: int = 900) -> Shot:
    """Load ``url`` as the logged-in user and save a PNG; wait until every string of ``wait_for`` is visible
    (or ``timeout``), so the picture shows the rendered page."""
    from websockets.sync.client import connect

    port = free_port()
    profile = tempfile.mkdtemp(prefix="orderhub_chromium_")
    proc = subprocess.Popen([chromium_path(), "--headless", "--no-sandbox", "--disable-gpu",
                             "--disable-background-networking", "--disable-component-update", "--disable-sync",
                             "--disable-extensions", "--disable-default-apps", "--no-first-run",
                             "--disable-dev-shm-usage", f"--user-data-dir={profile}",
                             f"--window-size={width},{height}", f"--remote-debugging-address={LOOPBACK}",
                             f"--remote-debugging-port={port}", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        page = None
        deadline = time.monotonic() + 20
        while page is None and time.monotonic() < deadline:
            try:
                targets = json.load(urllib.request.urlopen(f"http://{LOOPBACK}:{port}/json/list", timeout=2))
                page = next((t for t in targets if t["type"] == "page"), None)
            except OSError:
                time.sleep(0.1)
        if page is None:
            raise RuntimeError("chromium did not open its DevTools port")
        with connect(page["webSocketDebuggerUrl"], max_size=50_000_000) as ws:
            return _capture(ws, url, out, token, wait_for, timeout, width, height)
    finally:
        _stop_group(proc)
        shutil.rmtree(profile, ignore_errors=True)


def _stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM to Chromium's own process group (browser, renderers, GPU/utility processes), SIGKILL to stragglers."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (proc.poll() is None or group_members(proc.pid)):
        time.sleep(0.1)
    if group_members(proc.pid):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        pass


def _capture(ws, url: str, out: Path, token: str, wait_for: list[str] | None, timeout: float, width: int,
             height: int) -> Shot:
    counter = [0]

    def cmd(method: str, **params):
        counter[0] += 1
        ws.send(json.dumps({"id": counter[0], "method": method, "params": params}))
        while True:
            message = json.loads(ws.recv())
            if message.get("id") == counter[0]:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    cmd("Network.enable")
    cmd("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)
    origin = url.split("/", 3)[:3]
    cmd("Network.setCookie", name="_token", value=token, url="/".join(origin) + "/", path="/")
    cmd("Page.enable")
    cmd("Page.navigate", url=url)
    text = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.5)
        text = cmd("Runtime.evaluate", expression=TEXT_JS, returnByValue=True).get("result", {}).get("value", "")
        if text and all(w.lower() in text.lower() for w in (wait_for or [])):
            break
    time.sleep(1.0)  # let the last frame paint (charts, icons)
    text = cmd("Runtime.evaluate", expression=TEXT_JS, returnByValue=True).get("result", {}).get("value", "")
    data = base64.b64decode(cmd("Page.captureScreenshot", format="png")["data"])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    return Shot(out, text)
