"""The gateway: an OpenAI-style front door that routes by tier priority and fails over.

Run: ``python -m targets.gateway`` (environment variables in targets/README.md).

Routing: ``hosted`` -> ``gpu`` pool (nodes of the first region in GPU_REGION_ORDER, then the
next) -> ``cpu`` (degraded). A tier is skipped when none of its upstreams passes active health
checks or when its circuit breaker is open. Within a tier a failed attempt (timeout, connection
error, status >= 500) moves on to the next node, up to MAX_ATTEMPTS_PER_TIER, then to the next
tier, so a request fails over before the breaker has even opened. A 200 whose body is not JSON
is a failed attempt too. A 429 is one as well, and the upstream is then skipped until its
Retry-After (capped by RETRY_AFTER_CAP_S; RATE_LIMIT_SKIP_S without one) has passed.
For negative controls (a retry storm, docs/cost.md): RATE_LIMIT_RETRIES (default 0) retries a
429 on the same upstream at once that many times, and HONOUR_RETRY_AFTER=false never skips a
rate-limited upstream: together, every request calls a rate-limited provider 1 + N times.

Streams (``"stream": true``): the gateway reads the upstream's events until the first token and
only then sends its own headers (those of that upstream), so everything before the first token
(5xx, 429, a reset, an end or error event, no token within FIRST_TOKEN_TIMEOUT_MS) fails over
like a non-stream request and the client only sees a longer time to first token. After the
first token it relays event by event. If the upstream then breaks (ends without [DONE], resets,
sends an error event, or no token for STREAM_IDLE_TIMEOUT_MS), what happens is STREAM_RESUME's:

- ``off`` (the default): the gateway does not resume, since the tokens already sent cannot be
  taken back; it sends one error event ``{"error": {"type": "upstream_stream_broken", ...}}``
  and ends without [DONE] (event ``stream_broken``);
- ``resume``: it re-issues the request to the next healthy upstream (the other nodes of the tier,
  then the next tiers) with the answer so far as a last ``assistant`` message (a prefill the model
  continues), skips any token of the new stream that repeats what the client already has, and
  relays the rest in the same response (event ``stream_resumed``, with ``tokens_sent`` and
  ``resent_tokens``: the prefill's tokens); at most STREAM_RESUME_MAX times per stream, after
  which it ends as ``off`` does;
- ``restart``: the faulty resume, for controls: it re-issues the original request and relays the
  whole new answer, so the client gets every token it already had a second time (the event says
  ``resent_tokens`` 0 and ``replayed_tokens``).

The breaker is the runbook trigger, per tier, over a sliding window of the requests that reached
the tier (one sample each: good when some node of the tier served it, with the time spent in the
tier as its latency): error rate > BREAKER_ERROR_RATE or p95 > BREAKER_LATENCY_FACTOR x
baseline p95 (never below BREAKER_LATENCY_FLOOR_MS). The baseline is learned from windows that were healthy. An open
breaker half-opens after BREAKER_COOLDOWN_S and lets one probe request at a time through;
BREAKER_HALF_OPEN_PROBES good probes close it (fail back), one bad probe opens it again.
Hysteresis against a flapping upstream: a breaker that opens again within twice its cool-down of
closing multiplies its cool-down by BREAKER_FLAP_BACKOFF (default 2, at most 60 s; 1 = none, the
breaker follows every flap); opening after a quiet spell resets it.

Endpoints:
    POST   /v1/chat/completions   routed; X-Served-By / X-Tier / X-Region / X-Degraded always set
    POST   /v1/embeddings         routed the same way over the upstreams whose ``api`` is
                                  ``embeddings`` (the embeddings tier; never streamed). The tiers'
                                  breakers are shared with chat: a stack serves one API or the other
    GET    /health                the gateway process itself
    GET    /admin/events          routing-event log, JSON list of {ts, event, tier, detail, ...};
                                  ``?since=<epoch s>`` returns newer events only
    GET    /admin/pool            GPU pool members, health per node and region, target size
    POST   /admin/pool            register a GPU node {name, url, region}
    DELETE /admin/pool/{node}     remove a GPU node
    GET    /admin/state           every upstream and every breaker (for debugging and tests)
    GET    /metrics               Prometheus metrics (docs/metrics.md): requests, errors and latency
                                  per tier, breaker state, pool size, upstream health
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram

from targets.common import (
    JSON_TYPE,
    ConfigError,
    env_bool,
    env_float,
    env_int,
    env_json,
    env_list,
    env_str,
    error_response,
    json_response,
    now_s,
    read_json_object,
    serve,
)
from targets.metrics import LATENCY_BUCKETS_S, GaugeRows, StateCollector, add_metrics_route

TIER_ORDER = ("hosted", "gpu", "cpu")
# drill_gateway_breaker_state's values: a number, so PromQL can compare it (max: 0 = never open).
BREAKER_STATE_VALUE = {"closed": 0.0, "half_open": 1.0, "open": 2.0}
TIER_RANK = {tier: rank for rank, tier in enumerate(TIER_ORDER)}
NO_UPSTREAM_HEADERS = {"X-Served-By": "none", "X-Tier": "none", "X-Region": "none", "X-Degraded": "false"}
EVENT_STREAM_TYPE = "text/event-stream"
# What one SSE event of a chat stream is to the gateway (CONTRACT-13 section 2).
TOKEN, DONE, ERROR, OTHER = "token", "done", "error", "other"
DRAIN_AFTER_DONE_S = 0.05
STREAM_RESUME_POLICIES = ("off", "resume", "restart")
# What an upstream serves (UPSTREAMS[].api, default chat) and where it serves it.
API_PATHS = {"chat": "/v1/chat/completions", "embeddings": "/v1/embeddings"}
RATE_LIMITED = "HTTP 429 (rate limited"  # in an attempt's error: the upstream answered 429


@dataclass(frozen=True)
class GatewayConfig:
    upstreams: list[dict[str, Any]]
    gpu_region_order: list[str]
    pool_target_size: int
    upstream_timeout_ms: int
    max_attempts_per_tier: int
    max_connections: int
    upstream_keepalive_s: float
    health_interval_ms: int
    health_timeout_ms: int
    health_fails_to_down: int
    health_passes_to_up: int
    breaker_window_s: float
    breaker_min_samples: int
    breaker_error_rate: float
    breaker_latency_factor: float
    breaker_latency_floor_ms: float
    breaker_baseline_min_samples: int
    breaker_cooldown_s: float
    breaker_half_open_probes: int
    breaker_eval_interval_ms: int
    breaker_flap_backoff: float
    events_max: int
    first_token_timeout_ms: int
    stream_idle_timeout_ms: int
    retry_after_cap_s: float
    rate_limit_skip_s: float
    stream_resume: str = "off"
    stream_resume_max: int = 1
    rate_limit_retries: int = 0
    honour_retry_after: bool = True

    @classmethod
    def from_env(cls) -> GatewayConfig:
        upstreams = env_json("UPSTREAMS", [])
        if not isinstance(upstreams, list):
            raise ConfigError("UPSTREAMS must be a JSON list of {name, url, tier, region}")
        for index, item in enumerate(upstreams):
            if not isinstance(item, dict) or not {"name", "url", "tier"} <= item.keys():
                raise ConfigError(f"UPSTREAMS[{index}] must be an object with name, url, tier (and region)")
            if item["tier"] not in TIER_ORDER:
                raise ConfigError(f"UPSTREAMS[{index}].tier={item['tier']!r} must be one of {', '.join(TIER_ORDER)}")
            if item.get("api", "chat") not in API_PATHS:
                raise ConfigError(f"UPSTREAMS[{index}].api={item['api']!r} must be one of {', '.join(API_PATHS)}")
        upstream_timeout_ms = env_int("UPSTREAM_TIMEOUT_MS", 1000)
        stream_resume = env_str("STREAM_RESUME", "off")
        if stream_resume not in STREAM_RESUME_POLICIES:
            raise ConfigError(f"STREAM_RESUME={stream_resume!r} must be one of {', '.join(STREAM_RESUME_POLICIES)}")
        return cls(
            upstreams=upstreams,
            gpu_region_order=env_list("GPU_REGION_ORDER", ["region-a", "region-b"]),
            pool_target_size=env_int("GPU_POOL_TARGET", 2),
            upstream_timeout_ms=upstream_timeout_ms,
            max_attempts_per_tier=max(1, env_int("MAX_ATTEMPTS_PER_TIER", 2)),
            max_connections=env_int("MAX_CONNECTIONS", 256),
            upstream_keepalive_s=env_float("UPSTREAM_KEEPALIVE_S", 60.0),
            health_interval_ms=env_int("HEALTH_INTERVAL_MS", 500),
            health_timeout_ms=env_int("HEALTH_TIMEOUT_MS", 500),
            health_fails_to_down=max(1, env_int("HEALTH_FAILS_TO_DOWN", 2)),
            health_passes_to_up=max(1, env_int("HEALTH_PASSES_TO_UP", 1)),
            breaker_window_s=env_float("BREAKER_WINDOW_S", 3.0),
            breaker_min_samples=max(1, env_int("BREAKER_MIN_SAMPLES", 10)),
            breaker_error_rate=env_float("BREAKER_ERROR_RATE", 0.10),
            breaker_latency_factor=env_float("BREAKER_LATENCY_FACTOR", 2.0),
            breaker_latency_floor_ms=env_float("BREAKER_LATENCY_FLOOR_MS", 250.0),
            breaker_baseline_min_samples=max(1, env_int("BREAKER_BASELINE_MIN_SAMPLES", 20)),
            breaker_cooldown_s=env_float("BREAKER_COOLDOWN_S", 5.0),
            breaker_half_open_probes=max(1, env_int("BREAKER_HALF_OPEN_PROBES", 3)),
            breaker_eval_interval_ms=max(10, env_int("BREAKER_EVAL_INTERVAL_MS", 100)),
            breaker_flap_backoff=max(1.0, env_float("BREAKER_FLAP_BACKOFF", 2.0)),
            events_max=env_int("EVENTS_MAX", 10000),
            first_token_timeout_ms=max(1, env_int("FIRST_TOKEN_TIMEOUT_MS", upstream_timeout_ms)),
            stream_idle_timeout_ms=max(1, env_int("STREAM_IDLE_TIMEOUT_MS", upstream_timeout_ms)),
            retry_after_cap_s=max(0.0, env_float("RETRY_AFTER_CAP_S", 30.0)),
            rate_limit_skip_s=max(0.0, env_float("RATE_LIMIT_SKIP_S", 1.0)),
            stream_resume=stream_resume,
            stream_resume_max=max(1, env_int("STREAM_RESUME_MAX", 1)),
            rate_limit_retries=max(0, env_int("RATE_LIMIT_RETRIES", 0)),
            honour_retry_after=env_bool("HONOUR_RETRY_AFTER", True),
        )


@dataclass
class Upstream:
    """One model server as the gateway sees it (always through its Toxiproxy proxy in stacks)."""

    name: str
    url: str
    tier: str
    region: str
    degraded: bool
    healthy: bool
    api: str = "chat"  # what it serves: a key of API_PATHS
    api_url: str = ""
    health_url: str = ""
    response_headers: dict[str, str] = field(default_factory=dict)
    consecutive_failures: int = 0
    consecutive_passes: int = 0
    unhealthy_since: float | None = None
    last_check_at: float | None = None
    last_error: str | None = None
    rate_limited_until: float = 0.0  # loop time: skipped until then after a 429

    def __post_init__(self) -> None:
        base = self.url.rstrip("/")
        self.api_url = base + API_PATHS[self.api]
        self.health_url = base + "/health"
        self.response_headers = {
            "X-Served-By": self.name,
            "X-Tier": self.tier,
            "X-Region": self.region or "none",
            "X-Degraded": "true" if self.degraded else "false",
        }

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "url": self.url,
            "tier": self.tier,
            "api": self.api,
            "region": self.region,
            "degraded": self.degraded,
            "healthy": self.healthy,
            "unhealthy_since": self.unhealthy_since,
            "last_check_at": self.last_check_at,
            "last_error": self.last_error,
        }


def parse_retry_after(value: str | None, now_epoch_s: float) -> float | None:
    """Seconds to wait from a Retry-After header (delay-seconds or an HTTP date, RFC 9110 10.2.3);
    None when absent or unreadable."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - now_epoch_s
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


