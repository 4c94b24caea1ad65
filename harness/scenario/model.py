"""The scenario model, ``apiVersion: drill/v1``, ``kind: Scenario`` (reference: docs/scenarios.md).

Field names are the YAML keys. Every model forbids unknown keys. Faults are one model per family
(``fault_specs.py``), which hold every rule about a fault's own parameters and target. Checks
that span the scenario (unique fault names, a fault that outlasts its phase, a proxy nobody
declared) live in :func:`cross_checks`, which returns locations so errors still name the file line.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from harness.scenario.common import Strict, check_url, control_chars
from harness.scenario.cost import CostSpec, parse_cost_bound
from harness.scenario.fault_schedules import ScheduleSpec
from harness.scenario.fault_specs import FaultSpec, TargetSpec
from harness.scenario.loader import path_problem
from harness.scenario.timelines import plan_timeline
from harness.scenario.units import Duration, parse_latency_bound

__all__ = [
    "COMPOSE_PROJECT",
    "KubeNodePool",
    "KubeService",
    "CapacitySpec",
    "FaultSpec",
    "LoadSpec",
    "Measurement",
    "Objectives",
    "Phases",
    "ProxyDecl",
    "RequestSpec",
    "Runbook",
    "SafePath",
    "Scenario",
    "StackRef",
    "StopWhen",
    "TargetSpec",
    "ToxiproxyRef",
    "check_url",
    "cross_checks",
]

_SLUG = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
# What `docker compose -p` accepts (and nothing that could read as an option or a path).
COMPOSE_PROJECT = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


MIN_BUCKET_S = 0.001
MAX_BUCKETS = 2_000_000
"""A run is cut into at most this many buckets (a 1 ns bucket once asked numpy for 261 GiB)."""
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}$")


def _safe_path(value: Any) -> Any:
    if isinstance(value, (str, Path)):
        problem = path_problem(value)
        if problem:
            raise ValueError(problem)
    return value


SafePath = Annotated[Path, BeforeValidator(_safe_path)]
"""A file path from a scenario: short enough, no NUL or control characters, encodable."""


class KubeService(Strict):
    """A service of a Kubernetes stack: its pods' labels and the Deployment that owns them."""

    labels: dict[str, str] = Field(default_factory=dict)
    deployment: str | None = None  # default: the service's name


class KubeNodePool(Strict):
    """The GPU nodes of a Kubernetes stack, by label."""

    node_labels: dict[str, str] = Field(min_length=1)


