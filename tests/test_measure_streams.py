"""Streamed requests: TTFT, completion and cut streams per phase, the two streaming objectives,
and the scenario check that a drill naming them can stream. Worked examples on synthetic
samples; every figure below is computed by hand in the comments.

The drill (probe at 20 Hz, one request every 0.05 s; phases baseline [0, 10), fault [10, 20),
recovery [20, 30); the primary tier is ``hosted``):

    [0, 10)     200 probe streams, completed, hosted, TTFT 50 ms
    [10, 12)     40 probe streams, HTTP 503 before any token
    [12, 14)     40 probe streams, 200 then cut after 3 tokens (TTFT 80 ms), hosted
    [14, 15)     20 probe streams, 200 then cut at 0 tokens (no first token), hosted
    [15, 17.5)   50 probe streams, completed, gpu, TTFT 120 ms
    [17.5, 20)   50 probe streams, completed, gpu, TTFT 200 ms
    [20, 30)    200 probe streams, completed, hosted, TTFT 50 ms
                 10 Locust streams (1 Hz), completed, hosted, TTFT 3,000 ms (closed loop)
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.errors import ScenarioError
from harness.measure import FaultTiming, MeasureSettings, ObjectiveSpec, measure_run
from harness.measure.streams import completion_window, has_streams, stream_phase_stats, stream_stats_for
from harness.measure.testing import concat_samples, probe_segment, stream_segment
from harness.measure.timeline import timeline
from harness.report.reasons import objective_line
from harness.results.model import ObjectiveResult
from harness.scenario import load_scenario

PHASES = {"baseline": (0.0, 10.0), "fault": (10.0, 20.0), "recovery": (20.0, 30.0)}
SETTINGS = MeasureSettings(probe_rate_hz=20)


def drill_samples() -> pd.DataFrame:
    return concat_samples(
        stream_segment(0.0, 10.0, ttft_ms=50.0),
        stream_segment(10.0, 2.0, status=503),
        stream_segment(12.0, 2.0, ttft_ms=80.0, cut_after=3),
        stream_segment(14.0, 1.0, cut_after=0),
        stream_segment(15.0, 2.5, ttft_ms=120.0, tier="gpu"),
        stream_segment(17.5, 2.5, ttft_ms=200.0, tier="gpu"),
        stream_segment(20.0, 10.0, ttft_ms=50.0),
        stream_segment(20.0, 10.0, rate_hz=1.0, ttft_ms=3000.0, source="locust"),
    )


def test_fault_phase_counts_completed_cut_mid_stream_and_before_first_token() -> None:
    fault = stream_phase_stats(drill_samples(), PHASES, primary_tier="hosted")["fault"]

    assert fault.streams == 200  # 40 + 40 + 20 + 50 + 50
    assert fault.completed == 100  # the gpu streams
    assert fault.completion_rate == 0.5
    assert fault.cut == 60  # 2xx without [DONE]: 40 after 3 tokens, 20 at 0 tokens
    assert fault.failed_mid_stream == 40  # cut after >= 1 token
    assert fault.failed_before_first_token == 60  # 40 HTTP 503 + 20 cut at 0 tokens
    assert fault.completed + fault.failed_mid_stream + fault.failed_before_first_token == fault.streams
    # cut_after_tokens of the 60 cut streams: 20 x 0, 40 x 3 -> median 3, most 3
    assert (fault.cut_after_tokens_p50, fault.cut_after_tokens_max) == (3.0, 3)
    assert fault.failed_over == 100  # answered by gpu, not the primary hosted


def test_ttft_percentiles_come_from_probe_streams_that_got_a_first_token() -> None:
    stats = stream_phase_stats(drill_samples(), PHASES, primary_tier="hosted")
    fault, recovery = stats["fault"], stats["recovery"]

    # First tokens in the fault phase: 40 x 80 ms (cut after 3), 50 x 120 ms, 50 x 200 ms = 140;
    # the 503s and the streams cut at 0 tokens have none. Sorted, ranks 0..139: 0-39 are 80,
    # 40-89 are 120, 90-139 are 200. p50 at rank 69.5 -> 120; p95 at rank 132.05 -> 200.
    assert fault.ttft_samples == 140
    assert (fault.ttft_p50_ms, fault.ttft_p95_ms) == (120.0, 200.0)
    assert fault.ttft_stream == "probe"
    # The recovery's 10 closed-loop Locust streams (3,000 ms) are left out: probe only.
    assert recovery.streams == 210 and recovery.ttft_samples == 200
    assert recovery.ttft_p95_ms == 50.0


def test_ttft_falls_back_to_every_stream_without_probe_streams() -> None:
    users_only = concat_samples(stream_segment(0.0, 2.0, rate_hz=10.0, ttft_ms=70.0, source="locust"))
    stats = stream_stats_for(users_only, "baseline", 0.0, 2.0)

    assert stats.ttft_stream == "all"
    assert (stats.ttft_samples, stats.ttft_p95_ms) == (20, 70.0)


def test_interpolated_ttft_percentiles() -> None:
    # TTFT 10, 20, ..., 100 ms (ten probe streams): p50 at rank 4.5 -> 55 ms; p95 at rank 8.55
    # -> 90 + 0.55 x 10 = 95.5 ms.
    rows = concat_samples(*(stream_segment(i * 0.05, 0.05, ttft_ms=10.0 * (i + 1)) for i in range(10)))
    stats = stream_stats_for(rows, "w", 0.0, 1.0)

    assert stats.ttft_p50_ms == pytest.approx(55.0)
    assert stats.ttft_p95_ms == pytest.approx(95.5)


def test_completion_window_is_the_fault_and_recovery_phases() -> None:
    window = completion_window(drill_samples(), PHASES)

    assert window is not None
    assert (window.start, window.end) == (10.0, 30.0)
    # 200 fault + 210 recovery streams; 100 + 210 completed -> 310 / 410
    assert (window.streams, window.completed) == (410, 310)
    assert window.completion_rate == pytest.approx(310 / 410)


def test_streams_open_at_the_onset_count_in_the_completion_window() -> None:
    """A whole run: the fault (a proxy cutting streams after 3 events) cut 2 streams sent 24 ms
    and 4 ms before the fault phase, whose figures counted them in the baseline by their send
    time; the objective's window, from the fault phase on, never saw them. Streams open at the
    onset belong to the incident: they count, and a stream of the baseline that ended before the
    onset does not."""
    healthy = stream_segment(0.0, 9.9, tokens=10, ttft_ms=20.0, gap_ms=2.0)  # each ends 38 ms after its send
    cut_before = stream_segment(9.93, 0.05, tokens=10, ttft_ms=20.0, gap_ms=2.0, cut_after=3)  # sent 9.93, cut 9.954
    late = stream_segment(9.98, 0.05, tokens=10, ttft_ms=30.0, cut_after=3)  # sent 9.98, cut at 10.02: after the onset
    open_ok = stream_segment(9.99, 0.05, tokens=10, ttft_ms=20.0, gap_ms=2.0)  # sent 9.99, completed at 10.028
    fault = stream_segment(10.0, 20.0, tokens=10)
    samples = concat_samples(healthy, cut_before, late, open_ok, fault)
    onset = 10.0

    window = completion_window(samples, PHASES, first_onset_s=onset)
    before = completion_window(samples, PHASES)

    assert window is not None and before is not None
    assert (before.streams, before.cut) == (400, 0)
    # The stream cut at 9.954 ended before the onset, as did every healthy one before 9.9 s: the
    # baseline's. The one cut at 10.02 and the one completed at 10.028 were open at the onset.
    assert (window.streams, window.cut) == (402, 1)
    assert window.completed == 401
    assert (window.start, window.end) == (10.0, 30.0)


def test_a_run_without_streams_has_no_stream_figures() -> None:
    plain = concat_samples(probe_segment(0.0, 30.0))

    assert not has_streams(plain)
    assert stream_phase_stats(plain, PHASES) == {}
    m = measure_run(plain, PHASES, [], ObjectiveSpec(), SETTINGS)
    assert m.streams == {} and m.stream_completion is None
    assert not any(c.startswith(("ttft", "stream")) for c in timeline(plain, np.ones(len(plain), bool), 0.0))


def test_stream_timeline_per_bucket() -> None:
    samples = drill_samples()
    frame = timeline(samples, samples["ok"].to_numpy() == 1, 0.0, 0.25, 30.0)
    at = frame.set_index("t_s")

    # 10.00-10.25 s: five 503s -> 5 streams, none completed, none cut (no 2xx), no first token.
    assert at.loc[10.0, ["streams", "streams_completed", "streams_cut"]].tolist() == [5, 0, 0]
    assert at.loc[10.0, "stream_completion"] == 0.0 and math.isnan(at.loc[10.0, "ttft_p95_ms"])
    # 12.00-12.25 s: five streams cut after 3 tokens, each with a first token at 80 ms.
    assert at.loc[12.0, ["streams_cut", "streams_failed_mid_stream", "ttft_samples"]].tolist() == [5, 5, 5]
    assert at.loc[12.0, "ttft_p50_ms"] == 80.0
    # 20.00-20.25 s: five probe streams (50 ms) and one Locust stream (3,000 ms): TTFT from the probe.
    assert at.loc[20.0, ["streams", "streams_completed", "ttft_samples"]].tolist() == [6, 6, 5]
    assert at.loc[20.0, "stream_completion"] == 1.0 and at.loc[20.0, "ttft_p95_ms"] == 50.0


# --- the objectives ------------------------------------------------------------------------------
def objectives_of(spec: ObjectiveSpec, faults: list[FaultTiming] | None = None) -> dict[str, object]:
    m = measure_run(drill_samples(), PHASES, faults or [], spec, SETTINGS)
    return {o.name: o for o in m.objectives}


def test_min_stream_completion_passes_at_or_below_the_measured_share() -> None:
    [result] = objectives_of(ObjectiveSpec(min_stream_completion=0.75)).values()

    assert result.passed is True  # type: ignore[attr-defined]
    assert result.measured == round(310 / 410, 6) == 0.756098  # type: ignore[attr-defined]


def test_min_stream_completion_fails_naming_itself() -> None:
    m = measure_run(drill_samples(), PHASES, [], ObjectiveSpec(min_stream_completion=0.8), SETTINGS)
    [result] = m.objectives

    assert not m.objectives_met
    assert (result.name, result.passed, result.target) == ("min_stream_completion", False, 0.8)
    assert result.note == ("310 of 410 streams completed in the fault and recovery phases; "
                           "40 failed mid-stream, 60 before the first token")
    line = objective_line(ObjectiveResult.of(result))
    assert line.startswith("min_stream_completion 75.6 % < 80.0 %")


def test_ttft_p95_absolute_bound_passes_and_relative_bound_fails() -> None:
    absolute = objectives_of(ObjectiveSpec(ttft_p95_ms=250.0))["ttft_p95_ms"]
    relative = objectives_of(ObjectiveSpec(ttft_p95_baseline_factor=2.0))["ttft_p95_ms"]

    assert (absolute.measured, absolute.passed) == (200.0, True)  # type: ignore[attr-defined]
    # Baseline TTFT p95 50 ms -> bound 100 ms; the fault phase's 200 ms misses it.
    assert relative.target == "2x baseline (= 100.0 ms)"  # type: ignore[attr-defined]
    assert (relative.measured, relative.passed) == (200.0, False)  # type: ignore[attr-defined]
    assert relative.note == "TTFT p95 of 140 probe streams with a first token in the fault phase"  # type: ignore[attr-defined]


def test_ttft_p95_during_recovery_and_after_failover() -> None:
    recovery = objectives_of(ObjectiveSpec(ttft_p95_baseline_factor=2.0, ttft_p95_during="recovery"))
    onset = FaultTiming("provider-down", "http_error", 10.0, "proxy-api", 0.001, 20.0)
    after = objectives_of(ObjectiveSpec(ttft_p95_ms=150.0, ttft_p95_during="after_failover"), [onset])

    assert recovery["ttft_p95_ms"].measured == 50.0 and recovery["ttft_p95_ms"].passed  # type: ignore[attr-defined]
    assert recovery["ttft_p95_ms"].target == "2x baseline (= 100.0 ms) during recovery"  # type: ignore[attr-defined]
    # Traffic moved at the first gpu answer (sent 15.00 s, arrived 15.165 s: 120 ms + 9 gaps of 5 ms):
    # the window [15.165, 20) holds 46 streams at 120 ms and 50 at 200 ms -> p95 200 ms > 150 ms.
    result = after["ttft_p95_ms"]
    assert (result.measured, result.passed) == (200.0, False)  # type: ignore[attr-defined]
    assert "96 probe streams" in str(result.note)  # type: ignore[attr-defined]


def test_streaming_objectives_without_streams_are_not_measurable_and_fail() -> None:
    plain = concat_samples(probe_segment(0.0, 30.0))
    m = measure_run(plain, PHASES, [], ObjectiveSpec(ttft_p95_ms=500.0, min_stream_completion=0.9), SETTINGS)
    ttft, completion = m.objectives

    assert (ttft.name, ttft.measured, ttft.passed) == ("ttft_p95_ms", None, False)
    assert ttft.note is not None and "no streamed request in the fault phase" in ttft.note
    assert (completion.name, completion.measured, completion.passed) == ("min_stream_completion", None, False)
    assert completion.note is not None and "not measurable" in completion.note


def test_too_few_first_tokens_for_a_ttft_p95() -> None:
    # A fault phase of 503s but for 10 streams that got a token: a p95 needs 20.
    samples = concat_samples(stream_segment(0.0, 10.0), stream_segment(10.0, 9.5, status=503),
                             stream_segment(19.5, 0.5), stream_segment(20.0, 10.0))
    m = measure_run(samples, PHASES, [], ObjectiveSpec(ttft_p95_ms=500.0), SETTINGS)
    [ttft] = m.objectives

    assert ttft.measured is None and not ttft.passed
    assert ttft.note == ("not measurable: 10 probe streams got a first token in the fault phase (a p95 needs at "
                         "least 20); 190 of 200 streams failed before their first token")


def test_objective_spec_rejects_both_forms_and_a_share_out_of_range() -> None:
    with pytest.raises(ValueError, match="ttft_p95_ms either as milliseconds"):
        ObjectiveSpec(ttft_p95_ms=100.0, ttft_p95_baseline_factor=2.0)
    with pytest.raises(ValueError, match="min_stream_completion"):
        ObjectiveSpec(min_stream_completion=1.5)


# --- the scenario --------------------------------------------------------------------------------
SCENARIO = """\
apiVersion: drill/v1
kind: Scenario
name: stream-demo
toxiproxy: {url: http://127.0.0.1:8474}
proxies:
  - {name: upstream, listen: 127.0.0.1:19999, upstream: 127.0.0.1:18999}
load:
  host: http://127.0.0.1:19999
  users: 2
  request:
    method: POST
    path: /v1/chat/completions
    json: {model: chat, stream: true, messages: [{role: user, content: hi}]}
phases: {baseline: 2s, fault: 3s, recovery: 2s}
faults:
  - name: slow
    type: latency
    target: {proxy: upstream}
    latency_ms: 300
    duration: 3s
objectives:
  ttft_p95_ms: {max: 2x baseline, during: after_failover}
  min_stream_completion: 0.95
"""


def load(tmp_path: Path, text: str) -> object:
    path = tmp_path / "s.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return load_scenario(path)


def problem(tmp_path: Path, text: str) -> str:
    with pytest.raises(ScenarioError) as info:
        load(tmp_path, text)
    assert info.value.exit_code == 2
    return str(info.value)


def test_streaming_objectives_load() -> None:
    from harness.results.compute import objective_spec
    from harness.scenario.model import Objectives

    o = Objectives.model_validate({"ttft_p95_ms": {"max": "2x baseline", "during": "after_failover"},
                                   "min_stream_completion": 0.95})
    assert o.ttft_p95_bound == (None, 2.0) and o.ttft_p95_during == "after_failover"
    short = Objectives.model_validate({"ttft_p95_ms": 800})
    assert short.ttft_p95_bound == (800.0, None) and short.ttft_p95_during == "fault"
    assert o.streaming_objectives == ["ttft_p95_ms", "min_stream_completion"]
    del objective_spec  # imported to prove the scenario -> measure mapping module loads


def test_a_streaming_scenario_validates_and_maps_to_the_objective_spec(tmp_path: Path) -> None:
    from harness.results.compute import objective_spec

    loaded = load(tmp_path, SCENARIO)
    spec = objective_spec(loaded.spec)  # type: ignore[attr-defined]

    assert (spec.ttft_p95_ms, spec.ttft_p95_baseline_factor, spec.ttft_p95_during) == (None, 2.0, "after_failover")
    assert spec.min_stream_completion == 0.95


def test_streaming_objectives_on_a_load_that_does_not_stream_are_bad_input(tmp_path: Path) -> None:
    msg = problem(tmp_path, SCENARIO.replace("stream: true, ", ""))

    assert ':22 objectives.ttft_p95_ms: measures streamed requests, but neither load.request nor load.probe ' \
           'asks for one: add "stream": true to its json body' in msg
    assert ":23 objectives.min_stream_completion: measures streamed requests" in msg


def test_a_streaming_probe_alone_is_enough(tmp_path: Path) -> None:
    text = SCENARIO.replace("stream: true, ", "").replace(
        "  users: 2\n", "  users: 2\n  probe: {method: POST, path: /v1/chat/completions, json: {stream: true}}\n")

    assert load(tmp_path, text)


@pytest.mark.parametrize(("line", "expected"), [
    ("  min_stream_completion: 1.5", "objectives.min_stream_completion"),
    ("  ttft_p95_ms: {max: 2x baseline, during: later}", "objectives.ttft_p95_ms.during"),
    ("  ttft_p95_ms: fast", "objectives.ttft_p95_ms"),
])
def test_bad_streaming_objective_values_name_their_field(tmp_path: Path, line: str, expected: str) -> None:
    text = SCENARIO.replace("  min_stream_completion: 0.95", line if "min_stream" in line else "").replace(
        "  ttft_p95_ms: {max: 2x baseline, during: after_failover}", line if "ttft" in line else "")

    msg = problem(tmp_path, text)

    assert expected in msg and "s.yaml:" in msg
