"""The minimal campaign runner: real drills in order, a summary and an index linking reports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.campaign import campaign_status, load_campaign, run_campaign
from harness.errors import ScenarioError
from harness.testing import free_port, serve_in_thread
from harness.testing.drills import own_service
from harness.testing.drills import own_service_scenario as scenario

REPO = Path(__file__).resolve().parents[1]


def test_shipped_quarterly_campaign_names_every_mission_fault() -> None:
    spec, paths = load_campaign(REPO / "scenarios/quarterly.yaml")
    assert spec.name == "quarterly"
    assert [p.name for p in paths] == [
        "endpoint-kill.yaml", "hosted-latency.yaml", "provider-rate-limited.yaml", "provider-overloaded.yaml",
        "stream-cut.yaml", "gpu-node-loss.yaml", "region-quota-denial.yaml",
        "provider-latency-ramp.local.yaml", "provider-brownout.local.yaml", "provider-flapping.local.yaml",
        "compound-outage.local.yaml",
    ]


def test_bad_campaign_file_is_bad_input_naming_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "c.yaml"
    bad.write_text("apiVersion: drill/v1\nkind: Campaign\nname: q\nscenarios: [missing.yaml]\n")
    with pytest.raises(ScenarioError, match=r"c.yaml:4 scenarios\[0\]: no such file"):
        load_campaign(bad)
    bad.write_text("apiVersion: drill/v1\nkind: Campaign\nname: q\nscenarios: []\n")
    with pytest.raises(ScenarioError, match="scenarios"):
        load_campaign(bad)


@pytest.mark.slow
@pytest.mark.beside_drills  # an in-process service of its own: little CPU (tests/conftest.py)
def test_campaign_runs_scenarios_in_order_and_links_each_report(tmp_path: Path, toxiproxy_url: str) -> None:
    with serve_in_thread(own_service()) as url:
        scenario(tmp_path, toxiproxy_url, url.removeprefix("http://"), free_port())
        broken = tmp_path / "broken.yaml"
        broken.write_text("apiVersion: drill/v1\nkind: Scenario\nname: broken\n")
        campaign = tmp_path / "campaign.yaml"
        campaign.write_text(
            "apiVersion: drill/v1\nkind: Campaign\nname: q1\nscenarios: [own.yaml, broken.yaml]\n"
        )
        said: list[str] = []
        result = run_campaign(campaign, tmp_path / "reports", say=said.append)

    assert [r.verdict for r in result.runs] == ["passed", "bad_input"]
    # A verdict line per scenario as the campaign goes, the reason beside a failure.
    assert "campaign q1: [1/2] own.yaml: PASSED" in said
    assert any(line.startswith("campaign q1: [2/2] broken.yaml: BAD_INPUT (") for line in said)
    assert result.exit_code == 2 and result.verdict == "bad_input"
    summary = campaign_status(result.campaign_dir)
    assert summary["schema"] == "drill.campaign/v1"
    assert summary["runs"][0]["faults"][0]["name"] == "slow"
    assert summary["runs"][1]["error"]
    index = result.index_path.read_text()
    assert 'href="01-own/report.html"' in index
    assert (result.campaign_dir / "01-own" / "report.html").exists()
    assert json.loads(result.summary_path.read_text())["runs"][0]["exit_code"] == 0
    combined = (result.campaign_dir / "junit.xml").read_text()
    assert combined.count("<testsuite ") == 2 and 'errors="1"' in combined  # the broken scenario errs