class StackRef(Strict):
    """How to reach the stack. ``local`` with no ``file`` starts nothing (the user's own stack)."""

    runtime: Literal["local", "compose", "kubernetes"] = "local"
    file: SafePath | None = None  # kubernetes: the kubeconfig (default: $KUBECONFIG, ~/.kube/config)
    project: str | None = None
    allow_remote_docker: bool = False
    fresh: bool = False  # compose: recreate the project before the drill (same start state every run)
    # The stack's own routing-event log (the reference gateway's /admin/events): fetched at the
    # end of the run into the run directory, so results carry the stack's failover instants.
    events_url: str | None = None
    # kubernetes (docs/kubernetes.md): both required, never "whatever context is current".
    context: str | None = None
    namespace: str | None = None
    services: dict[str, KubeService] = Field(default_factory=dict)
    gpu_pool: KubeNodePool | None = None
    api_proxy_port: int | None = Field(default=None, ge=1024, le=65535)

    @field_validator("events_url")
    @classmethod
    def _events_http(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^https?://[^/\s]+(/\S*)?$", v):
            raise ValueError(f"expected an http:// URL like http://127.0.0.1:8080/admin/events, got {v!r}")
        return v

    @field_validator("project")
    @classmethod
    def _compose_project(cls, v: str | None) -> str | None:
        if v is not None and not COMPOSE_PROJECT.match(v):
            raise ValueError(
                "expected a compose project name: lowercase letters, digits, '-' and '_', starting "
                f"with a letter or digit, at most 63 characters; got {v!r}"
            )
        return v


class ToxiproxyRef(Strict):
    """An existing Toxiproxy server to use instead of one the runtime starts."""

    url: str = "http://127.0.0.1:8474"

    @field_validator("url")
    @classmethod
    def _http(cls, v: str) -> str:
        return check_url(v, "http://127.0.0.1:8474").rstrip("/")


class HttpFaultProxyRef(Strict):
    """A running HTTP fault proxy (mitmdump with drill's addon, docs/http-faults.md) whose routes
    provider faults (``http_error``, ``stream_cut``, ...) name with ``target.route``."""

    url: str

    @field_validator("url")
    @classmethod
    def _http(cls, v: str) -> str:
        return check_url(v, "http://127.0.0.1:18300").rstrip("/")


class ProxyDecl(Strict):
    """A proxy the harness creates before the drill and deletes after it."""

    name: str
    listen: str
    upstream: str

    @field_validator("listen", "upstream")
    @classmethod
    def _host_port(cls, v: str) -> str:
        if not re.match(r"^[^:\s]+:\d{1,5}$", v) or control_chars(v):
            raise ValueError(f"expected host:port like 127.0.0.1:9001, got {v!r}")
        if not 1 <= int(v.rsplit(":", 1)[1]) <= 65535:
            raise ValueError(f"expected a port in 1..65535, got {v!r}")
        return v


class RequestSpec(Strict):
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] = "GET"
    path: str = "/"
    json_body: Any = Field(default=None, alias="json")
    headers: dict[str, str] = Field(default_factory=dict)
    body: str | None = None
    # The API its 2xx answers must match (whole bodies and every stream event), checked on the
    # probe's answers: an answer that does not is a bad one, ``invalid: WHY`` (docs/method.md).
    answer_schema: Literal["openai.chat", "openai.embeddings"] | None = None

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, v: Any) -> Any:
        return v.upper() if isinstance(v, str) else v

    @field_validator("path")
    @classmethod
    def _slash(cls, v: str) -> str:
        if not v.startswith("/"):
            raise ValueError(f"expected a path starting with '/', got {v!r}")
        if len(v) > 2048 or control_chars(v) or " " in v:
            raise ValueError("a request path holds no spaces, CR/LF or other control characters "
                             "(percent-encode them: %20, %0D, %0A)")
        return v

    @field_validator("headers")
    @classmethod
    def _header_fields(cls, v: dict[str, str]) -> dict[str, str]:
        for name, value in v.items():
            if not _HEADER_NAME.match(name):
                raise ValueError(f"header name {name!r} is not an HTTP token (letters, digits, '-', ...)")
            if len(value) > 8192 or control_chars(value, allow_tab=True):
                raise ValueError(f"header {name} holds CR/LF or another control character")
        return v


class AttributionSpec(Strict):
    """``load.attribution``: how to tell the serving tier from what a third-party gateway puts on
    its answer, when it does not pass ``X-Tier`` through (docs/gateways.md). ``header`` is a
    response header (e.g. LiteLLM's ``x-litellm-model-api-base``, Portkey's
    ``x-portkey-last-used-option-index``); ``tiers`` maps its values to tiers. A value matches a
    key equal to it or, for a URL key, a value under it (``http://127.0.0.1:19101`` matches
    ``http://127.0.0.1:19101/v1``); the longest key wins. The header's value becomes the
    sample's ``served_by``; a value no key matches leaves the tier empty (untagged)."""

    header: str
    tiers: dict[str, str] = Field(min_length=1)

    @field_validator("header")
    @classmethod
    def _header_name(cls, v: str) -> str:
        if not _HEADER_NAME.match(v):
            raise ValueError(f"header name {v!r} is not an HTTP token (letters, digits, '-', ...)")
        return v

    @field_validator("tiers")
    @classmethod
    def _tier_names(cls, v: dict[str, str]) -> dict[str, str]:
        for value, tier in v.items():
            if not value or not tier or control_chars(value) or control_chars(tier):
                raise ValueError(f"tiers: {value!r}: {tier!r}: a header value and a tier name, both non-empty")
        return v


class MasterSpec(Strict):
    """``load.master``: Locust's master listens on ``bind`` (HOST:PORT) for ``drill worker``
    processes on other machines; it starts the users once ``expect_workers`` are attached."""

    bind: str = "127.0.0.1:5557"
    expect_workers: int | None = Field(default=None, ge=1, le=1000)

    @field_validator("bind")
    @classmethod
    def _bind(cls, v: str) -> str:
        host, sep, port = v.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536 or control_chars(v) or " " in v:
            raise ValueError(f"expected HOST:PORT like 127.0.0.1:5557, got {v!r}")
        return v


