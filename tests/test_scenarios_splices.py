"""The stream-resume drills (issue 27), run for real on the local runtime (free ports) with the
short phases of tests/test_scenarios_provider.py (4 s / 8 s / 4 s: the splice figures and the
control's verdict hold at any length, since every stream the proxy cuts is resumed the same way):
the HTTP fault proxy cuts the hosted provider's streams after 3 tokens, the gateway resumes them
on the GPU pool, and the probe checks every answer token by token. The reader's figures are
checked against the gateway's own log of what it re-sent (``stream_resumed``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from harness.rundir import REPORT_FILE, STACK_EVENTS_FILE
from harness.testing.drills import failed_beyond_slowness, objective, run_short, verdict_text


def _resumed(run_dir: Path) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    samples = pd.concat([pd.read_csv(p) for p in sorted((run_dir / "samples").glob("*.csv"))])
    spliced = samples[(samples["stream"] == 1) & (samples["splices"] >= 1)]
    logged = json.loads((run_dir / STACK_EVENTS_FILE).read_text())["events"]
    return spliced, [e for e in logged if e["event"] == "stream_resumed"]


@pytest.mark.slow
def test_stream_resume_local_passes_with_its_splices_as_the_gateway_logged_them(tmp_path: Path) -> None:
    result, _ = run_short("stream-resume.local.yaml", tmp_path)
    r = result.results.document()
    assert result.exit_code == 0, verdict_text(r)
    splices = r["measurement"]["streaming"]["completion"]["splices"]
    assert splices["spliced"] > 0 and splices["checked"] >= splices["spliced"]
    assert (splices["tokens_lost"], splices["tokens_repeated"], splices["foreign_tokens"]) == (0, 0, 0)
    assert objective(r, "splice_gap_p95_ms")["measured"] == splices["splice_gap_p95_ms"]
    assert r["phases"]["fault"]["answers"]["invalid"] == 0

    # One stream_resumed per spliced stream (probe and users alike), each after the 3 tokens the
    # proxy let through and with those 3 re-sent as the prefill: what the reader counted.
    spliced, resumed = _resumed(result.run_dir)
    assert len(spliced) == len(resumed) > 0
    assert set(spliced["splice_tokens_before"]) == {3}
    assert {(e["tokens_sent"], e["resent_tokens"], e["policy"]) for e in resumed} == {(3, 3, "resume")}
    assert set(spliced["tokens"]) == {16}  # whole answers: 3 from hosted + 13 from the GPU pool

    page = (result.run_dir / REPORT_FILE).read_text(encoding="utf-8")
    assert "Splices" in page and "splice gap" in page
    assert r["cleanup"]["ok"] is True


@pytest.mark.slow
def test_control_stream_resume_repeats_exits_1_on_the_repeated_tokens_alone(tmp_path: Path) -> None:
    result, _ = run_short("controls/stream-resume-repeats.local.yaml", tmp_path)
    r = result.results.document()
    assert result.exit_code == 1, verdict_text(r)
    # Every stream completed, nothing was an error: only the token-by-token check fails it (and
    # the RTO, beside another drill, on slow answers alone: ``failed_beyond_slowness``).
    assert failed_beyond_slowness(r) == {"max_tokens_repeated"}, verdict_text(r)
    assert objective(r, "max_tokens_repeated")["measured"] == 3
    spliced, resumed = _resumed(result.run_dir)
    assert len(spliced) == len(resumed) > 0
    assert {(e["tokens_sent"], e["replayed_tokens"], e["policy"]) for e in resumed} == {(3, 3, "restart")}
    assert set(spliced["tokens_repeated"]) == {3}
    assert r["cleanup"]["ok"] is True
