"""The report room: results.json, junit.xml, charts and report.html from a realistic example run.

Pure logic over files: no stack, no network. The example results live in
tests/data/results-example.json; the timeline is synthesised here to match it (an outage of
the hosted tier with failover to gpu and failback after revert). tests/data/capacity-example/ is
a run directory's results.json and samples/capacity.csv for a GPU node loss (target 2 nodes in
region-a, replacement in region-b, three failed polls), measured by harness.measure.capacity.
"""

from __future__ import annotations

import html as html_lib
import json
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from harness.errors import ScenarioError
from harness.report import write_junit, write_report
from harness.report.charts import (
    capacity_marks,
    capacity_steps,
    capacity_svg,
    downsample,
    tier_columns,
    tier_share_svg,
    timeline_svg,
)
from harness.report.formatting import quantity
from harness.results import SCHEMA, RunResults, read_results, write_results
from harness.rundir.frames import read_capacity
from harness.rundir.journal import utc_iso
from harness.testing.runs import EXAMPLE, example_results, example_timeline, typed
from harness.testing.runs import epoch as _epoch

CAPACITY_EXAMPLE = Path(__file__).parent / "data" / "capacity-example"


def missed_objectives(results: dict[str, Any]) -> list[dict[str, Any]]:
    return [o for o in results["objectives"] if o["passed"] is False]


# --- results.json -----------------------------------------------------------------------------


def test_results_round_trip_in_the_models_key_order(tmp_path: Path) -> None:
    results = example_results()
    path = write_results(tmp_path, typed(results))
    assert path == tmp_path / "results.json"
    assert read_results(tmp_path) == typed(results)
    text = path.read_text(encoding="utf-8")
    assert json.loads(text) == results
    fields = [name.rstrip("_") for name in RunResults.model_fields]
    keys = list(json.loads(text))
    assert keys == sorted(keys, key=fields.index)  # the model's order (DESIGN.md's), not sorted by name
    assert text.startswith('{\n  "schema": "drill.results/v1"')  # indent 2


def test_atomic_write_leaves_no_tmp_file(tmp_path: Path) -> None:
    write_results(tmp_path, typed(example_results()))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]


def test_failed_write_keeps_previous_results_and_leaves_no_tmp(tmp_path: Path) -> None:
    write_results(tmp_path, typed(example_results()))
    before = (tmp_path / "results.json").read_bytes()
    broken = typed(example_results())
    broken.environment["handle"] = object()  # type: ignore[assignment]  # JSON cannot hold it
    with pytest.raises(ValueError, match="object"):
        write_results(tmp_path, broken)
    assert (tmp_path / "results.json").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]


def test_nan_and_numpy_values_become_json(tmp_path: Path) -> None:
    results = example_results()
    results["faults"][0]["rto_s"] = np.float64(8.75)
    results["faults"][1]["failover_s"] = float("nan")
    results["measurement"]["samples"] = np.int64(28412)
    write_results(tmp_path, typed(results))
    back = read_results(tmp_path)
    assert back.faults[0].rto_s == 8.75
    assert back.faults[1].failover_s is None
    assert back.measurement.samples == 28412


def test_read_results_rejects_other_schema(tmp_path: Path) -> None:
    document = example_results()
    document["schema"] = "drill.results/v0"
    (tmp_path / "results.json").write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(ScenarioError, match=r"'schema' is 'drill.results/v0', expected 'drill.results/v1'"):
        read_results(tmp_path)


def test_read_results_names_missing_file_and_bad_json(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="no results.json here"):
        read_results(tmp_path)
    (tmp_path / "results.json").write_text('{"schema": "drill.results/v1",\n  oops}', encoding="utf-8")
    with pytest.raises(ScenarioError, match=r"results.json:2:\d+: not valid JSON"):
        read_results(tmp_path)


def test_read_results_names_missing_required_key(tmp_path: Path) -> None:
    document = example_results()
    del document["cleanup"]
    (tmp_path / "results.json").write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(ScenarioError, match="missing required field.*cleanup"):
        read_results(tmp_path)


