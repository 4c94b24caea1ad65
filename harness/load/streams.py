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

Feed a :class:`StreamTally` as the bytes arrive (:meth:`StreamTally.feed_chunk`, or
:meth:`StreamTally.feed_line` for lines already split), then read its columns once the answer
ended, whichever way it ended: what arrived until then is the observation. :func:`read_stream` is
the same over a finished sequence of ``(arrival_s, line)``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

DONE_DATA = "[DONE]"
STREAM_FIELD = "stream"  # the request JSON key that asks for a stream ("stream": true)


def wants_stream(request_json: object) -> bool:
    """The request's JSON body asks for a streamed answer (``"stream": true``)."""
    return isinstance(request_json, dict) and request_json.get(STREAM_FIELD) is True


class StreamTally:
    """What one SSE answer delivered so far; times are epoch seconds (``time.time()``), the
    clock of the sample's ``start``/``end``."""

    __slots__ = ("sent_s", "tokens", "first_token_s", "last_token_s", "max_gap_s", "done",
                 "error_type", "body_bytes", "_pending")

    def __init__(self, sent_s: float) -> None:
        self.sent_s = sent_s
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
        try:
            event = json.loads(data)
        except ValueError:
            return
        if not isinstance(event, dict):
            return
        error = event.get("error")
        if isinstance(error, dict):
            self.error_type = str(error.get("type") or "error")
            return
        if _has_content(event):
            self._token(arrival_s)

    def _token(self, arrival_s: float) -> None:
        if self.last_token_s is None:
            self.first_token_s = arrival_s
        else:
            gap_s = arrival_s - self.last_token_s
            if self.max_gap_s is None or gap_s > self.max_gap_s:
                self.max_gap_s = gap_s
        self.last_token_s = arrival_s
        self.tokens += 1

    def completed(self, status: int) -> bool:
        """A 2xx answer whose ``[DONE]`` arrived."""
        return self.done and 200 <= status < 300

    def error_text(self, status: int) -> str:
        """The sample's ``error`` for a 2xx answer: "" when it completed, else ``stream error
        after N tokens: TYPE`` (the gateway's error event) or ``stream cut after N tokens``."""
        if self.completed(status):
            return ""
        if self.error_type is not None:
            return f"stream error after {self.tokens} tokens: {self.error_type}"
        return f"stream cut after {self.tokens} tokens"

    def columns(self, status: int) -> list[str]:
        """The six stream columns (samples.STREAM_COLUMNS order) for this answer's ``status``
        (0 when no answer arrived)."""
        answered = 200 <= status < 300
        completed = self.completed(status)
        ttft = "" if self.first_token_s is None else f"{(self.first_token_s - self.sent_s) * 1000.0:.3f}"
        gap = "" if self.max_gap_s is None else f"{self.max_gap_s * 1000.0:.3f}"
        cut_after = str(self.tokens) if answered and not completed else "-1"
        return ["1", ttft, str(self.tokens), gap, "1" if completed else "0", cut_after]


def _has_content(event: dict[str, object]) -> bool:
    choices = event.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return False
    delta = choices[0].get("delta")
    if not isinstance(delta, dict):
        return False
    content = delta.get("content")
    return isinstance(content, str) and content != ""


def read_stream(sent_s: float, lines: Iterable[tuple[float, bytes | str]]) -> StreamTally:
    """The tally of a finished answer from its ``(arrival_s, line)`` pairs, in arrival order."""
    tally = StreamTally(sent_s)
    for arrival_s, line in lines:
        tally.feed_line(arrival_s, line)
    return tally
