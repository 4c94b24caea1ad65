"""What the failover cost: the pure figures (harness/measure/cost.py), the prices' validation,
and the figures as people see them (results.json, junit, terminal, report), from a run
directory with cost records. The real drills are in tests/test_cost_drills.py."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from harness.cli import main
from harness.measure import cost
from harness.measure.testing import concat_samples, probe_segment
from harness.report.cost import cost_lines, spend_question
from harness.report.junit import build_junit
from harness.results import compute_results
from harness.scenario import load_scenario
from harness.testing import REPO
from harness.testing.hostile import T0, synthetic_run

PRICES = cost.PriceTable(
    currency="USD", example=True,
    tiers={"hosted": cost.TierRate(per_1m_output_tokens=15.0), "gpu": cost.TierRate(per_instance_hour=4.0),
           "cpu": cost.TierRate(per_1k_requests=0.02)},
    regions={"region-b": 6.5},
)
PHASES = {"baseline": (T0, T0 + 10.0), "fault": (T0 + 10.0, T0 + 20.0), "recovery": (T0 + 20.0, T0 + 30.0)}


def streamed(frame: pd.DataFrame, tokens: int, completed: int = 1) -> pd.DataFrame:
    frame = frame.copy()
    frame["stream"], frame["tokens"], frame["stream_completed"] = 1, tokens, completed
    return frame


def storm_samples() -> pd.DataFrame:
    """10 s served by hosted, 10 s by gpu (the storm), 10 s by hosted again; 10 req/s, 16 tokens."""
    return concat_samples(
        streamed(probe_segment(T0, 10.0, 10.0, tier="hosted", served_by="hosted-model"), 16),
        streamed(probe_segment(T0 + 10.0, 10.0, 10.0, tier="gpu", served_by="gpu-a1"), 16),
        streamed(probe_segment(T0 + 20.0, 10.0, 10.0, tier="hosted", served_by="hosted-model"), 16),
    )


def storm_calls(retries: int) -> list[cost.ProxyCall]:
    """The proxy's log: one call per hosted answer; in the storm 1 + ``retries`` 429s per request."""
    calls = [cost.ProxyCall("hosted-model", T0 + i / 10.0, 200, None) for i in range(100)]
    calls += [cost.ProxyCall("hosted-model", T0 + 10.0 + i / 10.0, 429, "storm")
              for i in range(100) for _ in range(1 + retries)]
    calls += [cost.ProxyCall("hosted-model", T0 + 20.0 + i / 10.0, 200, None) for i in range(100)]
    return calls


def figures(retries: int, instances: list[cost.InstanceRecord] | None = None,
            prices: cost.PriceTable | None = PRICES) -> cost.CostFigures:
    samples = storm_samples()
    return cost.cost_figures(samples, PHASES, [("storm", T0 + 10.0, T0 + 20.0)], storm_calls(retries),
                             cost.route_tiers(samples, ["hosted-model"]), instances, prices)


def test_amplification_counts_proxy_calls_for_the_proxied_tier_and_answers_for_the_rest() -> None:
    honoured, storm = figures(retries=0), figures(retries=3)
    fault = storm.faults[0]
    # 400 calls at the proxy (4 per request) + 100 gpu answers, for 100 client requests.
    assert (fault.client_requests, fault.upstream_calls, fault.amplification) == (100, 500, 5.0)
    assert fault.calls_by_tier == {"gpu": 100, "hosted": 400}
    assert fault.proxy_statuses == {"429": 400}
    assert storm.phases["fault"].tiers["hosted"].source == "proxy hosted-model"
    assert storm.phases["fault"].tiers["gpu"].source == "answers served"
    assert honoured.faults[0].amplification == 2.0  # one 429 and one gpu answer per request
    assert storm.phases["baseline"].amplification == 1.0


