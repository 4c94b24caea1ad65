"""The pages as a person sees them: report.html, the tabletop sheet and the trends page rendered in
headless Chromium (Debian's `chromium`, installed by scripts/chromium-setup), driven over the
DevTools protocol (aiohttp's WebSocket client).

Each page must render with no network request and no Content-Security-Policy violation (the
policy must not block the page's own styles either), and every chart (each inline <svg>) must
draw: its box on the screenshot holds a real share of non-background pixels in several colours.

Chromium itself is kept off the network: background services off and every request sent to a
dead proxy on 127.0.0.1, so nothing could leave even if a page tried. Set
DRILL_SCREENSHOTS=docs/screenshots to refresh the screenshots kept in docs/.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.evidence.pack import build_pack
from harness.report.history import write_history
from harness.testing import REPO, free_port, require

VIEW_WIDTH_PX = 1200
MAX_HEIGHT_PX = 12000
LOAD_TIMEOUT_S = 30.0
DOCS_CROP_PX = 2600  # the docs keep the top of each page: what a reader sees first


def chromium_binary() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass
class Rendered:
    png: bytes
    requests: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    svg_boxes: list[tuple[int, int, int, int]] = field(default_factory=list)  # x, y, width, height
    height_px: int = 0


class DevTools:
    """Just enough of the Chrome DevTools protocol: commands in order, events collected."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        my_id = self.next_id
        await self.ws.send_str(json.dumps({"id": my_id, "method": method, "params": params}))
        deadline = time.monotonic() + LOAD_TIMEOUT_S
        while time.monotonic() < deadline:
            message = json.loads((await self.ws.receive(timeout=LOAD_TIMEOUT_S)).data)
            if message.get("id") == my_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return dict(message.get("result") or {})
            if "method" in message:
                self.events.append(message)
        raise TimeoutError(f"{method}: no answer within {LOAD_TIMEOUT_S}s")

    async def wait_event(self, method: str) -> None:
        deadline = time.monotonic() + LOAD_TIMEOUT_S
        while not any(e["method"] == method for e in self.events):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {method} within {LOAD_TIMEOUT_S}s")
            message = json.loads((await self.ws.receive(timeout=LOAD_TIMEOUT_S)).data)
            if "method" in message:
                self.events.append(message)


