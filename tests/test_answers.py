"""Streams checked token by token (issue 27): the reference model's deterministic answers
(targets/answers.py and its copy in harness/load/streams.py), the reader's splice figures on
hand-built lines, then real model servers behind the real gateway with each STREAM_RESUME policy,
the break made by the model server's own fault hook in the middle of an answer, and the reader's
figures checked against the gateway's own event log."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from harness.load import streams
from harness.load.samples import SPLICE_COLUMNS
from harness.load.streams import ExpectedAnswer, StreamTally, expected_answer, read_stream
from harness.testing.stacks import Program, events, gateway, model_server, upstream
from targets import answers

PROMPT_BODY = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "stream": True}


def test_the_readers_copy_of_the_answer_function_agrees_with_the_targets() -> None:
    for model, prompt, index in (("chat", "hi", 0), ("chat", "hi", 15), ("other", "hi", 3), ("chat", "a\nb", 7)):
        assert streams.answer_token(model, prompt, index) == answers.answer_token(model, prompt, index)
    assert streams.SEARCH_TOKENS >= 256


def test_the_prompt_is_read_the_same_way_and_a_last_assistant_message_is_a_prefill() -> None:
    prefilled = {"model": "chat", "messages": [{"role": "user", "content": "hi"},
                                               {"role": "assistant", "content": "bada kemo "}]}
    assert answers.split_prompt(prefilled) == ("hi", "bada kemo ")
    assert answers.prefill_tokens("bada kemo ") == 2
    expected = expected_answer(PROMPT_BODY)
    assert expected is not None and (expected.model, expected.prompt) == ("chat", "hi")
    assert answers.split_prompt(PROMPT_BODY)[0] == expected.prompt
    assert expected_answer({"input": "x"}) is None  # not a chat request: nothing to check against


def _chunk(content: str, chunk_id: str = "c1") -> str:
    event = {"id": chunk_id, "object": "chat.completion.chunk", "model": "chat",
             "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": None}]}
    return "data: " + json.dumps(event)


def _splice_columns(tally: StreamTally) -> dict[str, str]:
    return dict(zip(SPLICE_COLUMNS, tally.splice_columns(), strict=True))


def _answer(indices: list[int], model: str = "chat") -> list[str]:
    return [answers.answer_token(model, "hi", i) for i in indices]


def _read(parts: list[tuple[float, str, str]], expected: ExpectedAnswer | None) -> StreamTally:
    lines = [(at, _chunk(content, chunk_id)) for at, content, chunk_id in parts] + [(9.0, "data: [DONE]")]
    return read_stream(0.0, lines, expected)


def test_an_answer_in_order_from_one_source_has_no_splice_and_nothing_lost() -> None:
    parts = [(0.1 + 0.01 * i, token, "c1") for i, token in enumerate(_answer(list(range(8))))]
    tally = _read(parts, expected_answer(PROMPT_BODY))
    assert _splice_columns(tally) == {"splices": "0", "splice_tokens_before": "-1", "splice_gap_ms": "",
                                      "tokens_lost": "0", "tokens_repeated": "0", "foreign_tokens": "0"}


def test_a_clean_resume_is_a_splice_with_its_gap_and_nothing_lost_or_repeated() -> None:
    tokens = _answer(list(range(8)))
    parts = [(0.1 + 0.01 * i, t, "a") for i, t in enumerate(tokens[:3])]
    parts += [(0.5 + 0.01 * i, t, "b") for i, t in enumerate(tokens[3:])]
    columns = _splice_columns(_read(parts, expected_answer(PROMPT_BODY)))
    assert columns == {"splices": "1", "splice_tokens_before": "3", "splice_gap_ms": "380.000",
                       "tokens_lost": "0", "tokens_repeated": "0", "foreign_tokens": "0"}


def test_a_restart_repeats_every_token_the_client_had_and_a_skip_loses_them() -> None:
    tokens = _answer(list(range(8)))
    restart = [(0.1, tokens[0], "a"), (0.2, tokens[1], "a"), (0.3, tokens[2], "a")]
    restart += [(0.6 + 0.01 * i, t, "b") for i, t in enumerate(tokens)]
    columns = _splice_columns(_read(restart, expected_answer(PROMPT_BODY)))
    assert (columns["splices"], columns["splice_tokens_before"]) == ("1", "3")
    assert (columns["tokens_repeated"], columns["tokens_lost"]) == ("3", "0")
    # The same id throughout (a gateway that rewrites ids): the sequence alone shows the splice.
    skipped = [(0.1, tokens[0], "a"), (0.2, tokens[1], "a"), (0.6, tokens[4], "a"), (0.7, tokens[5], "a")]
    columns = _splice_columns(_read(skipped, expected_answer(PROMPT_BODY)))
    assert (columns["splices"], columns["splice_tokens_before"], columns["tokens_lost"]) == ("1", "2", "2")
    assert columns["splice_gap_ms"] == "400.000"


def test_another_models_continuation_is_foreign_and_without_an_expected_answer_nothing_is_checked() -> None:
    mine, other = _answer([0, 1, 2]), _answer([3, 4, 5], model="other-model")
    parts = [(0.1, mine[0], "a"), (0.2, mine[1], "a"), (0.3, mine[2], "a")]
    parts += [(0.8, other[0], "b"), (0.9, other[1], "b"), (1.0, other[2], "b")]
    columns = _splice_columns(_read(parts, expected_answer(PROMPT_BODY)))
    assert (columns["splices"], columns["foreign_tokens"], columns["tokens_lost"]) == ("1", "3", "0")
    unchecked = _splice_columns(_read(parts, None))
    assert unchecked["splices"] == "1"  # the chunk id changed
    assert (unchecked["tokens_lost"], unchecked["tokens_repeated"], unchecked["foreign_tokens"]) == ("-1",) * 3


# --- real model servers behind the real gateway -------------------------------------------------


def _stream_and_break(gw: Program, hosted: Program, after_tokens: int) -> StreamTally:
    """Stream one answer through the gateway; after ``after_tokens`` tokens the hosted node's
    fault hook ends its stream (mode error: the stream stops there without [DONE])."""
    expected = expected_answer(PROMPT_BODY)
    tally = StreamTally(time.time(), expected)
    broke = threading.Event()
    with httpx.stream("POST", gw.url + "/v1/chat/completions", json=PROMPT_BODY, timeout=10) as reply:
        assert reply.status_code == 200
        for chunk in reply.iter_bytes():
            tally.feed_chunk(time.time(), chunk)
            if tally.tokens >= after_tokens and not broke.is_set():
                broke.set()
                assert httpx.post(hosted.url + "/fault", json={"mode": "error"}).status_code == 200
    tally.end(time.time())
    return tally


def _stack(spawn: Callable[..., Program], policy: str, **fallback_env: Any) -> tuple[Program, Program]:
    # 120 ms a token: the break, posted once the client has read 4 tokens, must reach the node while
    # it still streams. At 40 ms (480 ms an answer) a busy machine delivered the 4th token to the
    # client after the node had sent its 12th, and the stream ended whole.
    slow = {"TOKEN_INTERVAL_MS": 120, "TOKENS_PER_ANSWER": 12}
    hosted = model_server(spawn, "hosted-1", "hosted", region="external", **slow)
    gpu = model_server(spawn, "gpu-a1", "gpu", **slow, **fallback_env)
    gw = gateway(
        spawn,
        [upstream("hosted-1", hosted.url, "hosted", "external"), upstream("gpu-a1", gpu.url, "gpu", "region-a")],
        STREAM_RESUME=policy,
    )
    return gw, hosted


@pytest.mark.parametrize("policy", ["resume", "restart", "off"])
def test_the_gateways_resume_policies_seen_token_by_token_agree_with_its_log(
    spawn: Callable[..., Program], policy: str
) -> None:
    gw, hosted = _stack(spawn, policy)
    tally = _stream_and_break(gw, hosted, after_tokens=4)
    columns = _splice_columns(tally)
    if policy == "off":
        assert tally.error_type == "upstream_stream_broken" and not tally.done
        assert columns["splices"] == "0" and events(gw.url, "stream_resumed") == []
        assert [e["tokens_sent"] for e in events(gw.url, "stream_broken")] == [tally.tokens]
        return
    assert tally.done, "the resumed stream ends with [DONE]"
    (resumed,) = events(gw.url, "stream_resumed")
    assert (resumed["from_node"], resumed["node"], resumed["policy"]) == ("hosted-1", "gpu-a1", policy)
    assert columns["splices"] == "1"
    assert int(columns["splice_tokens_before"]) == resumed["tokens_sent"] >= 4
    assert float(columns["splice_gap_ms"]) > 0
    assert columns["foreign_tokens"] == "0" and columns["tokens_lost"] == "0"
    if policy == "resume":
        assert resumed["resent_tokens"] == resumed["tokens_sent"]
        assert columns["tokens_repeated"] == "0" and tally.tokens == 12
    else:
        assert resumed["replayed_tokens"] == resumed["tokens_sent"]
        assert int(columns["tokens_repeated"]) == resumed["replayed_tokens"]
        assert tally.tokens == 12 + resumed["replayed_tokens"]


def test_a_fallback_serving_another_model_continues_with_foreign_tokens(spawn: Callable[..., Program]) -> None:
    gw, hosted = _stack(spawn, "resume", ANSWER_MODEL="some-other-model")
    tally = _stream_and_break(gw, hosted, after_tokens=3)
    columns = _splice_columns(tally)
    assert tally.done and columns["splices"] == "1"
    assert int(columns["foreign_tokens"]) == tally.tokens - int(columns["splice_tokens_before"]) > 0
