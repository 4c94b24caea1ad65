"""What the failover cost, in real drills of the reference stack (Toxiproxy, mitmdump, the
gateway, cloud-api, Locust): the counts come from the HTTP fault proxy's own log and the cloud's
own record. Shortened phases (harness.testing.drills.shortened): amplification
is a ratio and the control's verdict, a count and a launch hold at any length."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness.testing.drills import (
    CAPACITY_PHASES,
    SCENARIOS,
    failed_objectives,
    need_proxy,
    rebased,
    run_short,
    shortened,
)
from harness.testing.runs import epoch

pytestmark = pytest.mark.slow


def cost_of(run_dir: Path) -> dict[str, Any]:
    cost: dict[str, Any] = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))["cost"]
    return cost


def proxy_calls(run_dir: Path) -> list[dict[str, Any]]:
    records = json.loads((run_dir / "cost-records.json").read_text(encoding="utf-8"))
    assert records["proxy"]["ok"], records["proxy"]
    calls: list[dict[str, Any]] = records["proxy"]["calls"]
    return calls


class GatewayCounter:
    """Scrapes the gateway's own ``drill_gateway_upstream_calls_total`` for one upstream while a
    drill runs: the stack's count, independent of the proxy's log. Keeps every scrape as (sent
    at, answered at, value)."""

    def __init__(self, url: str, upstream: str) -> None:
        self.url, self.upstream = url, upstream
        self.scrapes: list[tuple[float, float, float]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        with httpx.Client(timeout=1.0, trust_env=False) as client:
            while not self.stop.wait(0.2):
                sent = time.time()
                try:
                    text = client.get(self.url).text
                except httpx.HTTPError:
                    continue
                answered = time.time()
                for family in text_string_to_metric_families(text):
                    for sample in family.samples:
                        if (sample.name == "drill_gateway_upstream_calls_total"
                                and sample.labels.get("upstream") == self.upstream):
                            self.scrapes.append((sent, answered, sample.value))


QUIET_S = 1.0  # no call logged this close to a scrape: none can be in flight between the two


def test_the_429_storm_costs_one_upstream_call_per_request_and_the_counts_agree(tmp_path: Path) -> None:
    """The reference gateway honours Retry-After: during the storm the provider is called about
    once per 5 s, not per request, so amplification stays about 1.0, from the proxy's own count.
    The same run's proxy log agrees with the gateway's own counter of its calls to the provider,
    within the requests in flight when the counter was last read."""
    from harness.engine import run_drill

    need_proxy()
    scenario, mapping = rebased(SCENARIOS / "provider-rate-limited.local.yaml", tmp_path)
    scenario.write_text(shortened(scenario.read_text(encoding="utf-8")), encoding="utf-8")
    counter = GatewayCounter(f"http://127.0.0.1:{mapping[8080]}/metrics", "hosted-model")
    counter.thread.start()
    try:
        result = run_drill(scenario, out=tmp_path / "run")
    finally:
        counter.stop.set()
        counter.thread.join(timeout=5)
    # The shipped drill's other objectives are its own tests' business (a busy machine may make
    # the run inconclusive); this test is about what the storm cost.
    assert "max_retry_amplification" not in failed_objectives(
        json.loads((result.run_dir / "results.json").read_text(encoding="utf-8")))
    cost = cost_of(result.run_dir)
    [storm] = cost["faults"]
    assert 0.95 <= storm["amplification"] <= 1.3, storm
    calls = proxy_calls(result.run_dir)
    start, end = epoch(storm["start"]), epoch(storm["end"])
    counted = [c for c in calls if c["proxy"] == "hosted-model" and start <= c["at"] < end]
    # The hosted tier's calls in the storm are the proxy's own: the 429s it answered.
    assert storm["calls_by_tier"]["hosted"] == len(counted) == sum(storm["proxy_statuses"].values())
    assert storm["proxy_statuses"].get("429", 0) >= 1
    assert cost["phases"]["fault"]["tiers"]["hosted"]["source"] == "proxy hosted-model"
    # An independent count: the gateway's own counter against the proxy's log, at the scrapes
    # taken while the provider route was quiet (while the gateway skips the throttled provider,
    # it calls it about once per Retry-After). The gateway counts a call as it sends it and the
    # proxy logs it as it reads it, so only where no call is logged within QUIET_S of a scrape can
    # neither count hold a call the other has not seen yet; there the two must be equal.
    hosted = sorted(c["at"] for c in calls if c["proxy"] == "hosted-model")
    quiet = [(sent, answered, value) for sent, answered, value in counter.scrapes
             if not any(sent - QUIET_S <= at <= answered + QUIET_S for at in hosted)]
    assert counter.scrapes, "the gateway's /metrics was never read"
    assert quiet, f"no scrape of {len(counter.scrapes)} fell in a quiet second of the provider route"
    for sent, _answered, value in quiet:
        proxied = sum(1 for at in hosted if at < sent)
        assert value == proxied, (sent, value, proxied)
    print(f"gateway counter = proxy log at {len(quiet)} quiet scrapes of {len(counter.scrapes)}")
    assert quiet[-1][2] > 50  # the baseline's answers went through the provider route


def test_the_retry_storm_control_fails_on_amplification_while_its_rto_passes(tmp_path: Path) -> None:
    result, _ = run_short("controls/retry-storm.local.yaml", tmp_path)
    results = json.loads((result.run_dir / "results.json").read_text(encoding="utf-8"))
    assert result.exit_code == 1
    assert failed_objectives(results) == {"max_retry_amplification"}
    [amp] = [o for o in results["objectives"] if o["name"] == "max_retry_amplification"]
    assert amp["measured"] >= 3.0 and "upstream calls" in amp["note"]
    [storm] = cost_of(result.run_dir)["faults"]
    # 1 + 3 retries on the provider per request, counted at the proxy, + the GPU's answer.
    assert storm["calls_by_tier"]["hosted"] >= 3 * storm["client_requests"]


def test_the_region_quota_denial_reports_the_instances_launched_in_region_b(tmp_path: Path) -> None:
    from harness.engine import run_drill

    need_proxy()
    scenario, _ = rebased(SCENARIOS / "region-quota-denial.local.yaml", tmp_path)
    # Shortened; the node loss 2 s in lasts to the end of the fault phase, which is long enough
    # for the replacement to land.
    text = shortened(scenario.read_text(encoding="utf-8"), CAPACITY_PHASES)
    scenario.write_text(text, encoding="utf-8")
    result = run_drill(scenario, out=tmp_path / "run")
    assert result.exit_code in (0, 1), result.abort_reason
    cost = cost_of(result.run_dir)
    launched = [i for i in cost["instances"] if i["launched_in_run"]]
    assert [i["region"] for i in launched] == ["region-b"], cost["instances"]
    assert launched[0]["lifetime_in_run_s"] > 0 and launched[0]["spend"] > 0
    assert cost["extra_spend"] is not None and cost["example_prices"]
    assert "cloud's own record" in cost["sources"]["instances"]


def test_the_amplification_stop_condition_aborts_the_retry_storm_and_reverts(tmp_path: Path) -> None:
    """``stop_when.retry_amplification`` on the retry-storm control: the drill aborts (exit 3)
    in the storm, reverted; how fast is bench/cost_stop_reaction.py's business."""
    from harness.engine import run_drill

    need_proxy()
    scenario, _ = rebased(SCENARIOS / "controls" / "retry-storm.local.yaml", tmp_path)
    text = shortened(scenario.read_text(encoding="utf-8")).replace("expect: failed\n", "expect: aborted\n")
    scenario.write_text(text + "stop_when: {retry_amplification: 3, for: 2s}\n", encoding="utf-8")
    result = run_drill(scenario, out=tmp_path / "run")
    results = json.loads((result.run_dir / "results.json").read_text(encoding="utf-8"))
    assert result.exit_code == 3 and results["verdict"] == "aborted"
    assert results["stop"]["condition"] == "retry amplification ≥ 3x for 2 s"
    assert results["stop"]["measured"] >= 3 and results["stop"]["first_revert_at"] is not None
    assert "retry amplification" in results["abort_reason"] and results["cleanup"]["ok"] is True
