"""Answers checked against their API: how many 2xx answers were invalid, and why, per window.

The probe checks each 2xx answer against the schema the scenario names (``load.request.
answer_schema``: whole bodies, and every event of a stream; harness/load/streams.py) and records
an answer that does not match as a bad one whose ``error`` is ``invalid: WHY``. Such an answer is
already counted in the error rate (``ok`` 0); this module says how many there were, from which
tier and why. Figures come from the constant-rate probe (every request when the window holds no
probe request), like the error rate.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd

from harness.measure.goodness import constant_rate_rows
from harness.measure.phases import phase_slice

INVALID_PREFIX = "invalid: "  # harness/load/streams.py writes it; measure imports nothing of load
TOP_REASONS = 5
_EVENT_NUMBER = re.compile(r"^event \d+: ")


@dataclass(frozen=True)
class AnswerStats:
    """The answers of one window: ``requests`` sent, ``invalid`` 2xx answers that did not match
    their API (``invalid_rate`` = invalid / requests, None without a request), ``by_tier`` the
    invalid ones per tier that answered, ``reasons`` the most common reasons (at most
    :data:`TOP_REASONS`, the stream event's number left out so alike reasons count together)."""

    name: str
    stream: str  # probe | all
    requests: int
    invalid: int
    invalid_rate: float | None
    by_tier: dict[str, int]
    reasons: dict[str, int]


def has_invalid_answers(samples: pd.DataFrame) -> bool:
    """True when some answer of the run was recorded as invalid."""
    return bool(samples["error"].astype(str).str.startswith(INVALID_PREFIX).any()) if len(samples) else False


def answer_stats_for(samples: pd.DataFrame, name: str, start: float, end: float) -> AnswerStats:
    """:class:`AnswerStats` of the requests sent in ``[start, end)``; ``samples`` sorted by start."""
    rows = phase_slice(samples["start"].to_numpy(), start, end)
    probe = constant_rate_rows(samples)[rows]
    which = "probe" if probe.any() else "all"
    chosen = probe if which == "probe" else np.ones_like(probe)
    errors = samples["error"].to_numpy()[rows][chosen].astype(str)
    tiers = samples["tier"].to_numpy()[rows][chosen].astype(str)
    invalid = np.char.startswith(errors, INVALID_PREFIX) if errors.size else np.zeros(0, dtype=bool)
    n = int(chosen.sum())
    count = int(invalid.sum())
    reasons = Counter(_EVENT_NUMBER.sub("", e[len(INVALID_PREFIX):]) for e in errors[invalid])
    return AnswerStats(
        name=name,
        stream=which,
        requests=n,
        invalid=count,
        invalid_rate=count / n if n else None,
        by_tier=dict(sorted(Counter(t or "none" for t in tiers[invalid]).items())),
        reasons=dict(reasons.most_common(TOP_REASONS)),
    )


def answer_phase_stats(samples: pd.DataFrame, phases: dict[str, tuple[float, float]]) -> dict[str, AnswerStats]:
    """:class:`AnswerStats` for every phase, in the given order."""
    return {name: answer_stats_for(samples, name, s, e) for name, (s, e) in phases.items()}