class SseSplitter:
    """Cuts a byte stream into server-sent events (blocks ended by a blank line). The gateway
    forwards each block as it came; only its ``data:`` lines are read, to classify it."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        buffer = self._buffer + chunk
        if b"\r" in buffer:
            buffer = buffer.replace(b"\r\n", b"\n")
        *blocks, self._buffer = buffer.split(b"\n\n")
        return [block for block in blocks if block.strip()]


def classify_event(block: bytes) -> str:
    """TOKEN (choices[0].delta.content is a non-empty string), DONE, ERROR (an ``error``
    object) or OTHER (a finish chunk, a role chunk, a comment, anything unreadable)."""
    return read_event(block)[0]


def read_event(block: bytes) -> tuple[str, str]:
    """:func:`classify_event`'s kind and, for a TOKEN, its content ("" otherwise)."""
    data = b"\n".join(
        line[5:].removeprefix(b" ") for line in block.split(b"\n") if line.startswith(b"data:")
    )
    if data.strip() == b"[DONE]":
        return DONE, ""
    try:
        event = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return OTHER, ""
    if not isinstance(event, dict):
        return OTHER, ""
    if "error" in event:
        return ERROR, ""
    choices = event.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        delta = choices[0].get("delta")
        if isinstance(delta, dict):
            content = delta.get("content")
            if isinstance(content, str) and content:
                return TOKEN, content
    return OTHER, ""


