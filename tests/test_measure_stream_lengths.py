"""A stream is complete only when it ended with [DONE] *and* is not short of the baseline's
length (harness/measure/streams.py; docs/method.md "Streaming"). A gateway that pads a stream its
provider cut with a [DONE] of its own (LiteLLM: tests/test_gateways_drills.py) no longer passes
``min_stream_completion``. Synthetic samples; the recorded shapes are those of that drill: 16-token
answers in the baseline, 3 tokens then the gateway's [DONE] while the provider cuts streams."""

from __future__ import annotations

import numpy as np
import pytest

from harness.measure import FaultTiming, MeasureSettings, ObjectiveSpec, measure_run
from harness.measure.streams import MIN_BASELINE_STREAMS, ended_short, expected_lengths, stream_stats_for
from harness.measure.testing import concat_samples, stream_segment
from harness.measure.timeline import timeline
from harness.results.model import STREAMING_METHOD, MeasurementInfo

PHASES = {"baseline": (0.0, 10.0), "fault": (10.0, 20.0), "recovery": (20.0, 30.0)}
SETTINGS = MeasureSettings(probe_rate_hz=20)
FAULT = FaultTiming("cut", "stream_cut", 10.0, "http-fault-proxy-api", 0.001, 20.0, ["route:hosted-model"])


def padded_run(locust_tokens: int = 16) -> object:
    """Probe streams of 16 tokens, except [12, 19.5): 3 tokens then [DONE] (150 streams); Locust
    users at 2 Hz with ``locust_tokens``-token answers throughout."""
    return concat_samples(
        stream_segment(0.0, 12.0, tokens=16),
        stream_segment(12.0, 7.5, tokens=3),
        stream_segment(19.5, 10.5, tokens=16),
        stream_segment(0.0, 30.0, rate_hz=2, tokens=locust_tokens, source="locust"),
    )


def test_the_baseline_sets_the_expected_length_per_source() -> None:
    samples = padded_run(locust_tokens=40)
    assert expected_lengths(samples, PHASES["baseline"]) == {"probe/hosted": 16, "locust/hosted": 40}
    # Too few completed baseline streams of a source: its length is not checked.
    few = concat_samples(stream_segment(0.0, 0.25, tokens=16), stream_segment(10.0, 5.0, tokens=3))
    assert len(few) and MIN_BASELINE_STREAMS > 5
    assert expected_lengths(few, PHASES["baseline"]) == {}
    assert not ended_short(few, {}).any()


def test_a_padded_stream_ended_short_and_is_not_completed() -> None:
    samples = padded_run()
    m = measure_run(samples, PHASES, [FAULT], ObjectiveSpec(min_stream_completion=0.90), SETTINGS)
    window = m.stream_completion
    assert window is not None
    # The window [10, 30): 400 probe streams, 150 of them 3 tokens + [DONE]; 40 Locust streams;
    # and the 2 probe streams sent at 9.90 and 9.95 s, still open at the onset (10 s), completed.
    assert (window.streams, window.ended_short, window.completed) == (442, 150, 292)
    assert window.failed_mid_stream == 0 and window.failed_before_first_token == 0
    assert window.completion_rate == pytest.approx(292 / 442)
    [objective] = m.objectives
    assert objective.passed is False
    assert objective.note is not None and "150 ended with [DONE] but short of the baseline's 16 tokens" in objective.note
    assert m.streams["baseline"].ended_short == 0 and m.streams["baseline"].completion_rate == 1.0
    # The chart's completion share says the same per bucket.
    ordered = samples.sort_values("start", kind="stable").reset_index(drop=True)
    chart = timeline(ordered, np.ones(len(ordered), dtype=bool), 0.0, 0.25, 30.0, m.stream_lengths)
    assert chart["stream_completion"].iloc[int(13.25 / 0.25)] == 0.0  # probes only (Locust at 13.0, 13.5)
    assert chart["stream_completion"].iloc[int(5.0 / 0.25)] == 1.0


def test_without_the_length_check_the_same_streams_looked_complete() -> None:
    """What the drill measured before: every [DONE] counted, short or not."""
    samples = padded_run()
    before = stream_stats_for(samples, "fault+recovery", 10.0, 30.0, "hosted")
    assert before.completion_rate == 1.0 and before.ended_short == 0


def test_a_longer_answer_is_never_short_and_the_rule_is_in_the_results_method() -> None:
    samples = concat_samples(stream_segment(0.0, 10.0, tokens=16), stream_segment(10.0, 20.0, tokens=20))
    m = measure_run(samples, PHASES, [FAULT], ObjectiveSpec(min_stream_completion=0.99), SETTINGS)
    assert m.objectives[0].passed is True and m.stream_completion is not None
    assert m.stream_completion.ended_short == 0
    info = MeasurementInfo.of(m)
    assert info.streaming is not None and info.streaming.expected_tokens == {"probe/hosted": 16}
    assert "ended_short" in STREAMING_METHOD and "fewest of a completed baseline stream from the same load source and tier" in STREAMING_METHOD


def test_a_baseline_stream_cut_by_the_onset_does_not_lower_the_expected_length() -> None:
    """Sent in the baseline's last moment, answered after the onset with 3 tokens and the
    gateway's [DONE] (seen in a real LiteLLM drill): the fault cut it, so it sets no floor."""
    samples = padded_run()
    late = stream_segment(9.95, 0.05, tokens=3, gap_ms=30.0)  # sent at 9.95, ends at 10.06
    samples = concat_samples(samples[samples["start"] != 9.95], late)
    assert expected_lengths(samples, PHASES["baseline"]) == {"probe/hosted": 3, "locust/hosted": 16}
    assert expected_lengths(samples, PHASES["baseline"], first_onset_s=10.0) == {"probe/hosted": 16, "locust/hosted": 16}
    m = measure_run(samples, PHASES, [FAULT], ObjectiveSpec(min_stream_completion=0.90), SETTINGS)
    assert m.stream_lengths == {"probe/hosted": 16, "locust/hosted": 16} and m.objectives[0].passed is False


def test_a_fallback_that_answers_shorter_by_design_is_not_short() -> None:
    """The GPU fallback answers 10 tokens where the hosted model answered 16: the baseline says
    nothing of the fallback's length, so its [DONE] stands; the hosted tier's 3-token answers do not."""
    samples = concat_samples(
        stream_segment(0.0, 10.0, tokens=16),
        stream_segment(10.0, 2.0, tokens=3),
        stream_segment(12.0, 18.0, tokens=10, tier="gpu"),
    )
    m = measure_run(samples, PHASES, [FAULT], ObjectiveSpec(min_stream_completion=0.5), SETTINGS)
    assert m.stream_lengths == {"probe/hosted": 16}
    window = m.stream_completion
    # 400 sent in [10, 30), and the 2 sent in the baseline still open at the onset (completed).
    assert window is not None and (window.streams, window.ended_short, window.completed) == (402, 40, 362)
