"""Compound timelines (``after:``, ``branch:``): the plan and its FILE:LINE errors, followers
started by the engine from the lead's real onset or revert on real Toxiproxy (journaled before
applying, reverted by revert_all), and a ramp whose ticks came late applying every missed step in
order, each late one saying so."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from harness.engine.schedule import LATE_STEP_S, FaultSchedule, ScheduledFault
from harness.faults.network import network_fault
from harness.report.terminal import plan_lines
from harness.rundir import JOURNAL_FILE
from harness.rundir.events import FaultApplied, FaultIntent, FaultReverted, FaultStep, FaultStepIntent
from harness.rundir.journal import Journal, read_journal
from harness.scenario import load_scenario
from harness.scenario.fault_specs import parse_fault_spec
from harness.scenario.timelines import plan_timeline
from harness.testing import free_port
from harness.testing.scenarios import line_of, problem, write
from harness.toxiproxy import ToxiproxyClient

# HEAD's fault phase lasts 5 s.


def latency(name: str, *keys: str) -> str:
    return "".join([f"  - name: {name}\n", "    type: latency\n", "    target: {proxy: p}\n",
                    "    latency_ms: 100\n", *[f"    {k}\n" for k in keys]])


def test_after_places_a_fault_on_its_leads_onset_or_revert_plus_offset(tmp_path: Path) -> None:
    path = write(tmp_path, latency("a", "at: 1s", "duration: 2s"),
                 latency("b", "after: {fault: a, when: revert, offset: 500ms}", "duration: 1s"),
                 latency("c", "after: a"), latency("d", "after: {fault: b, offset: 0.25s}", "branch: late"))
    s = load_scenario(path).spec
    planned, problems = plan_timeline(s.faults, s.phases.fault)
    assert problems == []
    assert [(p.name, p.start_s, p.end_s, p.branch) for p in planned] == [
        ("a", 1.0, 3.0, "a"), ("b", 3.5, 4.5, "b"), ("c", 1.0, 5.0, "c"), ("d", 3.75, 5.0, "late")]
    lines = plan_lines(load_scenario(path), None)
    assert any("fault b:" in x and "from +3.5 s to +4.5 s" in x and "(after a revert + 0.5 s)" in x for x in lines)
    assert any("fault d:" in x and "branch late" in x for x in lines)


@pytest.mark.parametrize(
    ("faults", "key_line", "field", "words"),
    [
        ([latency("a"), latency("b", "after: nobody")], "after: nobody", "faults[1].after.fault",
         "no fault named 'nobody' (faults: a)"),
        ([latency("a", "after: a")], "after: a", "faults[0].after.fault", "cannot start after itself"),
        ([latency("a", "after: c"), latency("b", "after: a"), latency("c", "after: b")], "after: c",
         "faults[0].after", "the after: chain loops (a -> c -> b -> a)"),
        ([latency("a", "duration: 4s"), latency("b", "after: {fault: a, when: revert, offset: 1s}")],
         "after: {fault: a, when: revert, offset: 1s}", "faults[1].after",
         "starts at 5s (a revert + 1 s) but the fault phase lasts 5s"),
        ([latency("a", "duration: 2s"), latency("b", "after: {fault: a, offset: 4s}", "duration: 2s")],
         "duration: 2s", "faults[1].duration", "starts at 4s (a onset + 4 s) + duration 2s runs past"),
        ([latency("a"), latency("b", "at: 1s", "after: a")], "at: 1s", "faults[1].at", "give at or after, not both"),
        ([latency("a", "duration: 3s", "branch: x"), latency("b", "at: 2s", "branch: x")], "branch: x",
         "faults[1].branch", "branch 'x' runs its faults one after another, but 'b' starts at 2s"),
        ([latency("a", "after: {fault: a, when: later}")], "after", "faults[0].after.when", "expected one of: onset"),
    ],
)
def test_impossible_timelines_are_refused_with_file_line_and_field(
    tmp_path: Path, faults: list[str], key_line: str, field: str, words: str
) -> None:
    path, message = problem(tmp_path, *faults)
    assert words in message, message
    assert f"{field}:" in message, message
    text = path.read_text(encoding="utf-8").splitlines()
    lines = [i + 1 for i, x in enumerate(text) if key_line in x]
    assert any(f"{path}:{n} {field}" in message for n in lines), (message, lines)


def test_branches_in_sequence_and_parallel_branches_load(tmp_path: Path) -> None:
    path = write(tmp_path, latency("a", "duration: 2s", "branch: x"),
                 latency("b", "after: {fault: a, when: revert}", "branch: x"), latency("c", "branch: y"))
    assert [f.branch for f in load_scenario(path).spec.faults] == ["x", "x", "y"]
    assert line_of(path, "branch: y") > 0


# --- the engine, on real Toxiproxy ----------------------------------------------------------------


def _fault(client: ToxiproxyClient, proxy: str, data: dict[str, object], i: int) -> ScheduledFault:
    spec = parse_fault_spec({"type": "latency", "target": {"proxy": proxy}, **data})
    return ScheduledFault(spec=spec, fault=network_fault(spec, client), fault_id=f"{i}-{spec.name}")


def test_followers_start_from_the_leads_real_instants_and_are_reverted_with_it(
    tmp_path: Path, toxiproxy_url: str
) -> None:
    with ToxiproxyClient(toxiproxy_url) as client, Journal(tmp_path / JOURNAL_FILE) as journal:
        for proxy in ("lead", "next", "last"):
            client.create_proxy(proxy, f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}")
        sched = FaultSchedule(journal, lambda _: None, tmp_path)
        lead = _fault(client, "lead", {"name": "lead", "latency_ms": 100, "duration": 30}, 0)
        on_onset = _fault(client, "next", {"name": "next", "latency_ms": 50,
                                           "after": {"fault": "lead", "offset": 2}}, 1)
        on_revert = _fault(client, "last", {"name": "last", "latency_ms": 20, "duration": 1,
                                            "after": {"fault": "lead", "when": "revert"}}, 2)
        sched.faults += [lead, on_onset, on_revert]
        phase_start = time.time()
        sched.plan(phase_start, 60.0)
        assert on_onset.apply_at == on_revert.apply_at == float("inf")  # waits for its trigger
        assert sched.start_after() == []
        sched.apply(lead)
        assert lead.onset is not None
        assert sched.start_after() == [on_onset]  # the lead's onset is known; its revert is not
        assert on_onset.apply_at == pytest.approx(lead.onset.at + 2)
        assert on_onset.revert_at == phase_start + 60.0  # without duration: to the phase's end
        sched.apply(on_onset)
        assert {p: len(client.toxics(p)) for p in ("lead", "next", "last")} == {"lead": 1, "next": 1, "last": 0}
        sched.revert(lead, why="scheduled")
        assert lead.reverted_at is not None
        assert sched.start_after() == [on_revert]
        assert on_revert.apply_at == lead.reverted_at and on_revert.revert_at == lead.reverted_at + 1
        sched.apply(on_revert)
        sched.revert_all("rollback")  # every exit path: whatever is applied goes
        assert all(client.toxics(p) == [] for p in ("lead", "next", "last"))
        for a in sched.faults:
            assert a.watchdog is not None
            a.watchdog.cancel()
    events = [r.event for r in read_journal(tmp_path / JOURNAL_FILE)]
    for fid in ("1-next", "2-last"):
        intent = next(i for i, e in enumerate(events) if isinstance(e, FaultIntent) and e.fault_id == fid)
        applied = next(i for i, e in enumerate(events) if isinstance(e, FaultApplied) and e.fault_id == fid)
        assert intent < applied  # journaled (with its undo record) before it is applied
    assert {e.fault_id for e in events if isinstance(e, FaultReverted)} == {"0-lead", "1-next", "2-last"}


def test_a_follower_whose_instant_falls_past_the_fault_phase_is_not_started(tmp_path: Path, toxiproxy_url: str) -> None:
    said: list[str] = []
    with ToxiproxyClient(toxiproxy_url) as client, Journal(tmp_path / JOURNAL_FILE) as journal:
        client.create_proxy("lead", f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}")
        sched = FaultSchedule(journal, said.append, tmp_path)
        lead = _fault(client, "lead", {"name": "lead", "latency_ms": 100}, 0)
        late = _fault(client, "lead", {"name": "late", "latency_ms": 10, "after": {"fault": "lead", "offset": 5}}, 1)
        sched.faults += [lead, late]
        sched.plan(0.0, 3.0)  # a fault phase that ended long ago: the lead's onset + 5 s is past it
        sched.apply(lead)
        assert sched.start_after() == [] and sched.start_after() == []
        assert late.not_started is not None and late.apply_at == float("inf")
        sched.revert_all("end")
        assert lead.watchdog is not None
        lead.watchdog.cancel()
    assert any("fault late not started" in s for s in said), said


def test_a_late_tick_applies_every_missed_step_in_order_and_journals_how_late(
    tmp_path: Path, toxiproxy_url: str
) -> None:
    """The open question of issue 29: a stalled drive loop used to jump to the latest step due
    (a 20-step ramp once showed 6). Now one late tick applies each step it missed, in order."""
    with ToxiproxyClient(toxiproxy_url) as client, Journal(tmp_path / JOURNAL_FILE) as journal:
        client.create_proxy("hosted", f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}")
        sched = FaultSchedule(journal, lambda _: None, tmp_path)
        a = _fault(client, "hosted", {"name": "ramp", "schedule": {"ramp": {"from": 0, "to": 1900, "steps": 20}}}, 0)
        sched.faults.append(a)
        start = time.time() - 10.0  # a ramp that began 10 s ago: the loop stalled all along
        sched.plan(start, 10.0)
        sched.apply(a)
        sched.advance(a, start + 0.6)  # a tick 0.6 s in: step 1 (due at 0.5 s) only
        assert a.step_index == 1
        sched.advance(a, time.time())  # the next tick came when the revert was due
        assert a.step_index == 19
        assert client.toxics("hosted")[0].attributes["latency"] == 1900
        sched.revert(a, why="scheduled")
    events = [r.event for r in read_journal(tmp_path / JOURNAL_FILE)]
    steps = [e for e in events if isinstance(e, FaultStep)]
    assert [s.index for s in steps] == list(range(20))
    assert [s.value for s in steps] == [100.0 * i for i in range(20)]
    assert [e.index for e in events if isinstance(e, FaultStepIntent)] == list(range(1, 20))
    # Steps planned more than LATE_STEP_S before the catching-up tick say how late they came.
    late = [s for s in steps if s.late_s is not None]
    assert late and all(s.late_s is not None and s.late_s > LATE_STEP_S for s in late)
    assert {s.index for s in late} == set(range(1, 20))
    assert steps[0].late_s is None