def test_spend_per_phase_tokens_and_instances_at_the_prices() -> None:
    instances = [
        cost.InstanceRecord("i-1", "region-a", "gpu-a1", T0 - 100.0, None, True),
        cost.InstanceRecord("i-2", "region-b", "gpu-b1", T0 + 12.0, T0 + 24.0, False),
    ]
    f = figures(retries=0, instances=instances)
    base, fault = f.phases["baseline"], f.phases["fault"]
    assert base.spend is not None and f.extra_spend is not None
    # baseline: 100 answers x 16 tokens at 15/1M + 10 s of a region-a instance at 4/h.
    assert base.spend == pytest.approx(1600 * 15 / 1e6 + 10 / 3600 * 4.0, abs=1e-8)
    assert base.cost_per_1k_requests == pytest.approx(base.spend / 100 * 1000, abs=1e-8)
    # The pool's instances are paid for in the baseline too, though it served nothing then.
    assert base.tiers["gpu"].answers == 0
    assert base.tiers["gpu"].spend == pytest.approx(10 / 3600 * 4.0, abs=1e-8)
    # fault: no hosted tokens; 10 s region-a + 8 s region-b at 6.5/h.
    assert fault.spend == pytest.approx(10 / 3600 * 4.0 + 8 / 3600 * 6.5, abs=1e-8)
    assert fault.instance_hours == {"region-a": pytest.approx(10 / 3600, abs=1e-6), "region-b": pytest.approx(8 / 3600, abs=1e-6)}
    launched = [i for i in f.instances if i.launched_in_run]
    assert [(i.id, i.region, i.lifetime_in_run_s) for i in launched] == [("i-2", "region-b", 12.0)]
    assert launched[0].spend == pytest.approx(12 / 3600 * 6.5, abs=1e-8)
    expected_extra = sum(p.spend or 0.0 for n, p in f.phases.items() if n != "baseline") - 2 * base.spend
    assert f.extra_spend == pytest.approx(expected_extra, abs=1e-6)


def test_without_prices_only_the_counts() -> None:
    f = figures(retries=1, prices=None)
    assert not f.priced and f.extra_spend is None and f.phases["fault"].spend is None
    assert f.faults[0].upstream_calls == 300
    assert any("no prices" in n for n in f.notes)


def test_tokens_wasted_are_those_of_streams_never_received_whole() -> None:
    samples = concat_samples(streamed(probe_segment(T0, 1.0, 10.0, tier="gpu"), 16),
                             streamed(probe_segment(T0 + 1.0, 1.0, 10.0, tier="gpu"), 5, completed=0))
    f = cost.cost_figures(samples, {"fault": (T0, T0 + 2.0)}, [], None, {}, None, None)
    gpu = f.phases["fault"].tiers["gpu"]
    assert (gpu.output_tokens, gpu.tokens_wasted) == (10 * 16 + 10 * 5, 10 * 5)


def test_cost_objectives_name_the_counts_and_resolve_a_baseline_factor() -> None:
    storm = figures(retries=3)
    amp, per_1k = cost.cost_objectives(1.5, (None, 1.5), storm)
    assert (amp.name, amp.measured, amp.passed) == ("max_retry_amplification", 5.0, False)
    assert amp.note == "fault storm: 500 upstream calls / 100 client requests"
    assert per_1k.name == "max_cost_per_1k_requests" and per_1k.target == "1.5x baseline"
    # The storm moved answers to unpriced-per-token gpu with no instance record: cheaper.
    assert per_1k.passed and per_1k.note is not None and "x baseline" in per_1k.note
    [unpriced] = cost.cost_objectives(None, (2.0, None), figures(retries=0, prices=None))
    assert unpriced.measured is None and not unpriced.passed and unpriced.note == "no prices"


# --- prices in a scenario ------------------------------------------------------------------------

SHIPPED_RATE_LIMITED = REPO / "scenarios" / "provider-rate-limited.local.yaml"


