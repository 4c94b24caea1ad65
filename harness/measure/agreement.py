"""Agreement with the stack's own record: the stack's failover and failback instants (the
reference gateway's ``/admin/events``) beside the harness's, and the difference."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

FAILOVER_EVENT = "failover"
FAILBACK_EVENT = "failback"


@dataclass(frozen=True)
class StackAgreement:
    """The stack's own failover / failback (seconds from the onset, None when its log has none),
    ``*_delta_s`` = harness - stack, and whether every delta is within the resolution (None when
    there is nothing to compare)."""

    source: str
    resolution_s: float
    failover_s: float | None
    failover_delta_s: float | None
    failback_s: float | None
    failback_delta_s: float | None
    agrees: bool | None


def agreement(
    events: list[dict[str, Any]],
    onset_s: float,
    until_s: float | None,
    failover_s: float | None,
    failback_s: float | None,
    resolution_s: float,
    source: str,
) -> StackAgreement:
    """The first ``failover`` event at or after the onset less the resolution (and before
    ``until_s``, the next fault's onset or the end of the data) and the first ``failback`` after
    it, each as seconds from the onset, with ``delta_s`` = harness - stack and whether |delta| is
    within resolution.
    """
    # The stack can see a fault a little before its onset source does (a killed process resets its
    # connections before Docker emits the `die` event): look back by the resolution.
    window = [e for e in events if e["ts"] >= onset_s - resolution_s and (until_s is None or e["ts"] < until_s)]
    stack_failover = next((e["ts"] - onset_s for e in window if e["event"] == FAILOVER_EVENT), None)
    stack_failback = None
    if stack_failover is not None:
        stack_failback = next(
            (e["ts"] - onset_s for e in window if e["event"] == FAILBACK_EVENT and e["ts"] - onset_s > stack_failover),
            None,
        )
    failover_delta = _delta(failover_s, stack_failover)
    failback_delta = _delta(failback_s, stack_failback)
    deltas = [abs(d) for d in (failover_delta, failback_delta) if d is not None]
    return StackAgreement(
        source=source,
        resolution_s=round(resolution_s, 6),
        failover_s=_round(stack_failover),
        failover_delta_s=failover_delta,
        failback_s=_round(stack_failback),
        failback_delta_s=failback_delta,
        agrees=None if not deltas else max(deltas) <= resolution_s,
    )


def _delta(harness_s: float | None, stack_s: float | None) -> float | None:
    return None if harness_s is None or stack_s is None else round(harness_s - stack_s, 6)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def routing_events(served: list[tuple[float, bool]]) -> list[dict[str, Any]]:
    """A gateway's own per-request record as the stack events ``agreement`` reads: ``served`` is
    ``(ts, by_fallback)`` per answered request (any order); a ``failover`` event at the first
    answer by a fallback after one by the primary (or at the first answer when it is a
    fallback's), a ``failback`` at the first answer by the primary after a fallback's."""
    events: list[dict[str, Any]] = []
    on_fallback = False
    for ts, by_fallback in sorted(served):
        if by_fallback != on_fallback:
            events.append({"ts": ts, "event": FAILOVER_EVENT if by_fallback else FAILBACK_EVENT})
            on_fallback = by_fallback
    return events


COOLDOWN_END_EVENT = "cooldown_end"


def cooldown_events(
    calls: list[tuple[float, bool]], min_quiet_s: float, tier: str | None = None
) -> list[dict[str, Any]]:
    """A gateway's own per-call record of its primary deployment as cooldown events: ``calls`` is
    ``(ts, ok)`` per call it sent there (any order). A ``cooldown_end`` event marks a call made
    after at least ``min_quiet_s`` without one, when the call before the quiet failed: the gateway
    had cooled the failing deployment down and now tried it again (LiteLLM's ``cooldown_time``).
    harness/measure/incidents.py names it as the cause of an incident that follows."""
    events: list[dict[str, Any]] = []
    ordered = sorted(calls)
    for (before, ok_before), (ts, _) in zip(ordered, ordered[1:], strict=False):
        if not ok_before and ts - before >= min_quiet_s:
            events.append({"ts": ts, "event": COOLDOWN_END_EVENT, "tier": tier,
                           "detail": f"first call to the failing deployment after {ts - before:.1f} s without one"})
    return events