def test_read_results_names_a_field_the_model_refuses(tmp_path: Path) -> None:
    document = example_results()
    document["faults"][0]["rto_s"] = "soon"
    (tmp_path / "results.json").write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(ScenarioError, match=r"results.json: field 'faults.0.rto_s': .*drill report"):
        read_results(tmp_path)


def test_the_model_refuses_another_schema() -> None:
    document = {k: v for k, v in example_results().items() if k != "schema"}
    with pytest.raises(ValidationError, match="drill.results/v1"):
        RunResults.model_validate(document | {"schema_": "drill.results/v2"})


# --- junit.xml --------------------------------------------------------------------------------


def _suite(path: Path) -> ET.Element:
    root = ET.parse(path).getroot()
    suite = root.find("testsuite")
    assert suite is not None
    return suite


def test_junit_one_failure_per_missed_objective(tmp_path: Path) -> None:
    results = example_results()
    suite = _suite(write_junit(tmp_path, typed(results)))
    assert suite.get("name") == "hosted-model-outage"
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    assert set(cases) == {o["name"] for o in results["objectives"]} | {"cleanup"}
    failed = [c.get("name") for c in suite.findall("testcase") if c.find("failure") is not None]
    assert failed == [o["name"] for o in missed_objectives(results)] == ["p95_ms"]
    failure = cases["p95_ms"].find("failure")
    assert failure is not None
    assert failure.get("message") == "measured 612 ms, target 2x baseline (= 236.0 ms)"
    assert suite.get("failures") == "1" and suite.get("tests") == str(len(results["objectives"]) + 1)


def test_junit_failure_message_has_units(tmp_path: Path) -> None:
    results = example_results()
    results["objectives"][0].update(measured=18.25, passed=False)
    results["objectives"][1].update(measured=0.2345, passed=False)
    suite = _suite(write_junit(tmp_path, typed(results)))
    messages = {c.get("name"): c.find("failure").get("message")  # type: ignore[union-attr]
                for c in suite.findall("testcase") if c.find("failure") is not None}
    assert messages["rto_s"] == "measured 18.2 s, target 15.0 s"
    assert messages["max_error_rate"] == "measured 23.4 %, target 10.0 %"
    assert len(messages) == 3


def test_junit_properties(tmp_path: Path) -> None:
    suite = _suite(write_junit(tmp_path, typed(example_results())))
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["run_id"] == "20260114T095958Z-7f3a9c"
    assert props["verdict"] == "failed"
    assert props["rto_s[provider-down]"] == "8.750"
    assert props["rto_s[gpu-a-latency]"] == "0.000"


def test_junit_cleanup_fails_when_not_ok(tmp_path: Path) -> None:
    results = example_results()
    results["cleanup"] = {"ok": False, "toxics_left": ["gpu-a-upstream/latency_downstream"],
                          "containers_not_running": ["drill-staging-hosted-model-1"]}
    suite = _suite(write_junit(tmp_path, typed(results)))
    cleanup = next(c for c in suite.findall("testcase") if c.get("name") == "cleanup")
    failure = cleanup.find("failure")
    assert failure is not None
    assert "gpu-a-upstream/latency_downstream" in failure.get("message", "")
    assert "drill recover" in failure.get("message", "")
    assert suite.get("failures") == "2"


def test_junit_aborted_run_is_an_error_and_unmeasured_objectives_fail(tmp_path: Path) -> None:
    results = example_results()
    results["verdict"] = "aborted"
    results["abort_reason"] = "stop condition: error_rate 0.97 >= 0.9 for 15 s"
    for objective in results["objectives"]:
        objective.update(measured=None, passed=False)
    suite = _suite(write_junit(tmp_path, typed(results)))
    assert suite.get("errors") == "1"
    assert suite.get("failures") == str(len(results["objectives"]))
    assert suite.get("skipped") == "0"
    aborted = next(c for c in suite.findall("testcase") if c.get("name") == "aborted")
    assert aborted.find("error").get("message") == results["abort_reason"]  # type: ignore[union-attr]


# --- charts -----------------------------------------------------------------------------------


