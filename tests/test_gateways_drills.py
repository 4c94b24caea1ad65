"""The third-party gateways drilled for real (issue 26): the pinned LiteLLM proxy and Portkey
gateway in front of the reference model servers on the local runtime (free ports), a 429 storm
on the hosted provider's HTTP fault proxy route, attribution from each gateway's own header.

Phases are short (4 s / 8 s / 4 s, ``shortened``): what is asserted (the fallback served the
fault phase, a control without fallbacks misses its error objective, nothing left after kill -9)
holds at any length. The LiteLLM drills send less than the shipped ones (users at 2 requests/s,
the probe at 10 Hz: harness.testing.drills.LITELLM_PACE_HZ says why). Full-length runs:
``drill run scenarios/gateways/...`` (docs/gateways.md).
Each test needs the heavy lock: ``heavy .venv/bin/pytest tests/test_gateways_drills.py::NAME``.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from harness import rundir
from harness.engine import run_drill
from harness.measure.agreement import COOLDOWN_END_EVENT
from harness.runtime.ports import port_in_use
from harness.testing import require, require_mitmdump, toxiproxy_binary
from harness.testing.drills import (
    LITELLM_PROBE_HZ,
    SHORT_PHASES,
    fault_window,
    http_fault_hit,
    kill_9_when,
    litellm_load,
    objective,
    rebased,
    recover_all,
    shortened,
    stack_status,
    verdict_text,
)
from targets.gateways import records

REPO = Path(__file__).resolve().parents[1]
GATEWAYS = REPO / "scenarios" / "gateways"
LITELLM = REPO / ".venv-litellm" / "bin" / "litellm"
PORTKEY = REPO / ".gateways" / "portkey" / "node_modules" / "@portkey-ai" / "gateway" / "build" / "start-server.js"


def need(gateway: str) -> None:
    require(toxiproxy_binary() is not None, "toxiproxy-server", "run scripts/bootstrap")
    require_mitmdump()
    if gateway == "litellm":
        require(LITELLM.is_file(), "the LiteLLM proxy", "run scripts/litellm-setup")
    else:
        require(PORTKEY.is_file(), "the Portkey gateway", "run scripts/portkey-setup")


def short_copy(name: str, tmp_path: Path, phases: tuple[int, int, int] = SHORT_PHASES,
               probe_hz: int = LITELLM_PROBE_HZ) -> tuple[Path, dict[int, int]]:
    """A copy of the shipped gateway drill ``name`` (and its stack file) on free ports,
    shortened; a LiteLLM drill lighter (``litellm_load``, its probe at ``probe_hz``)."""
    scenario, mapping = rebased(GATEWAYS / name, tmp_path)
    text = scenario.read_text(encoding="utf-8")
    if name.split("/")[-1].startswith("litellm"):
        text = litellm_load(text, probe_hz)
    scenario.write_text(shortened(text, phases), encoding="utf-8")
    return scenario, mapping


def run_short(name: str, tmp_path: Path, phases: tuple[int, int, int] = SHORT_PHASES,
              probe_hz: int = LITELLM_PROBE_HZ) -> tuple[Any, dict[int, int]]:
    """:func:`short_copy`, run."""
    scenario, mapping = short_copy(name, tmp_path, phases, probe_hz)
    return run_drill(scenario, out=tmp_path / "run"), mapping


def samples(run_dir: Path) -> pd.DataFrame:
    return pd.concat([pd.read_csv(p, keep_default_na=False) for p in sorted((run_dir / "samples").glob("*.csv"))])


def assert_fell_back_to_gpu(result: Any) -> pd.DataFrame:
    r = result.results.document()
    assert objective(r, "failover_to")["passed"] is True, verdict_text(r)
    assert objective(r, "max_error_rate")["passed"] is True, verdict_text(r)
    rows = samples(result.run_dir)
    ok = rows[rows["ok"] == 1]
    start, end = fault_window(result.run_dir)
    # Attributed from the gateway's own header: the hosted provider before the storm, the GPU
    # pool while it lasts (a request sent just before the onset may still be hosted).
    assert set(ok[ok["end"] < start]["tier"]) == {"hosted"}, set(ok[ok["end"] < start]["tier"])
    during = ok[(ok["start"] > start + 1.0) & (ok["end"] < end)]
    assert len(during) > 20 and set(during["tier"]) == {"gpu"}, during["tier"].value_counts()
    assert r["cleanup"]["ok"] is True
    return rows


def assert_record_served_to_the_run(result: Any) -> None:
    """The gateway's own record reached the run as its stack events (the stack's record-events
    process, the scenario's events_url): results set its failover beside drill's, and every cooldown
    end it names is one results could name as an incident's cause (docs/gateways.md)."""
    events = rundir.read_stack_events(result.run_dir)
    assert events is not None, "no stack-events.json: the gateway's record was not served to the run"
    assert "failover" in {e["event"] for e in events}, events[:5]
    record = records.read(result.run_dir)
    # Served by the one reader of the record, at the end of the recovery: the record read now (a
    # few calls later, through the rollback) holds every event the run kept.
    assert record is not None
    kept = {(round(e["ts"], 6), e["event"]) for e in records.stack_events(record)}
    assert {(round(e["ts"], 6), e["event"]) for e in events} <= kept
    fault = result.results.document()["faults"][0]
    assert fault["agreement"] is not None and fault["agreement"]["failover_s"] is not None, fault["agreement"]
    causes = [i["cause"] for i in fault["incidents"] if i["cause"]]
    if not any(e["event"] == COOLDOWN_END_EVENT for e in events):
        assert not any(c.startswith("cooldown ended") for c in causes), causes


