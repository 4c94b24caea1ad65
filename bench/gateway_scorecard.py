"""The gateway scorecard: the shipped gateway drills at full length, one row per drill, as a CSV
and a Markdown table (docs/gateways.md holds the pinned versions' table).

    heavy .venv/bin/python bench/gateway_scorecard.py [--only litellm,portkey] [--out DIR]

Runs, one after another through the real engine (``run_drill``), every scenario under
``scenarios/gateways/`` (and its negative control under ``controls/``) on the local runtime's
fixed ports. Beside each drill a watcher polls the HTTP fault proxy's control API every 0.25 s
and keeps each fault's ``hits`` (the upstream calls the proxy answered for the fault: calls the
gateway made to the faulted provider), so the row can say how many calls reached a provider that
had answered 429 with Retry-After, per client request of the fault phase (amplification).

Columns: gateway, version, scenario, expected exit, exit, verdict, missed objectives, failover
(s), RTO (s), failover by the gateway's own record (LiteLLM: the first call a fallback deployment
served after the onset, from ``stack-logs/litellm/calls.jsonl``), error rate and p95 of the fault phase, baseline p95, calls to the faulted provider
during the fault, client requests during the fault, calls per client request, and the run's
report. Traffic goes to 127.0.0.1 only; every drill ends by itself.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from harness.engine import run_drill  # noqa: E402 - after the path is set for a checkout

GATEWAYS = REPO / "scenarios" / "gateways"
PROXY_CONTROL = "http://127.0.0.1:19101/__drill/faults"  # the stacks' HTTP fault proxy route
VERSIONS = {"litellm": REPO / ".venv-litellm" / "drill-version", "portkey": REPO / ".gateways" / "portkey" / "drill-version"}
FIELDS = ["gateway", "version", "scenario", "expected_exit", "exit", "verdict", "missed", "failover_s", "rto_s",
          "gateway_failover_s", "fault_error_rate", "fault_p95_ms", "baseline_p95_ms", "faulted_provider_calls",
          "fault_client_requests", "calls_per_client_request", "report"]
FALLBACK_IDS = {"gpu-a1", "gpu-a2"}  # the LiteLLM stacks' fallback deployments (model_info.id)


class HitWatcher:
    """Polls the proxy's fault list; keeps the largest ``hits`` seen per fault id."""

    def __init__(self) -> None:
        self.hits: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> HitWatcher:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        with httpx.Client(trust_env=False, timeout=1.0) as client:
            deadline = time.monotonic() + 600  # bounded: a drill here lasts about a minute
            while not self._stop.wait(0.25) and time.monotonic() < deadline:
                try:
                    for fault in client.get(PROXY_CONTROL).json():
                        self.hits[fault["id"]] = max(self.hits.get(fault["id"], 0), int(fault.get("hits", 0)))
                except (httpx.HTTPError, ValueError, KeyError, TypeError):
                    continue  # the stack is starting or stopping


def version(gateway: str) -> str:
    try:
        return VERSIONS[gateway].read_text().strip()
    except OSError:
        return "not installed"


def gateway_failover_s(run_dir: Path, onset: float | None) -> float | None:
    """From the gateway's own record (LiteLLM's calls.jsonl): the first call a fallback deployment
    served after the onset, in seconds after it. None without a record (Portkey keeps none)."""
    record = run_dir / "stack-logs" / "litellm" / "calls.jsonl"
    if onset is None or not record.is_file():
        return None
    starts = [float(c["start"]) for c in map(json.loads, record.read_text().splitlines())
              if c.get("event") == "success" and c.get("model_id") in FALLBACK_IDS and c.get("start")]
    after = [t for t in starts if t >= onset]
    return round(min(after) - onset, 3) if after else None


def scorecard_row(gateway: str, path: Path, expected: int, out: Path) -> dict[str, Any]:
    with HitWatcher() as watcher:
        result = run_drill(path, out=out / path.stem.replace(".local", "") / ("control" if expected else "drill"))
    r: dict[str, Any] = result.results.document()
    fault = (r.get("faults") or [{}])[0]
    phase = (r.get("phases") or {}).get("fault") or {}
    base = (r.get("phases") or {}).get("baseline") or {}
    calls = sum(watcher.hits.values())
    onset = fault.get("onset_at")
    onset_s = datetime.fromisoformat(onset.replace("Z", "+00:00")).timestamp() if isinstance(onset, str) else None
    requests = int(phase.get("requests") or 0)
    return {
        "gateway": gateway,
        "version": version(gateway),
        "scenario": str(path.relative_to(REPO)),
        "expected_exit": expected,
        "exit": result.exit_code,
        "verdict": r.get("verdict"),
        "missed": ",".join(o["name"] for o in r.get("objectives", []) if not o["passed"]) or "-",
        "failover_s": fault.get("failover_s"),
        "rto_s": fault.get("rto_s"),
        "gateway_failover_s": gateway_failover_s(result.run_dir, onset_s),
        "fault_error_rate": phase.get("error_rate"),
        "fault_p95_ms": phase.get("p95_ms"),
        "baseline_p95_ms": base.get("p95_ms"),
        "faulted_provider_calls": calls,
        "fault_client_requests": requests,
        "calls_per_client_request": round(calls / requests, 2) if requests else None,
        "report": str(result.run_dir / "report.html"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="litellm,portkey", help="gateways to run (comma-separated)")
    parser.add_argument("--out", type=Path, default=None, help="folder for the runs, the CSV and the table")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="gateway-scorecard-"))
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for gateway in args.only.split(","):
        for path, expected in ((GATEWAYS / f"{gateway}-rate-limited.local.yaml", 0),
                               (GATEWAYS / "controls" / f"{gateway}-rate-limited.local.yaml", 1)):
            rows.append(scorecard_row(gateway, path, expected, out / gateway))
            print(" | ".join(str(rows[-1][f]) for f in FIELDS), flush=True)
    with open(out / "gateway-scorecard.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    table = ["| " + " | ".join(FIELDS) + " |", "|" + "---|" * len(FIELDS)]
    table += ["| " + " | ".join(str(row[f]) for f in FIELDS) + " |" for row in rows]
    (out / "gateway-scorecard.md").write_text("\n".join(table) + "\n", encoding="utf-8")
    print(f"scorecard: {out / 'gateway-scorecard.csv'}")
    print(f"drills={len(rows)} as_expected={sum(1 for r in rows if r['exit'] == r['expected_exit'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
