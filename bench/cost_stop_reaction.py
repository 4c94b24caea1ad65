"""How fast ``stop_when.retry_amplification`` reacts: from the instant the condition held to the
engine's first revert call (the bound the error-rate stop keeps: ≤ 0.25 s).

    heavy .venv/bin/python bench/cost_stop_reaction.py [--runs 3] [--out DIR]

Runs the retry-storm control (scenarios/controls/retry-storm.local.yaml: a gateway that retries
each 429 three times at once, about 5 upstream calls per request) on free ports, shortened
(6 s / 10 s / 8 s), with ``stop_when: {retry_amplification: 3, for: 2s}`` added, so every run
aborts (exit 3) a few seconds into the storm. Prints one row per run: exit code, the measured
amplification when it held, the reaction (results.json ``stop.reaction_s``); the last line is
``runs=<n> max_reaction_s=<s> within_0.25s=<n>``. Traffic goes to 127.0.0.1 only; each drill
ends by itself (about 30 s each with the stack's start and stop).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from harness.engine import run_drill  # noqa: E402 - after the path is set for a checkout
from harness.testing.drills import SCENARIOS, need_proxy, rebased, shortened  # noqa: E402

CONTROL = SCENARIOS / "controls" / "retry-storm.local.yaml"
STOP = "stop_when: {retry_amplification: 3, for: 2s}\n"
BOUND_S = 0.25


def one_run(folder: Path) -> tuple[int, float | None, float | None]:
    folder.mkdir(parents=True, exist_ok=True)
    scenario, _ = rebased(CONTROL, folder)
    text = shortened(scenario.read_text(encoding="utf-8")).replace("expect: failed\n", "expect: aborted\n")
    scenario.write_text(text + STOP, encoding="utf-8")
    result = run_drill(scenario, out=folder / "run")
    stop = json.loads((result.run_dir / "results.json").read_text(encoding="utf-8")).get("stop") or {}
    return result.exit_code, stop.get("measured"), stop.get("reaction_s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    need_proxy()
    reactions: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        base = args.out or Path(tmp)
        for index in range(args.runs):
            code, measured, reaction = one_run(base / f"r{index}")
            shown = "—" if measured is None else f"{measured:.2f}x"
            print(f"run {index + 1}: exit {code}, amplification {shown}, reaction "
                  f"{'—' if reaction is None else f'{reaction:.3f} s'}", flush=True)
            if reaction is not None:
                reactions.append(reaction)
    worst = max(reactions) if reactions else float("nan")
    print(f"runs={args.runs} max_reaction_s={worst:.3f} within_{BOUND_S}s={sum(r <= BOUND_S for r in reactions)}")


if __name__ == "__main__":
    main()
