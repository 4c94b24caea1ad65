"""Streamed answers in the load room: the pure SSE reading (harness/load/streams.py) on hand-built
lines, then the real prober and real Locust against a real aiohttp SSE server on 127.0.0.1 that
completes, cuts after N tokens (cleanly or by a reset), sends the gateway's error event, stalls
past the deadline, or answers 503. No timing asserts: the rows' fields are checked by structure."""

from __future__ import annotations

import asyncio
import csv
import itertools
import json
import math
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from harness.load import LoadPlan, LoadRunner, RequestSpec, SampleTail
from harness.load.prober import Prober
from harness.load.samples import COLUMNS, NON_STREAM_COLUMNS, SPLICE_COLUMNS, STREAM_COLUMNS, sample_row
from harness.load.streams import StreamTally, read_stream, wants_stream
from harness.testing import free_port, serve_in_thread

# --- the pure reading --------------------------------------------------------------------------


def _token(text: str) -> str:
    chunk = {"id": "c1", "object": "chat.completion.chunk", "model": "m",
             "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}
    return "data: " + json.dumps(chunk)


STOP_LINE = "data: " + json.dumps(
    {"id": "c1", "object": "chat.completion.chunk", "model": "m",
     "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
)
DONE_LINE = "data: [DONE]"
ERROR_LINE = "data: " + json.dumps(
    {"error": {"type": "upstream_stream_broken", "message": "gpu-a1 reset", "tokens_sent": 2}}
)


def _lines(*items: tuple[float, str]) -> list[tuple[float, str]]:
    """(arrival_s, line) pairs with the blank SSE separator after each event, as on the wire."""
    out: list[tuple[float, str]] = []
    for arrival_s, line in items:
        out += [(arrival_s, line), (arrival_s, "")]
    return out


def _columns(tally: StreamTally, status: int = 200) -> dict[str, str]:
    return dict(zip(STREAM_COLUMNS, tally.columns(status), strict=True))


def test_a_completed_stream_counts_tokens_ttft_and_the_longest_gap() -> None:
    tally = read_stream(10.0, _lines((10.25, _token("Hel")), (10.30, _token("lo")), (10.70, _token(" you")),
                                     (10.75, STOP_LINE), (10.75, DONE_LINE)))
    assert _columns(tally) == {"stream": "1", "ttft_ms": "250.000", "tokens": "3", "max_gap_ms": "400.000",
                               "stream_completed": "1", "cut_after_tokens": "-1"}
    assert tally.error_text(200) == ""


def test_a_stream_cut_after_n_tokens_says_so() -> None:
    tally = read_stream(0.0, _lines((0.1, _token("a")), (0.2, _token("b"))))
    assert _columns(tally) == {"stream": "1", "ttft_ms": "100.000", "tokens": "2", "max_gap_ms": "100.000",
                               "stream_completed": "0", "cut_after_tokens": "2"}
    assert tally.error_text(200) == "stream cut after 2 tokens"


def test_the_gateways_error_event_ends_the_stream_with_its_type() -> None:
    tally = read_stream(0.0, _lines((0.1, _token("a")), (0.2, _token("b")), (0.3, ERROR_LINE),
                                    (0.4, _token("late")), (0.5, DONE_LINE)))
    assert tally.error_text(200) == "stream error after 2 tokens: upstream_stream_broken"
    assert _columns(tally)["tokens"] == "2" and _columns(tally)["cut_after_tokens"] == "2"
    assert _columns(tally)["stream_completed"] == "0"  # nothing after the error event counts


def test_zero_tokens_leave_ttft_and_gap_empty() -> None:
    done_without_tokens = read_stream(0.0, _lines((0.1, STOP_LINE), (0.1, DONE_LINE)))
    assert _columns(done_without_tokens) == {"stream": "1", "ttft_ms": "", "tokens": "0", "max_gap_ms": "",
                                             "stream_completed": "1", "cut_after_tokens": "-1"}
    nothing = read_stream(0.0, [])
    assert _columns(nothing)["cut_after_tokens"] == "0" and nothing.error_text(200) == "stream cut after 0 tokens"
    one = read_stream(0.0, _lines((0.1, _token("a")), (0.1, DONE_LINE)))
    assert _columns(one)["ttft_ms"] == "100.000" and _columns(one)["max_gap_ms"] == ""


def test_lines_that_are_not_tokens_count_for_nothing() -> None:
    tally = read_stream(0.0, [
        (0.1, ": keep-alive comment"), (0.1, "event: message"), (0.1, "data: {not json"),
        (0.1, "data: " + json.dumps({"choices": [{"delta": {"content": ""}}]})),  # empty content
        (0.1, "data: " + json.dumps({"choices": [{"delta": {"role": "assistant"}}]})),
        (0.1, "data: " + json.dumps([1, 2])), (0.2, "data:" + _token("x")[5:]),  # no space after data:
        (0.3, DONE_LINE), (0.4, _token("after done")),
    ])
    assert (tally.tokens, tally.done) == (1, True)
    assert _columns(tally)["ttft_ms"] == "200.000"


def test_answers_that_are_not_2xx_or_did_not_arrive_are_not_cut_streams() -> None:
    for status in (0, 503):
        columns = _columns(StreamTally(0.0), status)
        assert columns == {"stream": "1", "ttft_ms": "", "tokens": "0", "max_gap_ms": "",
                           "stream_completed": "0", "cut_after_tokens": "-1"}
    # [DONE] in a 500's body does not make it a completed stream.
    assert _columns(read_stream(0.0, [(0.1, DONE_LINE)]), 500)["stream_completed"] == "0"


def test_chunks_split_lines_anywhere_and_crlf_is_accepted() -> None:
    wire = (_token("a") + "\r\n\r\n" + _token("b") + "\n\n" + DONE_LINE + "\n\n").encode()
    tally = StreamTally(0.0)
    for i, cut in enumerate(range(0, len(wire), 7)):
        tally.feed_chunk(0.01 * (i + 1), wire[cut:cut + 7])
    tally.end(1.0)
    assert (tally.tokens, tally.done, tally.body_bytes) == (2, True, len(wire))
    unterminated = StreamTally(0.0)
    unterminated.feed_chunk(0.1, (_token("a") + "\n\n" + DONE_LINE).encode())
    assert not unterminated.done
    unterminated.end(0.2)  # the body ended: its last line counts without a newline
    assert unterminated.done and unterminated.tokens == 1


def test_sample_rows_carry_the_stream_columns_and_non_streams_the_defaults() -> None:
    assert STREAM_COLUMNS == ["stream", "ttft_ms", "tokens", "max_gap_ms", "stream_completed", "cut_after_tokens"]
    assert COLUMNS[-13:-7] == STREAM_COLUMNS and COLUMNS[-7] == "intended" and COLUMNS[-6:] == SPLICE_COLUMNS
    plain = dict(zip(COLUMNS, sample_row("probe", 1.0, 1.5, 200, 12, None, ""), strict=True))
    assert [plain[c] for c in STREAM_COLUMNS] == list(NON_STREAM_COLUMNS) and plain["ok"] == "1"
    cut = read_stream(1.0, _lines((1.1, _token("a"))))
    row = dict(zip(COLUMNS, sample_row("probe", 1.0, 1.5, 200, 40, None, cut.error_text(200), cut.columns(200)),
                   strict=True))
    assert (row["ok"], row["error"], row["cut_after_tokens"]) == ("0", "stream cut after 1 tokens", "1")
    assert wants_stream({"model": "m", "stream": True})
    assert not wants_stream({"stream": "true"}) and not wants_stream(None) and not wants_stream([True])


def test_the_tail_reads_stream_columns_and_files_written_before_them(tmp_path: Path) -> None:
    new = tmp_path / "probe.csv"
    cut = read_stream(1.0, _lines((1.1, _token("a"))))
    with open(new, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        writer.writerow(sample_row("probe", 1.0, 1.5, 200, 40, None, cut.error_text(200), cut.columns(200)))
        writer.writerow(sample_row("probe", 2.0, 2.5, 200, 12, None, ""))
    streamed, plain = SampleTail(new).read_new()
    assert (streamed["ok"], streamed["tokens"], streamed["cut_after_tokens"], streamed["ttft_ms"]) == (0, 1, 1, 100.0)
    assert math.isnan(float(str(streamed["max_gap_ms"])))
    assert (plain["stream"], plain["tokens"], plain["cut_after_tokens"]) == (0, 0, -1)
    old = tmp_path / "old.csv"
    old.write_text(",".join(COLUMNS[:-13]) + "\r\nprobe,1.000000,1.250000,200,1,250.000,12,gpu-a1,gpu,region-a,0,\r\n")
    (row,) = SampleTail(old).read_new()
    assert (row["stream"], row["stream_completed"], row["cut_after_tokens"]) == (0, 0, -1)
    assert math.isnan(float(str(row["ttft_ms"]))) and math.isnan(float(str(row["intended"])))


# --- a real SSE server ---------------------------------------------------------------------------

ROUTING_HEADERS = {"X-Served-By": "gpu-a1", "X-Tier": "gpu", "X-Region": "region-a"}
FULL_TOKENS = 4
TOKEN_INTERVAL_S = 0.01
STALL_S = 1.5


async def _sse(request: web.Request, tokens: int, ending: str) -> web.StreamResponse:
    """Answer an SSE stream of ``tokens`` tokens ended by ``ending``: done | cut (clean end without
    [DONE]) | reset (connection dropped mid-body) | error (the gateway's error event) | stall."""
    body = await request.json()
    if body.get("stream") is not True:
        return web.json_response({"choices": [{"message": {"content": "whole"}}]}, headers=ROUTING_HEADERS)
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", **ROUTING_HEADERS})
    await response.prepare(request)
    for i in range(tokens):
        await response.write((_token(f"t{i} ") + "\n\n").encode())
        await asyncio.sleep(TOKEN_INTERVAL_S)
    if ending == "done":
        await response.write((STOP_LINE + "\n\n" + DONE_LINE + "\n\n").encode())
    elif ending == "error":
        await response.write((ERROR_LINE + "\n\n").encode())
    elif ending == "reset":
        assert request.transport is not None
        request.transport.abort()
        return response
    elif ending == "stall":
        await asyncio.sleep(STALL_S)
    await response.write_eof()
    return response


def _sse_app() -> web.Application:
    mixed = itertools.count()

    async def complete(request: web.Request) -> web.StreamResponse:
        return await _sse(request, FULL_TOKENS, "done")

    async def cut(request: web.Request) -> web.StreamResponse:
        return await _sse(request, 2, "cut")

    async def reset(request: web.Request) -> web.StreamResponse:
        return await _sse(request, 2, "reset")

    async def error(request: web.Request) -> web.StreamResponse:
        return await _sse(request, 2, "error")

    async def stall(request: web.Request) -> web.StreamResponse:
        return await _sse(request, 2, "stall")

    async def unavailable(_: web.Request) -> web.Response:
        return web.json_response({"error": {"type": "overloaded"}}, status=503, headers={"X-Served-By": "gateway"})

    async def mixed_endings(request: web.Request) -> web.StreamResponse:
        """In turn: completed, cut after 2 tokens, the error event after 2 tokens, 503."""
        turn = next(mixed) % 4
        if turn == 3:
            return await unavailable(request)
        return await _sse(request, FULL_TOKENS if turn == 0 else 2, ("done", "cut", "error")[turn])

    app = web.Application()
    for path, handler in (("/complete", complete), ("/cut", cut), ("/reset", reset), ("/error", error),
                          ("/stall", stall), ("/mixed", mixed_endings), ("/unavailable", unavailable)):
        app.router.add_post(path, handler)
    return app


@pytest.fixture(scope="module")
def sse_target() -> Iterator[str]:
    with serve_in_thread(_sse_app()) as url:
        yield url


STREAM_JSON = {"model": "chat", "stream": True, "max_tokens": 8}


def _read(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _probe(host: str, path: str, tmp_path: Path, json_body: object = STREAM_JSON,
           timeout_s: float = 2.0) -> list[dict[str, str]]:
    """Three probes of the real prober, in this process."""
    plan = LoadPlan(host=host, users=0, spawn_rate=1, duration_s=0.3, timeout_s=timeout_s, probe_rate_hz=10,
                    request=RequestSpec(method="POST", path=path, json=json_body))
    out_path = tmp_path / f"probe{path.replace('/', '-')}.csv"
    with open(out_path, "w", newline="") as out:
        asyncio.run(Prober(plan, out).run())
    rows = _read(out_path)
    assert len(rows) == plan.probe_count
    return rows


def _assert_stream_timing(row: dict[str, str]) -> None:
    """Structure, not speed: the first token came after the send and before the end."""
    if row["ttft_ms"]:
        assert 0.0 <= float(row["ttft_ms"]) <= float(row["latency_ms"])
    if row["max_gap_ms"]:
        assert 0.0 <= float(row["max_gap_ms"]) <= float(row["latency_ms"])


def _assert_kind(row: dict[str, str]) -> str:
    """Which of the server's endings this row is, checking every stream field of it."""
    _assert_stream_timing(row)
    if row["status"] == "503":
        assert (row["ok"], row["error"], row["served_by"]) == ("0", "HTTP 503", "gateway")
        assert [row[c] for c in STREAM_COLUMNS] == ["1", "", "0", "", "0", "-1"]
        return "unavailable"
    assert (row["stream"], row["status"], row["served_by"], row["tier"]) == ("1", "200", "gpu-a1", "gpu")
    assert int(row["bytes"]) > 0 and row["ttft_ms"] != ""
    if row["error"] == "":
        assert (row["ok"], row["tokens"], row["stream_completed"], row["cut_after_tokens"]) == (
            "1", str(FULL_TOKENS), "1", "-1")
        assert row["max_gap_ms"] != ""
        return "completed"
    assert (row["ok"], row["tokens"], row["stream_completed"], row["cut_after_tokens"]) == ("0", "2", "0", "2")
    if row["error"] == "stream cut after 2 tokens":
        return "cut"
    assert row["error"] == "stream error after 2 tokens: upstream_stream_broken"
    return "error"


def test_the_prober_records_completed_cut_reset_and_error_streams(sse_target: str, tmp_path: Path) -> None:
    assert {_assert_kind(r) for r in _probe(sse_target, "/complete", tmp_path)} == {"completed"}
    assert {_assert_kind(r) for r in _probe(sse_target, "/cut", tmp_path)} == {"cut"}
    assert {_assert_kind(r) for r in _probe(sse_target, "/reset", tmp_path)} == {"cut"}
    assert {_assert_kind(r) for r in _probe(sse_target, "/error", tmp_path)} == {"error"}


def test_the_probe_deadline_mid_stream_is_a_cut_and_503_is_not(sse_target: str, tmp_path: Path) -> None:
    stalled = _probe(sse_target, "/stall", tmp_path, timeout_s=0.5)
    assert {_assert_kind(r) for r in stalled} == {"cut"}
    unavailable = _probe(sse_target, "/unavailable", tmp_path)
    for row in unavailable:
        assert (row["status"], row["ok"], row["error"], row["served_by"]) == ("503", "0", "HTTP 503", "gateway")
        assert [row[c] for c in STREAM_COLUMNS] == ["1", "", "0", "", "0", "-1"]
    plain = _probe(sse_target, "/complete", tmp_path, json_body={"model": "chat"})
    for row in plain:
        assert (row["ok"], row["error"]) == ("1", "")
        assert [row[c] for c in STREAM_COLUMNS] == list(NON_STREAM_COLUMNS)


def test_a_stream_that_got_no_answer_is_not_a_cut_stream(tmp_path: Path) -> None:
    """Refused: no answer, so the Locust user and the probe record the OS error, stream 1 and no
    cut (a cut needs a 2xx answer that started)."""
    nobody = f"http://127.0.0.1:{free_port()}"
    plan = LoadPlan(host=nobody, users=1, spawn_rate=10, duration_s=1.0, timeout_s=1.0, probe_rate_hz=10,
                    request=RequestSpec(method="POST", path="/complete", json=STREAM_JSON))
    runner = LoadRunner(plan, tmp_path)
    with runner:
        runner.wait()
    rows = _read(runner.locust_samples) + _read(runner.probe_samples)
    assert {r["source"] for r in rows} == {"locust", "probe"}
    for row in rows:
        assert (row["status"], row["ok"], row["error"]) == ("0", "0", "ConnectionRefusedError")
        assert [row[c] for c in STREAM_COLUMNS] == ["1", "", "0", "", "0", "-1"]


def _locust_aggregate(run_dir: Path) -> tuple[int, int]:
    """(requests, failures) in Locust's own final stats."""
    (aggregated,) = [r for r in _read(run_dir / "locust_stats.csv") if r["Name"] == "Aggregated"]
    return int(aggregated["Request Count"]), int(aggregated["Failure Count"])


def test_locust_users_stream_and_locusts_own_stats_agree(sse_target: str, tmp_path: Path) -> None:
    plan = LoadPlan(host=sse_target, users=2, spawn_rate=10, duration_s=2.0, timeout_s=2.0, probe_rate_hz=10,
                    request=RequestSpec(method="POST", path="/mixed", json=STREAM_JSON))
    runner = LoadRunner(plan, tmp_path)
    with runner:
        outcome = runner.wait()
    assert outcome.killed == () and outcome.locust_returncode == 0
    locust_rows, probe_rows = _read(runner.locust_samples), _read(runner.probe_samples)
    assert {r["source"] for r in locust_rows} == {"locust"}
    kinds = [_assert_kind(r) for r in locust_rows]
    assert set(kinds) == {"completed", "cut", "error", "unavailable"}
    assert {_assert_kind(r) for r in probe_rows} <= set(kinds) and probe_rows
    # Locust's own stats count a cut stream as a failure with the sample's error text, a completed
    # one as a success. Its final stats file misses the last requests (those ending while it
    # stops), so the counts are bounds, each side checked.
    requests, failures = _locust_aggregate(tmp_path)
    occurrences = {r["Error"]: int(r["Occurrences"]) for r in _read(tmp_path / "locust_failures.csv")}
    stream_failures = {"CatchResponseError('stream cut after 2 tokens')",
               "CatchResponseError('stream error after 2 tokens: upstream_stream_broken')"}
    assert stream_failures < set(occurrences)
    assert all(error in stream_failures or "503" in error for error in occurrences)
    assert sum(occurrences.values()) == failures
    assert 0 < failures <= len(kinds) - kinds.count("completed")
    assert 0 < requests - failures <= kinds.count("completed")


def test_a_locust_worker_ships_stream_rows_cut_by_the_deadline(sse_target: str, tmp_path: Path) -> None:
    """Distributed mode: a local worker's streamed rows reach the master's file with their stream
    columns; the deadline cuts a stalled stream after the tokens it had delivered."""
    # 4 s: a Locust worker reports its stats every 3 s; in a 2 s run the master once wrote its
    # aggregate before the worker's only report arrived (0 requests beside the shipped rows).
    plan = LoadPlan(host=sse_target, users=2, spawn_rate=10, duration_s=4.0, timeout_s=0.5, probe_rate_hz=0,
                    workers=1, request=RequestSpec(method="POST", path="/stall", json=STREAM_JSON))
    runner = LoadRunner(plan, tmp_path)
    with runner:
        outcome = runner.wait()
    assert outcome.killed == () and outcome.locust_returncode == 0
    rows = _read(runner.locust_samples)
    assert rows and {r["worker"] for r in rows} == {rows[0]["worker"]}
    assert {_assert_kind(r) for r in rows} == {"cut"}
    requests, failures = _locust_aggregate(tmp_path)
    assert 0 < requests == failures <= len(rows)
