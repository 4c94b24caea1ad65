"""Reading a streamed (SSE) answer into the sample's stream columns, shared by the prober and the
locustfile (which loads this file by path in Locust's child process: standard library only).

The wire format is the OpenAI chat one (CONTRACT-13 section 2): one ``data: {json}`` line per
chunk, ``data: [DONE]`` at the end, and, when the gateway must end a stream it already started,
one ``data: {"error": {"type": ..., "tokens_sent": N}}`` and a close without ``[DONE]``.

- a *token* is a ``data:`` event whose ``choices[0].delta.content`` is a non-empty string;
- the stream *completed* when ``data: [DONE]`` arrived; nothing after ``[DONE]`` or after the
  error event counts;
- other lines (blank separators, ``:`` comments, ``event:``/``id:`` fields, data that is not
  JSON) deliver no token and do not end the stream.

**Checked token by token.** Given the :class:`ExpectedAnswer` of the request (the reference
model servers answer a deterministic token sequence per model and prompt: targets/answers.py,
whose :func:`answer_token` is copied here), the tally places every token in that sequence and
counts *lost* tokens (indices skipped), *repeated* ones (indices it already had) and *foreign*
ones (not in this answer at all: another model's or another prompt's). A *splice* is where the
answer goes on from another source: the chunks' ``id`` changes between two tokens, or the token
does not follow the one before it in the sequence. Per stream the tally records the number of
splices, the tokens before the first one, the longest arrival gap across a splice, and the
lost / repeated / foreign counts (-1 when the answer could not be checked: no expected answer).

Feed a :class:`StreamTally` as the bytes arrive (:meth:`StreamTally.feed_chunk`, or
:meth:`StreamTally.feed_line` for lines already split), then read its columns once the answer
ended, whichever way it ended: what arrived until then is the observation. :func:`read_stream` is
the same over a finished sequence of ``(arrival_s, line)``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable

DONE_DATA = "[DONE]"
STREAM_FIELD = "stream"  # the request JSON key that asks for a stream ("stream": true)


# --- the reference model's answers (a copy of targets/answers.py: this file imports nothing) ----

_CONSONANTS = "bdfgklmnprstvzhj"
_VOWELS = "aeiou"
_SYLLABLES = 4
SEARCH_TOKENS = 1024
"""How far into an answer a token is looked for before it counts as foreign."""


def answer_token(model: str, prompt: str, index: int) -> str:
    """Token ``index`` (from 0) of the reference model's answer to ``prompt`` by ``model``."""
    digest = hashlib.sha256(f"{model}\x1f{prompt}\x1f{index}".encode()).digest()
    word = "".join(
        _CONSONANTS[digest[2 * k] % len(_CONSONANTS)] + _VOWELS[digest[2 * k + 1] % len(_VOWELS)]
        for k in range(_SYLLABLES)
    )
    return word + " "


class ExpectedAnswer:
    """The token sequence a request should get: the reference answer to its model and prompt.
    Build it once per request body (:func:`expected_answer`) and share it between streams."""

    __slots__ = ("model", "prompt", "_tokens", "_where")

    def __init__(self, model: str, prompt: str) -> None:
        self.model = model
        self.prompt = prompt
        self._tokens: list[str] = []
        self._where: dict[str, int] = {}

    def token(self, index: int) -> str:
        self._extend(index + 1)
        return self._tokens[index]

    def index_of(self, word: str, hint: int) -> int | None:
        """The index of ``word`` (a token without its trailing space) in the answer, ``hint``
        first (the index that would continue the stream); None when it is not among the first
        :data:`SEARCH_TOKENS`."""
        if 0 <= hint < SEARCH_TOKENS and self.token(hint).strip() == word:
            return hint
        self._extend(SEARCH_TOKENS)
        return self._where.get(word)

    def _extend(self, count: int) -> None:
        for index in range(len(self._tokens), count):
            token = answer_token(self.model, self.prompt, index)
            self._tokens.append(token)
            self._where.setdefault(token.strip(), index)


def expected_answer(request_json: object) -> ExpectedAnswer | None:
    """The expected answer of a chat request body (``model`` and ``messages``), None for any
    other body. The prompt is the messages' contents joined by a newline (targets/answers.py)."""
    if not isinstance(request_json, dict):
        return None
    messages = request_json.get("messages")
    model = request_json.get("model")
    if not isinstance(messages, list) or not isinstance(model, str):
        return None
    contents = [m.get("content") for m in messages if isinstance(m, dict)]
    return ExpectedAnswer(model, "\n".join(c for c in contents if isinstance(c, str)))


