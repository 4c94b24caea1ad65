"""The live stop condition (``stop_when: {error_rate, for}``), evaluated on sample rows as the
load generators write them.

    watch = StopWatch(error_rate=0.05, for_s=1.0)
    every tick: watch.add(tail.read_new()); trip = watch.check()

The condition **holds at instant T** when the requests that *ended* in the last ``for_s`` before
T (an error is known when its answer, or its timeout, arrives) number at least
:data:`MIN_REQUESTS` and at least ``error_rate`` of them failed, and the watch has seen requests
for the whole window (a drill never stops on the first second of data). The instants checked are
every arrival and every moment an earlier arrival leaves the window, so ``held_at`` is the first
instant the condition held on the data seen, not the moment the engine happened to look.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

# A window needs several requests before a ratio says anything: one refused connection in a quiet
# second is not an outage. The probe stream alone brings 20 per second at its default rate.
MIN_REQUESTS = 5
# Rows of the two sample files reach the watch up to a flush interval apart, and a request's row
# is written when it ends; arrivals this far behind the newest one are kept for late rows.
KEEP_BEHIND_S = 30.0


@dataclass(frozen=True)
class StopTrip:
    """The stop condition held: when, over which window, and what was measured there."""

    held_at: float
    error_rate: float
    bad_requests: int
    requests: int
    window_s: float


class StopWatch:
    """Evaluates ``error_rate >= threshold over the last for_s`` on sample rows (dicts with
    ``end`` epoch seconds and ``ok`` 1/0, as :class:`harness.load.tail.SampleTail` yields them)."""

    def __init__(self, error_rate: float, for_s: float, min_requests: int = MIN_REQUESTS) -> None:
        self.threshold = error_rate
        self.window_s = for_s
        self.min_requests = min_requests
        self._ends: list[float] = []  # every arrival kept, sorted
        self._bad_ends: list[float] = []  # failed arrivals, sorted
        self._first_end: float | None = None
        self._checked_to: float | None = None  # candidate instants up to here are done
        self._new: list[float] = []

    def add(self, rows: Iterable[dict[str, Any]]) -> None:
        for row in rows:
            try:
                end = float(row["end"])
            except (KeyError, TypeError, ValueError):
                continue
            bisect.insort(self._ends, end)
            if str(row.get("ok")) != "1":
                bisect.insort(self._bad_ends, end)
            self._first_end = end if self._first_end is None else min(self._first_end, end)
            self._new.append(end)

    def check(self) -> StopTrip | None:
        """The first instant among the new data at which the condition held, or None."""
        if not self._ends:
            return None
        newest = self._ends[-1]
        since = self._checked_to if self._checked_to is not None else self._ends[0]
        # Arrivals just added (late ones included) and the moments earlier arrivals left the window.
        candidates = set(self._new)
        low = bisect.bisect_right(self._ends, since - self.window_s)
        high = bisect.bisect_right(self._ends, newest - self.window_s)
        candidates.update(end + self.window_s for end in self._ends[low:high])
        self._new.clear()
        self._checked_to = newest
        for instant in sorted(c for c in candidates if c <= newest):
            trip = self._at(instant)
            if trip is not None:
                return trip
        self._forget_before(newest - self.window_s - KEEP_BEHIND_S)
        return None

    def _at(self, instant: float) -> StopTrip | None:
        start = instant - self.window_s
        if self._first_end is None or start < self._first_end:
            return None  # the window reaches back before the first request seen
        total = bisect.bisect_right(self._ends, instant) - bisect.bisect_right(self._ends, start)
        if total < self.min_requests:
            return None
        bad = bisect.bisect_right(self._bad_ends, instant) - bisect.bisect_right(self._bad_ends, start)
        if bad / total < self.threshold:
            return None
        return StopTrip(held_at=instant, error_rate=bad / total, bad_requests=bad, requests=total,
                        window_s=self.window_s)

    def _forget_before(self, cutoff: float) -> None:
        del self._ends[: bisect.bisect_left(self._ends, cutoff)]
        del self._bad_ends[: bisect.bisect_left(self._bad_ends, cutoff)]
