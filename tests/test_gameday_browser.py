"""The game-day console in a real browser: Playwright's Python library drives the machine's
Chromium (scripts/chromium-setup; Playwright's own browsers are never downloaded, see
scripts/playwright-setup) against `drill gameday` running the shipped local hosted-latency drill
with its fault made `manual`.

Driven from the page only: start with two participants, inject the manual fault, record two
entries, abort. Then the run directory says what happened: the journal holds the people and the
facilitator's commands, the drill exits as aborted (3) with nothing left applied, the evidence
pack verifies with the human entries inside, and no request the page made left 127.0.0.1.

The phases are the shortened 4/8/4 s: the point (an abort from the page rolls back, the human
lane is recorded and packed) holds at any length. Screenshots go to the test's temporary
directory; DRILL_SCREENSHOTS=docs/screenshots refreshes the ones kept in docs/ (as the report
page tests do), so a suite run never rewrites tracked files.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest

from harness.evidence.pack import build_pack, generate_key, verify_pack
from harness.rundir.journal import applied_faults
from harness.testing import REPO, VENV_BIN, require
from harness.testing.drills import SCENARIOS, need_local, rebased, shortened
from harness.testing.runs import latency_run


def screenshots(tmp_path: Path) -> Path:
    """Where this run's screenshots go: DRILL_SCREENSHOTS (relative to the repository) or the
    test's own directory."""
    target = os.environ.get("DRILL_SCREENSHOTS")
    folder = (REPO / target) if target else tmp_path / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder

FAULT = "provider-slow"
STEP_TIMEOUT_MS = 90_000


def manual_scenario(tmp_path: Path) -> Path:
    scenario, _ = rebased(SCENARIOS / "hosted-latency.local.yaml", tmp_path)
    text = shortened(scenario.read_text(encoding="utf-8"))
    assert "    at: 0s\n" in text
    scenario.write_text(text.replace("    at: 0s\n", "    manual: true\n"), encoding="utf-8")
    return scenario


def playwright() -> Any:
    """Playwright's Python library (the ``test`` extra; scripts/playwright-setup): under CI=true
    its absence fails the test, as every missing real part does."""
    try:
        import playwright.sync_api as api
    except ImportError:
        require(False, "playwright (Python library)", "run scripts/playwright-setup")
        raise
    return api


def chromium() -> str:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    require(binary is not None, "chromium", "run scripts/chromium-setup (Debian: apt-get install chromium)")
    assert binary is not None
    return binary


