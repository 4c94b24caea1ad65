"""harness.metrics: PromQL bounds and the Prometheus client, as pure logic (MockTransport), and
the scenario keys at validate time. The real server is driven in tests/test_metrics_prometheus.py."""

from __future__ import annotations

import json
import math
from pathlib import Path

import httpx
import pytest

from harness.errors import ScenarioError
from harness.metrics.checks import ConditionTracker, breach_of, first_broken_at, judge_window
from harness.metrics.client import PrometheusClient, PrometheusError, PromQLError, Sample, Series
from harness.metrics.results import metrics_summary
from harness.scenario import load_scenario
from harness.scenario.model import PromCheck, PrometheusRef
from harness.verdict import Verdict, decide_verdict

REPO = Path(__file__).resolve().parent.parent


def check(**fields: object) -> PromCheck:
    return PromCheck.model_validate({"query": "up", **fields})


# --- bounds ---------------------------------------------------------------------------------------

def test_breach_of_names_the_bound_broken() -> None:
    bounded = check(min=1, max=5)
    assert breach_of(bounded, 3) is None
    assert breach_of(bounded, 5) is None  # bounds are inclusive
    assert breach_of(bounded, 5.5) == "> max 5"
    assert breach_of(bounded, 0.5) == "< min 1"
    assert breach_of(bounded, math.nan) == "not a number"


def test_a_check_needs_a_bound_and_a_sane_one() -> None:
    with pytest.raises(ValueError, match="give a bound"):
        check()
    with pytest.raises(ValueError, match="min .* is above max"):
        check(min=3, max=1)


def test_judge_window_passes_when_every_point_of_every_series_is_within() -> None:
    series = [Series({"tier": "gpu"}, [(1.0, 0.0), (2.0, 0.5)]), Series({"tier": "cpu"}, [(1.0, 1.0)])]
    outcome = judge_window(check(max=1, **{"for": "2s"}), series, 0.0, 2.0)
    assert outcome.passed
    assert outcome.detail == "observed 0 to 1"
    assert outcome.condition == "up ≤ 1 for 2 s"


def test_judge_window_fails_on_the_first_breach_and_says_which_series() -> None:
    series = [Series({"__name__": "x", "tier": "gpu"}, [(1.0, 0.0), (2.0, 7.0), (3.0, 9.0)])]
    outcome = judge_window(check(max=1), series, 0.0, 3.0)
    assert not outcome.passed
    assert outcome.detail == 'x{tier="gpu"} = 7 (> max 1)'


def test_judge_window_fails_without_data() -> None:
    outcome = judge_window(check(max=1), [], 0.0, 3.0)
    assert not outcome.passed
    assert "no data" in outcome.detail


def test_condition_tracker_trips_only_after_for_of_unbroken_breaches() -> None:
    tracker = ConditionTracker(check(max=1, **{"for": "1s"}))
    high, low = [Sample({}, 2.0)], [Sample({}, 0.0)]
    assert tracker.update(10.0, high) is None
    assert tracker.update(10.5, low) is None  # healthy in between: the clock starts again
    assert tracker.update(11.0, high) is None
    assert tracker.update(11.5, high) is None
    trip = tracker.update(12.0, high)
    assert trip is not None
    assert (trip.broken_since, trip.held_at) == (11.0, 12.0)
    assert "= 2 (> max 1) for 1 s" in trip.reason()


def test_condition_tracker_treats_an_empty_answer_as_healthy() -> None:
    tracker = ConditionTracker(check(max=1))
    assert tracker.update(1.0, []) is None
    assert tracker.update(2.0, [Sample({}, 3.0)]) is not None  # for 0 s: the first breach trips


def test_first_broken_at_is_the_start_of_the_last_unbroken_stretch() -> None:
    series = [Series({}, [(1.0, 5.0), (1.1, 0.0), (1.2, 5.0), (1.3, 6.0), (1.4, 7.0)])]
    assert first_broken_at(check(max=1), series, until=1.4) == 1.2
    assert first_broken_at(check(max=10), series, until=1.4) is None


# --- the client -----------------------------------------------------------------------------------

def client_answering(status: int, body: object) -> PrometheusClient:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json=body)

    return PrometheusClient("http://prom.test", transport=httpx.MockTransport(handler))


