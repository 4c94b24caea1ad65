"""Per-phase statistics: membership by start time, rates and latency percentiles."""

from __future__ import annotations

import numpy as np
import pytest

from harness.measure import phase_stats
from harness.measure.testing import concat_samples, probe_segment, set_between


def test_percentiles_of_a_known_distribution() -> None:
    # 100 requests in 10 s with latencies 1..100 ms (shuffled), then 400 at 5 ms in the next phase.
    samples = probe_segment(0.0, 10.0, rate_hz=10.0)
    samples["latency_ms"] = np.random.default_rng(7).permutation(np.arange(1.0, 101.0))
    samples = concat_samples(samples, probe_segment(10.0, 20.0, rate_hz=20.0, latency_ms=5.0))

    stats = phase_stats(samples, {"baseline": (0.0, 10.0), "fault": (10.0, 30.0)})
    baseline = stats["baseline"]

    assert baseline.requests == 100
    assert baseline.rps == pytest.approx(10.0)
    # Linear interpolation between ranks (numpy's default).
    assert baseline.p50_ms == pytest.approx(50.5)
    assert baseline.p95_ms == pytest.approx(95.05)
    assert baseline.p99_ms == pytest.approx(99.01)
    assert stats["fault"].p99_ms == pytest.approx(5.0)
    assert stats["fault"].requests == 400


def test_a_sample_belongs_to_the_phase_its_start_falls_in() -> None:
    samples = probe_segment(0.0, 2.0, rate_hz=2.0, latency_ms=3000.0)  # starts 0, .5, 1, 1.5

    stats = phase_stats(samples, {"baseline": (0.0, 1.0), "fault": (1.0, 2.0)})

    assert stats["baseline"].requests == 2  # 0.0 and 0.5, though both end after 1.0
    assert stats["fault"].requests == 2  # 1.0 exactly starts the fault phase


def test_error_rate_counts_every_not_ok_request_and_latency_counts_successes_only() -> None:
    samples = probe_segment(0.0, 10.0, rate_hz=10.0, latency_ms=10.0)
    samples = set_between(samples, 0.0, 2.0, status=0, latency_ms=5000.0)  # 20 timeouts
    samples = set_between(samples, 2.0, 3.0, status=503)  # 10 errors
    samples = set_between(samples, 3.0, 3.5, latency_ms=800.0)  # 5 slow successes of 70

    [fault] = phase_stats(samples, {"fault": (0.0, 10.0)}).values()

    assert fault.error_rate == pytest.approx(0.3)
    # 70 successes: 65 at 10 ms, 5 at 800 ms. The p95 rank is 0.95 x 69 = 65.55, between the
    # 66th value (800) and ... both 800: p95 = 800 ms. A timeout is no latency: excluded.
    assert fault.latency_samples == 70
    assert fault.p95_ms == pytest.approx(800.0)
    assert fault.p50_ms == pytest.approx(10.0)


def test_latency_comes_from_the_constant_rate_stream_not_the_closed_loop_users() -> None:
    # The shape of the default drill: the probe sees 2 s of 1,015 ms answers out of 20 s; the
    # closed-loop users send 100 requests per second while fast and only 8 in the slow 2 s.
    probe = set_between(probe_segment(0.0, 20.0, rate_hz=20.0, latency_ms=10.0), 0.0, 2.0, latency_ms=1015.0)
    users = concat_samples(
        probe_segment(0.0, 2.0, rate_hz=4.0, latency_ms=1015.0, source="locust"),
        probe_segment(2.0, 18.0, rate_hz=100.0, latency_ms=10.0, source="locust"),
    )

    [fault] = phase_stats(concat_samples(probe, users), {"fault": (0.0, 20.0)}).values()

    # Probe: 40 of 400 at 1,015 ms (10 %): the p95 rank 0.95 x 399 = 379.05 lies among them.
    assert fault.stream == "probe" and fault.stream_requests == 400
    assert fault.p95_ms == pytest.approx(1015.0)
    # Pooled with the users, 48 of 2,208 are slow (2.2 %): a count-weighted p95 would say 10 ms.
    assert fault.closed_loop is not None and fault.closed_loop.p95_ms == pytest.approx(10.0)
    assert fault.requests == 400 + 1808


def test_empty_phase_has_no_rates() -> None:
    samples = probe_segment(0.0, 5.0)

    stats = phase_stats(samples, {"recovery": (100.0, 130.0)})["recovery"]

    assert stats.requests == 0 and stats.rps == 0.0
    assert stats.error_rate is None and stats.p50_ms is None and stats.p95_ms is None and stats.p99_ms is None
