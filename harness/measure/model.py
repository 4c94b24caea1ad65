"""What measure is given: fault timings, objectives and the measurement settings.

These are plain frozen dataclasses so the engine (live run) and ``drill report`` (recompute from
a run directory) build them the same way, from the journal and the scenario.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

PHASE_NAMES = ("baseline", "fault", "recovery")
P95_WINDOWS = ("fault", "after_failover", "recovery")
"""Where a latency objective is judged: the fault phase, from the first failover to the end of
the fault phase, or the recovery phase."""

DEFAULT_GOOD_LATENCY_FACTOR = 2.0
DEFAULT_GOOD_LATENCY_FLOOR_MS = 250.0
"""The default latency bound of a good request: the runbook trigger (2x the baseline p95), never
below 250 ms (docs/method.md says why: a healthy fallback tier that is a few ms slower than the
primary must not count as an incident, nor must scheduler noise on a busy staging host)."""

Phases = dict[str, tuple[float, float]]
"""Phase name (``baseline``, ``fault``, ``recovery``) -> (start_epoch_s, end_epoch_s)."""


@dataclass(frozen=True)
class FaultTiming:
    """One applied fault as the journal records it.

    ``onset_at`` is the epoch second the fault took effect (t0), ``onset_source`` where that time
    came from (``docker-state:finished-at``, ``toxiproxy-api``, ``hook-response``; older runs
    ``docker-event:die``) and ``onset_uncertainty_s`` the half-width of the interval the true
    onset lies in.
    ``reverted_at`` is None when the fault was never reverted (crash, abort before revert).
    """

    name: str
    type: str
    onset_at: float
    onset_source: str
    onset_uncertainty_s: float
    reverted_at: float | None
    targets: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ObjectiveSpec:
    """The scenario's objectives; None means "not set".

    ``p95_ms`` is an absolute bound, ``p95_baseline_factor`` a multiple of the baseline p95
    (``2x baseline`` -> 2.0); set at most one of them. ``failover_to`` names a tier.
    ``max_impact_s`` bounds the time users were affected in all: the incidents' lengths summed
    from the first onset to the end of the data (harness/measure/incidents.py).
    ``ttft_p95_ms`` / ``ttft_p95_baseline_factor`` / ``ttft_p95_during`` bound the p95 time to
    first token of streamed requests the same way; ``min_stream_completion`` is the least share
    of streams (sent in the fault and recovery phases) that must complete. ``splice_gap_p95_ms``,
    ``max_tokens_lost``, ``max_tokens_repeated`` and ``max_foreign_tokens`` bound the splice
    figures of those streams (harness/measure/streams.py). ``max_invalid_answer_rate`` bounds the
    share of the fault phase's probe answers that did not match their API (measure/answers.py).
    """

    rto_s: float | None = None
    max_impact_s: float | None = None
    max_error_rate: float | None = None
    p95_ms: float | None = None
    p95_baseline_factor: float | None = None
    p95_during: str = "fault"
    failover_to: str | None = None
    max_lost_requests: int | None = None
    ttft_p95_ms: float | None = None
    ttft_p95_baseline_factor: float | None = None
    ttft_p95_during: str = "fault"
    min_stream_completion: float | None = None
    splice_gap_p95_ms: float | None = None
    max_tokens_lost: int | None = None
    max_tokens_repeated: int | None = None
    max_foreign_tokens: int | None = None
    max_invalid_answer_rate: float | None = None

    def __post_init__(self) -> None:
        for name, absolute, factor, during in (
            ("p95_ms", self.p95_ms, self.p95_baseline_factor, self.p95_during),
            ("ttft_p95_ms", self.ttft_p95_ms, self.ttft_p95_baseline_factor, self.ttft_p95_during),
        ):
            if absolute is not None and factor is not None:
                raise ValueError(f"objectives: set {name} either as milliseconds or as 'Nx baseline', not both")
            if during not in P95_WINDOWS:
                raise ValueError(f"{name} during must be one of {', '.join(P95_WINDOWS)}, got {during!r}")
        if self.min_stream_completion is not None and not 0 <= self.min_stream_completion <= 1:
            raise ValueError(f"min_stream_completion must be a share in [0, 1], got {self.min_stream_completion!r}")

    @property
    def has_p95(self) -> bool:
        return self.p95_ms is not None or self.p95_baseline_factor is not None

    @property
    def has_ttft_p95(self) -> bool:
        return self.ttft_p95_ms is not None or self.ttft_p95_baseline_factor is not None


@dataclass(frozen=True)
class MeasureSettings:
    """How finely to measure.

    ``probe_rate_hz`` is the open-loop probe rate (it sets the resolution); ``bucket_s`` the
    bucket width; ``window_s`` the W of the sustained-window rule (healthy for W = recovered);
    ``primary_tier`` the tier that serves in the baseline — None means "derive it from the
    samples": the most common tier of successful baseline responses.

    The latency bound of a good request: ``good_latency_ms`` (absolute) or
    ``good_latency_factor`` x the baseline p95; with neither, the default
    max(2 x baseline p95, ``good_latency_floor_ms``). A bucket is unhealthy only on evidence: at
    least ``min_bad_requests`` bad requests *and* the one-sided Wilson lower bound of its bad
    ratio at ``confidence`` above the error threshold.
    """

    probe_rate_hz: float
    bucket_s: float = 0.25
    window_s: float = 5.0
    primary_tier: str | None = None
    good_latency_ms: float | None = None
    good_latency_factor: float | None = None
    good_latency_floor_ms: float = DEFAULT_GOOD_LATENCY_FLOOR_MS
    min_bad_requests: int = 2
    confidence: float = 0.95

    def __post_init__(self) -> None:
        if not (self.probe_rate_hz > 0 and math.isfinite(self.probe_rate_hz)):
            raise ValueError(f"probe_rate_hz must be a positive number, got {self.probe_rate_hz!r}")
        if not self.bucket_s > 0:
            raise ValueError(f"bucket_s must be positive, got {self.bucket_s!r}")
        if self.good_latency_ms is not None and self.good_latency_factor is not None:
            raise ValueError("set good_latency_ms either as milliseconds or as 'Nx baseline', not both")
        if not 0.5 <= self.confidence < 1:
            raise ValueError(f"confidence must be in [0.5, 1), got {self.confidence!r}")
        if self.min_bad_requests < 1:
            raise ValueError(f"min_bad_requests must be at least 1, got {self.min_bad_requests!r}")
        if not self.window_s >= self.bucket_s:
            raise ValueError(
                f"window_s ({self.window_s}) must be at least one bucket ({self.bucket_s} s)"
            )

    @property
    def window_buckets(self) -> int:
        """W in buckets: window_s / bucket_s, rounded up (5 s / 0.25 s = 20)."""
        return max(1, math.ceil(self.window_s / self.bucket_s - 1e-9))

    @property
    def probe_interval_s(self) -> float:
        return 1.0 / self.probe_rate_hz


TROUBLE_KINDS = (
    "host_stall",      # the watchdog overslept: every process on the host may have been frozen
    "probe_lag",       # probes went out later than their schedule (from the samples' ``intended``)
    "probe_skipped",   # probes not sent at all (too many in flight)
    "worker_cpu",      # a Locust worker above its CPU bound (its own schedule slips)
    "proxy_delay",     # a fault proxy added time of its own (mitmproxy's per-flow timestamps)
    "sample_gap",      # a stretch with no rows in a sample file while the load ran
    "write_error",     # a sample or journal write failed (full disk, I/O error): data after is partial
    "clock_step",      # the wall clock stepped against the monotonic clock
    "docker_restart",  # the Docker daemon went away and came back during the drill
)


@dataclass(frozen=True)
class HarnessTrouble:
    """One stretch of time in which the instrument itself could not see well.

    Instants are epoch seconds on the samples' wall clock. ``magnitude_s`` is how much time the
    trouble can move a figure by (a stall's length, a lag, a clock step's size). ``partial`` is
    True when data after ``start_s`` may be missing (a failed write): no PASS or FAIL can rest on
    what follows it. ``detail`` is the trouble in words for a person ("host stalled 0.71 s").
    """

    kind: str
    start_s: float
    end_s: float
    magnitude_s: float
    detail: str
    partial: bool = False
