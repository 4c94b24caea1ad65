"""A run directory with streamed requests, built from the recorded latency run (tests/data): the
same journal and phases, its probe rows turned into streams (no stack needed).

Every answered probe is a stream of 8 tokens whose first token arrived after half its latency;
the slow answers of the incident (latency > 900 ms: the 2 s provider delay, then the gateway's
failover) are cut after 3 tokens; failed probes got no token. The scenario asks for
``"stream": true`` and names the two streaming objectives.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd

RECORDED = Path(__file__).parent / "data" / "latency-run"
CUT_AFTER_TOKENS = 3
SLOW_MS = 900.0
OBJECTIVES = "  ttft_p95_ms: {max: 2x baseline, during: after_failover}\n  min_stream_completion: 0.95\n"


def streaming_run(tmp_path: Path, objectives: str = OBJECTIVES) -> Path:
    run_dir = tmp_path / "streaming-run"
    shutil.copytree(RECORDED, run_dir)
    probe_csv = run_dir / "samples" / "probe.csv"
    probe = pd.read_csv(probe_csv, keep_default_na=False)
    answered = probe["ok"] == 1
    cut = answered & (probe["latency_ms"] > SLOW_MS)
    probe["stream"] = 1
    probe["ttft_ms"] = np.where(answered, (probe["latency_ms"] / 2).round(3), np.nan)
    probe["tokens"] = np.where(cut, CUT_AFTER_TOKENS, np.where(answered, 8, 0))
    probe["max_gap_ms"] = np.where(answered, 2.0, np.nan)
    probe["stream_completed"] = (answered & ~cut).astype(int)
    probe["cut_after_tokens"] = np.where(cut, CUT_AFTER_TOKENS, -1)
    probe.loc[cut, "ok"] = 0
    probe.loc[cut, "error"] = f"stream cut after {CUT_AFTER_TOKENS} tokens"
    probe.to_csv(probe_csv, index=False)
    scenario = run_dir / "scenario.yaml"
    text = scenario.read_text(encoding="utf-8")
    text = text.replace("json: {model: chat, messages:", "json: {model: chat, stream: true, messages:")
    text = text.replace("  failover_to: gpu\n", "  failover_to: gpu\n" + objectives)
    scenario.write_text(text, encoding="utf-8")
    return run_dir


def recorded_probe() -> pd.DataFrame:
    """The recorded probe rows as written (to compute expected figures independently)."""
    return pd.read_csv(RECORDED / "samples" / "probe.csv", keep_default_na=False)
