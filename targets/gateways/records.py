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
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LITELLM_RECORD = Path("stack-logs", "litellm", "calls.jsonl")
PORTKEY_RECORD = Path("stack-logs", "portkey", "calls.jsonl")
LITELLM_PRIMARY = "hosted-model"  # model_info.id of the stacks' hosted deployment
PORTKEY_PRIMARY = "config.targets[0]"  # the scenarios' hosted target


@dataclass(frozen=True)
class GatewayRecord:
    source: str
    served: list[tuple[float, bool]]
    primary: list[float]  # instants of the calls sent to the primary provider, whatever their outcome

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
    primary: list[float] = []
    for row in _lines(path):
        start = _num(row.get("start"))
        if start is None:
            continue
        if row.get("model_id") == LITELLM_PRIMARY:
            primary.append(start)
        if row.get("event") == "success":
            served.append((_num(row.get("end")) or start, row.get("model_id") != LITELLM_PRIMARY))
    return GatewayRecord(f"{LITELLM_RECORD} (LiteLLM's callbacks)", served, primary)


def portkey(path: Path) -> GatewayRecord:
    served: list[tuple[float, bool]] = []
    primary: list[float] = []
    for row in _lines(path):
        attempts = [a for a in row.get("attempts") or [] if isinstance(a, dict) and _num(a.get("created")) is not None]
        primary += [float(a["created"]) for a in attempts if a.get("target") == PORTKEY_PRIMARY]
        status = row.get("status")
        if attempts and isinstance(status, int) and 200 <= status < 300:
            last = attempts[-1]
            ended = float(last["created"]) + (_num(last.get("execution_ms")) or 0.0) / 1000
            served.append((ended, last.get("target") != PORTKEY_PRIMARY))
    return GatewayRecord(f"{PORTKEY_RECORD} (Portkey's console log stream)", served, primary)


def read(run_dir: Path) -> GatewayRecord | None:
    """The record the run's gateway kept, or None (no gateway record in this run)."""
    if (run_dir / LITELLM_RECORD).is_file():
        return litellm(run_dir / LITELLM_RECORD)
    if (run_dir / PORTKEY_RECORD).is_file():
        return portkey(run_dir / PORTKEY_RECORD)
    return None
