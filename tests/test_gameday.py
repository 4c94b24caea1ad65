"""The game-day console without a drill: its server's tokens, policy and refusals, the controls'
rules (manual inject, hold, abort, entries), the scenario's ``manual`` field and the human
figures in results. The console driving a real drill in a real browser is
tests/test_gameday_browser.py."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import pytest

from harness.engine.controls import ControlRefused, Controls
from harness.engine.schedule import FaultSchedule, ScheduledFault
from harness.faults import Fault
from harness.gameday import CSP, ConsoleServer, GameDay
from harness.results.model import FaultResult, HumanTimeline
from harness.rundir.journal import Journal, read_journal
from harness.scenario import load_scenario
from harness.scenario.fault_specs import parse_fault_spec

SCENARIO = """\
apiVersion: drill/v1
kind: Scenario
name: gameday-unit
stack: {runtime: local, file: stack.yaml}
load: {host: "http://127.0.0.1:9", users: 1, probe_rate_hz: 5}
phases: {baseline: 5s, fault: 10s, recovery: 5s}
faults:
  - {name: slow, type: latency, target: {proxy: hosted-model}, latency_ms: 500, manual: true}
  - {name: planned, type: latency, target: {proxy: hosted-model}, latency_ms: 100, at: 2s, duration: 3s}