def resume_body(body: bytes, answer_so_far: str) -> bytes:
    """The request re-issued mid-stream: the same JSON with the answer so far appended as a last
    ``assistant`` message (a prefill the model continues); the body itself when it is not a chat
    request the gateway can read."""
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return body
    if not isinstance(parsed, dict) or not isinstance(parsed.get("messages"), list):
        return body
    parsed["messages"] = [*parsed["messages"], {"role": "assistant", "content": answer_so_far}]
    return json.dumps(parsed).encode()


def asks_for_stream(body: bytes) -> bool:
    """True when the request body is a JSON object with ``"stream": true``."""
    if b'"stream"' not in body:  # the common case costs no JSON parse
        return False
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(parsed, dict) and parsed.get("stream") is True


def is_json(payload: bytes) -> bool:
    try:
        json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return False
    return True


@dataclass
class UpstreamStream:
    """A stream the gateway has committed to: the upstream sent its first token (or a complete
    empty answer). ``head`` holds the events up to it, to send first; ``pending`` the events that
    came in the same read after it, still to be judged like every later one."""

    upstream: Upstream
    reply: aiohttp.ClientResponse
    splitter: SseSplitter
    head: list[bytes]
    pending: list[bytes]
    tokens: int
    done: bool


def p95(values: list[float]) -> float:
    """Nearest-rank 95th percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


class Breaker:
    """The per-tier circuit breaker on the runbook trigger. States: closed, open, half_open.

    The hot path only appends samples and reads ``state``; the window is judged by
    :meth:`evaluate`, called every BREAKER_EVAL_INTERVAL_MS, so sorting never happens per request.
    """

    def __init__(self, tier: str, config: GatewayConfig, log: EventLog) -> None:
        self.tier = tier
        self.config = config
        self.log = log
        self.state = "closed"
        self.samples: deque[tuple[float, bool, float]] = deque(maxlen=20000)
        self.baseline_p95_ms: float | None = None
        self.opened_at: float = 0.0
        self.probe_in_flight = False
        self.probe_successes = 0
        self.last_reason: str | None = None
        self.cooldown_s = config.breaker_cooldown_s
        self.closed_at: float | None = None

    def latency_threshold_ms(self) -> float:
        if self.baseline_p95_ms is None:
            return math.inf
        return max(self.config.breaker_latency_factor * self.baseline_p95_ms, self.config.breaker_latency_floor_ms)

    def admit(self, now: float) -> str | None:
        """``"pass"`` for a normal attempt, ``"probe"`` for a half-open probe, None to skip."""
        if self.state == "closed":
            return "pass"
        if self.state == "open":
            if now - self.opened_at < self.cooldown_s:
                return None
            self.state = "half_open"
            self.probe_successes = 0
            self.probe_in_flight = False
            self.log.add("breaker_half_open", self.tier, f"cool-down of {self.cooldown_s:g}s over")
        if self.probe_in_flight:
            return None
        self.probe_in_flight = True
        return "probe"

    def record(self, now: float, ok: bool, latency_ms: float) -> None:
        self.samples.append((now, ok, latency_ms))

    def record_probe(self, now: float, ok: bool, latency_ms: float) -> None:
        self.probe_in_flight = False
        if self.state != "half_open":
            return
        threshold = self.latency_threshold_ms()
        if ok and latency_ms <= threshold:
            self.probe_successes += 1
            if self.probe_successes >= self.config.breaker_half_open_probes:
                self.state = "closed"
                self.closed_at = now
                self.samples.clear()
                self.log.add("breaker_close", self.tier, f"{self.probe_successes} good probes")
            return
        why = "error" if not ok else f"latency {latency_ms:.0f} ms > {threshold:.0f} ms"
        self._open(now, f"probe failed: {why}")

    def release_probe(self) -> None:
        """A probe that never finished (client went away) must not wedge the breaker."""
        self.probe_in_flight = False

    def _open(self, now: float, reason: str) -> None:
        if self.state == "closed":  # a half-open probe failing keeps the cool-down it had
            flapping = self.closed_at is not None and now - self.closed_at < 2 * self.cooldown_s
            base = self.config.breaker_cooldown_s
            backed_off = min(max(base, 60.0), self.cooldown_s * self.config.breaker_flap_backoff)
            self.cooldown_s = backed_off if flapping else base
        self.state = "open"
        self.opened_at = now
        self.samples.clear()
        self.last_reason = reason
        self.log.add("breaker_open", self.tier, reason)

    def evaluate(self, now: float) -> None:
        if self.state != "closed":
            return
        horizon = now - self.config.breaker_window_s
        samples = self.samples
        while samples and samples[0][0] < horizon:
            samples.popleft()
        count = len(samples)
        if count < self.config.breaker_min_samples:
            return
        errors = sum(1 for _, ok, _ in samples if not ok)
        error_rate = errors / count
        window_p95_ms = p95([latency for _, _, latency in samples])
        threshold = self.latency_threshold_ms()
        if error_rate > self.config.breaker_error_rate:
            self._open(now, f"error rate {error_rate:.0%} > {self.config.breaker_error_rate:.0%} over {count} attempts")
        elif window_p95_ms > threshold:
            self._open(
                now,
                f"p95 {window_p95_ms:.0f} ms > {threshold:.0f} ms "
                f"({self.config.breaker_latency_factor:g}x baseline {self.baseline_p95_ms:.1f} ms)",
            )
        elif count >= self.config.breaker_baseline_min_samples:
            # Learn only from healthy windows, slowly, so a creeping slowdown cannot drag the
            # baseline up faster than the trigger can see it.
            if self.baseline_p95_ms is None:
                self.baseline_p95_ms = window_p95_ms
            else:
                self.baseline_p95_ms = 0.9 * self.baseline_p95_ms + 0.1 * window_p95_ms

    def describe(self) -> dict[str, Any]:
        return {
            "tier": self.tier,
            "state": self.state,
            "baseline_p95_ms": self.baseline_p95_ms,
            "latency_threshold_ms": None if self.baseline_p95_ms is None else self.latency_threshold_ms(),
            "window_samples": len(self.samples),
            "last_reason": self.last_reason,
        }


class EventLog:
    """The gateway's routing-event log: the ground truth for failover and failback."""

    def __init__(self, max_events: int) -> None:
        self.events: deque[dict[str, Any]] = deque(maxlen=max_events)

    def add(self, event: str, tier: str | None, detail: str, **extra: Any) -> None:
        self.events.append({"ts": now_s(), "event": event, "tier": tier, "detail": detail, **extra})

    def since(self, ts: float | None) -> list[dict[str, Any]]:
        if ts is None:
            return list(self.events)
        return [event for event in self.events if event["ts"] > ts]