def scenario_with(tmp_path: Path, cost_block: str, objectives: str = "") -> Path:
    text = SHIPPED_RATE_LIMITED.read_text(encoding="utf-8")
    start = text.index("cost:\n")
    end = text.index("objectives:\n")
    text = text[:start] + cost_block + text[end:]
    if objectives:
        text = text.replace("objectives:\n", "objectives:\n" + objectives)
    text = text.replace("../targets/", str(REPO / "targets") + "/")
    path = tmp_path / "s.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def test_a_negative_price_is_bad_input_naming_file_line_and_field(tmp_path: Path) -> None:
    path = scenario_with(tmp_path, "cost:\n  tiers:\n    hosted: {per_1m_output_tokens: -1}\n")
    done = CliRunner().invoke(main, ["validate", str(path)])
    assert done.exit_code == 2
    assert f"s.yaml:{line_of(path, 'per_1m_output_tokens')} cost.tiers.hosted.per_1m_output_tokens" in done.output


def test_a_price_file_is_validated_with_its_own_file_and_line(tmp_path: Path) -> None:
    prices = tmp_path / "prices.yaml"
    prices.write_text("apiVersion: drill/v1\nkind: Prices\nexample: true\ntiers:\n  gpu: {per_instance_hour: 4}\n"
                      "regions:\n  region-b: {per_hour: 6.5}\n", encoding="utf-8")
    path = scenario_with(tmp_path, "cost: {prices: prices.yaml}\n")
    done = CliRunner().invoke(main, ["validate", str(path)])
    assert done.exit_code == 2
    assert "prices.yaml:7 regions.region-b.per_hour" in done.output
    prices.write_text("apiVersion: drill/v1\nkind: Prices\ncurrency: EUR\ntiers:\n  gpu: {per_instance_hour: 4}\n",
                      encoding="utf-8")
    loaded = load_scenario(path)
    assert loaded.spec.cost is not None and loaded.spec.cost.effective is not None
    assert loaded.spec.cost.effective.currency == "EUR"


def test_a_cost_objective_without_prices_is_bad_input(tmp_path: Path) -> None:
    path = scenario_with(tmp_path, "", objectives="  max_cost_per_1k_requests: 1.5x baseline\n")
    done = CliRunner().invoke(main, ["validate", str(path)])
    assert done.exit_code == 2
    assert "objectives.max_cost_per_1k_requests: needs prices" in done.output
    path = scenario_with(tmp_path, "", objectives="  max_cost_per_1k_requests: 1.5 times\n")
    done = CliRunner().invoke(main, ["validate", str(path)])
    assert done.exit_code == 2 and "'1.5x baseline'" in done.output


# --- from a run directory to what people read ----------------------------------------------------


def run_with_cost_records(tmp_path: Path, retries: int) -> Path:
    run_dir = synthetic_run(tmp_path / "run")
    scenario = run_dir / "scenario.yaml"
    scenario.write_text(scenario.read_text().replace(
        "objectives: {rto_s: 5}\n", "objectives: {rto_s: 5, max_retry_amplification: 1.5}\n"), encoding="utf-8")
    # The synthetic run: hosted answers 0-5 s, 503s 5-9 s (the fault), hosted again from 9 s.
    calls = [{"proxy": "hosted", "at": T0 + i / 20.0, "status": 200, "fault": None} for i in range(100)]
    calls += [{"proxy": "hosted", "at": T0 + 5.0 + i / 20.0, "status": 429, "fault": "x"}
              for i in range(80) for _ in range(1 + retries)]
    records = {
        "fetched_at": T0 + 21,
        "prices": {"currency": "USD", "example": True, "tiers": {"gpu": {"per_instance_hour": 4.0}},
                   "regions": {"region-b": {"per_instance_hour": 6.5}}},
        "proxy": {"url": "http://127.0.0.1:1", "ok": True, "calls": calls, "counts": {"hosted": len(calls)}},
        "instances": {"url": "http://127.0.0.1:2/instances", "ok": True, "records": [
            {"id": "i-00003", "region": "region-b", "node": "gpu-b1", "created_at": T0 + 6.0,
             "terminated_at": None, "preexisting": False, "state": "running"}]},
    }
    (run_dir / "cost-records.json").write_text(json.dumps(records), encoding="utf-8")
    return run_dir