class CanariesSpec(Strict):
    """``load.canaries``: labelled queries for answer quality (docs/quality.md). ``file`` is a
    JSON canary file (documents, canaries with their relevant documents; relative to the
    scenario); the probe indexes the documents once, sends the canaries in turn as its request's
    ``input`` and scores each answer's recall@``k``."""

    file: SafePath
    k: int = Field(default=5, ge=1, le=100)


class MinQuality(Strict):
    """``min_quality: {recall_at_k: 0.9x baseline}`` (or an absolute floor such as 0.8): the
    fault phase's mean recall@k of the probe's scored canary answers (load.canaries, retrieval
    canaries); ``{similarity: 0.8}`` the same for chat canaries (each answer's similarity to the
    primary's answer to the same prompt). Exactly one of the two."""

    recall_at_k: float | str | None = None
    similarity: float | str | None = None

    @model_validator(mode="after")
    def _one(self) -> MinQuality:
        if (self.recall_at_k is None) == (self.similarity is None):
            raise ValueError("name one metric: recall_at_k (retrieval canaries) or similarity (chat canaries)")
        return self

    @property
    def metric(self) -> tuple[str, float | str]:
        """(the metric's key, its floor as written)."""
        if self.recall_at_k is not None:
            return "recall_at_k", self.recall_at_k
        assert self.similarity is not None
        return "similarity", self.similarity

    @field_validator("recall_at_k", "similarity")
    @classmethod
    def _floor(cls, v: float | str | None) -> float | str | None:
        if v is None:
            return v
        if isinstance(v, str):
            match = _QUALITY_FACTOR.match(v)
            if match is None or not 0 < float(match.group(1)) <= 1:
                raise ValueError(f"expected a share of the baseline like '0.9x baseline' (0 < share <= 1) "
                                 f"or an absolute floor like 0.8, got {v!r}")
        elif not 0 <= v <= 1:
            raise ValueError(f"expected a recall between 0 and 1, got {v!r}")
        return v

    @property
    def bound(self) -> tuple[str, float | None, float | None]:
        """(the metric's key, absolute floor, share of the baseline)."""
        key, floor = self.metric
        if isinstance(floor, str):
            match = _QUALITY_FACTOR.match(floor)
            assert match is not None
            return key, None, float(match.group(1))
        return key, float(floor), None


_QUALITY_FACTOR = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*x\s*baseline\s*$", re.IGNORECASE)


class LoadSpec(Strict):
    host: str
    users: int = Field(default=10, ge=0, le=10_000)
    spawn_rate: float | None = Field(default=None, gt=0)
    pace_hz: float | None = Field(default=None, gt=0, le=1000)
    request: RequestSpec | None = None
    locustfile: SafePath | None = None
    timeout_s: float = Field(default=5.0, gt=0, le=300)
    probe_rate_hz: float = Field(default=20.0, ge=0, le=1000)
    probe: RequestSpec | None = None
    workers: int = Field(default=0, ge=0, le=64)
    master: MasterSpec | None = None
    attribution: AttributionSpec | None = None
    canaries: CanariesSpec | None = None

    @field_validator("host")
    @classmethod
    def _host(cls, v: str) -> str:
        if not re.match(r"^https?://[^/]+$", v.rstrip("/")):
            raise ValueError(f"expected a base URL like http://127.0.0.1:8080, got {v!r}")
        return check_url(v, "http://127.0.0.1:8080").rstrip("/")

    @model_validator(mode="after")
    def _default_request(self) -> LoadSpec:
        if self.request is None and self.locustfile is None:
            self.request = RequestSpec()
        if self.pace_hz is not None and self.locustfile is not None:
            raise ValueError("pace_hz paces drill's own users; the User classes of a locustfile "
                             "set their own wait_time (e.g. Locust's constant_throughput)")
        if self.master is not None and self.workers == 0 and self.master.expect_workers is None:
            raise ValueError("load.master: say how many `drill worker` processes to wait for "
                             "(master.expect_workers), or start local ones with load.workers")
        return self

    @property
    def probe_request(self) -> RequestSpec:
        return self.probe or self.request or RequestSpec()


class Phases(Strict):
    baseline: Duration = 20.0
    fault: Duration = 60.0
    recovery: Duration = 30.0

    @property
    def total_s(self) -> float:
        return self.baseline + self.fault + self.recovery


class LatencyObjective(Strict):
    """``p95_ms: {max: 2x baseline, during: after_failover}``: a p95 bound and the window it is
    judged on (``fault``, the default; ``after_failover``; ``recovery``)."""

    max: float | str
    during: Literal["fault", "after_failover", "recovery"] = "fault"

    @field_validator("max")
    @classmethod
    def _bound(cls, v: Any) -> Any:
        parse_latency_bound(v)
        return v


