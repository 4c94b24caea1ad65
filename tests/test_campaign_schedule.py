"""Campaign schedules: `every: 90d` and `drill campaign status` saying when a campaign is overdue
(exit 5, for monitoring). Past campaign runs are campaign.json files as `drill campaign run`
writes them; no drill runs here."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from harness.campaign import load_campaign, schedule
from harness.errors import EXIT_BAD_INPUT, EXIT_OVERDUE

REPO = Path(__file__).resolve().parents[1]
DRILL = [sys.executable, "-m", "harness.cli"]
DAY_S = 86400.0


def campaign_file(tmp_path: Path, every: str | None = "90d") -> Path:
    (tmp_path / "a.yaml").write_text((REPO / "scenarios" / "latency.yaml").read_text())
    path = tmp_path / "c.yaml"
    path.write_text("apiVersion: drill/v1\nkind: Campaign\nname: q\n"
                    + (f"every: {every}\n" if every else "") + "scenarios: [a.yaml]\n")
    return path


def past_run(reports: Path, days_ago: float) -> Path:
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - days_ago * DAY_S))
    run_dir = reports / "q" / f"{started.replace(':', '').replace('-', '')}-abc"
    run_dir.mkdir(parents=True)
    (run_dir / "campaign.json").write_text(json.dumps({
        "schema": "drill.campaign/v1", "name": "q", "started_at": started, "ended_at": started,
        "verdict": "passed", "exit_code": 0, "every_s": 90 * DAY_S, "runs": [],
    }))
    return run_dir


def status(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(DRILL + ["campaign", "status", *args], capture_output=True, text=True, timeout=60)


def test_every_parses_days_and_the_shipped_campaign_is_quarterly(tmp_path: Path) -> None:
    spec, _ = load_campaign(campaign_file(tmp_path))
    assert spec.every == 90 * DAY_S
    assert load_campaign(REPO / "scenarios" / "quarterly.yaml")[0].every == 90 * DAY_S


def test_overdue_campaign_exits_5_and_says_by_how_much(tmp_path: Path) -> None:
    path = campaign_file(tmp_path)
    past_run(tmp_path / "reports", days_ago=100)
    proc = status(str(path), "--reports-dir", str(tmp_path / "reports"))
    assert proc.returncode == EXIT_OVERDUE, proc.stderr
    assert "OVERDUE by 10 days" in proc.stdout


def test_campaign_on_schedule_exits_0_and_says_when_next(tmp_path: Path) -> None:
    path = campaign_file(tmp_path)
    run_dir = past_run(tmp_path / "reports", days_ago=30)
    proc = status(str(path), "--reports-dir", str(tmp_path / "reports"))
    assert proc.returncode == 0, proc.stderr
    assert "on schedule" in proc.stdout and "in 60 days" in proc.stdout
    assert status(str(run_dir)).returncode == 0  # the run directory carries every_s itself


def test_never_run_is_overdue_only_with_every(tmp_path: Path) -> None:
    proc = status(str(campaign_file(tmp_path)), "--reports-dir", str(tmp_path / "reports"))
    assert proc.returncode == EXIT_OVERDUE and "never run" in proc.stdout
    other = tmp_path / "other"
    other.mkdir()
    proc = status(str(campaign_file(other, every=None)), "--reports-dir", str(other / "reports"))
    assert proc.returncode == EXIT_BAD_INPUT and "no run" in proc.stderr


def test_schedule_logic_at_the_boundary() -> None:
    due = schedule(10.0, {"started_at": "2026-01-01T00:00:00Z"}, now=1767225600.0 + 10.0)
    assert due is not None and not due.overdue
    due = schedule(10.0, {"started_at": "2026-01-01T00:00:00Z"}, now=1767225600.0 + 10.5)
    assert due is not None and due.overdue
    assert schedule(None, None) is None


def test_campaign_junit_combines_every_run(tmp_path: Path, latency_run) -> None:  # type: ignore[no-untyped-def]
    import xml.etree.ElementTree as ET

    from harness.campaign import CampaignResult, CampaignRun, _write

    run_dir = latency_run(tmp_path, "01-latency")
    result = CampaignResult("q", tmp_path, [
        CampaignRun(str(REPO / "scenarios" / "latency.yaml"), 1, "failed", str(run_dir)),
        CampaignRun(str(tmp_path / "broken.yaml"), 2, "bad_input", None, "broken.yaml:3 name: field required"),
    ], "2026-01-01T00:00:00Z", "2026-01-01T00:05:00Z", 90 * DAY_S)
    _write(result)
    root = ET.parse(tmp_path / "junit.xml").getroot()
    run_suite = next(ET.parse(run_dir / "junit.xml").getroot().iter("testsuite"))
    assert [s.get("name") for s in root.iter("testsuite")] == [run_suite.get("name"), "broken"]
    assert int(root.get("tests") or 0) == int(run_suite.get("tests") or 0) + 1
    assert int(root.get("errors") or 0) == int(run_suite.get("errors") or 0) + 1
    assert "field required" in (tmp_path / "junit.xml").read_text()
    assert json.loads((tmp_path / "campaign.json").read_text())["every_s"] == 90 * DAY_S