def test_a_run_directory_with_cost_records_fails_on_amplification_everywhere_people_look(tmp_path: Path) -> None:
    run_dir = run_with_cost_records(tmp_path, retries=3)
    results, _ = compute_results(run_dir)
    assert results.cost is not None
    [amp] = [o for o in results.objectives if o.name == "max_retry_amplification"]
    assert (amp.measured, amp.passed) == (4.0, False)  # 4 calls at the proxy per request
    assert str(results.verdict) == "failed"
    assert "proxy" in results.cost.sources["upstream calls"]
    lines = cost_lines(results)
    # The onset is at 5.01 s: the window holds 79 requests and their 4 x 79 calls.
    assert lines[0].startswith("cost: provider-down: retry amplification 4.00x (316 upstream calls / 79 client")
    assert any("instance i-00003 (gpu-b1) launched in region-b" in line for line in lines)
    props = {p.get("name"): p.get("value") for p in build_junit(results).iter("property")}
    assert props["retry_amplification[provider-down]"] == "4.000"
    assert props["upstream_calls[provider-down]"] == "316"
    assert props["instances_launched"] == "1"
    question = spend_question(results)
    assert question is not None and "Who approves this spend" in question and "region-b" in question
    done = CliRunner().invoke(main, ["report", str(run_dir)])
    html = (run_dir / "report.html").read_text(encoding="utf-8")
    assert "What it cost" in html and "proxy hosted" in html and "gpu-b1" in html, done.output
    junit = ET.parse(run_dir / "junit.xml").getroot()
    assert any(c.get("name") == "max_retry_amplification" and c.find("failure") is not None
               for c in junit.iter("testcase"))


def test_honoured_retry_after_passes_the_same_objective(tmp_path: Path) -> None:
    run_dir = run_with_cost_records(tmp_path, retries=0)
    results, _ = compute_results(run_dir)
    [amp] = [o for o in results.objectives if o.name == "max_retry_amplification"]
    assert (amp.measured, amp.passed) == (1.0, True)


# --- the live stop condition on amplification ----------------------------------------------------


def test_the_amplification_watch_holds_only_over_a_whole_window_of_counts() -> None:
    from harness.engine.costs import AmplificationWatch

    watch = AmplificationWatch(threshold=3.0, for_s=1.0)
    rows = [{"end": T0 + i / 10.0, "served_by": "gpu-a1", "tier": "gpu"} for i in range(30)]
    watch.add_rows(rows[:10])
    watch.add_count(T0, {"hosted-model": 0})
    assert watch.check(T0 + 0.5) is None  # the counts do not cover a window yet
    watch.add_count(T0 + 1.0, {"hosted-model": 20})  # 2 provider calls per request: 3 with the gpu answer
    trip = watch.check(T0 + 1.0)
    assert trip is not None and (trip.requests, trip.proxy_calls, trip.upstream_calls) == (9, 20, 29)
    assert trip.amplification == pytest.approx(29 / 9)
    watch.add_rows(rows[10:20])
    watch.add_count(T0 + 2.0, {"hosted-model": 25})  # the provider is skipped again
    assert watch.check(T0 + 2.0) is None


def test_the_tabletop_sheet_asks_who_approves_the_spend(tmp_path: Path) -> None:
    import zipfile

    from harness.engine.outputs import write_outputs
    from harness.evidence.pack import build_pack

    run_dir = run_with_cost_records(tmp_path, retries=3)
    results, timeline = compute_results(run_dir)
    write_outputs(run_dir, results, timeline)
    pack = build_pack(run_dir, tmp_path / "p.zip").path
    with zipfile.ZipFile(pack) as zf:
        sheet = zf.read("tabletop.html").decode()
    assert "Inject: " in sheet and sheet.count("Who approves this spend") >= 2  # a question and a finding
    assert "instance(s) were launched in region-b" in sheet