def test_charts_are_vector_svg_with_bands() -> None:
    results = example_results()
    timeline = example_timeline(results)
    svg = timeline_svg(typed(results), timeline)
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
    assert "<image" not in svg  # nothing rasterized
    for label in ("baseline", "fault", "recovery", "provider-down", "RTO 8.75 s", "recovery instant"):
        assert label in svg
    tiers = tier_share_svg(typed(results), timeline)
    for tier in ("hosted", "gpu", "cpu", "no good response"):
        assert tier in tiers
    # Two charts inline in one page must not share element ids.
    ids = re.findall(r'id="([^"]+)"', svg)
    assert not set(ids) & set(re.findall(r'id="([^"]+)"', tiers))


def test_chart_legend_only_names_what_is_drawn() -> None:
    results = example_results()
    timeline = example_timeline(results)
    results["faults"] = []
    svg = timeline_svg(typed(results), timeline)
    assert "fault onset" not in svg and "recovery instant" not in svg
    assert "error objective (10 %)" in svg and "p95 objective (236 ms)" in svg


def test_charts_survive_empty_buckets_and_an_unreverted_fault() -> None:
    results = example_results()
    timeline = example_timeline(results).head(120)
    results["faults"][0].update(reverted_at=None, rto_s=None, recovered_at=None, impact="unrecovered")
    timeline.loc[40:60, ["requests"]] = 0
    timeline.loc[40:60, ["error_rate", "p95_ms"]] = float("nan")
    svg = timeline_svg(typed(results), timeline)
    assert "provider-down" in svg and "recovery instant" not in svg
    assert "<svg" in tier_share_svg(typed(results), timeline)


def test_downsample_keeps_true_ratios_and_worst_latency() -> None:
    n = 14_400  # one hour of 250 ms buckets
    frame = pd.DataFrame({
        "t_s": np.arange(n) * 0.25,
        "requests": np.where(np.arange(n) % 2 == 0, 30.0, 10.0),
        "error_rate": np.where(np.arange(n) % 2 == 0, 0.0, 1.0),
        "p95_ms": np.where(np.arange(n) == 5_001, 9_000.0, 100.0),
        "tier_gpu": 1.0,
    })
    small = downsample(frame, max_points=720)
    assert len(small) <= 720
    assert small["requests"].sum() == frame["requests"].sum()
    # 30 good + 10 bad requests per pair of buckets: the merged ratio is 10 / 40, not mean(0, 1).
    assert small["error_rate"].round(6).unique().tolist() == [0.25]
    assert small["p95_ms"].max() == 9_000.0


def test_long_run_svg_stays_small() -> None:
    results = example_results()
    origin = _epoch(results["phases"]["baseline"]["start"])
    results["phases"]["recovery"]["end"] = utc_iso(origin + 3600)
    timeline = example_timeline(results)
    assert len(timeline) == 14_400
    svg = timeline_svg(typed(results), timeline)
    assert len(svg.encode()) < 400_000