@pytest.mark.slow
@pytest.mark.toxiproxy
def test_a_drill_driven_only_from_the_page_rolls_back_and_packs_the_people(tmp_path: Path) -> None:
    need_local()
    binary = chromium()
    playwright_api = playwright()
    scenario = manual_scenario(tmp_path)
    run_dir = tmp_path / "run"
    urls_file = tmp_path / "urls.json"
    log = open(tmp_path / "gameday.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [str(VENV_BIN / "drill"), "gameday", str(scenario), "--out", str(run_dir), "--urls-file", str(urls_file),
         "--linger", "3"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    shots = screenshots(tmp_path)
    requests: list[str] = []
    try:
        deadline = time.time() + 30
        while not urls_file.exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.1)
        assert urls_file.exists(), (tmp_path / "gameday.log").read_text(errors="replace")
        urls = json.loads(urls_file.read_text(encoding="utf-8"))
        origin = urls["facilitator"].split("/?", 1)[0]
        with playwright_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=binary, args=[
                "--no-sandbox", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--disable-default-apps", "--no-first-run",
            ])
            page = browser.new_page(viewport={"width": 1100, "height": 1300})
            page.on("request", lambda r: requests.append(r.url))
            page.goto(urls["facilitator"])
            page.fill("#participants", "Ana (incident commander)\nBo (on-call)")
            page.click("#start-button")
            inject = page.locator(f"button[data-inject='{FAULT}']")
            inject.wait_for(timeout=STEP_TIMEOUT_MS)  # the fault phase has begun
            inject.click()
            page.locator(f"tr[data-fault='{FAULT}'] td.state-applied").wait_for(timeout=STEP_TIMEOUT_MS)
            page.click("#hold-button")
            page.select_option("#who", "Bo (on-call)")
            page.fill("#note", "p95 doubled on the probe")
            page.click("button[data-kind='noticed']")
            page.locator("#entries li").first.wait_for()
            page.select_option("#who", "Ana (incident commander)")
            page.fill("#note", "fail over to the GPU pool")
            page.click("button[data-kind='decided']")
            page.locator("#entries li").nth(1).wait_for()
            # A locator, not wait_for_function: a string predicate is evaluated in the page, which
            # its Content Security Policy refuses ('unsafe-eval'): one whole run's first try failed so.
            playwright_api.expect(page.locator("#error-rate")).not_to_have_text("-", timeout=STEP_TIMEOUT_MS)
            page.screenshot(path=str(shots / "gameday-console.png"), full_page=True)

            observer = browser.new_page(viewport={"width": 1100, "height": 1000})
            observer.on("request", lambda r: requests.append(r.url))
            observer.goto(urls["observer"])
            observer.locator("#role").filter(has_text="observer").wait_for()
            assert observer.locator("#facilitator").is_hidden() and observer.locator("#record").is_hidden()
            assert observer.locator("button[data-inject]").count() == 0
            observer.screenshot(path=str(shots / "gameday-observer.png"), full_page=True)
            observer.close()  # closing a page changes nothing

            page.click("#abort-button")
            page.click("#abort-confirm")
            page.locator("#verdict").filter(has_text="ABORTED").wait_for(timeout=STEP_TIMEOUT_MS)
            page.screenshot(path=str(shots / "gameday-aborted.png"), full_page=True)
            browser.close()
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.terminate()  # the drill rolls back on SIGTERM
            proc.wait(timeout=60)
        log.close()
    output = (tmp_path / "gameday.log").read_text(errors="replace")
    assert code == 3, output

    # No request the pages made left the console's own origin on 127.0.0.1.
    assert requests and all(url.startswith(origin + "/") for url in requests), requests

    journal = [json.loads(line) for line in (run_dir / "journal.jsonl").read_text().splitlines()]
    names = [r["event"] for r in journal]
    assert names.index("gameday.participants") < names.index("gameday.inject") < names.index("gameday.abort")
    entries = [r for r in journal if r["event"] == "human.entry"]
    assert [(e["participant"], e["kind"]) for e in entries] == [("Bo (on-call)", "noticed"),
                                                                 ("Ana (incident commander)", "decided")]
    holds = [r for r in journal if r["event"] == "gameday.hold"]
    assert [(h["phase"], h["seconds"]) for h in holds] == [("fault", 30.0)]
    reverts = [r for r in journal if r["event"] == "fault.reverted"]
    assert [r["why"] for r in reverts] == ["abort"]
    assert applied_faults(run_dir / "journal.jsonl") == []

    results = json.loads((run_dir / "results.json").read_text())
    assert results["verdict"] == "aborted" and results["cleanup"]["ok"] is True
    human = results["human"]
    assert human["participants"] == ["Ana (incident commander)", "Bo (on-call)"]
    assert [e["kind"] for e in human["entries"]] == ["noticed", "decided"]
    assert human["time_to_notice_s"] is not None and human["time_to_notice_s"] >= 0
    assert human["aborted_by"] and human["injects"][0]["fault"] == FAULT

    key, pub, _ = generate_key(tmp_path / "key")
    pack = build_pack(run_dir, tmp_path / "pack.zip", sign_key=key).path
    verification = verify_pack(pack, pub)
    assert verification.ok and verification.signature == "valid", verification.lines()
    with zipfile.ZipFile(pack) as z:
        packed = {name: z.read(name) for name in z.namelist()}
    packed_results = next(v for k, v in packed.items() if k.endswith("results.json"))
    assert json.loads(packed_results)["human"]["entries"][1]["note"] == "fail over to the GPU pool"
    sheet = next(v for k, v in packed.items() if k.endswith("tabletop.html")).decode()
    assert "People beside the instruments" in sheet and "Bo (on-call) noticed: p95 doubled on the probe" in sheet