@pytest.mark.slow
def test_litellm_falls_back_to_the_gpu_pool_in_a_429_storm(tmp_path: Path) -> None:
    need("litellm")
    result, _ = run_short("litellm-rate-limited.local.yaml", tmp_path)
    assert_fell_back_to_gpu(result)
    # The gateway's own record, kept in the run: failures on the hosted deployment during the
    # storm, successes on the GPU deployments.
    calls = [json.loads(line) for line in
             (result.run_dir / "stack-logs" / "litellm" / "calls.jsonl").read_text().splitlines()]
    start, end = fault_window(result.run_dir)
    # A call inside the storm: begun 0.5 s after the onset and over before the revert was asked
    # for, so its exchange with the provider lay wholly within the storm. Not "begun 0.5 s before
    # the revert": a call begun then may reach the provider after it, and a whole run's first try
    # (beside another drill) found 4 hosted successes begun 0.52-0.87 s before the revert, their
    # ends not kept. Each odd call is named, start and end in seconds from the onset.
    inside = [c for c in calls if c["start"] is not None and c["end"] is not None
              and start + 0.5 < c["start"] and c["end"] < end]
    odd = [(c["model_id"], c["event"], c.get("status"), round(c["start"] - start, 3), round(c["end"] - start, 3))
           for c in inside if (c["event"] == "success") == (c["model_id"] == "hosted-model")]
    assert {c["model_id"] for c in inside if c["event"] == "success"} == {"gpu-a1", "gpu-a2"}, f"{odd} of {end - start:.1f} s"
    assert {(c["model_id"], c["status"]) for c in inside if c["event"] == "failure"} == {("hosted-model", 429)}, odd
    # The gateway kept calling the throttled provider during the storm (its own record says so).
    assert sum(1 for c in inside if c["event"] == "failure") > 0
    assert_record_served_to_the_run(result)


@pytest.mark.slow
def test_portkey_falls_back_to_the_gpu_targets_in_a_429_storm(tmp_path: Path) -> None:
    need("portkey")
    result, _ = run_short("portkey-rate-limited.local.yaml", tmp_path)
    rows = assert_fell_back_to_gpu(result)
    assert set(rows[rows["tier"] == "gpu"]["served_by"]) <= {"config.targets[1]", "config.targets[2]"}


