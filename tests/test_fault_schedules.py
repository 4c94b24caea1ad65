"""Fault schedules (ramp, steps, flap): the plan of steps, the FILE:LINE errors for impossible
schedules, steps applied in place on real Toxiproxy and the real HTTP fault proxy (journaled, each
with its onset bracket), and kill -9 mid-ramp then ``drill recover --all`` leaving nothing behind."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from harness.engine.schedule import FaultSchedule
from harness.faults.http import HttpFault
from harness.faults.network import network_fault
from harness.httpfaults.proxy import HttpRoute, running_http_fault_proxy
from harness.rundir import JOURNAL_FILE
from harness.rundir.events import FaultReverted, FaultStep, FaultStepIntent
from harness.rundir.journal import Journal, read_journal
from harness.scenario.fault_schedules import ScheduleSpec, default_ramp_steps, step_plan
from harness.scenario.fault_specs import HttpErrorSpec, LatencySpec, parse_fault_spec
from harness.testing import free_port, require_mitmdump
from harness.testing.drills import SUITE_PACE_HZ, kill_9_when, recover_all, stack_status
from harness.testing.scenarios import line_of, loaded, problem
from harness.toxiproxy import ToxiproxyClient

# --- the plan -------------------------------------------------------------------------------


def schedule(data: dict[str, Any]) -> ScheduleSpec:
    return ScheduleSpec.model_validate(data)


def test_a_ramp_holds_from_and_to_and_equal_steps_between() -> None:
    plan = step_plan(schedule({"ramp": {"from": 0, "to": 3000, "over": "60s", "steps": 4}}), 80.0, None)
    assert plan == [(0.0, 0.0), (15.0, 1000.0), (30.0, 2000.0), (45.0, 3000.0)]
    down = step_plan(schedule({"ramp": {"from": 0.5, "to": 0.05, "steps": 10}}), 20.0, None)
    assert down[0] == (0.0, 0.5) and down[-1] == (18.0, pytest.approx(0.05)) and len(down) == 10


def test_a_ramp_without_steps_takes_them_from_the_probe_rate() -> None:
    assert default_ramp_steps(60.0, 20.0) == 120  # 10 probe intervals (0.5 s) a step
    assert default_ramp_steps(60.0, 2.0) == 12
    assert default_ramp_steps(60.0, 0.0) == 60  # no probe: one step a second
    assert len(step_plan(schedule({"ramp": {"from": 0, "to": 100}}), 6.0, None, probe_rate_hz=10.0)) == 6


def test_steps_and_a_flap_in_turn_and_a_seeded_jitter_repeats() -> None:
    steps = schedule({"steps": [{"value": 100, "for": "2s"}, {"value": 800, "for": "3s"}]})
    assert step_plan(steps, 10.0, None) == [(0.0, 100.0), (2.0, 800.0)]
    flap = schedule({"flap": {"on_for": "5s", "off_for": "5s"}})
    assert step_plan(flap, 20.0, 1.0) == [(0.0, 1.0), (5.0, 0.0), (10.0, 1.0), (15.0, 0.0)]
    jittered = schedule({"flap": {"on_for": "5s", "off_for": "5s", "jitter_s": 1, "seed": 7, "value": 0.4}})
    first = step_plan(jittered, 30.0, None)
    assert first == step_plan(jittered, 30.0, None)
    assert [v for _, v in first[:4]] == [0.4, 0.0, 0.4, 0.0]
    gaps = [b[0] - a[0] for a, b in zip(first, first[1:], strict=False)]
    assert all(4.0 <= g <= 6.0 for g in gaps) and len(set(gaps)) > 1


def test_the_schedule_sets_the_magnitude_its_peak_is_journaled() -> None:
    spec = parse_fault_spec({"name": "slow", "type": "latency", "target": {"proxy": "p"},
                             "schedule": {"ramp": {"from": 0, "to": 2500.5}}})
    assert isinstance(spec, LatencySpec) and spec.latency_ms == 2501 and spec.schedule is not None
    brown = parse_fault_spec({"name": "brown", "type": "http_error", "target": {"route": "r"},
                              "schedule": {"ramp": {"from": 0.05, "to": 0.5}}})
    assert isinstance(brown, HttpErrorSpec) and brown.share == 0.5
    assert "schedule" not in brown.parameters()


# --- impossible schedules: FILE:LINE and field ---------------------------------------------------


@pytest.mark.parametrize(
    "type, target, lines, field, words",
    [
        ("latency", "{proxy: p}", ["duration: 4s", "schedule: {ramp: {from: 0, to: 900, over: 5s}}"],
         "faults[0]", "the ramp lasts 5s, longer than the fault (duration 4s)"),
        ("latency", "{proxy: p}", ["schedule: {ramp: {from: 0, to: 900, over: 9s}}"],
         "faults[0].schedule", "the ramp lasts 9s, longer than the fault"),
        ("latency", "{proxy: p}", ["schedule: {ramp: {from: 0, to: 900, steps: 0}}"],
         "faults[0].schedule.ramp.steps", "greater than or equal to 2"),
        ("latency", "{proxy: p}", ["schedule: {steps: []}"], "faults[0].schedule.steps", "at least 1 item"),
        ("latency", "{proxy: p}", ["schedule: {ramp: {from: -5, to: 900}}"],
         "faults[0].schedule.ramp.from", "greater than or equal to 0"),
        ("latency", "{proxy: p}", ["schedule: {steps: [{value: 10, for: 0s}]}"],
         "faults[0].schedule.steps[0]", "a step must last longer than 0s"),
        ("latency", "{proxy: p}", ["schedule: {flap: {on_for: 1s, off_for: 1s, jitter_s: 1}}", "latency_ms: 100"],
         "faults[0].schedule.flap", "jitter_s 1 must be shorter than on_for and off_for"),
        ("latency", "{proxy: p}", ["latency_ms: 100", "schedule: {ramp: {from: 0, to: 900}}"],
         "faults[0]", "the schedule sets latency_ms"),
        ("latency", "{proxy: p}", ["schedule: {ramp: {from: 0, to: 900}, flap: {on_for: 1s, off_for: 1s}}"],
         "faults[0].schedule", "one of ramp, steps or flap (got ramp and flap)"),
        ("http_error", "{route: r}", ["schedule: {ramp: {from: 0.05, to: 1.5}}"],
         "faults[0]", "share reaches 1.5, over its most (1)"),
        ("down", "{proxy: p}", ["schedule: {flap: {on_for: 1s, off_for: 1s}}"],
         "faults[0]", "down faults have no magnitude to schedule"),
    ],
)
def test_impossible_schedules_are_refused_with_file_line_and_field(
    tmp_path: Path, type: str, target: str, lines: list[str], field: str, words: str
) -> None:
    text = "  - name: f\n" + f"    type: {type}\n" + f"    target: {target}\n" + "".join(f"    {x}\n" for x in lines)
    path, message = problem(tmp_path, text)
    assert words in message, message
    assert f"{field}:" in message or f"{field} " in message, message
    assert f"{path}:" in message, message


def test_a_valid_schedule_loads(tmp_path: Path) -> None:
    text = ("  - name: f\n    type: first_token_delay\n    target: {route: r}\n"
            "    schedule: {steps: [{value: 100, for: 2s}, {value: 900, for: 3s}]}\n")
    (spec,) = loaded(tmp_path, text)
    assert spec.type == "first_token_delay" and spec.delay_ms == 900
    assert line_of(tmp_path / "scenario.yaml", "schedule") == 11


# --- steps on real parts --------------------------------------------------------------------------


def test_a_ramp_updates_the_same_toxic_in_place_and_journals_each_step(tmp_path: Path, toxiproxy_url: str) -> None:
    """Through FaultSchedule as the engine drives it: apply at step 0, advance through the plan,
    each step an update of the one toxic (read back from Toxiproxy) with its own onset bracket."""
    with ToxiproxyClient(toxiproxy_url) as client:
        client.create_proxy("hosted", f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}")
        spec = parse_fault_spec({"name": "slow", "type": "latency", "target": {"proxy": "hosted"},
                                 "schedule": {"ramp": {"from": 0, "to": 300, "over": "3s", "steps": 4}}})
        assert isinstance(spec, LatencySpec)
        with Journal(tmp_path / JOURNAL_FILE) as journal:
            sched = FaultSchedule(journal, lambda _: None, tmp_path)
            from harness.engine.schedule import ScheduledFault
            a = ScheduledFault(spec=spec, fault=network_fault(spec, client), fault_id="0-slow")
            sched.faults.append(a)
            sched.plan(1000.0, 4.0)
            assert [v for _, v in a.steps] == [0.0, 100.0, 200.0, 300.0]
            sched.apply(a)
            seen = [client.toxics("hosted")[0].attributes["latency"]]
            for planned_at, _ in a.steps[1:]:
                sched.advance(a, planned_at)
                (toxic,) = client.toxics("hosted")
                assert toxic.name == "drill-slow"
                seen.append(toxic.attributes["latency"])
            sched.revert(a, why="end")
            sched.advance(a, 1e9)  # after the revert: no step, no toxic comes back
        assert seen == [0, 100, 200, 300]
        assert client.toxics("hosted") == []
    events = [r.event for r in read_journal(tmp_path / JOURNAL_FILE)]
    steps = [e for e in events if isinstance(e, FaultStep)]
    assert [(s.index, s.param, s.value) for s in steps] == [(0, "latency_ms", 0.0), (1, "latency_ms", 100.0),
                                                            (2, "latency_ms", 200.0), (3, "latency_ms", 300.0)]
    assert all(s.onset_source == "toxiproxy-api" and s.onset_uncertainty_s >= 0 for s in steps)
    assert [e.index for e in events if isinstance(e, FaultStepIntent)] == [1, 2, 3]
    # Each step's intent is journaled before its step, and the revert after the last.
    names = [e.event for e in events]
    assert names.index("fault.step_intent") < names.index("fault.step", names.index("fault.step_intent"))
    assert isinstance(events[-1], FaultReverted)


def test_a_share_ramp_updates_the_http_fault_in_place(tmp_path: Path) -> None:
    require_mitmdump()
    route = HttpRoute("hosted-model", free_port(), f"http://127.0.0.1:{free_port()}")
    with running_http_fault_proxy([route], tmp_path / "mitmdump.log") as client:
        spec = parse_fault_spec({"name": "brown", "type": "http_error", "target": {"route": "hosted-model"},
                                 "status": 429, "schedule": {"ramp": {"from": 0.05, "to": 0.5, "steps": 2}}})
        assert isinstance(spec, HttpErrorSpec)
        fault = HttpFault(spec, client, "drill-brown")
        assert fault.set_magnitude(0.05) is None  # before apply: what apply sends
        fault.apply()
        assert [f.params["share"] for f in client.faults()] == [0.05]
        onset = fault.set_magnitude(0.5)
        assert onset is not None and onset.source == "http-fault-proxy-api"
        (active,) = client.faults()
        assert (active.id, active.params["share"], active.params["status"]) == ("drill-brown", 0.5, 429)
        fault.revert()
        assert client.faults() == [] and fault.verify() == []


# --- kill -9 mid-ramp, then drill recover --all ---------------------------------------------------


@pytest.mark.slow
def test_kill_9_mid_ramp_then_recover_all_leaves_no_toxic_and_no_http_fault(tmp_path: Path) -> None:
    """Must show (issue 29): a drill ramps a latency toxic and a 429 share at once; kill -9 once
    both have moved past their first step; `drill recover --all`; then no toxic and no HTTP fault
    is left (read from Toxiproxy and the HTTP fault proxy, via `drill stack status --json`)."""

    from harness.runtime.ports import port_in_use
    from harness.testing import require, toxiproxy_binary
    from harness.testing.stacks import kill9_stack

    require(toxiproxy_binary() is not None, "toxiproxy-server", "run scripts/bootstrap")
    require_mitmdump()
    stack_path, ports = kill9_stack(tmp_path)
    route_url = f"http://127.0.0.1:{ports['route']}"
    scenario = tmp_path / "ramp.yaml"
    scenario.write_text(textwrap.dedent(f"""\
        apiVersion: drill/v1
        kind: Scenario
        name: ramp-kill9
        stack: {{runtime: local, file: {stack_path}}}
        load:
          host: {route_url}
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
            schedule: {{ramp: {{from: 0, to: 400, over: 50s, steps: 50}}}}
          - name: brown
            type: http_error
            target: {{route: hosted-model}}
            status: 429
            schedule: {{ramp: {{from: 0.05, to: 0.5, over: 50s, steps: 50}}}}
        """))
    run_dir = tmp_path / "run"

    def mid_ramp() -> bool:  # both faults past their first steps, in the journal
        if not (run_dir / JOURNAL_FILE).exists():
            return False
        stepped = {r.event.fault_id for r in read_journal(run_dir / JOURNAL_FILE)
                   if isinstance(r.event, FaultStep) and r.event.index >= 2}
        return stepped == {"0-slow", "1-brown"}

    kill_9_when(scenario, run_dir, mid_ramp, "both ramps moved past their first step", cwd=tmp_path, timeout_s=120)

    def status() -> dict[str, Any]:
        return stack_status(stack_path, tmp_path)

    left = status()  # both outlived their drill, at a mid-ramp magnitude
    assert {f["kind"] for f in left["active_faults"]} == {"http_fault", "toxic"}, left["active_faults"]
    (brown,) = left["http_faults"]
    assert 0.05 < brown["params"]["share"] < 0.5

    recover_all(tmp_path)
    reverted = {(r.event.fault_id, r.event.why) for r in read_journal(run_dir / JOURNAL_FILE)
                if isinstance(r.event, FaultReverted)}
    assert reverted == {("0-slow", "recover"), ("1-brown", "recover")}

    after = status()
    assert after["http_faults"] == [] and after["active_faults"] == []
    assert not any(port_in_use(port) for port in ports.values())
