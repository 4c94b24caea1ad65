"""The `down` drill, run N times while something heavy runs beside it: every verdict must be
PASSED or INCONCLUSIVE, never FAILED (issue 24: a frozen host is the instrument's trouble, not
the stack's). Start the load beside it yourself (e.g. the slow lane: `scripts/test -m slow`).

    .venv/bin/python bench/busy_verdicts.py --runs 10 --out /tmp/busy

The drill is scenarios/latency.yaml with its fault made `down` (Toxiproxy disables the hosted
provider's proxy: connections refused) and the same objectives. It prints one line per run
(exit code, verdict, RTO, the health problems listed) and the counts; exit 0 when no run FAILED.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def down_scenario(out: Path) -> Path:
    text = (REPO / "scenarios/latency.yaml").read_text(encoding="utf-8")
    text = text.replace("name: latency\n", "name: down\n", 1)
    text = text.replace("    type: latency\n", "    type: down\n", 1).replace("    latency_ms: 2000\n", "", 1)
    text = text.replace("file: ../targets/", f"file: {REPO}/targets/", 1)
    path = out / "down.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    scenario = down_scenario(args.out)
    verdicts: Counter[str] = Counter()
    for i in range(args.runs):
        run_dir = args.out / f"run-{i:02d}"
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "harness.cli", "run", str(scenario), "--out", str(run_dir),
                               "--quiet"], capture_output=True, text=True, timeout=300)
        results = json.loads((run_dir / "results.json").read_text()) if (run_dir / "results.json").exists() else {}
        verdict = results.get("verdict", "none")
        verdicts[verdict] += 1
        faults = results.get("faults") or [{}]
        health = ((results.get("measurement") or {}).get("health") or {}).get("problems") or []
        problems = "; ".join(str(p.get("detail")) for p in health) or "no problem"
        print(f"run {i:2d}: exit {done.returncode} {verdict:12s} rto_s {faults[0].get('rto_s')} "
              f"({time.monotonic() - started:.0f} s) health: {problems}", flush=True)
    print("verdicts: " + ", ".join(f"{v} {n}" for v, n in sorted(verdicts.items())))
    return 1 if verdicts.get("failed") else 0


if __name__ == "__main__":
    sys.exit(main())