def test_query_reads_vectors_scalars_and_special_values() -> None:
    vector = {"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {"tier": "gpu"}, "value": [1.5, "0.25"]}, {"metric": {}, "value": [1.5, "NaN"]}]}}
    samples = client_answering(200, vector).query("x")
    assert samples[0] == Sample({"tier": "gpu"}, 0.25)
    assert math.isnan(samples[1].value)
    scalar = {"status": "success", "data": {"resultType": "scalar", "result": [1.5, "+Inf"]}}
    assert client_answering(200, scalar).query("1/0") == [Sample({}, math.inf)]


def test_a_parse_error_is_a_promql_error_and_an_execution_error_is_not() -> None:
    with pytest.raises(PromQLError, match="cannot parse it: unexpected"):
        client_answering(400, {"status": "error", "errorType": "bad_data", "error": "unexpected"}).query("x +")
    with pytest.raises(PrometheusError, match="failed in Prometheus .execution.") as info:
        client_answering(422, {"status": "error", "errorType": "execution", "error": "too many"}).query("x")
    assert not isinstance(info.value, PromQLError)


def test_something_else_answering_is_said_plainly() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="<html>hello</html>")

    client = PrometheusClient("http://prom.test", transport=httpx.MockTransport(handler))
    with pytest.raises(PrometheusError, match="is this a Prometheus server"):
        client.query("up")


def test_unreachable_is_a_prometheus_error_naming_the_url() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    client = PrometheusClient("http://prom.test", transport=httpx.MockTransport(handler))
    with pytest.raises(PrometheusError, match="http://prom.test cannot be reached"):
        client.query("up")


def test_scrape_interval_comes_from_the_running_configuration() -> None:
    config = {"status": "success", "data": {"yaml": "global:\n  scrape_interval: 1s500ms\n"}}
    assert client_answering(200, config).scrape_interval_s() == 1.5


def test_query_range_widens_the_step_to_the_point_limit() -> None:
    seen: dict[str, str] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen.update(request.url.params)
        return httpx.Response(200, json={"status": "success", "data": {"resultType": "matrix", "result": [
            {"metric": {"a": "b"}, "values": [[0, "1"], [100, "2"]]}]}})

    client = PrometheusClient("http://prom.test", transport=httpx.MockTransport(handler))
    series = client.query_range("x", 0.0, 110_000.0, 0.1)
    assert series == [Series({"a": "b"}, [(0.0, 1.0), (100.0, 2.0)])]
    assert float(seen["step"]) == 10.0


# --- scenario keys --------------------------------------------------------------------------------

def write_scenario(tmp_path: Path, extra: str) -> Path:
    base = (REPO / "scenarios" / "steady-state.local.yaml").read_text(encoding="utf-8")
    start = base.index("steady_state:")
    text = base[:start].replace("../targets/", str(REPO / "targets") + "/") + extra
    path = tmp_path / "scenario.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_shipped_scenario_validates() -> None:
    spec = load_scenario(REPO / "scenarios" / "steady-state.local.yaml").spec
    assert len(spec.steady_state) == 3 and len(spec.metrics) == 4


