"""The gateways' own records, read back for a drill's figures (pure: files in, lists out).

- LiteLLM: ``stack-logs/litellm/calls.jsonl``, one line per deployment call (``litellm_record.py``):
  ``{event, start, end, model_id, status, ...}``.
- Portkey: ``stack-logs/portkey/calls.jsonl``, one line per client request, read from the gateway's
  console log stream by the launcher (``portkey.py``): ``{received, status, attempts: [{target,
  created, execution_ms}]}``.

``served`` gives ``(ts, by_fallback)`` for each answer the gateway served, ts the instant the call
that served it ended (epoch s): arrival, as drill's failover and failback are (harness/measure/
routing.py). LiteLLM's ``start`` is when the request reached the router, which on a loaded machine
can be a second before the provider is called; ``primary_calls`` the calls it sent to the primary provider
between two instants (what it says it sent; the HTTP fault proxy's hits are the other count).

:func:`stack_events` turns a record into the stack events a run keeps (``stack-events.json``, served
by ``record_events.py`` as the stack's ``events_url``): ``failover`` / ``failback`` at each change of
who served, and a ``cooldown_end`` at each call to the primary after a quiet of at least
:data:`COOLDOWN_MIN_S` that followed a failed call (harness/measure/agreement.py), which results
name as the cause of an incident that follows it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.measure.agreement import cooldown_events, routing_events
from harness.rundir import STACK_LOGS_DIR, stack_logs_dir

STACK_LOGS = Path(STACK_LOGS_DIR)  # a run's copy of $DRILL_STACK_LOG_DIR
LITELLM_LOG = Path("litellm", "calls.jsonl")  # in the stack's log folder
PORTKEY_LOG = Path("portkey", "calls.jsonl")
LITELLM_RECORD = STACK_LOGS / LITELLM_LOG
PORTKEY_RECORD = STACK_LOGS / PORTKEY_LOG
LITELLM_PRIMARY = "hosted-model"  # model_info.id of the stacks' hosted deployment
PORTKEY_PRIMARY = "config.targets[0]"  # the scenarios' hosted target
# LiteLLM's record of a request its router refused because every deployment of the group was cooling
# down ("No deployments available"): no call reached the provider.
LITELLM_REFUSED = "RouterRateLimitError"
COOLDOWN_MIN_S = 1.0
"""The shortest quiet after a failed call that counts as a cooldown. LiteLLM takes a failing
deployment out of rotation for the deployment's ``cooldown_time``, else the provider's
``Retry-After``, else the router's ``cooldown_time`` (https://docs.litellm.ai/docs/proxy/reliability,
"cooldown_time"; https://docs.litellm.ai/docs/routing, "Cooldowns"; the pinned
``Router.deployment_callback_on_failure`` in that order), so no one config value is the length of
every cooldown; ``Retry-After`` is whole seconds (RFC 9110, delay-seconds) and 0 disables the
cooldown. A drill's probe alone calls every 50 ms, so a second without a call to a deployment that
had just failed is one out of rotation, not a lull."""


@dataclass(frozen=True)
class GatewayRecord:
    source: str
    served: list[tuple[float, bool]]
    # (instant, ok) of each call sent to the primary provider, whatever its outcome.
    primary_outcomes: list[tuple[float, bool]]
    primary_name: str

    @property
    def primary(self) -> list[float]:
        """Instants of the calls sent to the primary provider."""
        return [ts for ts, _ in self.primary_outcomes]

    def primary_calls(self, start: float, end: float) -> int:
        return sum(1 for t in self.primary if start <= t < end)


def _lines(path: Path) -> list[dict[str, Any]]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue  # a line cut by the gateway's stop
        if isinstance(row, dict):
            rows.append(row)
    return rows


def _num(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def litellm(path: Path) -> GatewayRecord:
    served: list[tuple[float, bool]] = []
    primary: list[tuple[float, bool]] = []
    for row in _lines(path):
        start = _num(row.get("start"))
        if start is None:
            continue
        if row.get("model_id") == LITELLM_PRIMARY and row.get("error") != LITELLM_REFUSED:
            primary.append((start, row.get("event") == "success"))
        if row.get("event") == "success":
            served.append((_num(row.get("end")) or start, row.get("model_id") != LITELLM_PRIMARY))
    return GatewayRecord(f"{LITELLM_RECORD} (LiteLLM's callbacks)", served, primary, LITELLM_PRIMARY)


def portkey(path: Path) -> GatewayRecord:
    served: list[tuple[float, bool]] = []
    primary: list[tuple[float, bool]] = []
    for row in _lines(path):
        attempts = [a for a in row.get("attempts") or [] if isinstance(a, dict) and _num(a.get("created")) is not None]
        status = row.get("status")
        answered = isinstance(status, int) and 200 <= status < 300
        # An attempt before the last failed (Portkey moved on); the last one has the request's status.
        primary += [(float(a["created"]), answered and i == len(attempts) - 1)
                    for i, a in enumerate(attempts) if a.get("target") == PORTKEY_PRIMARY]
        if attempts and answered:
            last = attempts[-1]
            ended = float(last["created"]) + (_num(last.get("execution_ms")) or 0.0) / 1000
            served.append((ended, last.get("target") != PORTKEY_PRIMARY))
    return GatewayRecord(f"{PORTKEY_RECORD} (Portkey's console log stream)", served, primary, PORTKEY_PRIMARY)


def read(run_dir: Path) -> GatewayRecord | None:
    """The record the run's gateway kept, or None (no gateway record in this run)."""
    return read_logs(stack_logs_dir(run_dir))


def read_logs(stack_logs: Path) -> GatewayRecord | None:
    """The record in a stack's log folder (``$DRILL_STACK_LOG_DIR``, a run's ``stack-logs``), or None."""
    litellm_path, portkey_path = stack_logs / LITELLM_LOG, stack_logs / PORTKEY_LOG
    if litellm_path.is_file():
        return litellm(litellm_path)
    if portkey_path.is_file():
        return portkey(portkey_path)
    return None


def stack_events(record: GatewayRecord, min_quiet_s: float = COOLDOWN_MIN_S) -> list[dict[str, Any]]:
    """The record as stack events (``{ts, event, ...}``, in time order): who served
    (:func:`~harness.measure.agreement.routing_events`) and the primary's cooldown ends
    (:func:`~harness.measure.agreement.cooldown_events`)."""
    events = routing_events(record.served) + cooldown_events(record.primary_outcomes, min_quiet_s,
                                                             record.primary_name)
    return sorted(events, key=lambda e: float(e["ts"]))