"""


def manual_spec(**extra: Any) -> Any:
    return parse_fault_spec({"name": "slow", "type": "latency", "target": {"proxy": "p"}, "latency_ms": 5,
                             "manual": True, **extra})


def schedule_of(tmp_path: Path, *specs: Any) -> tuple[FaultSchedule, Journal]:
    journal = Journal(tmp_path / "journal.jsonl")
    schedule = FaultSchedule(journal, lambda _text: None, tmp_path)
    for i, spec in enumerate(specs):
        # inject_manual, plan and hold never call the fault itself: pure schedule logic
        schedule.faults.append(ScheduledFault(spec=spec, fault=cast(Fault, object()), fault_id=f"{i}-{spec.name}"))
    return schedule, journal


# --- the scenario's manual field ----------------------------------------------------------------


def test_a_manual_fault_waits_unless_the_scenario_plans_a_time() -> None:
    assert manual_spec().planned_at() is None
    assert manual_spec(at="4s").planned_at() == 4.0  # the planned fallback time
    plain = parse_fault_spec({"name": "x", "type": "latency", "target": {"proxy": "p"}, "latency_ms": 5})
    assert plain.planned_at() == 0.0


def test_a_manual_fault_cannot_follow_a_schedule() -> None:
    with pytest.raises(ValueError, match="manual fault cannot follow a schedule"):
        parse_fault_spec({"name": "x", "type": "latency", "target": {"proxy": "p"}, "manual": True,
                          "schedule": {"ramp": {"from": 0, "to": 500, "over": "5s"}}})


# --- the schedule's manual trigger and hold ---------------------------------------------------------


def test_inject_manual_is_due_now_inside_the_fault_phase_once(tmp_path: Path) -> None:
    schedule, journal = schedule_of(tmp_path, manual_spec(duration="3s"))
    now = time.time()
    phase = [now - 1, now + 9]
    schedule.plan(phase[0], 10.0)
    a = schedule.faults[0]
    assert a.apply_at == float("inf")
    with pytest.raises(ValueError, match="fault phase only"):
        schedule.inject_manual("slow", now + 20, phase)
    with pytest.raises(ValueError, match="no fault named"):
        schedule.inject_manual("other", now, phase)
    schedule.inject_manual("slow", now, phase)
    assert (a.apply_at, a.revert_at) == (now, now + 3)
    with pytest.raises(ValueError, match="already injected"):
        schedule.inject_manual("slow", now, phase)
    journal.close()


def test_a_planned_fault_cannot_be_injected(tmp_path: Path) -> None:
    planned = parse_fault_spec({"name": "p", "type": "latency", "target": {"proxy": "p"}, "latency_ms": 5})
    schedule, journal = schedule_of(tmp_path, planned)
    now = time.time()
    schedule.plan(now - 1, 10.0)
    with pytest.raises(ValueError, match="not manual"):
        schedule.inject_manual("p", now, [now - 1, now + 9])
    journal.close()


def test_hold_moves_only_what_is_still_ahead(tmp_path: Path) -> None:
    late = parse_fault_spec({"name": "late", "type": "latency", "target": {"proxy": "p"}, "latency_ms": 5,
                             "at": "8s"})
    schedule, journal = schedule_of(tmp_path, late, manual_spec())
    start = 1000.0
    schedule.plan(start, 10.0)
    schedule.hold(start + 5, 30.0)
    assert schedule.faults[0].apply_at == start + 8 + 30
    assert schedule.faults[0].revert_at == start + 10 + 30
    assert schedule.faults[1].apply_at == float("inf")  # still waiting for the facilitator
    journal.close()


# --- the controls -----------------------------------------------------------------------------------


def test_controls_refuse_before_the_drill_and_journal_what_they_take(tmp_path: Path) -> None:
    controls = Controls(hold_budget_s=60, participants=("Ana", "Bo"))
    with pytest.raises(ControlRefused, match="not running"):
        controls.record("Ana", "noticed")
    schedule, journal = schedule_of(tmp_path, manual_spec())
    controls.attach(journal, schedule)
    with pytest.raises(ControlRefused, match="phases have not started"):
        controls.inject("slow", "Ana")
    now = time.time()
    controls.phases = {"baseline": [now - 6, now - 1], "fault": [now - 1, now + 9], "recovery": [now + 9, now + 14]}
    schedule.plan(now - 1, 10.0)
    controls.inject("slow", "Ana")
    stamp = controls.record("Bo", "noticed", "p95 doubled")
    with pytest.raises(ControlRefused, match="unknown entry kind"):
        controls.record("Bo", "panicked")
    controls.hold(45, "Ana")
    with pytest.raises(ControlRefused, match="at most the 15 s left"):
        controls.hold(30, "Ana")
    assert controls.take_holds() == [(45.0, "Ana")] and controls.take_holds() == []
    controls.abort("Ana")
    controls.abort("Bo")  # a second abort is the same abort
    controls.rolling_back = True
    with pytest.raises(ControlRefused, match="already ending"):
        controls.hold(5, "Ana")
    request = controls.abort_request()
    assert request is not None and request.by == "Ana"
    controls.detach()
    with pytest.raises(ControlRefused, match="has ended"):
        controls.record("Bo", "note")
    journal.close()
    records = list(read_journal(journal.path))
    names = [r.event.event for r in records]
    assert names == ["gameday.participants", "gameday.inject", "human.entry", "gameday.abort"]
    assert records[2].ts == pytest.approx(stamp, abs=1e-5)


# --- the server ---------------------------------------------------------------------------------


@pytest.fixture
def console(tmp_path: Path) -> Iterator[ConsoleServer]:
    (tmp_path / "stack.yaml").write_text("services: []\n", encoding="utf-8")
    scenario = tmp_path / "gameday-unit.yaml"
    scenario.write_text(SCENARIO, encoding="utf-8")
    try:
        loaded = load_scenario(scenario)
    except Exception as exc:  # the stack file's own rules: say so rather than hide the point
        pytest.fail(f"the unit scenario does not load: {exc}")
    day = GameDay(loaded, runtime=None, out=tmp_path / "run", reports_dir=tmp_path, say=lambda _t: None,
                  hold_budget_s=60, participants=("Ana",))
    server = ConsoleServer(day)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_the_page_needs_a_token_and_carries_the_policy(console: ConsoleServer) -> None:
    base = f"http://127.0.0.1:{console.port}"
    assert httpx.get(base + "/").status_code == 403
    assert httpx.get(base + "/?token=nope").status_code == 403
    page = httpx.get(console.facilitator_url)
    assert page.status_code == 200 and "/assets/app.js" in page.text
    assert page.headers["content-security-policy"] == CSP
    assert "connect-src 'self'" in CSP and "default-src 'none'" in CSP
    assert httpx.get(console.observer_url).status_code == 200
    script = httpx.get(base + "/assets/app.js")
    assert script.status_code == 200 and "X-Drill-Token" in script.text
    assert httpx.get(base + "/assets/..%2f__init__.py").status_code == 404
    # DNS rebinding: a name that is not this loopback address is refused
    assert httpx.get(base + "/", headers={"Host": f"evil.example:{console.port}"}).status_code == 421


def test_observers_read_and_cannot_command(console: ConsoleServer) -> None:
    base = f"http://127.0.0.1:{console.port}"
    state = httpx.get(base + "/api/state", headers={"X-Drill-Token": console.observer_token}).json()
    assert state["role"] == "observer" and state["status"] == "waiting"
    assert [f["name"] for f in state["faults"]] == ["slow", "planned"] and state["faults"][0]["manual"] is True
    for command in ("start", "inject", "hold", "abort", "entry"):
        reply = httpx.post(f"{base}/api/{command}", json={}, headers={"X-Drill-Token": console.observer_token})
        assert reply.status_code == 403, command
    assert httpx.get(base + "/api/state").status_code == 403


def test_commands_need_json_and_are_refused_before_the_start(console: ConsoleServer) -> None:
    base = f"http://127.0.0.1:{console.port}"
    token = {"X-Drill-Token": console.facilitator_token}
    form = httpx.post(base + "/api/abort", data={"by": "x"}, headers=token)
    assert form.status_code == 415  # a cross-site form cannot send JSON with the token header
    refused = httpx.post(base + "/api/abort", json={}, headers=token)
    assert refused.status_code == 409 and "not started" in refused.json()["error"]
    bad_name = httpx.post(base + "/api/start", json={"participants": ["A\x07"]}, headers=token)
    assert bad_name.status_code == 409
    assert console.day.status == "waiting"


# --- the human figures ------------------------------------------------------------------------------


def test_human_figures_pair_people_with_the_instruments() -> None:
    onset = 1_000_000.0
    fault = FaultResult.model_validate({
        "name": "slow", "type": "latency", "targets": [], "onset_at": None, "onset_source": None,
        "onset_uncertainty_s": None, "reverted_at": None, "time_to_detect_s": 0.4, "rto_s": 6.0,
        "failover_s": 3.0, "failback_s": None, "degraded_s": None, "impact": "recovered",
    })
    entries = [(onset - 2, "Bo", "noticed", "too early: before the fault"), (onset + 11.5, "Bo", "noticed", "p95"),
               (onset + 40, "Ana", "decided", "fail over"), (onset + 50, "Bo", "noticed", "again")]
    human = HumanTimeline.of(["Ana", "Bo"], entries, onset, fault, onset + 2.0, [], [], "Ana")
    assert human.time_to_notice_s == 11.5 and human.time_to_detect_s == 0.4
    assert human.time_to_decide_s == 40.0 and human.failover_s == 3.0
    assert human.runbook_fired_s == 2.0 and human.notice_after_runbook_s == 9.5
    assert [e.offset_s for e in human.entries] == [-2.0, 11.5, 40.0, 50.0]
    nothing = HumanTimeline.of([], entries[:1], None, None, None, [], [], None)
    assert nothing.time_to_notice_s is None and nothing.entries[0].offset_s is None


def test_a_held_drill_takes_its_phases_from_the_journal(tmp_path: Path) -> None:
    from harness.results.compute import JournalFacts, phase_bounds
    from harness.scenario.model import Scenario

    (tmp_path / "stack.yaml").write_text("services: []\n", encoding="utf-8")
    scenario = tmp_path / "s.yaml"
    scenario.write_text(SCENARIO, encoding="utf-8")
    spec: Scenario = load_scenario(scenario).spec
    t0 = 1_000_000.0
    facts = JournalFacts(run_id="r", phase_starts={"baseline": t0, "fault": t0 + 5, "recovery": t0 + 45},
                         recovery_end=t0 + 50)
    assert phase_bounds(facts, spec)["fault"] == (t0 + 5, t0 + 15)  # no hold: the planned lengths
    facts.holds.append({"phase": "fault", "seconds": 30.0, "by": "Ana", "at": "x"})
    assert phase_bounds(facts, spec) == {"baseline": (t0, t0 + 5), "fault": (t0 + 5, t0 + 45),
                                         "recovery": (t0 + 45, t0 + 50)}