def test_without_prices_or_an_instance_record_the_report_shows_the_counts_alone(tmp_path: Path) -> None:
    run_dir = run_with_cost_records(tmp_path, retries=1)
    records = json.loads((run_dir / "cost-records.json").read_text(encoding="utf-8"))
    records["prices"] = None
    del records["instances"]
    (run_dir / "cost-records.json").write_text(json.dumps(records), encoding="utf-8")
    done = CliRunner().invoke(main, ["report", str(run_dir)])
    assert done.exit_code == 1, done.output  # amplification 2.0 > 1.5
    html = (run_dir / "report.html").read_text(encoding="utf-8")
    assert "No prices were given: counts only." in html
    assert "no instance record" in html and "USD" not in html
    results = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    assert results["cost"]["faults"][0]["amplification"] == 2.0 and results["cost"]["extra_spend"] is None


def test_drill_history_trends_amplification_and_flags_its_growth(tmp_path: Path) -> None:
    from harness.engine.outputs import write_outputs
    from harness.report.history import collect, flag_regressions, to_csv

    reports = tmp_path / "reports"
    for index, retries in enumerate((0, 3)):
        run_dir = run_with_cost_records(reports / f"q{index}", retries=retries)
        journal = run_dir / "journal.jsonl"
        # The second run started a quarter later (its first record; the figures keep their clock).
        shifted = journal.read_text(encoding="utf-8").replace(
            f'"ts": {T0 - 1}, "event": "run.start"', f'"ts": {T0 - 1 + index * 8e6}, "event": "run.start"')
        journal.write_text(shifted, encoding="utf-8")
        results, timeline = compute_results(run_dir)
        write_outputs(run_dir, results, timeline)
    history = collect(reports)
    flag_regressions(history)
    points = sorted(history.points, key=lambda p: p.started)
    assert [p.values["retry_amplification"] for p in points] == [1.0, 4.0]
    assert "retry amplification 1.00x → 4.00x" in points[1].regressions["retry_amplification"]
    assert to_csv(history).splitlines()[0].endswith("retry_amplification,cost_per_1k_requests")


def test_cost_records_are_best_effort_when_the_proxy_answers_nonsense(tmp_path: Path) -> None:
    import httpx

    from harness.engine.costs import save_cost_records
    from harness.httpfaults.client import HttpFaultClient

    transport = httpx.MockTransport(lambda request: httpx.Response(200, text="not json"))
    client = HttpFaultClient("http://127.0.0.1:9", transport=transport)
    loaded = load_scenario(SHIPPED_RATE_LIMITED)
    assert loaded.spec.cost is not None
    loaded.spec.cost.instances_url = None  # nothing else to fetch
    save_cost_records(loaded, tmp_path, client, {"baseline": [T0, T0 + 10]})
    records = json.loads((tmp_path / "cost-records.json").read_text(encoding="utf-8"))
    assert records["proxy"]["ok"] is False and "JSONDecodeError" in records["proxy"]["error"]
    assert records["prices"]["tiers"]["hosted"]["per_1m_output_tokens"] == 15.0


def test_a_route_no_answer_names_is_counted_under_its_name_or_the_declared_tier() -> None:
    samples = storm_samples()
    calls = [cost.ProxyCall("provider-route", c.at, c.status, c.fault) for c in storm_calls(0)]
    unnamed = cost.cost_figures(samples, PHASES, [], calls, cost.route_tiers(samples, ["provider-route"]), None, None)
    assert unnamed.phases["baseline"].tiers["provider-route"].upstream_calls == 100
    assert any("cost.routes" in note for note in unnamed.notes)
    declared = cost.cost_figures(samples, PHASES, [], calls, {"provider-route": "hosted"}, None, None)
    assert declared.phases["baseline"].tiers["hosted"].source == "proxy provider-route"
    assert declared.phases["baseline"].amplification == 1.0 and not any("cost.routes" in n for n in declared.notes)