async def _render(ws_url: str, page: Path) -> Rendered:
    import aiohttp

    url = page.resolve().as_uri()
    async with aiohttp.ClientSession() as session, session.ws_connect(ws_url, max_msg_size=0) as ws:
        cdp = DevTools(ws)
        for domain in ("Network", "Log", "Page", "DOM"):
            await cdp.call(f"{domain}.enable")
        await cdp.call("Emulation.setDeviceMetricsOverride", width=VIEW_WIDTH_PX, height=900,
                       deviceScaleFactor=1, mobile=False)
        await cdp.call("Page.navigate", url=url)
        await cdp.wait_event("Page.loadEventFired")
        metrics = await cdp.call("Page.getLayoutMetrics")
        height = min(int(metrics["cssContentSize"]["height"]) + 1, MAX_HEIGHT_PX)
        await cdp.call("Emulation.setDeviceMetricsOverride", width=VIEW_WIDTH_PX, height=height,
                       deviceScaleFactor=1, mobile=False)
        root = (await cdp.call("DOM.getDocument", depth=0))["root"]["nodeId"]
        boxes = []
        for node in (await cdp.call("DOM.querySelectorAll", nodeId=root, selector="svg"))["nodeIds"]:
            quad = (await cdp.call("DOM.getBoxModel", nodeId=node))["model"]["border"]
            xs, ys = quad[0::2], quad[1::2]
            boxes.append((int(min(xs)), int(min(ys)), int(max(xs) - min(xs)), int(max(ys) - min(ys))))
        import base64

        png = base64.b64decode((await cdp.call("Page.captureScreenshot", format="png"))["data"])
    rendered = Rendered(png=png, svg_boxes=boxes, height_px=height)
    for event in cdp.events:
        params = event.get("params") or {}
        if event["method"] == "Network.requestWillBeSent":
            requested = params["request"]["url"]
            if requested != url and not requested.startswith("data:"):
                rendered.requests.append(requested)
        if event["method"] == "Log.entryAdded":
            entry = params.get("entry") or {}
            if entry.get("source") == "security" or "Content Security Policy" in str(entry.get("text")):
                rendered.violations.append(str(entry.get("text")))
    return rendered


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A headless Chromium with DevTools on 127.0.0.1; yields the WebSocket URL of its page."""
    binary = chromium_binary()
    require(binary is not None, "chromium", "run scripts/chromium-setup (Debian: apt-get install chromium)")
    assert binary is not None
    port = free_port()
    profile = tmp_path_factory.mktemp("chromium-profile")
    process = subprocess.Popen(
        [binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         "--force-device-scale-factor=1", f"--remote-debugging-port={port}", "--remote-debugging-address=127.0.0.1",
         f"--user-data-dir={profile}", "--no-first-run", "--no-default-browser-check",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-domain-reliability", "--disable-client-side-phishing-detection",
         "--metrics-recording-only", "--no-pings", "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
         "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + LOAD_TIMEOUT_S
        pages: list[dict[str, Any]] = []
        while time.monotonic() < deadline and not pages:
            try:
                pages = [t for t in httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=1.0).json()
                         if t.get("type") == "page"]
            except httpx.HTTPError:
                time.sleep(0.1)  # the DevTools port is not listening yet; nothing to await on
        assert pages, f"chromium did not open its DevTools port within {LOAD_TIMEOUT_S}s"
        yield str(pages[0]["webSocketDebuggerUrl"])
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def render(ws_url: str, page: Path) -> Rendered:
    return asyncio.run(_render(ws_url, page))


def ink_share(png: bytes, box: tuple[int, int, int, int]) -> tuple[float, int]:
    """(share of pixels that are not background, number of distinct colours) inside ``box``."""
    import io

    import numpy as np
    from PIL import Image

    x, y, w, h = box
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB").crop((x, y, x + w, y + h))).astype(int)
    background = np.median(pixels.reshape(-1, 3), axis=0)
    ink = np.abs(pixels - background).sum(axis=2) > 60
    colours = len({tuple(c) for c in pixels.reshape(-1, 3)[::7]})
    return float(ink.mean()), colours


def keep_for_docs(name: str, rendered: Rendered) -> None:
    target = os.environ.get("DRILL_SCREENSHOTS")
    if not target:
        return
    import io

    from PIL import Image

    out = REPO / target
    out.mkdir(parents=True, exist_ok=True)
    image = Image.open(io.BytesIO(rendered.png))
    image.crop((0, 0, image.width, min(image.height, DOCS_CROP_PX))).save(out / f"{name}.png", optimize=True)
    if rendered.svg_boxes and max(y + h for _, y, _, h in rendered.svg_boxes) > DOCS_CROP_PX:
        top = max(0, min(y for _, y, _, _ in rendered.svg_boxes) - 40)
        bottom = min(image.height, max(y + h for _, y, _, h in rendered.svg_boxes) + 10)
        image.crop((0, top, image.width, bottom)).save(out / f"{name}-charts.png", optimize=True)


def assert_seen_clean(name: str, rendered: Rendered, charts: int) -> None:
    assert rendered.requests == [], f"{name} made network requests: {rendered.requests}"
    assert rendered.violations == [], f"{name}: Content-Security-Policy violations: {rendered.violations}"
    assert len(rendered.svg_boxes) == charts, f"{name}: {len(rendered.svg_boxes)} charts, expected {charts}"
    for box in rendered.svg_boxes:
        assert box[2] > 300 and box[3] > 100, f"{name}: chart box {box} too small to read"
        assert box[1] + box[3] <= rendered.height_px, f"{name}: chart {box} beyond the screenshot"
        share, colours = ink_share(rendered.png, box)
        assert share > 0.02 and colours >= 4, f"{name}: chart at {box} looks blank ({share:.1%} ink, {colours} colours)"
    keep_for_docs(name, rendered)


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """report.html, tabletop.html and trends.html from the real latency run's files."""
    import copy

    from harness.engine.outputs import write_outputs
    from harness.results import RunResults, compute_results, write_results

    root = tmp_path_factory.mktemp("pages")
    reports = root / "reports" / "latency"
    run_dir = reports / "run"
    shutil.copytree(REPO / "tests" / "data" / "latency-run", run_dir)
    results, timeline = compute_results(run_dir)
    write_outputs(run_dir, results, timeline)
    results = json.loads(json.dumps(results.document()))
    for quarter, started, factor in (("q1", "2026-02-10T10:00:00Z", 0.9), ("q2", "2026-05-12T10:00:00Z", 1.0),
                                     ("q3", "2026-08-11T10:00:00Z", 1.5)):
        r = copy.deepcopy(results)
        r["run_id"], r["started_at"] = quarter, started
        r["faults"][0]["rto_s"] *= factor
        write_results(reports / quarter, RunResults.from_document(r))
    pack = build_pack(run_dir, root / "pack.zip", approver="A. Lead", participants=["B. Oncall", "C. SRE"]).path
    with zipfile.ZipFile(pack) as zf:
        (root / "tabletop.html").write_bytes(zf.read("tabletop.html"))
    _, trends, _ = write_history(root / "reports", root / "trends.html")
    return {"report": run_dir / "report.html", "tabletop": root / "tabletop.html", "trends": trends}


def test_report_renders_its_charts_offline(browser: str, pages: dict[str, Path]) -> None:
    assert_seen_clean("report", render(browser, pages["report"]), charts=2)


def test_tabletop_sheet_renders_offline(browser: str, pages: dict[str, Path]) -> None:
    rendered = render(browser, pages["tabletop"])
    assert_seen_clean("tabletop", rendered, charts=0)
    share, colours = ink_share(rendered.png, (0, 0, VIEW_WIDTH_PX, min(rendered.height_px, 1500)))
    assert share > 0.01 and colours >= 4  # text and tables were drawn


def test_trends_page_renders_its_chart_offline(browser: str, pages: dict[str, Path]) -> None:
    assert_seen_clean("trends", render(browser, pages["trends"]), charts=1)


def test_a_page_that_fetches_is_caught(browser: str, tmp_path: Path) -> None:
    """The checks above can fail: a page without our policy that loads an image is reported."""
    page = tmp_path / "leaky.html"
    page.write_text('<!DOCTYPE html><html><body><img src="http://192.0.2.1/x.png"></body></html>', encoding="utf-8")
    assert render(browser, page).requests == ["http://192.0.2.1/x.png"]
