"""Every answer checked against its API (issue 27): the schema checks of harness/load/streams.py
on hand-built bodies, then the real prober against a real aiohttp server on 127.0.0.1 that answers
200 with bodies and stream events that are not what the OpenAI-compatible API promises: each is a
bad answer with its reason, counted in the error rate, per tier, and judged by
``max_invalid_answer_rate``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web
from conftest import serve_in_thread

from harness.load import LoadPlan, RequestSpec
from harness.load.prober import Prober
from harness.load.streams import StreamTally, check_body, check_chat_chunk, read_stream
from harness.measure import MeasureSettings, ObjectiveSpec, measure_run
from harness.measure.answers import answer_phase_stats
from harness.rundir.frames import read_samples

CHAT = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "chat",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}]}
CHUNK = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "chat",
         "choices": [{"index": 0, "delta": {"content": "ok "}, "finish_reason": None}]}
EMBEDDINGS = {"object": "list", "model": "minilm", "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 2]}]}


def test_valid_answers_pass_and_each_invalid_one_names_its_field() -> None:
    assert check_body("openai.chat", json.dumps(CHAT).encode()) is None
    assert check_body("openai.embeddings", json.dumps(EMBEDDINGS).encode()) is None
    assert check_chat_chunk(CHUNK) is None
    assert check_body("openai.chat", json.dumps({**CHAT, "choices": []}).encode()) == (
        "choices: expected a non-empty list, got []")
    no_role = {**CHAT, "choices": [{"index": 0, "message": {"content": "x"}, "finish_reason": "stop"}]}
    assert check_body("openai.chat", json.dumps(no_role).encode()) == (
        "choices[0].message.role: expected a string, got nothing (missing or null)")
    assert check_body("openai.chat", b'{"id": "chatcmpl-stub", "choi\x00') == "body is not JSON (30 bytes)"
    # The embeddings shape answered to a chat request (a fallback reached untranslated):
    assert check_body("openai.chat", json.dumps(EMBEDDINGS).encode()) == (
        "id: expected a string, got nothing (missing or null)")
    words = {**EMBEDDINGS, "data": [{"object": "embedding", "index": 0, "embedding": ["a"]}]}
    assert check_body("openai.embeddings", json.dumps(words).encode()) == "data[0].embedding: expected numbers only"
    assert check_chat_chunk({**CHUNK, "object": "chat.completion"}) == (
        'object: expected "chat.completion.chunk", got "chat.completion"')


def test_a_stream_with_one_bad_event_is_invalid_and_says_which_event() -> None:
    bad = {**CHUNK, "choices": [{"index": 0, "finish_reason": None}]}
    lines = [(0.1, "data: " + json.dumps(CHUNK)), (0.2, "data: " + json.dumps(bad)), (0.3, "data: [DONE]")]
    tally = StreamTally(0.0, check_chunks=True)
    for at, line in lines:
        tally.feed_line(at, line)
    assert tally.done and tally.error_text(200) == (
        "invalid: event 2: choices[0].delta: expected an object, got nothing (missing or null)")
    unchecked = read_stream(0.0, lines)
    assert unchecked.error_text(200) == ""  # no schema named: the old behaviour


# --- the real prober against a real server sending invalid answers ------------------------------

HEADERS = {"X-Served-By": "hosted-1", "X-Tier": "hosted", "X-Region": "external"}


def _app() -> web.Application:
    async def valid(_: web.Request) -> web.Response:
        return web.json_response(CHAT, headers=HEADERS)

    async def empty_choices(_: web.Request) -> web.Response:
        return web.json_response({**CHAT, "choices": []}, headers=HEADERS)

    async def malformed(_: web.Request) -> web.Response:  # what the HTTP fault proxy's malformed sends
        return web.Response(body=b'{"id": "chatcmpl-stub", "choi\x00', content_type="application/json",
                            headers=HEADERS)

    async def stream_bad_event(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", **HEADERS})
        await response.prepare(request)
        bad = {**CHUNK, "created": "yesterday"}
        for event in (CHUNK, bad, CHUNK):
            await response.write(b"data: " + json.dumps(event).encode() + b"\n\n")
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    app = web.Application()
    for path, handler in (("/valid", valid), ("/empty-choices", empty_choices), ("/malformed", malformed),
                          ("/stream-bad-event", stream_bad_event)):
        app.router.add_post(path, handler)
    return app


@pytest.fixture(scope="module")
def target() -> Iterator[str]:
    with serve_in_thread(_app()) as url:
        yield url


def _probe(host: str, path: str, run_dir: Path, schema: str | None = "openai.chat",
           body: object | None = None) -> None:
    plan = LoadPlan(host=host, users=0, spawn_rate=1, duration_s=0.3, timeout_s=2.0, probe_rate_hz=10,
                    request=RequestSpec(method="POST", path=path, json=body or {"model": "chat", "messages": []},
                                        answer_schema=schema))
    out = run_dir / "samples" / "probe.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as f:
        asyncio.run(Prober(plan, f).run())


@pytest.mark.parametrize(("path", "reason"), [
    ("/empty-choices", "invalid: choices: expected a non-empty list, got []"),
    ("/malformed", "invalid: body is not JSON (30 bytes)"),
    ("/stream-bad-event", 'invalid: event 2: created: expected an integer, got "yesterday"'),
])
def test_a_200_with_an_invalid_body_is_a_bad_answer_with_its_reason(
    target: str, tmp_path: Path, path: str, reason: str
) -> None:
    stream = path.startswith("/stream")
    body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "stream": True} if stream else None
    _probe(target, path, tmp_path, body=body)
    samples = read_samples(tmp_path)
    assert len(samples) == 3
    assert set(samples["status"]) == {200} and set(samples["ok"]) == {0}
    assert set(samples["error"]) == {reason}
    start, end = float(samples["start"].min()), float(samples["start"].max()) + 1
    phases = {"baseline": (start - 10, start), "fault": (start, end)}
    m = measure_run(samples, phases, [], ObjectiveSpec(max_invalid_answer_rate=0.1, max_error_rate=0.5),
                    MeasureSettings(probe_rate_hz=10))
    objectives = {o.name: o for o in m.objectives}
    assert objectives["max_error_rate"].measured == 1.0  # counted in the error rate
    invalid = objectives["max_invalid_answer_rate"]
    assert (invalid.measured, invalid.passed) == (1.0, False)
    assert invalid.note is not None and reason.removeprefix("invalid: ").split(": ", 1)[-1] in invalid.note
    fault = m.answers["fault"]
    assert (fault.invalid, fault.by_tier) == (3, {"hosted": 3})


def test_valid_answers_and_unchecked_ones_stay_good(target: str, tmp_path: Path) -> None:
    _probe(target, "/valid", tmp_path / "checked")
    _probe(target, "/empty-choices", tmp_path / "unchecked", schema=None)
    for run in ("checked", "unchecked"):
        samples = read_samples(tmp_path / run)
        assert set(samples["ok"]) == {1} and set(samples["error"]) == {""}
    phases = {"fault": (0.0, 1e10)}
    assert answer_phase_stats(read_samples(tmp_path / "checked"), phases)["fault"].invalid == 0