class Objectives(Strict):
    rto_s: Duration | None = None
    # The time users were affected in all: the incidents' lengths summed (docs/method.md "Incidents").
    max_impact_s: Duration | None = None
    max_error_rate: float | None = Field(default=None, ge=0, le=1)
    p95_ms: float | str | LatencyObjective | None = None
    failover_to: str | None = None
    max_lost_requests: int | None = Field(default=None, ge=0)
    # Streamed requests (the load's JSON asks for "stream": true; docs/method.md "Streaming").
    ttft_p95_ms: float | str | LatencyObjective | None = None
    min_stream_completion: float | None = Field(default=None, ge=0, le=1)
    # Streams checked token by token (docs/method.md "Splices"): judged on the probe's streams of
    # the fault and recovery phases.
    splice_gap_p95_ms: float | None = Field(default=None, gt=0)
    max_tokens_lost: int | None = Field(default=None, ge=0)
    max_tokens_repeated: int | None = Field(default=None, ge=0)
    max_foreign_tokens: int | None = Field(default=None, ge=0)
    # Answers checked against load.request.answer_schema (docs/method.md "Answers checked").
    max_invalid_answer_rate: float | None = Field(default=None, ge=0, le=1)
    # Scheduled faults (docs/method.md "Reaction threshold").
    failover_by: dict[Literal["latency_ms", "jitter_ms", "delay_ms", "share"], float] | None = None
    max_flaps: int | None = Field(default=None, ge=0)
    # Answer quality on the probe's canary queries (load.canaries; docs/quality.md).
    min_quality: MinQuality | None = None
    # What the failover cost (docs/cost.md): upstream calls per client request in a fault's window,
    # and the fault phase's spend per 1,000 client requests (money, or "1.5x baseline").
    max_retry_amplification: float | None = Field(default=None, gt=0)
    max_cost_per_1k_requests: float | str | None = None
    # Kubernetes faults (docs/kubernetes.md "Repair chain"): onset -> every evicted pod replaced
    # and Ready; the fewest ready replicas of any service while a fault is applied.
    max_reschedule_s: Duration | None = None
    min_ready_replicas: int | None = Field(default=None, ge=0)

    @field_validator("max_cost_per_1k_requests")
    @classmethod
    def _cost_bound(cls, v: Any) -> Any:
        if v is not None:
            parse_cost_bound(v)
        return v

    @property
    def cost_bound(self) -> tuple[float | None, float | None]:
        """(absolute money per 1,000 requests, baseline factor); both None without the objective."""
        return (None, None) if self.max_cost_per_1k_requests is None else parse_cost_bound(
            self.max_cost_per_1k_requests)

    # The stack's own breaker on a scheduled fault (a brownout): opened by this magnitude, and at
    # most this many bad answers while the schedule ran (docs/method.md "Reaction threshold").
    breaker_open_by: dict[Literal["latency_ms", "jitter_ms", "delay_ms", "share"], float] | None = None
    max_bad_answers: int | None = Field(default=None, ge=0)

    @field_validator("failover_by", "breaker_open_by")
    @classmethod
    def _magnitudes(cls, v: dict[str, float] | None) -> dict[str, float] | None:
        if v is not None and (not v or any(m < 0 for m in v.values())):
            raise ValueError("expected a magnitude for latency_ms, jitter_ms, delay_ms or share (≥ 0), "
                             "e.g. {latency_ms: 800}")
        return v

    @field_validator("p95_ms", "ttft_p95_ms")
    @classmethod
    def _bound(cls, v: Any) -> Any:
        if v is not None and not isinstance(v, LatencyObjective):
            parse_latency_bound(v)
        return v

    @property
    def p95_bound(self) -> tuple[float | None, float | None]:
        """(absolute ms, baseline factor); both None without a p95 objective."""
        return _latency_bound(self.p95_ms)

    @property
    def p95_during(self) -> str:
        """The window the p95 objective is judged on (the short form means the fault phase)."""
        return self.p95_ms.during if isinstance(self.p95_ms, LatencyObjective) else "fault"

    @property
    def ttft_p95_bound(self) -> tuple[float | None, float | None]:
        """(absolute ms, baseline factor) of the TTFT objective; both None without one."""
        return _latency_bound(self.ttft_p95_ms)

    @property
    def ttft_p95_during(self) -> str:
        """The window the TTFT objective is judged on (the short form means the fault phase)."""
        return self.ttft_p95_ms.during if isinstance(self.ttft_p95_ms, LatencyObjective) else "fault"

    @property
    def streaming_objectives(self) -> list[str]:
        """The objectives set that only streamed requests can measure."""
        return [name for name, value in (("ttft_p95_ms", self.ttft_p95_ms),
                                         ("min_stream_completion", self.min_stream_completion),
                                         ("splice_gap_p95_ms", self.splice_gap_p95_ms),
                                         ("max_tokens_lost", self.max_tokens_lost),
                                         ("max_tokens_repeated", self.max_tokens_repeated),
                                         ("max_foreign_tokens", self.max_foreign_tokens)) if value is not None]