def test_a_replay_walks_a_recorded_run_and_records_the_tabletop_apart(tmp_path: Path) -> None:
    """No stack: the recorded latency run played back at 8x, paused, one tabletop entry."""
    binary = chromium()
    playwright_api = playwright()
    shots = screenshots(tmp_path)
    run_dir = latency_run(tmp_path)
    journal_before = (run_dir / "journal.jsonl").read_bytes()
    out_dir = tmp_path / "tabletop"
    urls_file = tmp_path / "urls.json"
    log = open(tmp_path / "replay.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [str(VENV_BIN / "drill"), "gameday", str(run_dir), "--out", str(out_dir), "--urls-file", str(urls_file),
         "--speed", "8"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    requests: list[str] = []
    try:
        deadline = time.time() + 30
        while not urls_file.exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.1)
        assert urls_file.exists(), (tmp_path / "replay.log").read_text(errors="replace")
        urls = json.loads(urls_file.read_text(encoding="utf-8"))
        origin = urls["facilitator"].split("/?", 1)[0]
        with playwright_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=binary, args=["--no-sandbox", "--disable-background-networking"])
            page = browser.new_page(viewport={"width": 1100, "height": 1300})
            page.on("request", lambda r: requests.append(r.url))
            page.goto(urls["facilitator"])
            page.fill("#participants", "Cy (legal)")
            page.click("#start-button")
            # at 8x the fault phase comes within seconds: wait for the fault to show applied
            page.locator("#faults td.state-applied").first.wait_for(timeout=STEP_TIMEOUT_MS)
            page.click("#pause-button")
            page.locator("#replay-source").filter(has_text="paused").wait_for()
            assert page.locator("#facilitator").is_hidden()  # nothing to inject, hold or abort
            page.fill("#note", "who tells customers?")
            page.click("button[data-kind='escalated']")
            page.locator("#entries li").filter(has_text="[tabletop] Cy (legal) escalated").wait_for()
            page.screenshot(path=str(shots / "gameday-replay.png"), full_page=True)
            browser.close()
    finally:
        proc.send_signal(signal.SIGINT)
        # Ctrl-C recomputes the tabletop copy's results and report: bounded, and a replay that did
        # not end is killed, never left behind (under pytest-xdist the child inherits SIGINT
        # ignored: drill gameday installs its own handler for that).
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
            raise
        finally:
            log.close()
    assert requests and all(url.startswith(origin + "/") for url in requests), requests
    assert (run_dir / "journal.jsonl").read_bytes() == journal_before  # the original run is untouched
    replay = json.loads((out_dir / "replay.json").read_text())
    assert replay["source_run_id"] == run_dir.name and len(replay["source_results_sha256"]) == 64
    records = [json.loads(line) for line in (out_dir / "journal.jsonl").read_text().splitlines()]
    original = [json.loads(line) for line in journal_before.decode().splitlines()]
    assert records[:len(original)] == original  # the original run's record, then the tabletop's
    added = records[len(original):]
    assert [r["event"] for r in added] == ["gameday.participants", "human.entry"]
    starts = {r["phase"]: r["ts"] for r in original if r["event"] == "phase.start"}
    # stamped on the original drill's clock: after the fault began (it showed applied)
    assert added[1]["ts"] >= starts["fault"] and added[1]["note"] == "who tells customers?"
    human = json.loads((out_dir / "results.json").read_text())["human"]
    assert human["participants"] == ["Cy (legal)"] and human["entries"][0]["kind"] == "escalated"
    key, pub, _ = generate_key(tmp_path / "key")
    verification = verify_pack(build_pack(out_dir, tmp_path / "tabletop.zip", sign_key=key).path, pub)
    assert verification.ok and verification.signature == "valid", verification.lines()