def test_importing_harness_report_does_not_import_matplotlib() -> None:
    code = (
        "import sys, harness.report, harness.report.charts, harness.report.html;"
        "assert 'matplotlib' not in sys.modules, 'matplotlib imported at import time';"
        "import json, pandas as pd;"
        "from harness.report.charts import timeline_svg;"
        "from harness.results.model import RunResults;"
        f"r = RunResults.from_document(json.load(open({str(EXAMPLE)!r})));"
        "timeline_svg(r, pd.DataFrame({'t_s': [0.0, 0.25], 'requests': [5, 5], 'error_rate': [0, 0], 'p95_ms': [1, 2]}));"
        "import matplotlib;"
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported';"
        "assert matplotlib.get_backend().lower() == 'agg', matplotlib.get_backend()"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


# --- report.html ------------------------------------------------------------------------------


def _write_example_run(run_dir: Path, document: dict[str, Any], timeline: pd.DataFrame | None) -> str:
    (run_dir / "samples").mkdir(parents=True)
    (run_dir / "samples" / "probe.csv").write_text("source,start\n", encoding="utf-8")
    (run_dir / "journal.jsonl").write_text('{"event":"run.start"}\n', encoding="utf-8")
    results = typed(document)
    write_results(run_dir, results)
    write_junit(run_dir, results)
    path = write_report(run_dir, results, timeline)
    assert path == run_dir / "report.html"
    return path.read_text(encoding="utf-8")


def test_report_shows_verdict_objectives_rto_and_charts(tmp_path: Path) -> None:
    results = example_results()
    html = _write_example_run(tmp_path, results, example_timeline(results))
    assert '<div class="badge failed"' in html
    for objective in results["objectives"]:
        assert f"<code>{objective['name']}</code>" in html
    for fault in results["faults"]:
        assert fault["name"] in html
        assert quantity("rto_s", fault["rto_s"]) in html
    assert "8.75 s" in html and "no observed impact" in html
    assert html.count("<svg") == 2
    assert "± 1.0 ms" in html and "docker-event:die" in html
    assert "docs/method.md" in html
    for name in ("journal.jsonl", "samples/probe.csv", "results.json", "junit.xml", "report.html"):
        assert f"<code>{name}</code>" in html
    assert "612 ms" in html and "2x baseline" in html


def test_report_is_self_contained(tmp_path: Path) -> None:
    results = example_results()
    html = _write_example_run(tmp_path, results, example_timeline(results))
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", html, re.I)
    assert not re.search(r"""url\(\s*["']?\s*(?:https?:)?//""", html, re.I)
    assert "@import" not in html and "<script" not in html.lower() and "<link" not in html.lower()
    # The only http(s) text left is XML namespace names, which browsers never fetch.
    for match in re.finditer(r"https?://[^\s\"'<>)]+", html):
        before = html[max(0, match.start() - 20):match.start()]
        assert re.search(r'xmlns(?::\w+)?="$', before), f"external reference: {match.group(0)}"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    # Two inline SVGs share one id space: ids unique, every internal reference resolves.
    ids = re.findall(r'\bid="([^"]+)"', html)
    assert len(ids) == len(set(ids))
    assert set(re.findall(r'(?:href="#|url\(#)([^")]+)', html)) <= set(ids)


def test_report_escapes_text_from_the_scenario(tmp_path: Path) -> None:
    results = example_results()
    results["scenario"]["name"] = "<script>alert(1)</script>"
    results["faults"][0]["name"] = "a<b>"
    html = _write_example_run(tmp_path, results, example_timeline(results))
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "a&lt;b&gt;" in html


def test_report_aborted_run_shows_reason_and_missing_figures(tmp_path: Path) -> None:
    results = example_results()
    results["verdict"] = "aborted"
    results["abort_reason"] = "stop condition: error_rate 0.97 >= 0.9 for 15 s"
    results["faults"][0].update(rto_s=None, failback_s=None)
    results["objectives"][0].update(measured=None, passed=False)
    del results["objectives"][0]["note"]
    results["cleanup"] = {"ok": False, "toxics_left": [], "containers_not_running": ["drill-staging-hosted-model-1"]}
    html = _write_example_run(tmp_path, results, None)
    assert '<div class="badge aborted"' in html
    assert "stop condition: error_rate 0.97 &gt;= 0.9 for 15 s" in html
    assert "— <span class=\"why\">(the run was aborted before recovery was observed)</span>" in html
    assert "(no failback observed)" in html
    assert "(the run was aborted before it was measured)" in html
    assert "no timeline: the run recorded no samples" in html and "<svg" not in html
    assert "drill-staging-hosted-model-1" in html and "drill recover" in html


def test_report_without_tier_columns_says_why(tmp_path: Path) -> None:
    results = example_results()
    timeline = example_timeline(results).drop(columns=["tier:hosted", "tier:gpu", "tier:cpu"])
    html = _write_example_run(tmp_path, results, timeline)
    assert html.count("<svg") == 1
    assert "no tier information" in html


def test_tier_underscore_spelling_is_accepted() -> None:
    results = example_results()
    timeline = example_timeline(results).rename(columns=lambda c: c.replace("tier:", "tier_"))
    assert tier_columns(timeline) == ["tier_hosted", "tier_gpu", "tier_cpu"]
    svg = tier_share_svg(typed(results), timeline)
    assert "hosted" in svg and "gpu" in svg and "(no tier)" not in svg


def test_report_from_measure_timeline(tmp_path: Path) -> None:
    """The measure room's own timeline() output renders (its column names, its NaN buckets)."""
    from harness.measure.timeline import timeline as measure_timeline

    results = example_results()
    origin = _epoch(results["phases"]["baseline"]["start"])
    starts = origin + np.arange(0, 30, 0.05)
    failing = (starts >= origin + 10) & (starts < origin + 14)
    samples = pd.DataFrame({
        "start": starts, "end": starts + 0.1, "status": np.where(failing, 0, 200), "ok": (~failing).astype(int),
        "latency_ms": 100.0, "degraded": 0, "tier": np.where(starts < origin + 12, "hosted", "gpu"),
    })
    frame = measure_timeline(samples, ~failing, origin, 0.25, origin + 32)
    html = _write_example_run(tmp_path, results, frame)
    assert html.count("<svg") == 2
    assert "no tier information" not in html


def test_example_results_file_is_valid(tmp_path: Path) -> None:
    results = example_results()
    assert results["schema"] == SCHEMA
    write_results(tmp_path, typed(results))
    assert read_results(tmp_path).verdict == "failed"


# --- capacity ---------------------------------------------------------------------------------


def capacity_run(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    """A copy of the capacity example run directory and its results."""
    run_dir = tmp_path / "run"
    shutil.copytree(CAPACITY_EXAMPLE, run_dir)
    return run_dir, json.loads((run_dir / "results.json").read_text(encoding="utf-8"))


def row_cells(page: str, label: str) -> list[str]:
    """The cells of the table row headed ``label``, as unescaped text without tags."""
    match = re.search(rf'<tr><th scope="row">{re.escape(label)}</th>(.*?)</tr>', page, re.S)
    assert match, f"no row {label!r}"
    cells = re.findall(r"<td>(.*?)</td>", match.group(1), re.S)
    return [html_lib.unescape(re.sub(r"<[^>]+>", "", c)).strip() for c in cells]


def test_capacity_example_renders_section_chart_and_fault_rows(tmp_path: Path) -> None:
    run_dir, results = capacity_run(tmp_path)
    page = write_report(run_dir, typed(results), example_timeline(results)).read_text(encoding="utf-8")
    assert '<section id="capacity">' in page and "<h2>Capacity</h2>" in page
    assert page.count("<svg") == 3
    capacity_chart = page[page.index('<section id="capacity">'):page.index('<section id="method">')]
    assert capacity_chart.count("<svg") == 1 and 'aria-label="Healthy GPU nodes per region over time"' in capacity_chart
    for text in ("region-a", "region-b", "target (2 healthy nodes)", "capacity restored: t0 + 14.5 s · region-b",
                 "pool endpoint did not answer", "gpu-b-latency (no capacity loss)", "seconds from run start"):
        assert text in capacity_chart, text
    assert "docs/method.md" in capacity_chart and "&#34;Capacity&#34;" in capacity_chart
    assert row_cells(page, "target size") == ["2 healthy GPU nodes"]
    assert row_cells(page, "resolution (sampling interval + onset uncertainty)") == ["0.51 s"]
    assert row_cells(page, "failed polls") == ["3"]
    # Faults table: gpu-node-lost, then gpu-b-latency (no capacity loss: "—" with the reason).
    assert row_cells(page, "capacity restored (after t0)") == [
        "14.5 s", "0 s (no capacity loss observed: the pool stayed at its target of 2 healthy nodes)"]
    assert row_cells(page, "replacement region") == ["region-b", "— (no capacity loss observed)"]
    assert row_cells(page, "replacement nodes") == ["gpu-b1", "— (no capacity loss observed)"]
    assert row_cells(page, "degraded requests (t0 to capacity restored)") == ["142", "0"]
    assert row_cells(page, "lowest healthy GPU nodes") == ["1 of 2", "— (no capacity loss observed)"]
    assert "<code>samples/capacity.csv</code>" in page and "raw capacity samples" in page
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert len(ids) == len(set(ids))
    assert set(re.findall(r'(?:href="#|url\(#)([^")]+)', page)) <= set(ids)


def test_results_without_capacity_render_no_capacity_section(tmp_path: Path) -> None:
    results = example_results()
    assert "capacity" not in results
    page = _write_example_run(tmp_path, results, example_timeline(results))
    assert 'id="capacity"' not in page and "<h2>Capacity</h2>" not in page
    assert "capacity restored" not in page and "GPU pool capacity" not in page
    assert "samples/capacity.csv" not in page
    assert page.count("<svg") == 2


def test_capacity_fault_rows_say_why_a_figure_is_missing(tmp_path: Path) -> None:
    run_dir, results = capacity_run(tmp_path)
    lost = results["faults"][0]
    lost.update(capacity_restored_s=None, replacement_region=None, replacement_nodes=[], degraded_requests=None)
    lost["capacity_notes"] = {"capacity_restored_s": "pool not back at its target of 2 healthy nodes for 5s "
                                                     "before the timeline ended (last seen: 1)",
                              "degraded_requests": "no request samples"}
    results["faults"].append({
        "name": "never-applied", "type": "latency", "targets": [], "onset_at": None, "onset_source": None,
        "onset_uncertainty_s": None, "reverted_at": None, "time_to_detect_s": None, "rto_s": None,
        "failover_s": None, "failback_s": None, "degraded_s": None, "impact": "not applied"})
    page = write_report(run_dir, typed(results), None).read_text(encoding="utf-8")
    assert row_cells(page, "capacity restored (after t0)")[0] == (
        "— (pool not back at its target of 2 healthy nodes for 5s before the timeline ended (last seen: 1))")
    assert row_cells(page, "replacement region")[0] == "— (capacity was not restored)"
    assert row_cells(page, "degraded requests (t0 to capacity restored)")[0] == "— (no request samples)"
    assert row_cells(page, "replacement region")[2] == "— (no capacity figures for this fault)"


def test_capacity_chart_falls_back_to_results_timeline(tmp_path: Path) -> None:
    run_dir, results = capacity_run(tmp_path)
    (run_dir / "samples" / "capacity.csv").unlink()
    page = write_report(run_dir, typed(results), None).read_text(encoding="utf-8")
    assert page.count("<svg") == 1 and "capacity restored: t0 + 14.5 s · region-b" in page
    assert "samples/capacity.csv not found; drawn from results.json capacity.timeline" in page
    assert "pool endpoint did not answer" not in page  # failed polls are only in the CSV


def test_capacity_steps_from_samples_and_from_results_agree() -> None:
    results = json.loads((CAPACITY_EXAMPLE / "results.json").read_text(encoding="utf-8"))
    from_csv = capacity_steps(typed(results), read_capacity(CAPACITY_EXAMPLE))
    from_results = capacity_steps(typed(results), None)
    assert list(from_csv.columns) == list(from_results.columns) == ["region-a", "region-b"]
    for t_s, expected in ((10.0, [2.0, 0.0]), (30.0, [1.0, 0.0]), (50.0, [1.0, 1.0]), (100.0, [1.0, 1.0])):
        for steps in (from_csv, from_results):
            assert steps.loc[:t_s].iloc[-1].tolist() == expected, (t_s, steps)
    # The three failed polls (40.0 s to 41.5 s) are one unknown step, only in the CSV's trace.
    unknown = from_csv[from_csv.isna().any(axis=1)]
    assert len(unknown) == 1 and 40.0 <= unknown.index[0] < 40.5
    assert not from_results.isna().any().any()


def test_capacity_marks_place_restoration_at_onset_plus_restored_s() -> None:
    results = json.loads((CAPACITY_EXAMPLE / "results.json").read_text(encoding="utf-8"))
    lost, latency = capacity_marks(typed(results))
    assert (lost.name, lost.region, lost.after_s) == ("gpu-node-lost", "region-b", 14.5)
    assert lost.restored_s == pytest.approx(lost.onset_s + 14.5)
    assert latency.after_s == 0 and latency.restored_s is None  # never lost: nothing to mark


def test_capacity_pool_never_answered_says_why(tmp_path: Path) -> None:
    run_dir, results = capacity_run(tmp_path)
    (run_dir / "samples" / "capacity.csv").write_text(
        "ts,ok,healthy,pool_size,target,regions,healthy_nodes,error\n"
        "1768384800.0,0,,,,,,ConnectError: refused\n1768384800.5,0,,,,,,ConnectError: refused\n",
        encoding="utf-8")
    results["capacity"]["timeline"] = {"changes": [], "min_healthy": None, "max_healthy": None,
                                       "first_healthy": None, "last_healthy": None, "regions": []}
    with pytest.raises(ValueError, match="no successful capacity sample"):
        capacity_svg(typed(results), read_capacity(run_dir))
    page = write_report(run_dir, typed(results), None).read_text(encoding="utf-8")
    assert "<h2>Capacity</h2>" in page and "<svg" not in page
    assert "no successful capacity sample: the pool endpoint never answered" in page
    assert row_cells(page, "healthy GPU nodes seen") == ["— (no successful sample)"]


# --- streamed requests (issue 13) ------------------------------------------------------------------
def test_streaming_run_renders_the_table_and_both_charts(tmp_path: Path) -> None:
    from harness.engine.outputs import write_outputs
    from harness.results import compute_results
    from harness.testing.runs import streaming_run

    run_dir = streaming_run(tmp_path)
    results, timeline = compute_results(run_dir)
    write_outputs(run_dir, results, timeline)
    page = (run_dir / "report.html").read_text(encoding="utf-8")
    section = page[page.index('<section id="streaming">'):]
    section = section[: section.index("</section>")]
    fault = results.phases["fault"].streaming
    assert fault is not None

    assert section.count("<svg") == 2
    assert 'aria-label="Time to first token over time (p50 and p95 per bucket)"' in section
    assert 'aria-label="Share of streams completed and cut streams over time"' in section
    rows = re.findall(r'<th scope="row">([^<]+)</th>', section)
    assert rows == ["baseline", "fault", "recovery", "fault + recovery"]
    assert f"{fault.completed:,} of {fault.streams:,}" in section
    assert quantity("ttft_p95_ms", fault.ttft_p95_ms) in section
    assert f"cut: {fault.cut:,}" in section and f"failed mid-stream: {fault.failed_mid_stream:,}" in section
    assert "first token&#39;s arrival" in section and "send" in section  # how TTFT is computed, on which clock
    assert "worst bucket TTFT p95" in page and "streams completed" in page  # the charts' data, as a table


def test_results_without_streams_render_no_streaming_section(tmp_path: Path) -> None:
    html = _write_example_run(tmp_path, example_results(), example_timeline(example_results()))

    assert 'id="streaming"' not in html


def test_streaming_charts_survive_a_long_run_and_gaps() -> None:
    """Downsampling keeps the true completion share and the worst TTFT p95; empty buckets are gaps."""
    from harness.report.charts import completion_svg, downsample_streams, ttft_svg

    results = example_results()
    timeline = example_timeline(results, bucket_s=0.01)
    n = len(timeline)
    streams = np.where(np.arange(n) % 7 == 0, 0, 4)
    completed = np.where(np.arange(n) % 3 == 0, streams // 2, streams)
    timeline = timeline.assign(
        streams=streams, streams_completed=completed,
        stream_completion=np.where(streams > 0, completed / np.maximum(streams, 1), np.nan),
        streams_cut=streams - completed, streams_failed_mid_stream=(streams - completed) // 2,
        ttft_samples=streams, ttft_p50_ms=np.where(streams > 0, 40.0, np.nan),
        ttft_p95_ms=np.where(streams > 0, 90.0, np.nan))
    timeline.loc[n // 2, "ttft_p95_ms"] = 4000.0

    merged = downsample_streams(timeline)
    assert len(merged) <= 720
    assert merged["ttft_p95_ms"].max() == 4000.0
    assert merged["streams"].sum() == streams.sum()
    assert (merged["stream_completion"] * merged["streams"]).sum() == pytest.approx(completed.sum())
    assert "<svg" in ttft_svg(typed(results), timeline, 100.0) and "<svg" in completion_svg(typed(results), timeline, 0.9)


def test_the_dry_run_names_every_objective_a_scenario_sets() -> None:
    """Every field of the objectives model shows in the plan's objectives line when it is set, a
    floor as ≥ and a ceiling as ≤ (a new objective cannot be left out of the dry run)."""
    from harness.report.terminal import objectives_text
    from harness.scenario.model import Objectives

    every = Objectives.model_validate({
        "rto_s": "10s", "max_impact_s": "2s", "max_error_rate": 0.1, "p95_ms": "2x baseline",
        "failover_to": "gpu", "max_lost_requests": 3, "ttft_p95_ms": 800, "min_stream_completion": 0.95,
        "splice_gap_p95_ms": 400, "max_tokens_lost": 0, "max_tokens_repeated": 0, "max_foreign_tokens": 0,
        "max_invalid_answer_rate": 0.01, "failover_by": {"latency_ms": 800}, "max_flaps": 2,
        "min_quality": {"recall_at_k": "0.9x baseline"}, "max_retry_amplification": 1.5,
        "max_cost_per_1k_requests": "1.5x baseline", "max_reschedule_s": "60s", "min_ready_replicas": 1,
        "breaker_open_by": {"share": 0.3}, "max_bad_answers": 20})
    text = objectives_text(every)
    assert set(Objectives.model_fields) == {name for name in Objectives.model_fields if getattr(every, name) is not None}
    for name in Objectives.model_fields:
        shown = {"failover_by": "failover by latency_ms ≤ 800", "breaker_open_by": "breaker open by share ≤ 0.3",
                 "failover_to": "failover_to gpu"}.get(name, name)
        assert shown in text, (name, text)
    assert "min_ready_replicas ≥ 1" in text and "max_tokens_lost ≤ 0" in text
    assert "max_retry_amplification ≤ 1.50x" in text and "max_cost_per_1k_requests ≤ 1.5x baseline" in text


def test_terminal_says_the_streaming_objectives_and_figures() -> None:
    from harness.report.reasons import stream_lines
    from harness.report.terminal import objectives_text
    from harness.scenario.model import Objectives

    objectives = Objectives.model_validate(
        {"ttft_p95_ms": {"max": "2x baseline", "during": "recovery"}, "min_stream_completion": 0.95})
    assert objectives_text(objectives) == "ttft_p95_ms ≤ 2x baseline recovery, min_stream_completion ≥ 95.0 %"
    results = example_results()
    results["phases"]["fault"]["streaming"] = {
        "streams": 400, "completed": 364, "completion_rate": 0.91, "cut": 36, "failed_mid_stream": 30,
        "failed_before_first_token": 6, "cut_after_tokens_p50": 3.0, "cut_after_tokens_max": 9,
        "ttft_stream": "probe", "ttft_samples": 394, "ttft_p50_ms": 11.0, "ttft_p95_ms": 509.0, "failed_over": 0}
    assert stream_lines(typed(results)) == [
        "streams fault: 400 sent, 91.0 % completed; 30 failed mid-stream (36 cut, after a median 3 tokens), "
        "6 before the first token; TTFT p50 11 ms, p95 509 ms (probe)"]


def test_the_dry_run_load_line_says_the_pace_when_one_is_set(tmp_path: Path) -> None:
    from harness.report.terminal import plan_lines
    from harness.scenario import load_scenario
    from harness.testing.drills import paced, rebased

    unpaced, _ = rebased(Path(__file__).resolve().parents[1] / "scenarios" / "latency.yaml", tmp_path)
    paced_file = unpaced.with_name("paced.yaml")
    paced_file.write_text(paced(unpaced.read_text(encoding="utf-8"), 7.5), encoding="utf-8")

    [plain] = [line for line in plan_lines(load_scenario(unpaced), None) if line.startswith("load:")]
    [slowed] = [line for line in plan_lines(load_scenario(paced_file), None) if line.startswith("load:")]
    assert "requests/s" not in plain
    assert "users (each at most 7.5 requests/s) + probe" in slowed, slowed