def _latency_bound(value: float | str | LatencyObjective | None) -> tuple[float | None, float | None]:
    if value is None:
        return (None, None)
    if isinstance(value, LatencyObjective):
        return parse_latency_bound(value.max)
    return parse_latency_bound(value)


# --- Prometheus: steady_state, stop_when.queries, metrics (issue 15; docs/metrics.md) -----------
MAX_PROMQL_CHARS = 4096


def check_promql(value: str) -> str:
    """A PromQL expression the parser accepts (the syntax Prometheus itself uses): a typo is bad
    input at validate time, not a query error in the middle of a drill."""
    import promql_parser  # a compiled extension: loaded only by scenarios that use PromQL

    if not value.strip() or len(value) > MAX_PROMQL_CHARS or "\x00" in value:
        raise ValueError(f"expected a PromQL expression of 1 to {MAX_PROMQL_CHARS} characters")
    try:
        promql_parser.parse(value)
    except ValueError as exc:
        raise ValueError(f"not valid PromQL: {exc}") from None
    return value


class PrometheusRef(Strict):
    """An existing Prometheus to query instead of the stack's own."""

    url: str

    @field_validator("url")
    @classmethod
    def _http(cls, v: str) -> str:
        return check_url(v, "http://127.0.0.1:9090").rstrip("/")


class PromCheck(Strict):
    """``{query, max | min, for}``: healthy while every series the query returns stays within
    [min, max]. A steady state must hold for ``for`` (preflight, and the end of recovery); a stop
    condition trips when it is broken for ``for``."""

    query: str
    max: float | None = None
    min: float | None = None
    for_s: Duration = Field(default=0.0, alias="for")

    @field_validator("query")
    @classmethod
    def _promql(cls, v: str) -> str:
        return check_promql(v)

    @model_validator(mode="after")
    def _a_bound(self) -> PromCheck:
        if self.max is None and self.min is None:
            raise ValueError("give a bound: max, min or both")
        if self.max is not None and self.min is not None and self.min > self.max:
            raise ValueError(f"min ({self.min:g}) is above max ({self.max:g})")
        return self

    def bounds_text(self) -> str:
        """``≥ 1 and ≤ 5``"""
        bounds = [f"≥ {self.min:g}" if self.min is not None else "", f"≤ {self.max:g}" if self.max is not None else ""]
        return " and ".join(b for b in bounds if b)

    def describe(self) -> str:
        """The check as a steady state: ``QUERY ≤ 0 for 3 s``."""
        held = f" for {self.for_s:g} s" if self.for_s else ""
        return f"{self.query} {self.bounds_text()}{held}"


class MetricQuery(Strict):
    """A query recorded as time series over the run and drawn under the report's timeline.
    A plain string is the query; ``name`` titles the chart (default: the query)."""

    query: str
    name: str | None = None
    unit: str = ""

    @field_validator("query")
    @classmethod
    def _promql(cls, v: str) -> str:
        return check_promql(v)

    @field_validator("name", "unit")
    @classmethod
    def _printable(cls, v: str | None) -> str | None:
        if v is not None and (len(v) > 100 or control_chars(v)):
            raise ValueError("expected at most 100 characters without control characters")
        return v

    @property
    def title(self) -> str:
        return self.name or self.query


def _metric_from_text(value: Any) -> Any:
    return {"query": value} if isinstance(value, str) else value


MetricEntry = Annotated[MetricQuery, BeforeValidator(_metric_from_text)]
# --- end of the Prometheus block ----------------------------------------------------------------


