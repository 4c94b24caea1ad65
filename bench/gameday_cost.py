"""What does the game-day console cost the drill it shows? Console closed vs open, side by side.

    heavy .venv/bin/python bench/gameday_cost.py [--rounds 2] [--out /tmp/gameday-cost]

The same drill each time: the shipped local hosted-latency drill on free ports, shortened
(6/10/8 s), its fault made ``manual`` and never injected, so all 24 s are steady state and every
difference is the console's:

- closed: ``drill run`` (no console);
- open:   ``drill gameday`` with the facilitator's page AND an observer's page open in the
          machine's Chromium (Playwright, ``executable_path``), both polling twice a second for
          the whole drill; started from the page.

Per run, from results.json: Locust rps and probe p95 over the whole run (phases summed), and the
probe's sample count. Rounds alternate which mode runs first. The page's update latency: on
every render the page stamps the snapshot's instant on ``#figures`` (``data-ts``); a
MutationObserver in the page records when each new one reached the screen. ``snapshot_to_screen``
is screen time - snapshot instant (the poll interval, the request and the render); a sample reaches
a snapshot within its 1 s window, so sample-to-screen is that plus up to 1 s.

The last line is ``rps_ratio=<open/closed> p95_ratio=<open/closed> screen_p50_ms=<..>
screen_p95_ms=<..>`` (medians over rounds). Everything goes to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

from harness.testing import VENV_BIN
from harness.testing.drills import SCENARIOS, rebased, shortened

WATCH_JS = """
() => {
  window.__shown = [];
  const target = document.getElementById("figures");
  new MutationObserver(() => {
    const ts = Number(target.dataset.ts);
    if (ts && (!window.__shown.length || window.__shown[window.__shown.length - 1][0] !== ts)) {
      window.__shown.push([ts, Date.now() / 1000]);
    }
  }).observe(target, { attributes: true, attributeFilter: ["data-ts"] });
}
"""


def scenario(workdir: Path) -> Path:
    path, _ = rebased(SCENARIOS / "hosted-latency.local.yaml", workdir)
    path.write_text(shortened(path.read_text(encoding="utf-8")).replace("    at: 0s\n", "    manual: true\n"),
                    encoding="utf-8")
    return path


def figures(run_dir: Path) -> dict[str, float]:
    results = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    phases = results["phases"]
    requests = sum(p["requests"] for p in phases.values())
    seconds = sum((datetime.fromisoformat(p["end"]) - datetime.fromisoformat(p["start"])).total_seconds()
                  for p in phases.values())
    return {
        "rps": requests / max(seconds, 1e-9),
        "p95_ms": statistics.median(p["p95_ms"] for p in phases.values() if p["p95_ms"] is not None),
        "probe_samples": float(sum(p["stream_requests"] for p in phases.values())),
        "verdict_ok": float(results["verdict"] in ("passed", "failed")),
    }


def closed(workdir: Path, path: Path) -> dict[str, float]:
    run_dir = workdir / "closed"
    subprocess.run([str(VENV_BIN / "drill"), "run", str(path), "--out", str(run_dir), "--quiet"],
                   check=False, capture_output=True)
    return figures(run_dir)


def opened(workdir: Path, path: Path, chromium: str) -> tuple[dict[str, float], list[float]]:
    from playwright.sync_api import sync_playwright

    run_dir = workdir / "open"
    urls_file = workdir / "urls.json"
    proc = subprocess.Popen([str(VENV_BIN / "drill"), "gameday", str(path), "--out", str(run_dir),
                             "--urls-file", str(urls_file), "--linger", "3"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not urls_file.exists():
            time.sleep(0.1)
        urls = json.loads(urls_file.read_text(encoding="utf-8"))
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            page = browser.new_page()
            page.goto(urls["facilitator"])
            observer = browser.new_page()
            observer.goto(urls["observer"])
            page.evaluate(WATCH_JS)
            page.fill("#participants", "Ana")
            page.click("#start-button")
            page.locator("#verdict").filter(has_text="exit").wait_for(timeout=120_000)
            shown = page.evaluate("window.__shown")
            browser.close()
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=60)
    latencies = [(at - ts) * 1000 for ts, at in shown]
    return figures(run_dir), latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("/tmp/gameday-cost"))
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("chromium is needed: scripts/chromium-setup")
    rows: dict[str, list[dict[str, float]]] = {"closed": [], "open": []}
    latencies: list[float] = []
    for i in range(args.rounds):
        order = ("closed", "open") if i % 2 == 0 else ("open", "closed")
        for mode in order:
            workdir = args.out / f"round{i}-{mode}"
            shutil.rmtree(workdir, ignore_errors=True)
            workdir.mkdir(parents=True)
            path = scenario(workdir)
            if mode == "closed":
                rows["closed"].append(closed(workdir, path))
            else:
                measured, shown = opened(workdir, path, chromium)
                rows["open"].append(measured)
                latencies += shown
            got = rows[mode][-1]
            print(f"round {i} {mode:6} rps={got['rps']:.1f} p95={got['p95_ms']:.1f}ms "
                  f"probe_samples={got['probe_samples']:.0f}", flush=True)

    def med(mode: str, key: str) -> float:
        return statistics.median(r[key] for r in rows[mode])

    latencies.sort()
    p50 = latencies[len(latencies) // 2] if latencies else float("nan")
    p95 = latencies[max(0, int(len(latencies) * 0.95) - 1)] if latencies else float("nan")
    print(f"closed: rps={med('closed', 'rps'):.1f} p95={med('closed', 'p95_ms'):.1f}ms "
          f"probe_samples={med('closed', 'probe_samples'):.0f}")
    print(f"open:   rps={med('open', 'rps'):.1f} p95={med('open', 'p95_ms'):.1f}ms "
          f"probe_samples={med('open', 'probe_samples'):.0f} (screen updates: {len(latencies)})")
    print(f"rps_ratio={med('open', 'rps') / med('closed', 'rps'):.3f} "
          f"p95_ratio={med('open', 'p95_ms') / med('closed', 'p95_ms'):.3f} "
          f"screen_p50_ms={p50:.0f} screen_p95_ms={p95:.0f}")


if __name__ == "__main__":
    main()