# --- answers checked against their API (OpenAI-compatible; the scenario's answer_schema) ------

SCHEMAS = ("openai.chat", "openai.embeddings")
INVALID_PREFIX = "invalid: "
"""The sample's ``error`` of an answer that arrived (2xx) but does not match its API."""


def _field(value: object, path: str, kinds: tuple[type, ...], what: str, *, none_ok: bool = False) -> str | None:
    if value is None and none_ok:
        return None
    if isinstance(value, bool) or not isinstance(value, kinds):
        return f"{path}: expected {what}, got {_shown(value)}"
    return None


def _shown(value: object) -> str:
    if value is None:
        return "nothing (missing or null)"
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _first(*problems: str | None) -> str | None:
    return next((p for p in problems if p is not None), None)


def _object_of(data: dict[str, object], expected: str) -> str | None:
    found = data.get("object")
    return None if found == expected else f"object: expected \"{expected}\", got {_shown(found)}"


def _common(data: dict[str, object], expected_object: str) -> str | None:
    return _first(
        _field(data.get("id"), "id", (str,), "a string"),
        _object_of(data, expected_object),
        _field(data.get("created"), "created", (int,), "an integer"),
        _field(data.get("model"), "model", (str,), "a string"),
    )


def check_chat_completion(data: object) -> str | None:
    """Why a whole chat completion (``"object": "chat.completion"``) is not one, or None."""
    if not isinstance(data, dict):
        return f"body: expected a JSON object, got {_shown(data)}"
    problem = _common(data, "chat.completion")
    if problem:
        return problem
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices:
        return f"choices: expected a non-empty list, got {_shown(choices)}"
    for i, choice in enumerate(choices):
        where = f"choices[{i}]"
        if not isinstance(choice, dict):
            return f"{where}: expected an object, got {_shown(choice)}"
        message = choice.get("message")
        if not isinstance(message, dict):
            return f"{where}.message: expected an object, got {_shown(message)}"
        problem = _first(
            _field(choice.get("index"), f"{where}.index", (int,), "an integer"),
            _field(message.get("role"), f"{where}.message.role", (str,), "a string"),
            _field(message.get("content"), f"{where}.message.content", (str,), "a string or null", none_ok=True),
            _field(choice.get("finish_reason"), f"{where}.finish_reason", (str,), "a string or null", none_ok=True),
        )
        if problem:
            return problem
    return None


def check_chat_chunk(data: object) -> str | None:
    """Why one event of a chat stream (``"object": "chat.completion.chunk"``) is not one, or None."""
    if not isinstance(data, dict):
        return f"expected a JSON object, got {_shown(data)}"
    problem = _common(data, "chat.completion.chunk")
    if problem:
        return problem
    choices = data.get("choices")
    if not isinstance(choices, list):
        return f"choices: expected a list, got {_shown(choices)}"
    for i, choice in enumerate(choices):
        where = f"choices[{i}]"
        if not isinstance(choice, dict):
            return f"{where}: expected an object, got {_shown(choice)}"
        delta = choice.get("delta")
        if not isinstance(delta, dict):
            return f"{where}.delta: expected an object, got {_shown(delta)}"
        problem = _first(
            _field(choice.get("index"), f"{where}.index", (int,), "an integer"),
            _field(delta.get("content"), f"{where}.delta.content", (str,), "a string or null", none_ok=True),
            _field(choice.get("finish_reason"), f"{where}.finish_reason", (str,), "a string or null", none_ok=True),
        )
        if problem:
            return problem
    return None


def check_embeddings(data: object) -> str | None:
    """Why an embeddings answer (``"object": "list"`` of ``"embedding"``) is not one, or None."""
    if not isinstance(data, dict):
        return f"body: expected a JSON object, got {_shown(data)}"
    problem = _first(_object_of(data, "list"), _field(data.get("model"), "model", (str,), "a string"))
    if problem:
        return problem
    items = data.get("data")
    if not isinstance(items, list) or not items:
        return f"data: expected a non-empty list, got {_shown(items)}"
    for i, item in enumerate(items):
        where = f"data[{i}]"
        if not isinstance(item, dict):
            return f"{where}: expected an object, got {_shown(item)}"
        problem = _first(_object_of(item, "embedding"),
                         _field(item.get("index"), f"{where}.index", (int,), "an integer"))
        if problem:
            return f"{where}.{problem}" if problem.startswith("object") else problem
        vector = item.get("embedding")
        if not isinstance(vector, list) or not vector:
            return f"{where}.embedding: expected a non-empty list of numbers, got {_shown(vector)}"
        if not all(isinstance(x, int | float) and not isinstance(x, bool) for x in vector):
            return f"{where}.embedding: expected numbers only"
    return None