@pytest.mark.slow
def test_litellm_pads_a_cut_provider_stream_with_done_and_drill_counts_it_short(tmp_path: Path) -> None:
    """The provider's streams end after 3 events without [DONE]: LiteLLM relays them ended with a
    [DONE] of its own, so most answers of the fault end "cleanly" with 3 tokens instead of 16 (a
    truncation the client cannot see), and its own record counts them as successes of the
    hosted deployment. drill no longer takes that [DONE] at its word: a stream short of the
    baseline's 16 tokens ended short, is not completed, and min_stream_completion fails (it
    passed at 0.99 before). Holds at any length: every fault-phase answer of the hosted
    deployment is short."""
    need("litellm")
    result, _ = run_short("litellm-stream-cut.local.yaml", tmp_path)
    rows = samples(result.run_dir)
    start, end = fault_window(result.run_dir)
    ok = rows[(rows["ok"] == 1) & (rows["stream_completed"] == 1)]
    before = ok[ok["end"] < start]
    assert set(before["tokens"]) == {16}, before["tokens"].value_counts()
    during = ok[(ok["start"] > start + 0.5) & (ok["end"] < end - 0.5)]
    short = during[(during["tokens"] < 16) & (during["tier"] == "hosted")]
    assert len(during) > 20 and len(short) > len(during) / 2, during.groupby(["tier", "tokens"]).size()
    calls = [json.loads(line) for line in
             (result.run_dir / "stack-logs" / "litellm" / "calls.jsonl").read_text().splitlines()]
    inside = [c for c in calls if c["start"] is not None and start + 0.5 < c["start"] < end - 0.5]
    assert sum(1 for c in inside if c["event"] == "success" and c["model_id"] == "hosted-model") > len(short) / 2
    r = result.results.document()
    completion = objective(r, "min_stream_completion")
    assert completion["passed"] is False, verdict_text(r)
    assert "ended with [DONE] but short of the baseline's 16 tokens" in completion["note"]
    streaming = r["measurement"]["streaming"]
    assert streaming["expected_tokens"]["probe/hosted"] == 16
    # Every short stream drill counted is one of the [DONE]-padded answers the samples hold.
    assert streaming["completion"]["ended_short"] >= len(short)
    assert result.exit_code == 1 and r["cleanup"]["ok"] is True


@pytest.mark.slow
def test_litellm_ends_a_stalled_stream_with_an_error_at_its_stream_timeout_and_never_falls_back(tmp_path: Path) -> None:
    """The provider stalls every stream for 8 s after 3 events while still sending (a token every
    750 ms, targets/gateways/litellm-stack.slow-tokens.yaml): LiteLLM's stream_timeout of 3 s
    ("maximum time to wait for the first chunk", docs) acts as a read timeout mid-stream too.
    Every stream begun in the fault ends with 3 tokens and LiteLLM's error event, at least the
    3 s it waited after them (the stall reached the gateway and held past its timeout), and
    the fallback receives no request: its own record logs the read timeouts of the hosted
    deployment and not one call to the GPU pool. Holds at any length: each stream meets the stall.

    Its recovery phase stays 6 s (4/8/6 s), as in every whole run it passed: with the suite's 4 s
    recovery, both tries of it in one whole run found calls in LiteLLM's record that were not the
    hosted deployment's (the GPU pool's, or none named) while every stream of the fault still
    ended with LiteLLM's error. Why is not understood yet (docs/gateways.md's stall row is the
    claim at stake).

    Its probe sends at 5 Hz: each answer lasts ~11 s, so at 20 Hz the probe kept ~220 streams
    open in LiteLLM (alone: 48.6 s of CPU in ~60 s, LiteLLM's 23.7 s of it; at 5 Hz 21.9 s and
    9.4 s in the same time), and the fault phase still holds over 30 of its streams.

    Its answers are 10 tokens, not the shipped 16 (6.8 s, not 11.3 s): the drill waits out one
    whole answer three times (the steady-state probes, the first sample, the load's last streams;
    35 s of a 58 s run alone), and tokens 4..10 still span 5.3 s, past LiteLLM's 3 s timeout."""
    need("litellm")
    scenario, _ = short_copy("litellm-stream-stall.local.yaml", tmp_path, phases=(4, 8, 6), probe_hz=5)
    stack = tmp_path / "litellm-stack.slow-tokens.yaml"
    stack_text = stack.read_text(encoding="utf-8")
    assert "TOKEN_INTERVAL_MS: 750}" in stack_text
    stack.write_text(stack_text.replace("TOKEN_INTERVAL_MS: 750}", "TOKEN_INTERVAL_MS: 750, TOKENS_PER_ANSWER: 10}"),
                     encoding="utf-8")
    result = run_drill(scenario, out=tmp_path / "run")
    rows = samples(result.run_dir)
    start, end = fault_window(result.run_dir)
    during = rows[(rows["start"] > start + 0.5) & (rows["start"] < end - 0.5)]
    assert len(during) > 20, len(during)
    assert set(during["tier"]) == {"hosted"} and (during["ok"] == 0).all(), during.groupby(["tier", "ok"]).size()
    assert set(during["tokens"]) == {3}, during["tokens"].value_counts()
    assert all(str(e).startswith("stream error after 3 tokens") for e in during["error"]), set(during["error"])
    # The 3 tokens come within 1.6 s at 750 ms a token; LiteLLM then waited its stream_timeout (3 s).
    assert ((during["end"] - during["start"]) >= 3.0).all(), (during["end"] - during["start"]).describe()
    calls = [json.loads(line) for line in
             (result.run_dir / "stack-logs" / "litellm" / "calls.jsonl").read_text().splitlines()]
    assert {c["model_id"] for c in calls} == {"hosted-model"}, {c["model_id"] for c in calls}
    inside = [c for c in calls if c["start"] is not None and start + 0.5 < c["start"] < end - 0.5]
    assert sum(1 for c in inside if c["event"] == "failure" and c["error"] == "ReadTimeout") >= len(during) / 2
    r = result.results.document()
    assert objective(r, "failover_to")["passed"] is False, verdict_text(r)
    assert result.exit_code == 1 and r["cleanup"]["ok"] is True, result.abort_reason


