"""The shipped compound-outage drill (issue 29) for real on the local runtime (free ports): a 529
storm on the provider, and a GPU node loss that starts ``after`` the storm's journaled onset; its
control (a gateway that knows only the provider) fails. Short phases (6/12/8 s, the node loss 4 s
after the storm for 6 s): the gateway moves traffic off the provider within its breaker window
and the pool keeps a second node, so both verdicts hold at any length."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from harness.engine import run_drill
from harness.testing.drills import (
    SHIPPED_PHASES,
    SUITE_PACE_HZ,
    failed_objectives,
    fault,
    kill_9_when,
    need_proxy,
    paced,
    rebased,
    recover_all,
    verdict_text,
)

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"


def run_compound(name: str, tmp_path: Path) -> tuple[dict[str, Any], int, str | None]:
    need_proxy()
    scenario, _ = rebased(SCENARIOS / name, tmp_path)
    text = scenario.read_text(encoding="utf-8")
    assert SHIPPED_PHASES in text
    text = (text.replace(SHIPPED_PHASES, "phases: {baseline: 4s, fault: 12s, recovery: 4s}")
            .replace("duration: 20s", "duration: 12s")
            .replace("offset: 5s}\n    duration: 10s", "offset: 4s}\n    duration: 6s"))
    assert "offset: 4s}" in text
    scenario.write_text(paced(text), encoding="utf-8")
    result = run_drill(scenario, out=tmp_path / "run")
    return result.results.document(), result.exit_code, result.abort_reason


def onset(results: dict[str, Any], name: str) -> float:
    at = fault(results, name)["onset_at"]
    assert at is not None, fault(results, name)
    return datetime.fromisoformat(at).timestamp()


@pytest.mark.slow
def test_compound_outage_starts_the_node_loss_after_the_storm_and_passes(tmp_path: Path) -> None:
    r, exit_code, abort = run_compound("compound-outage.local.yaml", tmp_path)
    assert [f["name"] for f in r["faults"]] == ["provider-overloaded", "gpu-node-lost"], abort
    # The follower was placed from the storm's journaled onset plus 4 s, never before it.
    assert onset(r, "gpu-node-lost") >= onset(r, "provider-overloaded") + 4.0
    assert all(f["reverted_at"] is not None for f in r["faults"])
    assert fault(r, "gpu-node-lost")["after"] == {"fault": "provider-overloaded", "when": "onset", "offset_s": 4.0}
    assert exit_code == 0, verdict_text(r)
    assert r["cleanup"]["ok"] is True
    assert "Fault lanes" in (tmp_path / "run" / "report.html").read_text(encoding="utf-8")


@pytest.mark.slow
def test_control_compound_outage_without_fallback_exits_1(tmp_path: Path) -> None:
    r, exit_code, abort = run_compound("controls/compound-outage.local.yaml", tmp_path)
    assert exit_code == 1, verdict_text(r)
    assert {"max_error_rate", "failover_to"} <= failed_objectives(r), verdict_text(r)
    assert onset(r, "gpu-node-lost") >= onset(r, "provider-overloaded") + 4.0
    assert r["cleanup"]["ok"] is True


@pytest.mark.slow
def test_kill_9_after_a_follower_started_then_recover_all_reverts_lead_and_follower(tmp_path: Path) -> None:
    """A follower is journaled (with its undo record) before it is applied, like any fault: a
    kill -9 once it is in force, then `drill recover --all`, reverts the lead and the follower."""
    import textwrap

    from harness.rundir import JOURNAL_FILE
    from harness.rundir.events import FaultApplied, FaultReverted
    from harness.rundir.journal import read_journal
    from harness.testing import require, require_mitmdump, toxiproxy_binary
    from harness.testing.stacks import kill9_stack

    require(toxiproxy_binary() is not None, "toxiproxy-server", "run scripts/bootstrap")
    require_mitmdump()
    stack_path, ports = kill9_stack(tmp_path)
    scenario = tmp_path / "compound.yaml"
    scenario.write_text(textwrap.dedent(f"""\
        apiVersion: drill/v1
        kind: Scenario
        name: compound-kill9
        stack: {{runtime: local, file: {stack_path}}}
        load:
          host: http://127.0.0.1:{ports['route']}
          users: 1
          pace_hz: {SUITE_PACE_HZ}
          request: {{method: POST, path: /v1/chat/completions, json: {{model: chat}}}}
          timeout_s: 2
          probe_rate_hz: 10
        phases: {{baseline: 2s, fault: 60s, recovery: 2s}}
        faults:
          - name: slow
            type: latency
            target: {{proxy: hosted-model}}
            latency_ms: 100
          - name: brown
            type: http_error
            target: {{route: hosted-model}}
            status: 429
            share: 0.2
            after: {{fault: slow, offset: 1s}}
        """))
    run_dir = tmp_path / "run"

    def follower_applied() -> bool:
        return (run_dir / JOURNAL_FILE).exists() and "1-brown" in {
            r.event.fault_id for r in read_journal(run_dir / JOURNAL_FILE) if isinstance(r.event, FaultApplied)}

    kill_9_when(scenario, run_dir, follower_applied, "the follower started", cwd=tmp_path, timeout_s=120)
    recover_all(tmp_path)
    reverted = {(r.event.fault_id, r.event.why) for r in read_journal(run_dir / JOURNAL_FILE)
                if isinstance(r.event, FaultReverted)}
    assert reverted == {("0-slow", "recover"), ("1-brown", "recover")}
