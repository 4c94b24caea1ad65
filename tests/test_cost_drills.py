"""What the failover cost, in real drills of the reference stack (Toxiproxy, mitmdump, the
gateway, cloud-api, Locust): the counts come from the HTTP fault proxy's own log and the cloud's
own record. Shortened phases (harness.testing.drills.shortened): amplification
is a ratio and the control's verdict and a count hold at any length. The region quota denial's
launch in region-b and its spend are checked on the capacity test's own run of that drill
(tests/test_scenarios_capacity.py)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness.runtime.local import LocalRuntime
from harness.testing.drills import (
    SCENARIOS,
    failed_beyond_slowness,
    failed_objectives,
    need_proxy,
    objective,
    rebased,
    run_short,
    shortened,
    verdict_text,
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
    """Reads the gateway's own counters for one upstream (its calls,
    ``drill_gateway_upstream_calls_total``, and those it gave up before any answer,
    ``drill_gateway_upstream_unanswered_total``) and right after them the HTTP fault proxy's live
    count of that route (``/__drill/counts``): (read at, calls, unanswered, proxied)."""

    def __init__(self, url: str, proxy_url: str, upstream: str) -> None:
        self.url, self.proxy_url, self.upstream = url, proxy_url, upstream
        self.last: tuple[float, float, float, int] | None = None

    def read(self) -> None:
        with httpx.Client(timeout=5.0, trust_env=False) as client:
            text = client.get(self.url).text
            counts = client.get(f"{self.proxy_url}/__drill/counts").json()["counts"]
        found = {"drill_gateway_upstream_calls_total": 0.0, "drill_gateway_upstream_unanswered_total": 0.0}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name in found and sample.labels.get("upstream") == self.upstream:
                    found[sample.name] = sample.value
        self.last = (time.time(), found["drill_gateway_upstream_calls_total"],
                     found["drill_gateway_upstream_unanswered_total"], int(counts.get(self.upstream, 0)))


def test_the_429_storm_costs_one_upstream_call_per_request_and_the_counts_agree(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The reference gateway honours Retry-After: during the storm the provider is called about
    once per 5 s, not per request, so amplification stays about 1.0, from the proxy's own count.
    The same run's proxy log agrees with the gateway's own counter of its calls to the provider,
    but for calls the gateway gave up before any answer (its own count of those)."""
    from harness.engine import run_drill

    need_proxy()
    scenario, mapping = rebased(SCENARIOS / "provider-rate-limited.local.yaml", tmp_path)
    scenario.write_text(shortened(scenario.read_text(encoding="utf-8")), encoding="utf-8")
    counter = GatewayCounter(f"http://127.0.0.1:{mapping[8080]}/metrics", f"http://127.0.0.1:{mapping[19101]}",
                             "hosted-model")
    # Read once the load has stopped and before the stack does: the engine stops the stack last.
    stop = LocalRuntime.stop

    def read_then_stop(runtime: LocalRuntime) -> None:
        if counter.last is None:
            counter.read()
        stop(runtime)

    monkeypatch.setattr(LocalRuntime, "stop", read_then_stop)
    result = run_drill(scenario, out=tmp_path / "run")
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
    # An independent count: the gateway's own counters against the proxy's live count, read
    # together after the load stopped (the stack stops after it), when no call is in flight:
    # every call the gateway made reached the proxy, unless the gateway gave it up before any
    # answer (a busy machine's proxy may not have read it yet, or ever).
    assert counter.last is not None, "the gateway's /metrics and the proxy's counts were never read"
    read_at, calls_made, unanswered, proxied = counter.last
    journal = [json.loads(line) for line in (result.run_dir / "journal.jsonl").read_text().splitlines()]
    load_stopped = next(e["ts"] for e in journal if e["event"] == "load.stopped")
    assert read_at > load_stopped, "the counters were last read before the load stopped"
    print(f"gateway: {calls_made:g} calls, {unanswered:g} given up unanswered; proxy: {proxied} calls")
    assert proxied <= calls_made <= proxied + unanswered, (calls_made, unanswered, proxied)
    assert proxied > 50  # the baseline's answers went through the provider route

def test_the_retry_storm_control_fails_on_amplification_and_no_user_sees_an_error(tmp_path: Path) -> None:
    """The storm is invisible to users: no error, every answer from the GPU pool. Its RTO may
    miss beside another drill on slow answers alone (``failed_beyond_slowness``)."""
    result, _ = run_short("controls/retry-storm.local.yaml", tmp_path)
    results = json.loads((result.run_dir / "results.json").read_text(encoding="utf-8"))
    assert result.exit_code == 1
    assert failed_beyond_slowness(results) == {"max_retry_amplification"}, verdict_text(results)
    assert objective(results, "max_error_rate")["measured"] == 0, verdict_text(results)
    [amp] = [o for o in results["objectives"] if o["name"] == "max_retry_amplification"]
    assert amp["measured"] >= 3.0 and "upstream calls" in amp["note"]
    [storm] = cost_of(result.run_dir)["faults"]
    # 1 + 3 retries on the provider per request, counted at the proxy, + the GPU's answer.
    assert storm["calls_by_tier"]["hosted"] >= 3 * storm["client_requests"]


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
    assert "stop" in results, results.get("abort_reason")  # aborted, but by something else
    assert results["stop"]["condition"] == "retry amplification ≥ 3x for 2 s"
    assert results["stop"]["measured"] >= 3 and results["stop"]["first_revert_at"] is not None
    assert "retry amplification" in results["abort_reason"] and results["cleanup"]["ok"] is True