def check_body(schema: str, body: bytes) -> str | None:
    """Why a whole 2xx answer's ``body`` does not match ``schema`` (one of :data:`SCHEMAS`),
    or None when it does."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return f"body is not JSON ({len(body)} bytes)"
    return check_embeddings(data) if schema == "openai.embeddings" else check_chat_completion(data)


def wants_stream(request_json: object) -> bool:
    """The request's JSON body asks for a streamed answer (``"stream": true``)."""
    return isinstance(request_json, dict) and request_json.get(STREAM_FIELD) is True


class StreamTally:
    """What one SSE answer delivered so far; times are epoch seconds (``time.time()``), the
    clock of the sample's ``start``/``end``."""

    __slots__ = ("sent_s", "tokens", "first_token_s", "last_token_s", "max_gap_s", "done",
                 "error_type", "body_bytes", "_pending", "expected", "splices", "splice_tokens_before",
                 "splice_gap_s", "tokens_lost", "tokens_repeated", "foreign_tokens", "_last_id",
                 "_last_index", "_high", "_had_word", "check_chunks", "invalid", "_events")

    def __init__(self, sent_s: float, expected: ExpectedAnswer | None = None, check_chunks: bool = False) -> None:
        self.sent_s = sent_s
        self.expected = expected
        self.check_chunks = check_chunks  # every event checked against the chat chunk schema
        self.invalid: str | None = None  # why the first invalid event was invalid
        self._events = 0
        self.splices = 0
        self.splice_tokens_before = -1  # tokens received before the first splice
        self.splice_gap_s: float | None = None  # the longest arrival gap across a splice
        self.tokens_lost = 0
        self.tokens_repeated = 0
        self.foreign_tokens = 0
        self._last_id: str | None = None  # the chunk id of the last token
        self._last_index: int | None = None  # its place in the expected answer (None: foreign)
        self._high = 0  # 1 + the highest index received
        self._had_word = False
        self.tokens = 0
        self.first_token_s: float | None = None
        self.last_token_s: float | None = None
        self.max_gap_s: float | None = None
        self.done = False
        self.error_type: str | None = None  # the gateway's error event's "type"
        self.body_bytes = 0
        self._pending = b""

    @property
    def finished(self) -> bool:
        """[DONE] or the error event arrived: later lines count for nothing."""
        return self.done or self.error_type is not None

    def feed_chunk(self, arrival_s: float, chunk: bytes) -> None:
        """Bytes of the body as they arrived; lines are split on ``\\n`` (a ``\\r`` before it is
        dropped) and a line cut across chunks counts when its end arrives."""
        self.body_bytes += len(chunk)
        if b"\n" not in chunk:
            self._pending += chunk
            return
        *lines, self._pending = (self._pending + chunk).split(b"\n")
        for line in lines:
            self.feed_line(arrival_s, line)

    def end(self, arrival_s: float) -> None:
        """The body ended (cleanly or not): a last line without its newline still counts."""
        if self._pending:
            pending, self._pending = self._pending, b""
            self.feed_line(arrival_s, pending)

    def feed_line(self, arrival_s: float, line: bytes | str) -> None:
        """One SSE line (without its newline) that arrived at ``arrival_s``."""
        if self.finished:
            return
        text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
        if not text.startswith("data:"):
            return
        data = text[5:].strip()
        if data == DONE_DATA:
            self.done = True
            return
        self._events += 1
        try:
            event = json.loads(data)
        except ValueError:
            self._invalid(f"data is not JSON: {_shown(data)}")
            return
        if not isinstance(event, dict):
            self._invalid(f"data is not a JSON object: {_shown(event)}")
            return
        error = event.get("error")
        if isinstance(error, dict):
            self.error_type = str(error.get("type") or "error")
            return
        if self.check_chunks and self.invalid is None:
            problem = check_chat_chunk(event)
            if problem:
                self._invalid(problem)
        content = _content(event)
        if content:
            chunk_id = event.get("id")
            self._token(arrival_s, content, chunk_id if isinstance(chunk_id, str) else None)

    def _token(self, arrival_s: float, content: str = "x", chunk_id: str | None = None) -> None:
        gap_s: float | None = None
        if self.last_token_s is None:
            self.first_token_s = arrival_s
        else:
            gap_s = arrival_s - self.last_token_s
            if self.max_gap_s is None or gap_s > self.max_gap_s:
                self.max_gap_s = gap_s
        spliced = chunk_id is not None and self._last_id is not None and chunk_id != self._last_id
        if self.expected is not None:
            spliced = self._check(content) or spliced
        if spliced and gap_s is not None:
            self.splices += 1
            if self.splice_tokens_before < 0:
                self.splice_tokens_before = self.tokens
            if self.splice_gap_s is None or gap_s > self.splice_gap_s:
                self.splice_gap_s = gap_s
        if chunk_id is not None:
            self._last_id = chunk_id
        self.last_token_s = arrival_s
        self.tokens += 1

    def _check(self, content: str) -> bool:
        """Place the content's words in the expected answer; True when it does not go on from
        the token before (a splice)."""
        assert self.expected is not None
        breaks = False
        for word in content.split():
            # The index that goes on from the word before; None after a foreign word.
            follows: int | None = 0
            if self._had_word:
                follows = None if self._last_index is None else self._last_index + 1
            index = self.expected.index_of(word, 0 if follows is None else follows)
            if index is None:
                self.foreign_tokens += 1
                breaks = breaks or self._last_index is not None  # from this answer to another one
            else:
                if index != follows:
                    breaks = True
                if index >= self._high:
                    self.tokens_lost += index - self._high
                    self._high = index + 1
                else:
                    self.tokens_repeated += 1
            self._last_index = index
            self._had_word = True
        return breaks

    def _invalid(self, why: str) -> None:
        if self.check_chunks and self.invalid is None:
            self.invalid = f"event {self._events}: {why}"

    def completed(self, status: int) -> bool:
        """A 2xx answer whose ``[DONE]`` arrived."""
        return self.done and 200 <= status < 300

    def error_text(self, status: int) -> str:
        """The sample's ``error`` for a 2xx answer: ``invalid: event N: WHY`` when an event did
        not match the chat chunk schema (``check_chunks``), "" when it completed, else ``stream
        error after N tokens: TYPE`` (the gateway's error event) or ``stream cut after N tokens``."""
        if self.invalid is not None and 200 <= status < 300:
            return INVALID_PREFIX + self.invalid
        if self.completed(status):
            return ""
        if self.error_type is not None:
            return f"stream error after {self.tokens} tokens: {self.error_type}"
        return f"stream cut after {self.tokens} tokens"

    def columns(self, status: int) -> list[str]:
        """The six stream columns (samples.STREAM_COLUMNS order) for this answer's ``status`` (0
        when no answer arrived)."""
        answered = 200 <= status < 300
        completed = self.completed(status)
        ttft = "" if self.first_token_s is None else f"{(self.first_token_s - self.sent_s) * 1000.0:.3f}"
        gap = "" if self.max_gap_s is None else f"{self.max_gap_s * 1000.0:.3f}"
        cut_after = str(self.tokens) if answered and not completed else "-1"
        return ["1", ttft, str(self.tokens), gap, "1" if completed else "0", cut_after]

    def splice_columns(self) -> list[str]:
        """The splice columns (samples.SPLICE_COLUMNS order): splices, tokens before the first,
        the longest gap across one, and tokens lost / repeated / foreign (-1 when not checked)."""
        splice_gap = "" if self.splice_gap_s is None else f"{self.splice_gap_s * 1000.0:.3f}"
        checked = self.expected is not None and self._had_word
        lost, repeated, foreign = (
            (str(self.tokens_lost), str(self.tokens_repeated), str(self.foreign_tokens)) if checked else ("-1",) * 3
        )
        return [str(self.splices), str(self.splice_tokens_before), splice_gap, lost, repeated, foreign]


def _content(event: dict[str, object]) -> str:
    """``choices[0].delta.content`` when it is a string, else ""."""
    choices = event.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return ""
    delta = choices[0].get("delta")
    if not isinstance(delta, dict):
        return ""
    content = delta.get("content")
    return content if isinstance(content, str) else ""


def read_stream(
    sent_s: float, lines: Iterable[tuple[float, bytes | str]], expected: ExpectedAnswer | None = None
) -> StreamTally:
    """The tally of a finished answer from its ``(arrival_s, line)`` pairs, in arrival order."""
    tally = StreamTally(sent_s, expected)
    for arrival_s, line in lines:
        tally.feed_line(arrival_s, line)
    return tally
