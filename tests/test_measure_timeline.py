"""The per-bucket series the report charts."""

from __future__ import annotations

import numpy as np
import pytest

from harness.measure import good_mask
from harness.measure.testing import drop_between, probe_stream, set_between
from harness.measure.timeline import timeline


def test_series_per_bucket_with_tier_shares_and_gaps() -> None:
    samples = probe_stream(10.0, 20.0, phase_s=0.0)  # 5 requests per 0.25 s bucket
    samples = set_between(samples, 4.0, 5.0, status=503)
    samples = set_between(samples, 5.0, 10.0, tier="gpu", where=np.arange(len(samples)) % 5 < 2)
    samples = set_between(samples, 6.0, 7.0, latency_ms=400.0)
    samples = drop_between(samples, 8.0, 8.5)

    series = timeline(samples, good_mask(samples, 100.0), run_start_s=0.0, bucket_s=0.25)

    assert len(series) == 40
    assert series["t_s"].iloc[1] == pytest.approx(0.25)
    assert series["requests"].iloc[0] == 5
    assert series["error_rate"].iloc[16] == 1.0 and series["error_rate"].iloc[0] == 0.0
    # Slow but ok: an error rate of 0, a bad ratio of 1 under a 100 ms bound.
    assert series["error_rate"].iloc[25] == 0.0 and series["bad_ratio"].iloc[25] == 1.0
    assert series["p95_ms"].iloc[25] == pytest.approx(400.0)
    assert series["tier:hosted"].iloc[0] == 1.0
    assert series["tier:gpu"].iloc[30] == pytest.approx(0.4)
    gap = series[(series["t_s"] >= 8.0) & (series["t_s"] < 8.5)]
    assert gap["requests"].tolist() == [0, 0]
    assert gap["error_rate"].isna().all() and gap["p95_ms"].isna().all()


def test_run_end_fixes_the_grid_and_ignores_later_samples() -> None:
    samples = probe_stream(10.0, 20.0, phase_s=0.0)

    series = timeline(samples, good_mask(samples, None), run_start_s=2.0, bucket_s=0.5, run_end_s=6.0)

    assert len(series) == 8
    assert series["requests"].sum() == 80


def test_no_samples_gives_an_empty_series() -> None:
    samples = probe_stream(1.0, 20.0, phase_s=0.0).iloc[0:0]

    series = timeline(samples, good_mask(samples, None), run_start_s=0.0)

    assert len(series) == 0 and "requests" in series.columns