def test_bad_promql_is_bad_input_naming_line_and_field(tmp_path: Path) -> None:
    path = write_scenario(tmp_path, "steady_state:\n  - {query: 'sum(rate(x[5s])', max: 1}\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    lines = path.read_text().splitlines()
    line = next(i for i, text in enumerate(lines, 1) if "sum(rate" in text)
    assert f"scenario.yaml:{line} steady_state[0].query: not valid PromQL" in str(info.value)


def test_stop_when_takes_queries_alone_and_metrics_take_plain_strings(tmp_path: Path) -> None:
    path = write_scenario(tmp_path, "stop_when:\n  queries:\n    - {query: 'max(drill_gateway_breaker_state)', "
                                    "max: 1, for: 1s}\nmetrics:\n  - 'sum(rate(drill_gateway_requests_total[5s]))'\n")
    spec = load_scenario(path).spec
    assert spec.stop_when is not None and spec.stop_when.error_rate is None
    assert spec.stop_when.queries[0].for_s == 1.0
    assert spec.metrics[0].title == "sum(rate(drill_gateway_requests_total[5s]))"


def test_stop_when_needs_a_condition(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="give error_rate, queries"):
        load_scenario(write_scenario(tmp_path, "stop_when: {for: 5s}\n"))


# --- results ----------------------------------------------------------------------------------------

def test_a_steady_state_missed_after_recovery_fails_the_drill_by_name(tmp_path: Path) -> None:
    outcome = {"query": "max(x)", "condition": "max(x) ≤ 0 for 3 s", "passed": False,
               "detail": "{} = 2 (> max 0)", "start": 1.0, "end": 4.0}
    events = [{"event": "metrics.preflight", "url": "http://p", "scrape_interval_s": 1.0, "steady_state": []},
              {"event": "metrics.steady_state_after", "steady_state": [outcome]}]
    (tmp_path / "journal.jsonl").write_text("".join(json.dumps({"ts": 1.0, **e}) + "\n" for e in events))
    (tmp_path / "metrics.json").write_text(json.dumps({"prometheus_url": "http://p", "scrape_interval_s": 1.0,
                                                       "queries": [{"name": "x", "query": "x", "series": []}]}))
    summary = metrics_summary(tmp_path)
    assert summary is not None and not summary.steady_state_held
    assert summary.objectives == [{"name": "steady_state[max(x)]", "target": "max(x) ≤ 0 for 3 s",
                                   "measured": "{} = 2 (> max 0)", "passed": False}]
    # The drill's other objectives were met: the missed steady state alone fails it (exit 1).
    decision = decide_verdict(objectives_met=summary.steady_state_held, abort_reason=None, cleanup_verified=True)
    assert decision.verdict == Verdict.FAILED and decision.verdict.exit_code == 1
    series = summary.document["series"]
    assert isinstance(series, list) and isinstance(series[0], dict) and series[0]["name"] == "x"


# --- the report ---------------------------------------------------------------------------------

def test_recorded_metrics_are_drawn_under_the_timeline_with_the_fault_bands() -> None:
    from test_report import example_results, example_timeline

    from harness.report.charts import metric_svg, run_start_epoch
    from harness.report.html import render_report

    results = example_results()
    origin = run_start_epoch(results)
    assert origin is not None
    points = [[origin + t, 2.0 if 12 <= t < 20 else 0.0] for t in range(0, 40)]
    hosted = {"labels": {"__name__": "drill_gateway_breaker_state", "tier": "hosted", "job": "drill-stack"},
              "points": points}
    results["metrics"] = {"series": [
        {"name": "breaker <state>", "query": 'drill_gateway_breaker_state{tier="hosted"}', "unit": "",
         "series": [hosted]},
        {"name": "nothing", "query": "absent(up)", "unit": "", "series": []},
    ]}
    svg = metric_svg(results, results["metrics"]["series"][0])
    assert svg.startswith("<svg") and "tier=hosted" in svg and "fault onset" in svg
    page = render_report(results, example_timeline(results))
    # Titles are user text: escaped, never markup.
    assert "Stack metric: breaker &lt;state&gt; — PromQL drill_gateway_breaker_state{tier=&#34;hosted&#34;}" in page
    assert "the query returned no data over the run" in page


def test_which_prometheus_a_drill_queries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.metrics.drill import open_metrics_watch
    from harness.rundir.journal import Journal
    from harness.runtime import ExternalRuntime
    from harness.runtime.compose import ComposeRuntime
    from harness.runtime.local import LocalRuntime
    from harness.runtime.stackfile import load_stack

    path = write_scenario(tmp_path, "steady_state:\n  - {query: 'up', min: 1}\n")
    spec = load_scenario(path).spec
    with Journal(tmp_path / "journal.jsonl") as journal:
        # The user's own stack runs no Prometheus drill knows of: bad input, said with the fix.
        with pytest.raises(ScenarioError, match="need a Prometheus: add `prometheus: {url: "):
            open_metrics_watch(spec, path, ExternalRuntime(tmp_path / "logs"), journal, print)
        named = spec.model_copy(update={"prometheus": PrometheusRef(url="http://127.0.0.1:9999/")})
        watch = open_metrics_watch(named, path, ExternalRuntime(tmp_path / "logs"), journal, print)
        assert watch is not None and watch.client.url == "http://127.0.0.1:9999"
        watch.close()
        without = spec.model_copy(update={"steady_state": []})
        assert open_metrics_watch(without, path, ExternalRuntime(tmp_path / "logs"), journal, print) is None
    local = LocalRuntime(load_stack(REPO / "targets" / "local-stack.yaml"), tmp_path / "logs")
    assert local.prometheus_url == "http://127.0.0.1:18099"
    monkeypatch.setenv("DRILL_PORT_PROMETHEUS", "19999")
    compose = ComposeRuntime(REPO / "compose" / "staging.yaml", "drill-staging", tmp_path / "logs")
    assert compose.prometheus_url == "http://127.0.0.1:19999"


def test_recording_stops_asking_a_prometheus_that_does_not_answer(tmp_path: Path) -> None:
    """Recording runs before the rollback: a dead Prometheus costs one timeout, not one per query."""
    from harness.metrics.drill import MetricsWatch
    from harness.rundir.journal import Journal

    asked: list[str] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.params.get("query", ""))
        raise httpx.ConnectError("refused", request=request)

    spec = load_scenario(REPO / "scenarios" / "steady-state.local.yaml").spec
    client = PrometheusClient("http://prom.test", transport=httpx.MockTransport(refuse))
    with Journal(tmp_path / "journal.jsonl") as journal:
        MetricsWatch(spec, client, journal, print).record(tmp_path, 1.0, 2.0)
    recorded = json.loads((tmp_path / "metrics.json").read_text())["queries"]
    assert len(asked) == 1 and len(recorded) == len(spec.metrics) == 4
    assert all(q["series"] == [] and q["error"] for q in recorded)
    assert all(q["error"].startswith("not asked: Prometheus failed on an earlier query") for q in recorded[1:])