class Gateway:
    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.log = EventLog(config.events_max)
        self.upstreams: dict[str, Upstream] = {}
        for item in config.upstreams:
            self._add_upstream(item, healthy=True)
        self.breakers = {tier: Breaker(tier, config, self.log) for tier in TIER_ORDER}
        self.serving_tier: str | None = None
        self._serving_since = 0.0  # loop time of the last failover/failback
        self._rotation = 0
        self._routes: dict[str, list[Upstream]] = {}
        self._routes_dirty = True
        self._session: aiohttp.ClientSession | None = None
        self._health_session: aiohttp.ClientSession | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._attempt_timeout = aiohttp.ClientTimeout(total=config.upstream_timeout_ms / 1000.0)
        self._health_timeout = aiohttp.ClientTimeout(total=config.health_timeout_ms / 1000.0)
        # A stream's phases are bounded by the gateway itself (first token, then idle gaps).
        self._stream_timeout = aiohttp.ClientTimeout(total=None)
        self._first_token_timeout_s = config.first_token_timeout_ms / 1000.0
        self._stream_idle_timeout_s = config.stream_idle_timeout_ms / 1000.0
        self._rate_limited_horizon = 0.0  # loop time when the last 429 skip ends
        self.metrics = GatewayMetrics(self)

    def _add_upstream(self, item: dict[str, Any], healthy: bool) -> Upstream:
        tier = item.get("tier", "gpu")
        upstream = Upstream(
            name=str(item["name"]),
            url=str(item["url"]),
            tier=tier,
            region=str(item.get("region", "")),
            degraded=bool(item.get("degraded", tier == "cpu")),
            healthy=healthy,
            api=str(item.get("api", "chat")),
        )
        self.upstreams[upstream.name] = upstream
        self._routes_dirty = True
        return upstream

    # -- lifecycle ------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_post("/v1/embeddings", self.embeddings)
        app.router.add_get("/health", self.health)
        app.router.add_get("/admin/events", self.admin_events)
        app.router.add_get("/admin/pool", self.admin_pool)
        app.router.add_post("/admin/pool", self.admin_register)
        app.router.add_delete("/admin/pool/{node}", self.admin_remove)
        app.router.add_get("/admin/state", self.admin_state)
        add_metrics_route(app, self.metrics.registry)
        app.on_startup.append(self._start)
        app.on_cleanup.append(self._stop)
        return app

    async def _start(self, app: web.Application) -> None:
        # Idle upstream connections are kept for UPSTREAM_KEEPALIVE_S (aiohttp's default is 15 s): a
        # tier skipped for a 20 s outage keeps its warm connections, so failing back does not open
        # a burst of new ones (through the HTTP fault proxy that burst was a visible slow second).
        connector = aiohttp.TCPConnector(limit=self.config.max_connections, limit_per_host=0, ttl_dns_cache=300,
                                         keepalive_timeout=self.config.upstream_keepalive_s)
        self._session = aiohttp.ClientSession(connector=connector, auto_decompress=False)
        self._health_session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64))
        self._tasks = [
            asyncio.create_task(self._health_loop()),
            asyncio.create_task(self._breaker_loop()),
        ]
        self.log.add("started", None, f"{len(self.upstreams)} upstreams")

    async def _stop(self, app: web.Application) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for session in (self._session, self._health_session):
            if session is not None:
                await session.close()

    # -- routing --------------------------------------------------------------------------

    def _rebuild_routes(self) -> None:
        routes: dict[str, list[Upstream]] = {tier: [] for tier in TIER_ORDER}
        for upstream in self.upstreams.values():
            if upstream.healthy:
                routes[upstream.tier].append(upstream)
        order = {region: rank for rank, region in enumerate(self.config.gpu_region_order)}
        routes["gpu"].sort(key=lambda u: (order.get(u.region, len(order)), u.region, u.name))
        self._routes = routes
        self._routes_dirty = False

    def _candidates(self, tier: str, api: str = "chat") -> list[Upstream]:
        """Healthy upstreams of a tier serving ``api``, in try order: by region priority,
        round-robin inside."""
        if self._routes_dirty:
            self._rebuild_routes()
        nodes = [node for node in self._routes[tier] if node.api == api]
        if self._rate_limited_horizon:
            now = asyncio.get_running_loop().time()
            if now < self._rate_limited_horizon:
                nodes = [node for node in nodes if node.rate_limited_until <= now]
            else:
                self._rate_limited_horizon = 0.0
        if len(nodes) < 2:
            return nodes
        self._rotation += 1
        if tier != "gpu":
            start = self._rotation % len(nodes)
            return nodes[start:] + nodes[:start]
        ordered: list[Upstream] = []
        index = 0
        while index < len(nodes):
            region = nodes[index].region
            end = index
            while end < len(nodes) and nodes[end].region == region:
                end += 1
            group = nodes[index:end]
            start = self._rotation % len(group)
            ordered.extend(group[start:] + group[:start])
            index = end
        return ordered

    async def chat(self, request: web.Request) -> web.StreamResponse:
        return await self._route(request, "chat")

    async def embeddings(self, request: web.Request) -> web.StreamResponse:
        return await self._route(request, "embeddings")

    async def _route(self, request: web.Request, api: str) -> web.StreamResponse:
        body = await request.read()
        content_type = request.headers.get("Content-Type", JSON_TYPE)
        wants_stream = api == "chat" and asks_for_stream(body)
        loop = asyncio.get_running_loop()
        request_started = loop.time()
        last_error = "no healthy upstream in any tier"
        attempted = False
        for ignore_breaker in (False, True):
            for tier in TIER_ORDER:
                candidates = self._candidates(tier, api)
                if not candidates:
                    continue
                breaker = self.breakers[tier]
                if ignore_breaker:
                    # Last resort when every tier with healthy nodes is behind an open breaker:
                    # trying beats a certain 503.
                    mode: str | None = "pass"
                else:
                    mode = breaker.admit(loop.time())
                    if mode is None:
                        continue
                attempted = True
                limit = 1 if mode == "probe" else self.config.max_attempts_per_tier
                started = loop.time()
                served: web.Response | UpstreamStream | None = None
                try:
                    for upstream in candidates[:limit]:
                        for _ in range(1 + self.config.rate_limit_retries):
                            if wants_stream:
                                served, error = await self._attempt_stream(upstream, body, content_type)
                            else:
                                served, error = await self._attempt(upstream, body, content_type)
                            if served is not None or RATE_LIMITED not in error:
                                break
                        if served is not None:
                            break
                        last_error = error
                except asyncio.CancelledError:
                    if mode == "probe":
                        breaker.release_probe()
                    raise
                # One sample per tier and request: a node failing while its neighbour serves is
                # a node problem (health checks handle it), not a reason to open the whole tier.
                # A stream's latency is its time to first token; its sample is taken at its end.
                finished = loop.time()
                latency_ms = (finished - started) * 1000.0
                if isinstance(served, UpstreamStream):
                    if mode != "probe":
                        self._note_served(tier, request_started)
                    self.metrics.answered(tier, finished - request_started)
                    try:
                        response, outcome = await self._relay(request, tier, served, body, content_type)
                    except asyncio.CancelledError:
                        if mode == "probe":
                            breaker.release_probe()
                        raise
                    self.metrics.stream_ended(outcome)
                    if outcome == "client_gone":
                        # Says nothing about the upstream: no breaker sample.
                        if mode == "probe":
                            breaker.release_probe()
                        return response
                    ok = outcome == "completed"  # a resumed stream's first upstream broke
                    self.metrics.tier_attempt(tier, ok)
                    if mode == "probe":
                        breaker.record_probe(loop.time(), ok, latency_ms)
                    else:
                        breaker.record(loop.time(), ok, latency_ms)
                    return response
                self.metrics.tier_attempt(tier, served is not None)
                if mode == "probe":
                    breaker.record_probe(finished, served is not None, latency_ms)
                else:
                    breaker.record(finished, served is not None, latency_ms)
                if served is not None:
                    if mode != "probe":
                        self._note_served(tier, request_started)
                    self.metrics.answered(tier, finished - request_started)
                    return served
            if attempted:
                break
        self.metrics.answered("none", loop.time() - request_started)
        headers = dict(NO_UPSTREAM_HEADERS)
        retry_after_s = self._rate_limit_remaining_s()
        if retry_after_s is not None:
            # Some upstream is rate limited: tell the client when trying again can help.
            headers["Retry-After"] = str(retry_after_s)
        return error_response(503, "no_upstream", f"all tiers failed: {last_error}", headers=headers)

    def _rate_limit_remaining_s(self) -> int | None:
        """Whole seconds until the first rate-limited upstream may be tried again (at least 1),
        or None when no upstream is skipped for a 429."""
        now = asyncio.get_running_loop().time()
        waits = [u.rate_limited_until - now for u in self.upstreams.values() if u.rate_limited_until > now]
        if not waits:
            return None
        return max(1, math.ceil(min(waits)))

    def _rate_limited(self, upstream: Upstream, retry_after: str | None) -> str:
        """Skip ``upstream`` until its Retry-After (capped) has passed; log it once per skip."""
        retry_after_s = parse_retry_after(retry_after, now_s())
        if not self.config.honour_retry_after:
            skip_s = 0.0
        elif retry_after_s is None:
            skip_s = self.config.rate_limit_skip_s
        else:
            skip_s = min(retry_after_s, self.config.retry_after_cap_s)
        now = asyncio.get_running_loop().time()
        already_skipped = upstream.rate_limited_until > now
        until = now + skip_s
        if until > upstream.rate_limited_until:
            upstream.rate_limited_until = until
        self._rate_limited_horizon = max(self._rate_limited_horizon, until)
        self.metrics.rate_limited(upstream.tier)
        if not already_skipped:  # requests in flight when the limit hit would repeat it
            self.log.add(
                "rate_limited", upstream.tier, f"{upstream.name}: HTTP 429, skipped for {skip_s:g} s",
                node=upstream.name, region=upstream.region, retry_after_s=retry_after_s, skip_s=skip_s,
            )
        return f"{upstream.name}: {RATE_LIMITED}; skipped for {skip_s:g} s)"

    async def _attempt(self, upstream: Upstream, body: bytes, content_type: str) -> tuple[web.Response | None, str]:
        """One try on one upstream: the response to pass through, or None and why it failed
        (timeout, connection error, status >= 500, 429, a 2xx body that is not JSON)."""
        assert self._session is not None
        self.metrics.upstream_call(upstream)
        try:
            async with self._session.post(
                upstream.api_url, data=body, headers={"Content-Type": content_type}, timeout=self._attempt_timeout
            ) as reply:
                payload = await reply.read()
                status = reply.status
                reply_type = reply.headers.get("Content-Type", JSON_TYPE)
                retry_after = reply.headers.get("Retry-After")
        except TimeoutError:
            self.metrics.upstream_unanswered(upstream)
            return None, f"{upstream.name}: timed out after {self.config.upstream_timeout_ms} ms"
        except aiohttp.ClientError as exc:
            self.metrics.upstream_unanswered(upstream)
            return None, f"{upstream.name}: {type(exc).__name__}: {exc}"
        if status == 429:
            return None, self._rate_limited(upstream, retry_after)
        if status >= 500:
            return None, f"{upstream.name}: HTTP {status}"
        if 200 <= status < 300 and not is_json(payload):
            return None, f"{upstream.name}: HTTP {status} with a body that is not JSON"
        headers = dict(upstream.response_headers)
        headers["Content-Type"] = reply_type
        return web.Response(body=payload, status=status, headers=headers), ""

    async def _attempt_stream(
        self, upstream: Upstream, body: bytes, content_type: str
    ) -> tuple[web.Response | UpstreamStream | None, str]:
        """One streamed try: the upstream's stream once its first token is in hand (the reply
        stays open), a plain response to pass through (4xx, or a JSON answer), or None and why
        it failed before its first token."""
        assert self._session is not None
        self.metrics.upstream_call(upstream)
        loop = asyncio.get_running_loop()
        reply: aiohttp.ClientResponse | None = None
        committed = False
        try:
            async with asyncio.timeout_at(loop.time() + self._first_token_timeout_s):
                reply = await self._session.post(
                    upstream.api_url, data=body, headers={"Content-Type": content_type},
                    timeout=self._stream_timeout,
                )
                status = reply.status
                if status == 429:
                    await reply.read()
                    return None, self._rate_limited(upstream, reply.headers.get("Retry-After"))
                if status >= 500:
                    await reply.read()
                    return None, f"{upstream.name}: HTTP {status}"
                reply_type = reply.headers.get("Content-Type", JSON_TYPE)
                if status >= 300 or not reply_type.startswith(EVENT_STREAM_TYPE):
                    payload = await reply.read()
                    if 200 <= status < 300 and not is_json(payload):
                        return None, f"{upstream.name}: HTTP {status} with a body that is not JSON"
                    headers = {**upstream.response_headers, "Content-Type": reply_type}
                    return web.Response(body=payload, status=status, headers=headers), ""
                splitter = SseSplitter()
                head: list[bytes] = []
                while True:
                    chunk = await reply.content.readany()
                    if not chunk:
                        return None, f"{upstream.name}: stream ended before its first token"
                    blocks = splitter.feed(chunk)
                    for index, block in enumerate(blocks):
                        kind = classify_event(block)
                        if kind == ERROR:
                            return None, f"{upstream.name}: error event before the first token"
                        head.append(block)
                        if kind in (TOKEN, DONE):
                            committed = True
                            pending = blocks[index + 1:] if kind == TOKEN else []
                            return UpstreamStream(
                                upstream, reply, splitter, head, pending,
                                tokens=1 if kind == TOKEN else 0, done=kind == DONE,
                            ), ""
        except TimeoutError:
            if reply is None:
                self.metrics.upstream_unanswered(upstream)
            return None, f"{upstream.name}: no first token within {self.config.first_token_timeout_ms} ms"
        except aiohttp.ClientError as exc:
            if reply is None:
                self.metrics.upstream_unanswered(upstream)
            return None, f"{upstream.name}: {type(exc).__name__}: {exc}"
        finally:
            if reply is not None and not committed:
                reply.release()  # back to the pool when the body was read to its end, else closed

    async def _relay(
        self, request: web.Request, tier: str, stream: UpstreamStream, body: bytes, content_type: str
    ) -> tuple[web.StreamResponse, str]:
        """Send the stream to the client: headers of the upstream that produced the first token,
        the events read so far, then event by event. Returns the response and how it ended:
        ``completed`` ([DONE] relayed), ``resumed`` ([DONE] relayed after a mid-stream resume),
        ``broken`` (the upstream broke after the first token and was not resumed: one error event
        sent, no [DONE]) or ``client_gone``."""
        upstream = stream.upstream
        response = web.StreamResponse(
            status=stream.reply.status,
            headers={**upstream.response_headers, "Content-Type": EVENT_STREAM_TYPE, "Cache-Control": "no-cache"},
        )
        try:
            await response.prepare(request)
        except ConnectionError:
            stream.reply.release()
            return response, "client_gone"
        sent: list[str] = []  # the contents of the tokens relayed, in order
        skip: list[str] = []
        tried = {upstream.name}
        current = stream
        resumes = 0
        while True:
            try:
                why = await self._pump(response, current, sent, skip)
            finally:
                current.reply.release()  # closes the connection unless the body was read to its end
            if why in ("completed", "client_gone"):
                return response, "resumed" if why == "completed" and resumes else why
            broken = current.upstream
            message = f"{broken.name}: {why}"
            if self.config.stream_resume != "off" and resumes < self.config.stream_resume_max:
                next_stream = await self._resume(body, content_type, sent, tried)
                if next_stream is not None:
                    resumes += 1
                    restart = self.config.stream_resume == "restart"
                    skip = [] if restart else list(sent)
                    fallback = next_stream.upstream
                    self.log.add(
                        "stream_resumed", fallback.tier,
                        f"{message} after {len(sent)} tokens; resumed on {fallback.name} "
                        + ("with the original request (every token replayed)" if restart
                           else f"with the {len(sent)} tokens sent as prefill"),
                        node=fallback.name, region=fallback.region, from_node=broken.name, from_tier=broken.tier,
                        policy=self.config.stream_resume, tokens_sent=len(sent),
                        resent_tokens=0 if restart else len(sent), replayed_tokens=len(sent) if restart else 0,
                    )
                    current = next_stream
                    continue
            self.log.add(
                "stream_broken", tier, f"{message} after {len(sent)} tokens",
                node=broken.name, region=broken.region, tokens_sent=len(sent),
            )
            error_event = {"error": {"type": "upstream_stream_broken", "message": message, "tokens_sent": len(sent)}}
            try:
                await response.write(b"data: " + json.dumps(error_event).encode() + b"\n\n")
            except ConnectionError:
                return response, "client_gone"
            return response, "broken"

    async def _pump(
        self, response: web.StreamResponse, stream: UpstreamStream, sent: list[str], skip: list[str]
    ) -> str:
        """Relay one upstream's stream (its head, then event by event) until [DONE]
        (``completed``), the client leaves (``client_gone``) or the upstream breaks (why).
        Token contents relayed are appended to ``sent``; leading tokens equal to ``skip``'s, in
        order, are the client's already and are dropped (``skip`` is consumed)."""
        reply = stream.reply
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._stream_idle_timeout_s
        blocks = [*stream.head, *stream.pending]
        done = False
        why: str | None = None
        while not done and why is None:
            if not blocks:
                try:
                    async with asyncio.timeout_at(deadline):
                        chunk = await reply.content.readany()
                except TimeoutError:
                    why = f"no token for {self.config.stream_idle_timeout_ms} ms"
                    break
                except (aiohttp.ClientError, ConnectionError) as exc:
                    why = f"the connection broke mid-stream ({type(exc).__name__})"
                    break
                if not chunk:
                    why = "the upstream ended the stream without [DONE]"
                    break
                blocks = stream.splitter.feed(chunk)
            out: list[bytes] = []
            for block in blocks:
                kind, content = read_event(block)
                if kind == ERROR:
                    why = "the upstream sent an error event"  # replaced by the gateway's own
                    break
                if kind == TOKEN:
                    deadline = loop.time() + self._stream_idle_timeout_s
                    if skip:
                        if skip[0] == content:
                            skip.pop(0)
                            continue
                        skip.clear()
                    sent.append(content)
                out.append(block + b"\n\n")
                if kind == DONE:
                    done = True
                    break
            blocks = []
            if out:
                try:
                    await response.write(b"".join(out))
                except ConnectionError:
                    return "client_gone"
        if done:
            await self._drain(reply)
            return "completed"
        assert why is not None
        return why

    async def _resume(self, body: bytes, content_type: str, sent: list[str], tried: set[str]) -> UpstreamStream | None:
        """A new stream for the rest of a broken answer, from the first upstream not tried yet
        (tiers in order, open breakers skipped) that gives a first token; None when none does."""
        request_body = body if self.config.stream_resume == "restart" else resume_body(body, "".join(sent))
        attempts = 0
        for tier in TIER_ORDER:
            if self.breakers[tier].state == "open":
                continue
            for upstream in self._candidates(tier):
                if upstream.name in tried or attempts >= self.config.max_attempts_per_tier:
                    continue
                tried.add(upstream.name)
                attempts += 1
                served, _ = await self._attempt_stream(upstream, request_body, content_type)
                if isinstance(served, UpstreamStream):
                    return served
                # A plain answer (a 4xx, a JSON body) cannot continue a stream already started.
        return None

    @staticmethod
    async def _drain(reply: aiohttp.ClientResponse) -> None:
        """Read what follows [DONE] (normally just the end of the chunked body, already on its
        way) so the connection goes back to the pool; an upstream that keeps the body open after
        [DONE] costs at most DRAIN_AFTER_DONE_S and its connection."""
        if reply.content.at_eof():
            return
        try:
            async with asyncio.timeout(DRAIN_AFTER_DONE_S):
                await reply.content.read()
        except (TimeoutError, aiohttp.ClientError, ConnectionError):
            pass

    def _note_served(self, tier: str, request_started: float) -> None:
        current = self.serving_tier
        if tier == current:
            return
        if request_started < self._serving_since:
            return  # a straggler routed before the last change: it says nothing new
        self.serving_tier = tier
        self._serving_since = asyncio.get_running_loop().time()
        if current is None:
            return
        event = "failover" if TIER_RANK[tier] > TIER_RANK[current] else "failback"
        self.log.add(event, tier, f"{current} -> {tier}", **{"from": current, "to": tier})

    # -- background loops -----------------------------------------------------------------

    async def _breaker_loop(self) -> None:
        loop = asyncio.get_running_loop()
        interval_s = self.config.breaker_eval_interval_ms / 1000.0
        while True:
            await asyncio.sleep(interval_s)
            now = loop.time()
            for breaker in self.breakers.values():
                breaker.evaluate(now)

    async def _health_loop(self) -> None:
        interval_s = self.config.health_interval_ms / 1000.0
        while True:
            await self.check_all()
            await asyncio.sleep(interval_s)

    async def check_all(self) -> None:
        await asyncio.gather(*(self._check(u) for u in list(self.upstreams.values())))

    async def _check(self, upstream: Upstream) -> None:
        assert self._health_session is not None
        error: str | None = None
        try:
            async with self._health_session.get(upstream.health_url, timeout=self._health_timeout) as reply:
                await reply.read()
                if reply.status != 200:
                    error = f"health HTTP {reply.status}"
        except TimeoutError:
            error = f"health timed out after {self.config.health_timeout_ms} ms"
        except aiohttp.ClientError as exc:
            error = f"health {type(exc).__name__}: {exc}"
        if self.upstreams.get(upstream.name) is not upstream:
            return  # removed while the check was in flight
        upstream.last_check_at = now_s()
        upstream.last_error = error
        if error is None:
            upstream.consecutive_failures = 0
            upstream.consecutive_passes += 1
            if upstream.healthy:
                upstream.unhealthy_since = None
            elif upstream.consecutive_passes >= self.config.health_passes_to_up:
                upstream.healthy = True
                upstream.unhealthy_since = None
                self._routes_dirty = True
                self.log.add("upstream_up", upstream.tier, upstream.name, node=upstream.name, region=upstream.region)
            return
        upstream.consecutive_passes = 0
        upstream.consecutive_failures += 1
        if upstream.unhealthy_since is None:
            upstream.unhealthy_since = upstream.last_check_at
        if upstream.healthy and upstream.consecutive_failures >= self.config.health_fails_to_down:
            upstream.healthy = False
            self._routes_dirty = True
            self.log.add(
                "upstream_down", upstream.tier, f"{upstream.name}: {error}", node=upstream.name, region=upstream.region
            )

    # -- admin ----------------------------------------------------------------------------

    async def health(self, request: web.Request) -> web.Response:
        return json_response({"status": "ok", "upstreams": len(self.upstreams)})

    async def admin_events(self, request: web.Request) -> web.Response:
        raw = request.query.get("since")
        try:
            since = float(raw) if raw else None
        except ValueError:
            return error_response(400, "BadRequest", "since must be epoch seconds, e.g. since=1700000000.5")
        return json_response(self.log.since(since))

    def pool(self) -> dict[str, Any]:
        nodes = [u.describe() for u in self.upstreams.values() if u.tier == "gpu"]
        regions: dict[str, dict[str, int]] = {}
        for node in nodes:
            counts = regions.setdefault(node["region"], {"nodes": 0, "healthy": 0})
            counts["nodes"] += 1
            counts["healthy"] += 1 if node["healthy"] else 0
        return {
            "target_size": self.config.pool_target_size,
            "region_order": self.config.gpu_region_order,
            "healthy": sum(1 for node in nodes if node["healthy"]),
            "nodes": nodes,
            "regions": regions,
        }

    async def admin_pool(self, request: web.Request) -> web.Response:
        return json_response(self.pool())

    async def admin_register(self, request: web.Request) -> web.Response:
        body = await read_json_object(request)
        name, url, region = body.get("name"), body.get("url"), body.get("region")
        if not (isinstance(name, str) and name and isinstance(url, str) and url and isinstance(region, str) and region):
            return error_response(400, "BadRequest", "body must be {name, url, region} (non-empty strings)")
        existing = self.upstreams.get(name)
        if existing is not None and existing.tier != "gpu":
            return error_response(409, "Conflict", f"{name} is a {existing.tier} upstream, not a GPU node")
        # A new node takes traffic only after its first health check passes.
        upstream = self._add_upstream({"name": name, "url": url, "tier": "gpu", "region": region}, healthy=False)
        self.log.add("node_registered", "gpu", f"{name} ({region}) at {url}", node=name, region=region)
        await self._check(upstream)
        return json_response(upstream.describe(), status=200 if existing else 201)

    async def admin_remove(self, request: web.Request) -> web.Response:
        name = request.match_info["node"]
        upstream = self.upstreams.get(name)
        if upstream is None or upstream.tier != "gpu":
            return error_response(404, "NotFound", f"no GPU node named {name} in the pool")
        del self.upstreams[name]
        self._routes_dirty = True
        self.log.add("node_removed", "gpu", f"{name} ({upstream.region})", node=name, region=upstream.region)
        return json_response(upstream.describe())

    async def admin_state(self, request: web.Request) -> web.Response:
        return json_response(
            {
                "serving_tier": self.serving_tier,
                "upstreams": [u.describe() for u in self.upstreams.values()],
                "breakers": [b.describe() for b in self.breakers.values()],
            }
        )


