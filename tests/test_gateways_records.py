"""The gateways' own records read back (issue 26): LiteLLM's callback lines and Portkey's console
log stream become served-by-fallback instants, turned into failover / failback events and set
beside drill's figures (``harness.measure.agreement``); the scorecard's cells and page. Pure logic:
files and documents in, figures out; no stack."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from harness.measure.agreement import COOLDOWN_END_EVENT, agreement, routing_events
from targets.gateways import records
from targets.gateways.portkey import record_line
from targets.gateways.record_events import events_since

REPO = Path(__file__).resolve().parents[1]


def write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "{cut line\n")
    return path


def test_routing_events_mark_each_change_of_who_served() -> None:
    served = [(3.0, False), (1.0, False), (4.0, True), (5.0, True), (9.0, False), (9.5, True)]
    assert routing_events(served) == [
        {"ts": 4.0, "event": "failover"}, {"ts": 9.0, "event": "failback"}, {"ts": 9.5, "event": "failover"},
    ]
    assert routing_events([]) == []


def test_litellm_record_gives_who_served_and_the_calls_to_the_primary(tmp_path: Path) -> None:
    write(tmp_path / records.LITELLM_RECORD, [
        {"event": "success", "start": 99.0, "end": 99.1, "model_id": "hosted-model"},
        {"event": "failure", "start": 100.1, "end": 100.15, "model_id": "hosted-model", "status": 429},
        {"event": "success", "start": 100.1, "end": 100.25, "model_id": "gpu-a2"},
        {"event": "failure", "start": 101.0, "model_id": "hosted-model", "status": 429},
        {"event": "success", "start": 101.1, "end": None, "model_id": "gpu-a1"},  # no end: its start
        # Reached the router during the fault, served by the provider after it: arrival counts.
        {"event": "success", "start": 111.0, "end": 112.0, "model_id": "hosted-model"},
        {"event": "success", "start": None, "model_id": "gpu-a1"},  # no instant: left out
    ])
    record = records.read(tmp_path)
    assert record is not None and record.source.startswith(str(records.LITELLM_RECORD))
    assert record.served == [(99.1, False), (100.25, True), (101.1, True), (112.0, False)]
    assert record.primary_calls(100.0, 110.0) == 2 and record.primary_calls(100.0, 111.5) == 3
    agreed = agreement(routing_events(record.served), 100.0, None, 0.4, 12.1, 0.25, record.source)
    assert (agreed.failover_s, agreed.failback_s) == (0.25, 12.0)
    assert agreed.failover_delta_s == 0.15 and agreed.agrees is True
    assert records.read(tmp_path / "none") is None


# Recorded from a real LiteLLM 1.100.5 provider-down drill (stack-logs/litellm/calls.jsonl; instants
# moved to 2000.0 + s): the hosted deployment fails, the router refuses requests while it cools down
# ("RouterRateLimitError": no call reaches the provider), then calls it again.
LITELLM_COOLDOWN = [
    {"event": "success", "start": 1999.50, "end": 1999.56, "model_group": "chat", "model_id": "hosted-model",
     "api_base": "http://127.0.0.1:19001/v1", "status": 200, "error": ""},
    {"event": "failure", "start": 2000.02, "end": 2000.05, "model_group": "chat", "model_id": "hosted-model",
     "api_base": "http://127.0.0.1:19001/v1", "status": 500, "error": "InternalServerError"},
    {"event": "failure", "start": 2000.10, "end": 2000.12, "model_group": "chat", "model_id": "hosted-model",
     "api_base": "http://127.0.0.1:19001/v1", "status": 500, "error": "InternalServerError"},
    {"event": "success", "start": 2000.10, "end": 2000.31, "model_group": "chat-gpu", "model_id": "gpu-a1",
     "api_base": "http://127.0.0.1:19011/v1", "status": 200, "error": ""},
    {"event": "failure", "start": 2001.40, "end": 2001.40, "model_group": "chat", "model_id": "hosted-model",
     "api_base": None, "status": None, "error": "RouterRateLimitError"},
    {"event": "success", "start": 2001.40, "end": 2001.55, "model_group": "chat-gpu", "model_id": "gpu-a2",
     "api_base": "http://127.0.0.1:19012/v1", "status": 200, "error": ""},
    {"event": "failure", "start": 2005.20, "end": 2005.23, "model_group": "chat", "model_id": "hosted-model",
     "api_base": "http://127.0.0.1:19001/v1", "status": 500, "error": "InternalServerError"},
    {"event": "success", "start": 2005.20, "end": 2005.41, "model_group": "chat-gpu", "model_id": "gpu-a1",
     "api_base": "http://127.0.0.1:19011/v1", "status": 200, "error": ""},
]


def test_litellm_record_names_each_cooldown_end_and_who_served_as_stack_events(tmp_path: Path) -> None:
    write(tmp_path / records.LITELLM_RECORD, LITELLM_COOLDOWN)
    record = records.read(tmp_path)
    assert record is not None
    # The router's refusal during the cooldown reached no provider: not a call to the primary.
    assert record.primary_outcomes == [(1999.5, True), (2000.02, False), (2000.1, False), (2005.2, False)]
    assert record.primary_calls(2000.0, 2010.0) == 3
    events = records.stack_events(record)
    assert [(e["ts"], e["event"]) for e in events] == [
        (2000.31, "failover"), (2005.2, COOLDOWN_END_EVENT)]
    cooldown = events[1]
    assert cooldown["tier"] == records.LITELLM_PRIMARY and "after 5.1 s without one" in cooldown["detail"]
    # A longer threshold than the quiet: no cooldown seen.
    assert [e["event"] for e in records.stack_events(record, min_quiet_s=6.0)] == ["failover"]
    # What the stack's event server answers, from the stack's log folder.
    assert events_since(tmp_path / records.STACK_LOGS, None) == events
    assert events_since(tmp_path / records.STACK_LOGS, 2001.0) == [cooldown]
    assert events_since(tmp_path / "empty", None) == []


def test_portkey_primary_attempts_fail_unless_they_served(tmp_path: Path) -> None:
    rows = [{"received": 1.0, "status": 200, "attempts": [{"target": "config.targets[0]", "created": 10.0},
                                                          {"target": "config.targets[1]", "created": 10.1}]},
            {"received": 2.0, "status": 200, "attempts": [{"target": "config.targets[0]", "created": 20.0}]},
            {"received": 3.0, "status": 429, "attempts": [{"target": "config.targets[0]", "created": 30.0}]}]
    write(tmp_path / records.PORTKEY_RECORD, rows)
    record = records.read(tmp_path)
    assert record is not None and record.primary_name == records.PORTKEY_PRIMARY
    assert record.primary_outcomes == [(10.0, False), (20.0, True), (30.0, False)]


def portkey_log(created: list[tuple[str, str]], status: int) -> str:
    return json.dumps({"time": "12/6/2026, 5:04:41 PM", "method": "POST", "status": status, "duration": 30,
                       "requestOptions": [{"providerOptions": {"customHost": f"http://127.0.0.1:1900{i}/v1"},
                                           "createdAt": at, "lastUsedOptionIndex": target, "executionTime": 10,
                                           "hookSpanId": f"span-{at}"} for i, (target, at) in enumerate(created)]})


def test_portkey_log_events_become_record_lines_and_who_served(tmp_path: Path) -> None:
    fell_back = record_line(portkey_log([("config.targets[0]", "2026-12-06T17:04:41.442Z"),
                                         ("config.targets[1]", "2026-12-06T17:04:41.452Z")], 200), 1.0)
    assert fell_back is not None
    row = json.loads(fell_back)
    assert row["status"] == 200 and [a["target"] for a in row["attempts"]] == ["config.targets[0]", "config.targets[1]"]
    assert round(row["attempts"][1]["created"] - row["attempts"][0]["created"], 3) == 0.01
    assert row["attempts"][1]["execution_ms"] == 10
    assert row["attempts"][0]["host"] == "http://127.0.0.1:19000/v1"
    assert record_line("not json", 1.0) is None and record_line('{"connected": 1}', 1.0) is None
    primary = record_line(portkey_log([("config.targets[0]", "2026-12-06T17:04:50.000Z")], 200), 2.0)
    failed = record_line(portkey_log([("config.targets[0]", "2026-12-06T17:04:51.000Z")], 529), 3.0)
    assert primary is not None and failed is not None
    path = tmp_path / records.PORTKEY_RECORD
    path.parent.mkdir(parents=True)
    path.write_text("\n".join([fell_back, primary, failed]) + "\n")
    record = records.read(tmp_path)
    assert record is not None and "Portkey" in record.source
    assert [by for _, by in record.served] == [True, False]  # the 529 was not served
    assert record.primary_calls(0, 2e9) == 3


def scorecard() -> Any:
    sys.path.insert(0, str(REPO / "bench"))
    import gateway_scorecard

    return gateway_scorecard


def test_scorecard_figures_come_from_the_results_the_hits_and_the_record(tmp_path: Path) -> None:
    sc = scorecard()
    write(tmp_path / records.LITELLM_RECORD, [
        {"event": "success", "start": 1796576000.0, "model_id": "hosted-model"},
        {"event": "failure", "start": 1796576010.05, "model_id": "hosted-model"},
        {"event": "success", "start": 1796576010.06, "end": 1796576010.1, "model_id": "gpu-a1"},
    ])
    r = {"verdict": "failed", "objectives": [
        {"name": "rto_s", "passed": False, "measured": 9.0},
        {"name": "min_stream_completion", "passed": True, "measured": 1.0}],
        "faults": [{"type": "http_error", "onset_at": "2026-12-06T16:53:30Z", "reverted_at": "2026-12-06T16:53:50Z",
                    "failover_s": 0.2, "failback_s": None, "rto_s": 9.0, "resolution_s": 0.25}],
        "phases": {"fault": {"requests": 200, "error_rate": 0.0, "p50_ms": 400.0, "p95_ms": 700.0},
                   "baseline": {"p95_ms": 200.0}}}
    row = sc.figures(r, 190, records.read(tmp_path))
    assert row["missed"] == "rto_s" and row["stream_completion"] == 1.0
    assert row["calls_per_client_request"] == 0.95 and row["gateway_primary_calls"] == 1
    assert row["gateway_failover_s"] == 0.1 and row["record_agrees"] is True
    # A TCP fault bypasses the HTTP fault proxy: its hits say nothing there.
    r["faults"][0]["type"] = "down"
    assert sc.figures(r, 0, None)["faulted_provider_calls"] is None


def test_scorecard_page_has_every_behaviour_and_says_what_does_not_apply(tmp_path: Path) -> None:
    sc = scorecard()
    na = sc.run_cell("portkey", "stream-cut", "stream cut", tmp_path, True, None)  # n/a: runs nothing
    assert na["verdict"] == "n/a" and "cannot stream" in na["missed"]
    ran = {f: None for f in sc.FIELDS} | {
        "gateway": "litellm", "behaviour": "control", "verdict": "failed", "exit": 1, "expected_exit": 1,
        "missed": "max_error_rate", "failover_s": None, "fault_error_rate": 0.99, "fault_p95_ms": 17.0,
        "baseline_p95_ms": 20.0, "report": "runs/litellm/control/run/report.html"}
    text = sc.page([na, ran], "RUN_ROOT/")
    assert "n/a: Portkey 1.15.2 cannot stream" in text
    assert "**FAIL (as a control must)**, missed max_error_rate" in text and "errors 99.0 %" in text
    assert "[report](RUN_ROOT/runs/litellm/control/run/report.html)" in text
    for _, fault in sc.CONFORMANCE:
        assert fault in text
    sc.write([na, ran], tmp_path, "")
    assert {r["behaviour"] for r in sc.load_rows(tmp_path / "gateway-scorecard.csv")} == {"stream-cut", "control"}


def test_short_completed_streams_counts_truncations_passed_off_as_whole() -> None:
    import pandas as pd

    sc = scorecard()
    phases = {"baseline": {"start": "2026-12-06T16:53:00Z", "end": "2026-12-06T16:53:10Z"},
              "fault": {"start": "2026-12-06T16:53:10Z", "end": "2026-12-06T16:53:30Z"}}
    t0 = 1796575980.0  # 16:53:00
    rows = [(t0 + 1, 16, 1), (t0 + 2, 16, 1),  # baseline: 16 tokens, complete
            (t0 + 11, 3, 1), (t0 + 12, 3, 1), (t0 + 13, 16, 1),  # fault: two "complete" with 3 tokens
            (t0 + 14, 3, 0)]  # a cut the client saw: not counted here
    samples = pd.DataFrame([{"start": s, "end": s + 0.1, "tokens": n, "stream_completed": c, "stream": 1, "ok": 1}
                            for s, n, c in rows])
    assert sc.short_completed(samples, phases) == round(2 / 3, 4)
    assert sc.short_completed(None, phases) is None
    assert sc.short_completed(samples[samples["start"] < t0 + 10], phases) is None  # no fault streams


def test_record_events_server_answers_the_engines_fetch(tmp_path: Path) -> None:
    """The stack's events_url as the engine fetches it (GET ?since=): the events as JSON; a bad
    ``since`` is a 400 naming it. On a free port of 127.0.0.1 (aiohttp's test server)."""
    import asyncio

    from aiohttp.test_utils import TestClient, TestServer

    from targets.gateways.record_events import app

    write(tmp_path / records.LITELLM_RECORD, LITELLM_COOLDOWN)

    async def fetch() -> tuple[list[Any], int, str]:
        async with TestClient(TestServer(app(tmp_path / records.STACK_LOGS), host="127.0.0.1")) as client:
            good = await (await client.get("/events", params={"since": "2001"})).json()
            bad = await client.get("/events", params={"since": "nan"})
            return good, bad.status, await bad.text()

    good, status, text = asyncio.run(fetch())
    assert [e["event"] for e in good] == [COOLDOWN_END_EVENT]
    assert status == 400 and "since" in text


def test_scorecard_reprobe_cost_per_cooldown_cycle_comes_from_results_and_the_stack_events() -> None:
    """Two cooldown ends during the fault (a third after the revert is not the fault's), one
    incident results name a cooldown end as the cause of, one with another cause."""
    sc = scorecard()
    onset = 1796576010.0  # 2026-12-06T16:53:30Z
    fault = {"onset_at": "2026-12-06T16:53:30Z", "reverted_at": "2026-12-06T16:53:50Z", "incidents": [
        {"start_s": 6.1, "length_s": 0.4, "bad": 5, "cause": "cooldown ended: the gateway called the failing"
         " provider again (hosted-model: first call ...), stack's record at +6.00 s"},
        {"start_s": 12.0, "length_s": 1.0, "bad": 9, "cause": None},
        {"start_s": 21.0, "length_s": 0.3, "bad": 2, "cause": "failback, stack's record at +20.90 s"}]}
    events = [{"ts": onset + 6.0, "event": COOLDOWN_END_EVENT}, {"ts": onset + 11.0, "event": COOLDOWN_END_EVENT},
              {"ts": onset + 25.0, "event": COOLDOWN_END_EVENT}, {"ts": onset + 1.0, "event": "failover"}]
    cost = sc.cooldown_cost(fault, events)
    assert cost == {"cooldown_cycles": 2, "cooldown_incidents": 1, "cooldown_bad_answers": 5,
                    "cooldown_impact_s": 0.4, "bad_answers_per_cooldown": 2.5, "impact_s_per_cooldown": 0.2}
    assert sc.cooldown_text(cost) == ("2 cooldown cycles, re-probe cost per cycle 2.5 bad answers / 0.20 s"
                                      " (1 incident(s) caused by a cooldown end)")
    assert sc.cooldown_cost(fault, None)["cooldown_cycles"] is None  # no record served to the run
    assert sc.cooldown_text(sc.cooldown_cost(fault, [])) == "no cooldown cycle in the gateway's record"
    r = {"verdict": "passed", "objectives": [], "faults": [{"type": "http_error", **fault}], "phases": {}}
    assert sc.figures(r, 0, None, None, events)["cooldown_impact_s"] == 0.4


def test_scorecard_stall_row_reports_the_longest_gap_clients_saw_and_stalls_cut_short() -> None:
    """The stall row's figures: the longest token gap of streams begun in the fault phase (a stream
    begun before it does not count, however long its gap), and the stalls the proxy began and
    the provider's end cut short, instead of "calls per request" (a stall's hits are stalls)."""
    import pandas as pd

    sc = scorecard()
    phases = {"fault": {"start": "2026-12-06T16:53:10Z", "end": "2026-12-06T16:53:30Z"}}
    t0 = 1796575990.0  # 16:53:10
    samples = pd.DataFrame([{"start": t0 - 1, "end": t0 + 3, "stream": 1, "ok": 0, "tokens": 3, "max_gap_ms": 9000.0},
                            {"start": t0 + 1, "end": t0 + 10, "stream": 1, "ok": 1, "tokens": 16, "max_gap_ms": 8250.5},
                            {"start": t0 + 2, "end": t0 + 6.5, "stream": 1, "ok": 0, "tokens": 3,
                             "max_gap_ms": float("nan")},
                            {"start": t0 + 2, "end": t0 + 2.1, "stream": 1, "ok": 0, "tokens": 0,  # no token: not mid-stream
                             "max_gap_ms": float("nan")},
                            {"start": t0 + 3, "end": t0 + 3.1, "stream": 0, "ok": 1, "tokens": 0, "max_gap_ms": float("nan")}])
    assert sc.fault_max_gap(samples, phases) == 8250.5
    assert sc.midstream_failures(samples, phases) == (1, 4.5)
    assert sc.fault_max_gap(samples[samples["start"] < t0], phases) is None
    r: dict[str, Any] = {"verdict": "failed", "objectives": [{"name": "rto_s", "passed": False, "measured": 9.0}],
         "faults": [{"type": "stream_stall"}], "phases": {"fault": {"requests": 40, **phases["fault"]}}}
    row = {f: None for f in sc.FIELDS} | sc.figures(r, 30, None, samples, None, 2) | {
        "gateway": "litellm", "behaviour": "stream-stall", "report": "runs/litellm/stream-stall/run/report.html"}
    assert (row["fault_max_gap_ms"], row["stalls_cut_short"]) == (8250.5, 2)
    text = sc.cell_text(row, "")
    assert "longest gap between two tokens a client saw 8.25 s" in text
    assert "stalls begun at the proxy 30 for 40 requests, cut short by the provider's end 2" in text
    assert "1 streams failed after their first token, ending 4.50 s (p50) after they were sent" in text
    assert "calls to the faulted provider per request" not in text
    # Any other fault: no stall figure.
    r["faults"][0]["type"] = "stream_cut"
    assert sc.figures(r, 30, None, samples, None, 2)["stalls_cut_short"] is None
