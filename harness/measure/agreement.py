"""Agreement with the stack's own record: the stack's failover and failback instants (the
reference gateway's ``/admin/events``) beside the harness's, and the difference."""

from __future__ import annotations

from typing import Any

FAILOVER_EVENT = "failover"
FAILBACK_EVENT = "failback"


def agreement(
    events: list[dict[str, Any]],
    onset_s: float,
    until_s: float | None,
    failover_s: float | None,
    failback_s: float | None,
    resolution_s: float,
    source: str,
) -> dict[str, Any]:
    """The first ``failover`` event at or after the onset less the resolution (and before
    ``until_s``, the next fault's onset or the end of the data) and the first ``failback`` after it, each as seconds
    from the onset, with ``delta_s`` = harness - stack and whether |delta| is within resolution.
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
    out: dict[str, Any] = {"source": source, "resolution_s": round(resolution_s, 6)}
    for name, stack, harness in (("failover", stack_failover, failover_s), ("failback", stack_failback, failback_s)):
        out[f"{name}_s"] = None if stack is None else round(stack, 6)
        delta = None if stack is None or harness is None else harness - stack
        out[f"{name}_delta_s"] = None if delta is None else round(delta, 6)
    deltas = [abs(out[k]) for k in ("failover_delta_s", "failback_delta_s") if out[k] is not None]
    out["agrees"] = None if not deltas else max(deltas) <= resolution_s
    return out