class StopWhen(Strict):
    """Abort (rollback, exit 3) when the live error rate stays above ``error_rate`` for ``for``,
    or when one of the PromQL ``queries`` leaves its bounds for its own ``for``."""

    error_rate: float | None = Field(default=None, gt=0, le=1)
    for_s: Duration = Field(default=10.0, alias="for")
    queries: list[PromCheck] = Field(default_factory=list)  # issue 15
    # Upstream calls per client request, counted live at the HTTP fault proxy (docs/cost.md).
    retry_amplification: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _some_condition(self) -> StopWhen:
        if self.error_rate is None and not self.queries and self.retry_amplification is None:
            raise ValueError("give error_rate, queries (PromQL conditions), retry_amplification or more")
        return self


class CapacitySpec(Strict):
    """Sample the serving pool during the run (the gateway's pool endpoint) for capacity figures."""

    pool_url: str
    interval: Duration = 0.5
    target: int | None = Field(default=None, ge=1)

    @field_validator("pool_url")
    @classmethod
    def _http(cls, v: str) -> str:
        return check_url(v, "http://127.0.0.1:8080/admin/pool")


class Runbook(Strict):
    """The runbook trigger the report checks the drill against: when would a person following the
    runbook have acted? Defaults to the playbook's "error rate > 10 % or p95 > 2x baseline"."""

    error_rate: float = Field(default=0.10, gt=0, le=1)
    p95: float | str = "2x baseline"
    window: Duration = 10.0

    @field_validator("p95")
    @classmethod
    def _bound(cls, v: Any) -> Any:
        parse_latency_bound(v)
        return v


class Measurement(Strict):
    """How finely to measure (docs/method.md). ``good_latency_ms`` is the latency bound of a good
    request (ms or ``Nx baseline``); without it, max(2x baseline p95, ``good_latency_floor_ms``)."""

    bucket: Duration = Field(default=0.25, ge=0.001)
    window: Duration = 5.0
    good_latency_ms: float | str | None = None
    good_latency_floor_ms: float = Field(default=250.0, ge=0, le=600_000)
    min_bad_requests: int = Field(default=2, ge=1, le=1000)
    confidence: float = Field(default=0.95, ge=0.5, lt=1)

    @field_validator("good_latency_ms")
    @classmethod
    def _good_bound(cls, v: Any) -> Any:
        if v is not None:
            parse_latency_bound(v)
        return v

    @property
    def good_latency_bound(self) -> tuple[float | None, float | None]:
        """(absolute ms, baseline factor); both None for the default rule."""
        return parse_latency_bound(self.good_latency_ms) if self.good_latency_ms is not None else (None, None)

    @model_validator(mode="after")
    def _window_holds_buckets(self) -> Measurement:
        if self.window < self.bucket:
            raise ValueError(f"window ({self.window:g}s) must be at least one bucket ({self.bucket:g}s)")
        return self

    @field_validator("bucket")
    @classmethod
    def _bucket(cls, v: float) -> float:
        if v < MIN_BUCKET_S:
            raise ValueError(f"a bucket lasts at least 1ms (each should hold several requests), got {v:g}s")
        return v

    @model_validator(mode="after")
    def _window(self) -> Measurement:
        if self.window < self.bucket:
            raise ValueError(f"window ({self.window:g}s) must be at least one bucket ({self.bucket:g}s)")
        return self


class Scenario(Strict):
    api_version: Literal["drill/v1"] = Field(alias="apiVersion")
    kind: Literal["Scenario"]
    name: str
    description: str = ""
    stack: StackRef = Field(default_factory=StackRef)
    toxiproxy: ToxiproxyRef | None = None
    http_fault_proxy: HttpFaultProxyRef | None = None
    proxies: list[ProxyDecl] = Field(default_factory=list)
    load: LoadSpec
    phases: Phases = Field(default_factory=Phases)
    faults: list[FaultSpec] = Field(min_length=1)
    objectives: Objectives = Field(default_factory=Objectives)
    stop_when: StopWhen | None = None
    capacity: CapacitySpec | None = None
    measurement: Measurement = Field(default_factory=Measurement)
    runbook: Runbook | None = None
    # issue 15: the stack's own metrics (docs/metrics.md)
    prometheus: PrometheusRef | None = None
    steady_state: list[PromCheck] = Field(default_factory=list)
    metrics: list[MetricEntry] = Field(default_factory=list)
    cost: CostSpec | None = None  # issue 30: prices and the instance record (docs/cost.md)
    # What a test of this drill expects: negative controls say `failed` (they prove the harness
    # can fail). The CLI's exit code still follows the verdict; pytest compares with this.
    # `aborted`: a drill that proves a stop condition stops it (scenarios/stop-when-promql.local.yaml).
    expect: Literal["passed", "failed", "aborted"] = "passed"

    @field_validator("name")
    @classmethod
    def _slug(cls, v: str) -> str:
        if not _SLUG.match(v):
            raise ValueError(
                f"expected a short lowercase name (letters, digits, '.', '_', '-'), got {v!r}"
            )
        return v