@pytest.mark.slow
def test_portkey_with_its_provider_down_falls_back_and_its_own_record_says_so(tmp_path: Path) -> None:
    """The provider's TCP link refused (Toxiproxy `down`, target 0 straight on Toxiproxy): Portkey
    falls back on the refused connection, and its console log stream, read into the run, names
    the GPU targets for what it served during the fault and the hosted one before it."""
    need("portkey")
    result, _ = run_short("portkey-provider-down.local.yaml", tmp_path)
    assert_fell_back_to_gpu(result)
    record = records.read(result.run_dir)
    assert record is not None and "Portkey" in record.source
    start, end = fault_window(result.run_dir)
    assert {by for ts, by in record.served if ts < start - 0.5} == {False}
    during = [by for ts, by in record.served if start + 1.0 < ts < end - 0.5]
    assert len(during) > 20 and set(during) == {True}
    # Every answer the record holds is one the drill sent (no request logged twice).
    sent = len(samples(result.run_dir))
    assert 0.95 * sent <= len(record.served) <= sent + 50, (len(record.served), sent)
    assert_record_served_to_the_run(result)


@pytest.mark.slow
@pytest.mark.parametrize("gateway", ["litellm", "portkey"])
def test_control_without_fallbacks_exits_1_naming_the_error_objective(gateway: str, tmp_path: Path) -> None:
    need(gateway)
    result, _ = run_short(f"controls/{gateway}-rate-limited.local.yaml", tmp_path)
    r = result.results.document()
    assert result.exit_code == 1, verdict_text(r)
    failed = {o["name"] for o in r["objectives"] if not o["passed"]}
    assert "max_error_rate" in failed, verdict_text(r)
    assert r["cleanup"]["ok"] is True


def running(pattern: str) -> list[str]:
    """Pids of live (not zombie) processes whose command line holds ``pattern``."""
    pids = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout.split()
    states = {pid: subprocess.run(["ps", "-o", "stat=", "-p", pid], capture_output=True, text=True).stdout.strip()
              for pid in pids}
    return [pid for pid, state in states.items() if state and not state.startswith("Z")]


@pytest.mark.slow
def test_kill_9_mid_fault_on_the_litellm_stack_then_recover_all_leaves_nothing(tmp_path: Path) -> None:
    """kill -9 of the drill while the 429 storm is active on the LiteLLM stack; `drill recover
    --all`: no fault on the proxy, and no process of the stack (gateway included) left."""
    need("litellm")
    scenario, mapping = rebased(GATEWAYS / "litellm-rate-limited.local.yaml", tmp_path)
    text = scenario.read_text(encoding="utf-8").replace(
        "phases: {baseline: 10s, fault: 20s, recovery: 15s}", "phases: {baseline: 3s, fault: 60s, recovery: 2s}")
    text = litellm_load(text.replace("duration: 20s", "duration: 60s"))
    scenario.write_text(text, encoding="utf-8")
    stack_file = tmp_path / "litellm-stack.yaml"
    run_dir = tmp_path / "run"
    kill_9_when(scenario, run_dir, http_fault_hit(f"http://127.0.0.1:{mapping[19101]}"),
                "the HTTP fault became active", cwd=tmp_path)
    config = str(run_dir / "stack-logs" / "litellm" / "config.yaml")
    gateway_pids = running(config)
    assert gateway_pids, "the LiteLLM proxy of the killed drill should still be running before recover"

    assert "reverted" in recover_all(tmp_path)
    after = stack_status(stack_file, tmp_path)
    assert after["http_faults"] == [] and after["active_faults"] == []
    assert running(config) == []
    assert not any(port_in_use(port) for port in mapping.values())
