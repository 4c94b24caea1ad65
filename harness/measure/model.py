"""What measure is given: fault timings, objectives and the measurement settings.

These are plain frozen dataclasses so the engine (live run) and ``drill report`` (recompute from
a run directory) build them the same way, from the journal and the scenario.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

PHASE_NAMES = ("baseline", "fault", "recovery")

Phases = dict[str, tuple[float, float]]
"""Phase name (``baseline``, ``fault``, ``recovery``) -> (start_epoch_s, end_epoch_s)."""


@dataclass(frozen=True)
class FaultTiming:
    """One applied fault as the journal records it.

    ``onset_at`` is the epoch second the fault took effect (t0), ``onset_source`` where that time
    came from (``docker-event:die``, ``toxiproxy-api``, ``hook-response``) and
    ``onset_uncertainty_s`` the half-width of the interval the true onset lies in.
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
    """

    rto_s: float | None = None
    max_error_rate: float | None = None
    p95_ms: float | None = None
    p95_baseline_factor: float | None = None
    failover_to: str | None = None
    max_lost_requests: int | None = None

    def __post_init__(self) -> None:
        if self.p95_ms is not None and self.p95_baseline_factor is not None:
            raise ValueError(
                "objectives: set p95_ms either as milliseconds or as 'Nx baseline', not both"
            )


@dataclass(frozen=True)
class MeasureSettings:
    """How finely to measure.

    ``probe_rate_hz`` is the open-loop probe rate (it sets the resolution); ``bucket_s`` the
    bucket width; ``window_s`` the W of the sustained-window rule (healthy for W = recovered);
    ``primary_tier`` the tier that serves in the baseline — None means "derive it from the
    samples": the most common tier of good baseline responses.
    """

    probe_rate_hz: float
    bucket_s: float = 0.25
    window_s: float = 5.0
    primary_tier: str | None = None

    def __post_init__(self) -> None:
        if not (self.probe_rate_hz > 0 and math.isfinite(self.probe_rate_hz)):
            raise ValueError(f"probe_rate_hz must be a positive number, got {self.probe_rate_hz!r}")
        if not self.bucket_s > 0:
            raise ValueError(f"bucket_s must be positive, got {self.bucket_s!r}")
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