class GatewayMetrics:
    """The gateway's /metrics: counters and histograms on the request path, the rest read from
    the gateway's state when Prometheus scrapes."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "drill_gateway_requests", "Client requests answered, by the tier that served them (none: a 503)",
            ["tier"], registry=self.registry,
        )
        self.errors = Counter(
            "drill_gateway_errors", "Client requests no tier could serve (answered 503)", registry=self.registry,
        )
        self.latency = Histogram(
            "drill_gateway_request_duration_seconds", "Client request latency, by the tier that served it",
            ["tier"], buckets=LATENCY_BUCKETS_S, registry=self.registry,
        )
        self.tier_attempts = Counter(
            "drill_gateway_tier_attempts", "Requests that reached a tier (the breaker's samples)",
            ["tier"], registry=self.registry,
        )
        self.streams = Counter(
            "drill_gateway_streams", "Streams relayed to clients, by how they ended (completed: [DONE]; "
            "resumed: [DONE] after a mid-stream resume; broken: the upstream broke after the first token and "
            "was not resumed; client_gone)", ["outcome"], registry=self.registry,
        )
        self.rate_limits = Counter(
            "drill_gateway_rate_limited", "429 answers from upstreams, by tier", ["tier"], registry=self.registry,
        )
        self.upstream_calls = Counter(
            "drill_gateway_upstream_calls", "Calls the gateway made to each upstream (every attempt, retry "
            "and resume; health checks not included)", ["upstream", "tier"], registry=self.registry,
        )
        self.upstream_unanswered_calls = Counter(
            "drill_gateway_upstream_unanswered", "Calls to each upstream given up before any answer came (timed "
            "out or the connection failed): the upstream, or a proxy in front of it, may never have read them",
            ["upstream", "tier"], registry=self.registry,
        )
        self.tier_errors = Counter(
            "drill_gateway_tier_errors", "Requests a tier failed (every node tried timed out, refused or answered 5xx)",
            ["tier"], registry=self.registry,
        )
        # Children made once: labels() costs a dict lookup and a lock per call on the hot path.
        self._requests = {tier: self.requests.labels(tier) for tier in TIER_ORDER + ("none",)}
        self._latency = {tier: self.latency.labels(tier) for tier in TIER_ORDER + ("none",)}
        self._attempts = {tier: self.tier_attempts.labels(tier) for tier in TIER_ORDER}
        self._tier_errors = {tier: self.tier_errors.labels(tier) for tier in TIER_ORDER}
        self._streams = {outcome: self.streams.labels(outcome)
                         for outcome in ("completed", "resumed", "broken", "client_gone")}
        self._rate_limits = {tier: self.rate_limits.labels(tier) for tier in TIER_ORDER}
        self.registry.register(StateCollector([
            ("drill_gateway_breaker_state", "Circuit breaker per tier: 0 closed, 1 half-open, 2 open",
             ["tier"], self._breakers),
            ("drill_gateway_pool_nodes", "GPU nodes registered in the pool", [], self._pool_nodes),
            ("drill_gateway_pool_healthy_nodes", "GPU nodes in the pool passing health checks", [], self._pool_healthy),
            ("drill_gateway_pool_target_nodes", "The GPU pool's target size", [], self._pool_target),
            ("drill_gateway_upstream_healthy", "1 while an upstream passes health checks",
             ["upstream", "tier", "region"], self._upstreams),
            ("drill_gateway_serving_tier", "1 for the tier that served the last request", ["tier"], self._serving),
        ]))

    def answered(self, tier: str, duration_s: float) -> None:
        self._requests[tier].inc()
        self._latency[tier].observe(duration_s)
        if tier == "none":
            self.errors.inc()

    def upstream_call(self, upstream: Upstream) -> None:
        self.upstream_calls.labels(upstream.name, upstream.tier).inc()

    def upstream_unanswered(self, upstream: Upstream) -> None:
        self.upstream_unanswered_calls.labels(upstream.name, upstream.tier).inc()

    def stream_ended(self, outcome: str) -> None:
        self._streams[outcome].inc()

    def rate_limited(self, tier: str) -> None:
        self._rate_limits[tier].inc()

    def tier_attempt(self, tier: str, ok: bool) -> None:
        self._attempts[tier].inc()
        if not ok:
            self._tier_errors[tier].inc()

    def _breakers(self) -> GaugeRows:
        return [({"tier": b.tier}, BREAKER_STATE_VALUE[b.state]) for b in self.gateway.breakers.values()]

    def _gpu_nodes(self) -> list[Upstream]:
        return [u for u in self.gateway.upstreams.values() if u.tier == "gpu"]

    def _pool_nodes(self) -> GaugeRows:
        return [({}, float(len(self._gpu_nodes())))]

    def _pool_healthy(self) -> GaugeRows:
        return [({}, float(sum(1 for u in self._gpu_nodes() if u.healthy)))]

    def _pool_target(self) -> GaugeRows:
        return [({}, float(self.gateway.config.pool_target_size))]

    def _upstreams(self) -> GaugeRows:
        return [({"upstream": u.name, "tier": u.tier, "region": u.region or "none"}, 1.0 if u.healthy else 0.0)
                for u in self.gateway.upstreams.values()]

    def _serving(self) -> GaugeRows:
        return [({"tier": tier}, 1.0 if tier == self.gateway.serving_tier else 0.0) for tier in TIER_ORDER]


def main() -> None:
    gateway = Gateway(GatewayConfig.from_env())
    serve(gateway.app(), env_str("HOST", "0.0.0.0"), env_int("PORT", 8080))


if __name__ == "__main__":
    main()