def cross_checks(s: Scenario) -> list[tuple[tuple[Any, ...], str]]:
    """Checks across fields; each problem is (location, message)."""
    problems: list[tuple[tuple[Any, ...], str]] = []
    seen: set[str] = set()
    declared = {p.name for p in s.proxies}
    for i, f in enumerate(s.faults):
        loc = ("faults", i)
        if f.name in seen:
            problems.append((loc + ("name",), f"duplicate fault name {f.name!r}: names must be unique"))
        seen.add(f.name)
        t = f.target
        if t.proxy and declared and t.proxy not in declared and s.stack.file is None:
            known = ", ".join(sorted(declared))
            problems.append((loc + ("target", "proxy"), f"unknown proxy {t.proxy!r}; declared proxies: {known}"))
    # When each fault runs: at, after (compound timelines), branches (harness/scenario/timelines.py).
    given_at = ["at" in f.model_fields_set for f in s.faults]
    planned, timeline_problems = plan_timeline(s.faults, s.phases.fault, given_at)
    problems += timeline_problems
    for p in planned:
        f = s.faults[p.index]
        schedule: ScheduleSpec | None = getattr(f, "schedule", None)
        length = schedule.length_s() if schedule is not None else None
        if (schedule is not None and f.duration is None and length is not None
                and length > s.phases.fault - p.start_s + 1e-9):
            problems.append((("faults", p.index, "schedule"), f"the {schedule.shape} lasts {length:g}s, longer than "
                             f"the fault (from {p.start_s:g}s to the end of the {s.phases.fault:g}s fault phase)"))
    if s.phases.total_s / s.measurement.bucket > MAX_BUCKETS:
        problems.append((("measurement", "bucket"), f"{s.phases.total_s:g}s of phases in {s.measurement.bucket:g}s "
                         f"buckets is over {MAX_BUCKETS:,} buckets: use a longer bucket"))
    if s.stack.runtime == "compose" and s.stack.file is None:
        problems.append((("stack", "file"), "the compose runtime needs stack.file (the compose file)"))
    if s.objectives.max_cost_per_1k_requests is not None and (s.cost is None or (
            s.cost.prices is None and not s.cost.tiers and not s.cost.regions)):
        problems.append((("objectives", "max_cost_per_1k_requests"), "needs prices: add cost.tiers (or "
                         "cost.prices: a price file), docs/cost.md"))
    if s.stack.runtime == "kubernetes":
        for key in ("context", "namespace"):
            if not getattr(s.stack, key):
                problems.append((("stack",), f"the kubernetes runtime needs stack.{key} (never the current one)"))
    if not _may_stream(s.load):
        for name in s.objectives.streaming_objectives:
            problems.append((("objectives", name), "measures streamed requests, but neither load.request nor "
                             'load.probe asks for one: add "stream": true to its json body'))
    if s.objectives.min_quality is not None and s.load.canaries is None:
        problems.append((("objectives", "min_quality"), "measures the probe's canary answers, but load.canaries "
                         "is not set: name a canary file (e.g. {file: ../targets/data/embeddings-canaries.json})"))
    if s.load.canaries is not None and not isinstance(s.load.probe_request.json_body, dict):
        problems.append((("load", "canaries"), "the probe's request needs a JSON object body (json: {model: ...}): "
                         "each canary query becomes its input"))
    return problems


def _asks_for_stream(request: RequestSpec | None) -> bool:
    body = None if request is None else request.json_body
    return isinstance(body, dict) and body.get("stream") is True


def _may_stream(load: LoadSpec) -> bool:
    """Whether any request of the load can stream: the request or the probe asks for it in its
    JSON body, or a locustfile (whose requests drill cannot see) sends the load."""
    return load.locustfile is not None or _asks_for_stream(load.request) or _asks_for_stream(load.probe_request)
