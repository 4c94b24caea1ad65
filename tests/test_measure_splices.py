"""Splices and answers checked token by token, measured (harness/measure/streams.py) and judged
(the four splice objectives), on synthetic samples whose figures are worked out in the comments;
then the scenario check that a drill naming them can stream.

The drill (probe at 20 Hz; phases baseline [0, 10), fault [10, 20), recovery [20, 30)):

    [0, 10)    200 probe streams, 10 tokens, checked, nothing lost or repeated, no splice
    [10, 12)    40 probe streams spliced after 4 tokens, gap 100 ms, 0 lost, 2 repeated
    [12, 14)    40 probe streams spliced after 4 tokens, gap 300 ms, 1 lost, 0 repeated
    [14, 30)   320 probe streams, no splice, checked, clean
               10 Locust streams in [10, 20) (1 Hz) spliced with a 5,000 ms gap: not the probe's
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pandas as pd
import pytest

from harness.errors import ScenarioError
from harness.measure import ObjectiveSpec, evaluate_objectives
from harness.measure.samples import SPLICE_DEFAULTS
from harness.measure.streams import completion_window, stream_phase_stats
from harness.measure.testing import concat_samples, stream_segment
from harness.scenario import load_scenario

PHASES = {"baseline": (0.0, 10.0), "fault": (10.0, 20.0), "recovery": (20.0, 30.0)}


def _checked(frame: pd.DataFrame, *, gap_ms: float | None = None, before: int = 4, lost: int = 0,
             repeated: int = 0, foreign: int = 0) -> pd.DataFrame:
    frame["tokens_lost"], frame["tokens_repeated"], frame["foreign_tokens"] = lost, repeated, foreign
    if gap_ms is not None:
        frame["splices"], frame["splice_tokens_before"], frame["splice_gap_ms"] = 1, before, gap_ms
    return frame


def drill_samples() -> pd.DataFrame:
    return concat_samples(
        _checked(stream_segment(0.0, 10.0)),
        _checked(stream_segment(10.0, 2.0), gap_ms=100.0, repeated=2),
        _checked(stream_segment(12.0, 2.0), gap_ms=300.0, lost=1),
        _checked(stream_segment(14.0, 16.0)),
        _checked(stream_segment(10.0, 10.0, rate_hz=1.0, source="locust"), gap_ms=5000.0, lost=9),
    )


def test_splice_figures_come_from_the_probes_streams() -> None:
    fault = stream_phase_stats(drill_samples(), PHASES)["fault"].splices
    assert fault is not None and fault.stream == "probe"
    assert fault.streams == 200 and fault.spliced == 80 and fault.checked == 200
    assert fault.splice_gap_p50_ms == pytest.approx(200.0)  # 40 at 100 ms, 40 at 300 ms: midpoint
    assert fault.splice_gap_max_ms == 300.0  # the Locust streams' 5 s gap is not the probe's
    assert fault.tokens_before_splice_p50 == 4.0 and fault.tokens_after_splice_p50 == 6.0  # of 10 tokens
    assert (fault.tokens_lost, fault.tokens_lost_max) == (40, 1)
    assert (fault.tokens_repeated, fault.tokens_repeated_max) == (80, 2)
    assert (fault.foreign_tokens, fault.foreign_tokens_max) == (0, 0)


def test_a_run_without_checked_or_spliced_streams_has_no_splice_figures() -> None:
    plain = concat_samples(stream_segment(0.0, 30.0))  # the columns' defaults: never checked
    assert all(s.splices is None for s in stream_phase_stats(plain, PHASES).values())
    assert plain["splices"].eq(SPLICE_DEFAULTS["splices"]).all()


def test_the_splice_objectives_pass_and_fail_on_the_worst_probe_stream() -> None:
    window = completion_window(drill_samples(), PHASES)
    spec = ObjectiveSpec(splice_gap_p95_ms=400.0, max_tokens_lost=0, max_tokens_repeated=2, max_foreign_tokens=0)
    results = {r.name: r for r in evaluate_objectives(spec, phases={}, faults=[], baseline_p95_ms=None,
                                                      p95_window=None, failover_to_s=None, lost_requests=None,
                                                      completion=window)}
    gap = results["splice_gap_p95_ms"]
    assert gap.passed and gap.measured == 300.0  # rank 0.95 x 79 = 75.05 falls in the 40 at 300 ms
    assert not results["max_tokens_lost"].passed and results["max_tokens_lost"].measured == 1
    assert results["max_tokens_repeated"].passed and results["max_tokens_repeated"].measured == 2
    assert results["max_foreign_tokens"].passed


def test_splice_objectives_without_a_splice_or_a_checked_stream_are_not_measurable() -> None:
    plain = completion_window(concat_samples(stream_segment(0.0, 30.0)), PHASES)
    spec = ObjectiveSpec(splice_gap_p95_ms=400.0, max_tokens_lost=0)
    results = evaluate_objectives(spec, phases={}, faults=[], baseline_p95_ms=None, p95_window=None,
                                  failover_to_s=None, lost_requests=None, completion=plain)
    assert [(r.name, r.measured, r.passed) for r in results] == [
        ("splice_gap_p95_ms", None, False), ("max_tokens_lost", None, False)]
    assert results[0].note is not None and "no stream was spliced" in results[0].note
    assert results[1].note is not None and "checked token by token" in results[1].note


def test_a_scenario_with_splice_objectives_and_nothing_that_streams_is_refused_with_file_and_line(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(textwrap.dedent("""\
        apiVersion: drill/v1
        kind: Scenario
        name: splice-no-stream
        stack: {runtime: local}
        load:
          host: http://127.0.0.1:8080
          request: {method: POST, path: /v1/chat/completions, json: {model: chat, messages: [{role: user, content: hi}]}}
        phases: {baseline: 5s, fault: 5s, recovery: 5s}
        faults:
          - {name: slow, type: latency, target: {proxy: upstream}, latency_ms: 300}
        objectives:
          max_tokens_repeated: 0
        """), encoding="utf-8")
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    message = str(caught.value)
    assert f"{path}:12" in message and "max_tokens_repeated" in message and '"stream": true' in message
