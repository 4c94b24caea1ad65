"""harness/rundir/events.py, undo.py and journal.py: every event of the catalogue round-trips
through the journal file, recorded journals read back as typed events (and the real one writes
back byte for byte), damage is named FILE:LINE, and no module but the catalogue spells an
event's name. Pure: no stack, no network."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from harness.faults import undo_fault
from harness.rundir.events import (
    CATALOGUE,
    CapacityStopFailed,
    CapacityStopped,
    CleanupCheckFailed,
    CleanupVerified,
    DependencyLost,
    Event,
    FaultApplied,
    FaultApplyFailed,
    FaultIntent,
    FaultReverted,
    FaultRevertFailed,
    FaultRevertIntent,
    FaultRevertRetry,
    FaultStep,
    FaultStepFailed,
    FaultStepIntent,
    GamedayAbort,
    GamedayHold,
    GamedayInject,
    GamedayParticipants,
    HumanEntry,
    KubeChainLink,
    KubeReplicas,
    LoadStarted,
    LoadStarting,
    LoadStopFailed,
    LoadStopped,
    MetricsError,
    MetricsPreflight,
    MetricsRecorded,
    MetricsSteadyStateAfter,
    OtherEvent,
    PhaseEnd,
    PhaseStart,
    Preflight,
    ProxyCreated,
    ProxyDeleted,
    ProxyDeleteFailed,
    ProxyIntent,
    RunAborted,
    RunEnd,
    RunEnvironment,
    RunError,
    RunFinished,
    RunStart,
    StackEvents,
    StackStarted,
    StackStarting,
    StackStopFailed,
    StackStopped,
    StopMetricsReaction,
    StopReverted,
    StopTripped,
    ToxiproxyConnected,
)
from harness.rundir.journal import (
    DamagedFileError,
    Journal,
    applied_faults,
    fault_ledger,
    groups_left,
    proxies_left,
    read_journal,
    stack_process_groups,
)
from harness.rundir.undo import (
    ContainerUndo,
    GpuHookUndo,
    HttpFaultUndo,
    ProcessPausedUndo,
    ProcessUndo,
    ProxyCreatedUndo,
    ProxyDisabledUndo,
    QuotaHookUndo,
    ToxicUndo,
    UnknownUndo,
    parse_undo,
)

DATA = Path(__file__).parent / "data"
T0 = 1_768_384_800.0
TOXIC = ToxicUndo(toxiproxy_url="http://127.0.0.1:8474", proxy="hosted", toxic="drill-slow")

# One example of every event, every field given (a field left out is covered by the fixtures).
EXAMPLES: list[Event] = [
    RunStart(run_id="20260114T095958Z-abc", scenario="s", scenario_path="s.yaml", scenario_sha256="ab" * 32,
             run_dir="reports/s/x", user="sre", host="box", drill_version="0.9", pid=4242),
    RunEnvironment(environment={"runtime": "local", "images": {"gateway": "sha256:00"}, "tools": [1, 2.5, None]}),
    RunError(error="KeyError: 'x'", traceback_file="traceback.txt"),
    RunAborted(reason="stop condition held"),
    RunFinished(),
    RunEnd(verdict="passed"),
    Preflight(failures=["gateway unhealthy"], unhealthy=["gateway"]),
    StackStarting(runtime="local", file="targets/local-stack.yaml"),
    StackStarted(endpoints={"gateway": "http://127.0.0.1:18080"}, process_groups={"gateway": 4243}),
    StackStopped(why="recover", groups=["gateway"]),
    StackStopFailed(error="timeout"),
    StackEvents(url="http://127.0.0.1:18080/admin/events", ok=True, count=3, file="stack-events.json", error=None),
    DependencyLost(what="stack members", url="http://127.0.0.1:8474", error="gone", members=["cpu-fallback"]),
    ToxiproxyConnected(url="http://127.0.0.1:8474", version="2.9.0"),
    ProxyIntent(proxy="hosted", listen="127.0.0.1:19001", upstream="127.0.0.1:18001",
                undo=ProxyCreatedUndo(toxiproxy_url="http://127.0.0.1:8474", proxy="hosted")),
    ProxyCreated(proxy="hosted"),
    ProxyDeleted(proxy="hosted", why="recover"),
    ProxyDeleteFailed(proxy="hosted", error="refused"),
    LoadStarting(plan={"users": 4, "request": {"method": "POST", "path": "/v1/chat/completions"}}),
    LoadStarted(process_groups={"locust": 5001, "prober": None}),
    LoadStopped(why="recover", groups=["locust"]),
    LoadStopFailed(error="timeout"),
    CapacityStopped(),
    CapacityStopFailed(error="timeout"),
    PhaseStart(phase="fault"),
    PhaseEnd(phase="recovery"),
    FaultIntent(fault_id="0-slow", name="slow", type="latency", targets=["toxiproxy:hosted"],
                params={"latency_ms": 300, "jitter_ms": 0}, undo=TOXIC, planned_revert_at=T0 + 10),
    FaultApplied(fault_id="0-slow", onset_at=T0 + 0.5, onset_source="toxiproxy-api", onset_uncertainty_s=0.002),
    FaultApplyFailed(fault_id="0-slow", error="proxy missing"),
    FaultStepIntent(fault_id="0-slow", index=3, param="latency_ms", value=450.0, planned_at=1_700_000_010.0),
    FaultStep(fault_id="0-slow", index=3, param="latency_ms", value=450.0, planned_at=1_700_000_010.0,
              onset_at=1_700_000_010.002, onset_source="toxiproxy-api", onset_uncertainty_s=0.001),
    FaultStepFailed(fault_id="0-slow", index=4, error="toxiproxy went away"),
    FaultRevertIntent(fault_id="0-slow", why="end"),
    FaultRevertRetry(fault_id="0-slow", attempt=1, error="timeout"),
    FaultRevertFailed(fault_id="0-slow", error="refused", why="recover"),
    FaultReverted(fault_id="0-slow", reverted_at=T0 + 10.5, why="watchdog"),
    CleanupCheckFailed(what="toxiproxy", error="refused"),
    CleanupVerified(ok=False, toxics_left=None, containers_not_running=["gpu-a1"], faults_not_reverted=["slow"],
                    hook_faults_active=[]),
    StopTripped(condition="error_rate > 0.9 for 10s", error_rate_threshold=0.9, query="up", source="prometheus",
                for_s=10.0, measured=0.95, series={"tier": "hosted"}, bad_requests=190, requests=200,
                broken_since=T0 + 1, held_at=T0 + 11, detected_at=T0 + 11.2),
    StopReverted(first_revert_at=T0 + 11.3, reaction_s=0.3),
    StopMetricsReaction(condition_true_at=T0 + 1, condition_held_at=T0 + 11, rollback_done_at=T0 + 12,
                        true_to_rollback_s=11.0, held_to_rollback_s=1.0, scrape_interval_s=1.0),
    MetricsPreflight(url="http://127.0.0.1:18099", ok=True, error=None, scrape_interval_s=1.0,
                     steady_state=[{"query": "up", "passed": True, "observed_min": 1.0}]),
    MetricsSteadyStateAfter(steady_state=[{"query": "up", "passed": False, "detail": "0 < 1"}]),
    MetricsRecorded(file="metrics.json", queries=4, errors=["not asked"]),
    MetricsError(what="record", error="refused"),
    GamedayParticipants(participants=["Ana", "Bo"]),
    GamedayInject(fault="provider-slow", by="Ana"),
    GamedayHold(phase="fault", seconds=30.0, by="Ana"),
    GamedayAbort(by="Ana", requested_at=T0 + 20),
    HumanEntry(participant="Bo", kind="noticed", note="p95 doubled on the dashboard"),
    KubeChainLink(fault="lose", link="taint_added", seen_at=T0 + 5.3, object="node/gpu-a-1", api_at=T0 + 5,
                  node="gpu-a-1", detail="node.kubernetes.io/not-ready"),
    KubeReplicas(fault="lose", service="gpu-serve", ready=3, desired=4, seen_at=T0 + 7.4),
]


def test_every_event_of_the_catalogue_has_an_example() -> None:
    assert sorted(type(e).__name__ for e in EXAMPLES) == sorted(cls.__name__ for cls in CATALOGUE.values())


@pytest.mark.parametrize("event", EXAMPLES, ids=lambda e: e.event)
def test_every_event_round_trips_through_the_journal(tmp_path: Path, event: Event) -> None:
    path = tmp_path / "journal.jsonl"
    with Journal(path) as journal:
        written = journal.write(event, ts=T0)
    (read,) = read_journal(path)
    assert read == written
    assert read.event == event and type(read.event) is type(event)
    line = json.loads(path.read_text(encoding="utf-8"))
    assert list(line)[:3] == ["ts", "at", "event"] and line["event"] == event.event
    assert line["at"] == "2026-01-14T10:00:00.000000Z"


def test_a_field_left_out_is_left_out_of_the_line(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    with Journal(path) as journal:
        journal.write(FaultReverted(fault_id="0-a", reverted_at=T0), ts=T0)
        journal.write(StackStopped(), ts=T0)
    assert [json.loads(line) for line in path.read_text().splitlines()] == [
        {"ts": T0, "at": "2026-01-14T10:00:00.000000Z", "event": "fault.reverted", "fault_id": "0-a", "reverted_at": T0},
        {"ts": T0, "at": "2026-01-14T10:00:00.000000Z", "event": "stack.stopped"},
    ]


def test_an_event_this_version_does_not_know_reads_whole(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    path.write_text('{"ts": 1.5, "event": "watchdog.stall", "magnitude_s": 0.7, "detail": "x"}\n')
    (record,) = read_journal(path)
    assert isinstance(record.event, OtherEvent) and record.event.event == "watchdog.stall"
    assert record.document() == {"ts": 1.5, "at": "1970-01-01T00:00:01.500000Z", "event": "watchdog.stall",
                                 "magnitude_s": 0.7, "detail": "x"}


def test_the_recorded_run_journal_reads_typed_and_writes_back_byte_for_byte() -> None:
    path = DATA / "latency-run" / "journal.jsonl"
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    records = list(read_journal(path))
    assert len(records) == len(lines)
    assert not any(isinstance(r.event, OtherEvent) for r in records)
    assert [json.dumps(r.document(), separators=(",", ":")) for r in records] == lines


def test_an_old_hand_made_journal_without_instants_still_reads() -> None:
    """tests/data/gpu-loss-run predates ``at`` and journals ``undo: {}``: every line reads, the
    empty undo record as UnknownUndo (kept whole), and nothing but ``at`` is added on the way back."""
    path = DATA / "gpu-loss-run" / "journal.jsonl"
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    records = list(read_journal(path))
    assert [{k: v for k, v in r.document().items() if k != "at"} for r in records] == lines
    intents = [r.event for r in records if isinstance(r.event, FaultIntent)]
    assert [type(i.undo) for i in intents] == [UnknownUndo, UnknownUndo]
    assert [e.name for e in applied_faults(path)] == ["never-applied"]


@pytest.mark.parametrize("line, problem", [
    ('{"ts": 1, "event": "fault.applied", "fault_id": "0-a", "onset_at": "5", "onset_source": "x", '
     '"onset_uncertainty_s": 0}', "fault.applied record: 'onset_at'"),
    ('{"ts": 1, "event": "fault.applied", "fault_id": "0-a", "onset_source": "x", "onset_uncertainty_s": 0}',
     "fault.applied record without 'onset_at'"),
    ('{"ts": 1, "event": "fault.applied", "fault_id": "0-a", "onset_at": 1e300, "onset_source": "x", '
     '"onset_uncertainty_s": 0}', "fault.applied record: 'onset_at'"),
    ('{"ts": 1, "event": "cleanup.verified", "ok": 1}', "cleanup.verified record: 'ok'"),
    ('{"ts": true, "event": "run.finished"}', "'ts' must be a number"),
    ('[1]', "not a JSON object"),
])
def test_damage_is_named_with_file_and_line(tmp_path: Path, line: str, problem: str) -> None:
    path = tmp_path / "journal.jsonl"
    path.write_text('{"ts": 1, "event": "run.finished"}\n' + line + '\n{"ts": 2, "event": "run.finished"}\n')
    with pytest.raises(DamagedFileError, match=re.escape(f"{path}:2 damaged journal line: {problem}")):
        list(read_journal(path))
    assert len(list(read_journal(path, lenient=True))) == 2  # recover uses every intact line


def test_a_torn_last_line_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    path.write_text('{"ts": 1, "event": "run.finished"}\n{"ts": 2, "event": "fault.re')
    assert [type(r.event) for r in read_journal(path)] == [RunFinished]


def test_the_ledger_and_what_a_crashed_run_left(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    proxy = ProxyCreatedUndo(toxiproxy_url="http://127.0.0.1:8474", proxy="made")
    with Journal(path) as journal:
        journal.write(StackStarted(process_groups={"gateway": 4243, "init": 1}))
        journal.write(LoadStarted(process_groups={"locust": 5001, "prober": None}))
        journal.write(ProxyIntent(proxy="made", undo=proxy))
        journal.write(FaultIntent(fault_id="0-a", name="a", type="latency", undo=TOXIC))
        journal.write(FaultApplied(fault_id="0-a", onset_at=T0, onset_source="x", onset_uncertainty_s=0.0))
        journal.write(FaultIntent(fault_id="1-b", name="b", type="down",
                                  undo=ProxyDisabledUndo(toxiproxy_url="http://127.0.0.1:8474", proxy="p")))
        journal.write(FaultApplyFailed(fault_id="1-b", error="half"))
        journal.write(FaultIntent(fault_id="2-c", name="c", type="latency", undo=TOXIC))
        journal.write(FaultReverted(fault_id="2-c", reverted_at=T0))
        journal.write(LoadStopped())
    ledger = fault_ledger(path)
    assert {k: e.state for k, e in ledger.items()} == {"0-a": "applied", "1-b": "intended", "2-c": "reverted"}
    assert [e.fault_id for e in applied_faults(path)] == ["1-b", "0-a"]  # newest first
    assert applied_faults(path)[1].undo == TOXIC
    assert proxies_left(path) == [proxy]
    assert groups_left(path, StackStarted) == {"gateway": 4243}  # pid 1 is never a group of ours
    assert groups_left(path, LoadStarted) == {}  # stopped
    assert stack_process_groups(path) == {4243}


UNDOS = [
    TOXIC,
    ProxyDisabledUndo(toxiproxy_url="http://127.0.0.1:8474", proxy="p"),
    ProxyCreatedUndo(toxiproxy_url="http://127.0.0.1:8474", proxy="p"),
    ContainerUndo(container_ids=["abc"], container_names=["gpu-a1"], mode="kill"),
    ProcessUndo(names=["gpu-a1"], mode="kill"),
    ProcessPausedUndo(pgid=4243, name="gateway"),
    GpuHookUndo(hooks=["http://127.0.0.1:18101/fault"], mode="xid"),
    QuotaHookUndo(hook="http://127.0.0.1:18090/fault", body={"region": "region-a", "mode": "quota_exceeded"}),
    HttpFaultUndo(proxy_url="http://127.0.0.1:19101", fault_id="drill-0-storm"),
    UnknownUndo.model_validate({"kind": "teleport", "where": "mars"}),
]


@pytest.mark.parametrize("undo", UNDOS, ids=lambda u: u.kind)
def test_every_undo_record_round_trips_as_json(undo: object) -> None:
    document = undo.document()  # type: ignore[attr-defined]
    assert parse_undo(json.loads(json.dumps(document))) == undo


def test_an_unknown_undo_record_is_refused_naming_it() -> None:
    with pytest.raises(Exception, match='do not know how to revert a fault recorded as {"kind": "teleport"'):
        undo_fault(UNDOS[-1])  # type: ignore[arg-type]


def test_no_module_but_the_catalogue_spells_an_event_name() -> None:
    """The catalogue is the one place an event's name is written; readers match on its classes.
    harness/testing/hostile.py writes raw (and deliberately damaged) journal lines, so it spells them.
    ``preflight`` (the one name without a dot) is also an abort reason, so only dotted names count."""
    harness = Path(__file__).resolve().parents[1] / "harness"
    names = "|".join(re.escape(name) for name in CATALOGUE if "." in name)
    pattern = re.compile(rf"""["']({names})["']""")
    found = [
        f"{path.relative_to(harness)}:{number}: {line.strip()}"
        for path in sorted(harness.rglob("*.py"))
        if path.name != "events.py" and path.relative_to(harness).as_posix() != "testing/hostile.py"
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if pattern.search(line)
    ]
    assert found == []
