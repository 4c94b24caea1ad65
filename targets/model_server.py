"""One model node: an OpenAI-style chat endpoint with a fixed service time, plus fault hooks.

Run: ``python -m targets.model_server`` (environment variables in targets/README.md).

Endpoints:
    POST   /v1/chat/completions   a small completion after SERVICE_TIME_MS; with ``"stream": true``
                                  a text/event-stream of TOKENS_PER_ANSWER tokens (capped by
                                  ``max_tokens``): the first after SERVICE_TIME_MS, then one every
                                  TOKEN_INTERVAL_MS, a finish_reason chunk and ``data: [DONE]``.
                                  Tokens are the deterministic answer of targets/answers.py to
                                  (model, prompt); a last ``assistant`` message is a prefill the
                                  answer continues (tokens already in it are not sent again)
    GET    /health                200 when the node can serve; 500/503 while a fault is active
    GET    /fault                 the active fault (``{"mode": null}`` when none)
    POST   /fault                 {"mode": "xid"|"hang" (gpu only) | "error", "status": 503,
                                   "duration_s": N}; without duration_s the fault stays until
                                   DELETE /fault
    DELETE /fault                 restore (idempotent)
    GET    /metrics               Prometheus metrics (docs/metrics.md): requests by status, latency,
                                  queue depth (requests in the node), the active fault, streams
                                  started and completed

A fault hook acts on a stream too: set before the request, it answers as for any request (the
status before any token; a hang stalls before the headers); set while a stream is being sent, a
hang stalls the next token until it ends, and xid or error ends the stream there, cleanly and
without ``[DONE]`` (the node broke mid-answer).

Every response carries X-Served-By (NODE_ID), X-Tier, X-Region and X-Degraded.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from targets.answers import answer_token, prefill_tokens, split_prompt
from targets.common import (
    JSON_TYPE,
    ConfigError,
    env_bool,
    env_int,
    env_list,
    env_str,
    error_response,
    json_response,
    now_s,
    read_json_object,
    serve,
)
from targets.metrics import LATENCY_BUCKETS_S, GaugeRows, StateCollector, add_metrics_route

TIERS = ("hosted", "gpu", "cpu")
GPU_ONLY_MODES = ("xid", "hang")
XID_MESSAGE = "Xid 79: GPU has fallen off the bus"
EVENT_STREAM_TYPE = "text/event-stream"
DONE_EVENT = b"data: [DONE]\n\n"


class ClientGone(Exception):
    """The client closed the connection while a stream was being written."""

    def __init__(self, response: web.StreamResponse) -> None:
        super().__init__("client closed the stream")
        self.response = response


@dataclass(frozen=True)
class NodeConfig:
    node_id: str
    tier: str
    region: str
    degraded: bool
    service_time_ms: int
    model: str
    token_interval_ms: int
    tokens_per_answer: int
    answer_model: str  # "" = answer as the requested model; else this model's answers (a misconfiguration)

    @classmethod
    def from_env(cls) -> NodeConfig:
        tier = env_str("TIER", "gpu")
        if tier not in TIERS:
            raise ConfigError(f"TIER={tier!r} must be one of {', '.join(TIERS)}")
        return cls(
            node_id=env_str("NODE_ID", f"{tier}-node"),
            tier=tier,
            region=env_str("REGION", "region-a"),
            degraded=env_bool("DEGRADED", tier == "cpu"),
            service_time_ms=env_int("SERVICE_TIME_MS", 5),
            model=env_str("MODEL_NAME", f"{tier}-chat"),
            token_interval_ms=max(0, env_int("TOKEN_INTERVAL_MS", 5)),
            tokens_per_answer=max(1, env_int("TOKENS_PER_ANSWER", 16)),
            answer_model=env_str("ANSWER_MODEL", ""),
        )

    def headers(self) -> dict[str, str]:
        return {
            "X-Served-By": self.node_id,
            "X-Tier": self.tier,
            "X-Region": self.region,
            "X-Degraded": "true" if self.degraded else "false",
        }


@dataclass
class FaultState:
    """The one active fault of a node. Expiry is checked on read, against a monotonic deadline
    taken when the hook was called, so ``duration_s`` is exact however busy the node is."""

    mode: str | None = None
    status: int = 500
    set_at_s: float | None = None
    deadline_monotonic: float | None = None
    released: asyncio.Event = field(default_factory=asyncio.Event)

    def active(self) -> str | None:
        if self.mode is not None and self.deadline_monotonic is not None:
            if time.monotonic() >= self.deadline_monotonic:
                self.clear()
        return self.mode

    def set(self, mode: str, status: int, duration_s: float | None) -> None:
        self.released.set()  # wake requests stalled by a previous hang
        self.released = asyncio.Event()
        self.mode = mode
        self.status = status
        self.set_at_s = now_s()
        self.deadline_monotonic = None if duration_s is None else time.monotonic() + duration_s

    def clear(self) -> None:
        self.mode = None
        self.set_at_s = None
        self.deadline_monotonic = None
        self.released.set()

    def remaining_s(self) -> float | None:
        if self.deadline_monotonic is None:
            return None
        return max(0.0, self.deadline_monotonic - time.monotonic())

    def describe(self) -> dict[str, Any]:
        mode = self.active()
        return {
            "mode": mode,
            "status": self.status if mode in ("error", "xid") else None,
            "set_at": self.set_at_s,
            "remaining_s": self.remaining_s(),
        }

    async def wait_released(self) -> None:
        """Stall while a hang is active: until DELETE /fault or the duration ends."""
        released = self.released
        remaining = self.remaining_s()
        try:
            await asyncio.wait_for(released.wait(), timeout=remaining)
        except TimeoutError:
            self.active()


class ModelServer:
    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.fault = FaultState()
        self.headers = config.headers()
        self.service_time_s = config.service_time_ms / 1000.0
        self._ids = itertools.count(1)
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "drill_model_requests", "Chat requests ended in this node, by HTTP status (cancelled: client left first)",
            ["code"], registry=self.registry,
        )
        self.latency = Histogram(
            "drill_model_request_duration_seconds", "Chat request latency inside this node",
            buckets=LATENCY_BUCKETS_S, registry=self.registry,
        )
        self.queue_depth = Gauge(
            "drill_model_queue_depth", "Chat requests inside this node now (waiting, hung or being served)",
            registry=self.registry,
        )
        self.streams_started = Counter(
            "drill_model_streams_started", "Streamed answers whose headers were sent", registry=self.registry,
        )
        self.streams_completed = Counter(
            "drill_model_streams_completed", "Streamed answers that ended with data: [DONE]", registry=self.registry,
        )
        self.registry.register(StateCollector([
            ("drill_model_fault_active", "1 while a fault hook is active on this node, by mode", ["mode"],
             self._fault_rows),
        ]))

    def _fault_rows(self) -> GaugeRows:
        active = self.fault.active()
        return [({"mode": mode}, 1.0 if active == mode else 0.0) for mode in ("xid", "hang", "error")]

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_get("/health", self.health)
        app.router.add_get("/fault", self.get_fault)
        app.router.add_post("/fault", self.set_fault)
        app.router.add_delete("/fault", self.clear_fault)
        add_metrics_route(app, self.registry)
        return app

    async def _fault_response(self) -> web.Response | None:
        """The reply an active fault forces, or None to serve normally (after any hang)."""
        mode = self.fault.active()
        if mode is None:
            return None
        if mode == "hang":
            await self.fault.wait_released()
            return await self._fault_response()
        if mode == "xid":
            return error_response(self.fault.status, "xid_79", XID_MESSAGE, headers=self.headers)
        return error_response(
            self.fault.status, "injected_error", f"injected fault on {self.config.node_id}", headers=self.headers
        )

    async def chat(self, request: web.Request) -> web.StreamResponse:
        started = time.monotonic()
        self.queue_depth.inc()
        code = "cancelled"  # the client went away (gateway timeout) before the node answered
        try:
            response = await self._chat(request)
            code = str(response.status)
            return response
        except ClientGone as gone:
            return gone.response
        finally:
            self.queue_depth.dec()
            self.requests.labels(code).inc()
            self.latency.observe(time.monotonic() - started)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        forced = await self._fault_response()
        if forced is not None:
            return forced
        try:
            body = json.loads(raw) if raw else {}
        except (json.JSONDecodeError, UnicodeDecodeError):
            return error_response(400, "invalid_request", "body is not valid JSON", headers=self.headers)
        if isinstance(body, dict) and body.get("stream") is True:
            return await self._stream(request, body)
        if self.service_time_s > 0:
            await asyncio.sleep(self.service_time_s)
        model = body.get("model", self.config.model) if isinstance(body, dict) else self.config.model
        completion = {
            "id": f"chatcmpl-{self.config.node_id}-{next(self._ids)}",
            "object": "chat.completion",
            "created": int(now_s()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": f"ok from {self.config.node_id}"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 3, "total_tokens": 4},
        }
        return web.Response(body=json.dumps(completion).encode(), content_type=JSON_TYPE, headers=self.headers)

    async def _stream(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        """The answer as server-sent events, one per token, on a fixed schedule from the start
        (so a slow write does not slow every later token), then the finish chunk and [DONE]."""
        max_tokens = body.get("max_tokens")
        if max_tokens is not None:
            if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
                return error_response(
                    400, "invalid_request", "max_tokens must be a positive integer", headers=self.headers
                )
        model = body.get("model", self.config.model)
        answer_model = self.config.answer_model or (model if isinstance(model, str) else self.config.model)
        prompt, prefill = split_prompt(body)
        first = min(prefill_tokens(prefill), self.config.tokens_per_answer)
        tokens = self.config.tokens_per_answer - first
        if max_tokens is not None:
            tokens = min(tokens, max_tokens)
        completion_id = f"chatcmpl-{self.config.node_id}-{next(self._ids)}"
        created = int(now_s())

        def chunk(delta: dict[str, str], finish_reason: str | None) -> bytes:
            event = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
            }
            return b"data: " + json.dumps(event).encode() + b"\n\n"

        loop = asyncio.get_running_loop()
        first_token_at = loop.time() + self.service_time_s
        interval_s = self.config.token_interval_ms / 1000.0
        response = web.StreamResponse(
            headers={**self.headers, "Content-Type": EVENT_STREAM_TYPE, "Cache-Control": "no-cache"}
        )
        try:
            await response.prepare(request)
            self.streams_started.inc()
            for index in range(tokens):
                delay_s = first_token_at + index * interval_s - loop.time()
                if delay_s > 0:
                    await asyncio.sleep(delay_s)
                mode = self.fault.active()
                if mode == "hang":
                    while mode == "hang":  # a new hang may replace the one that ended
                        await self.fault.wait_released()
                        mode = self.fault.active()
                    # Go on at the token rate from now, not in a burst of the tokens "due".
                    first_token_at = loop.time() - index * interval_s
                if mode is not None:
                    return response  # xid/error mid-answer: the stream ends here, without [DONE]
                content = answer_token(answer_model, prompt, first + index)
                await response.write(chunk({"content": content}, None))
            await response.write(chunk({}, "stop") + DONE_EVENT)
        except ConnectionError:
            raise ClientGone(response) from None
        self.streams_completed.inc()
        return response

    async def health(self, request: web.Request) -> web.Response:
        forced = await self._fault_response()
        if forced is not None:
            return forced
        return json_response(
            {"status": "ok", "node": self.config.node_id, "tier": self.config.tier, "region": self.config.region},
            headers=self.headers,
        )

    async def get_fault(self, request: web.Request) -> web.Response:
        return json_response(self.fault.describe(), headers=self.headers)

    async def set_fault(self, request: web.Request) -> web.Response:
        body = await read_json_object(request)
        mode = body.get("mode")
        if mode not in ("xid", "hang", "error"):
            return error_response(400, "BadRequest", 'mode must be "xid", "hang" or "error"')
        if mode in GPU_ONLY_MODES and self.config.tier != "gpu":
            return error_response(
                400, "BadRequest", f"{mode} is a GPU fault; this node has TIER={self.config.tier} (use mode error)"
            )
        duration_s = body.get("duration_s")
        if duration_s is not None and (not isinstance(duration_s, int | float) or duration_s <= 0):
            return error_response(400, "BadRequest", "duration_s must be a positive number of seconds")
        status = body.get("status", 503 if mode == "error" else 500)
        if not isinstance(status, int) or not 400 <= status <= 599:
            return error_response(400, "BadRequest", "status must be an HTTP error status (400-599)")
        self.fault.set(mode, status, None if duration_s is None else float(duration_s))
        return json_response(self.fault.describe(), headers=self.headers)

    async def clear_fault(self, request: web.Request) -> web.Response:
        self.fault.clear()
        return json_response(self.fault.describe(), headers=self.headers)


def main() -> None:
    config = NodeConfig.from_env()
    server = ModelServer(config)
    # TLS_CERT_NAMES (comma-separated): HTTPS only, with a self-signed certificate made now for
    # those names (targets/tls.py): the local stand-in of a hosted provider's https:// endpoint.
    names = env_list("TLS_CERT_NAMES", [])
    context = None
    if names:
        from targets.tls import server_context

        context = server_context(names, config.node_id)
    serve(server.app(), env_str("HOST", "0.0.0.0"), env_int("PORT", 8000), context)


if __name__ == "__main__":
    main()
