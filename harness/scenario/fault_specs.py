"""Fault specs: one pydantic model per fault family, joined in :data:`FaultSpec`, a union
discriminated on ``type`` (reference: docs/scenarios.md, section ``faults``).

Every rule about a fault's parameters and target lives here, so ``drill validate`` refuses a bad
parameter before anything runs and names its file:line; the fault families in
``harness/faults/`` receive these typed models and read their attributes. Families share a base
per kind of target::

    FaultSpecBase              name, type, target, at, duration
      ToxiproxyFaultSpec       target.proxy: a Toxiproxy proxy
        ToxicFaultSpec         + direction, toxicity
          LatencySpec, JitterSpec, BandwidthSpec, BlackholeSpec, ResetSpec
        DownSpec
      ServiceFaultSpec         target.service and/or target.labels
        EndpointKillSpec, GpuNodeLossSpec
      HookFaultSpec            target.hook, a URL on loopback
        RegionQuotaDenialSpec
      KubeFaultSpec            through the Kubernetes API (runtime: kubernetes)
        KubePodKillSpec, KubeNodeLossSpec, KubeQuotaDenialSpec, KubeScaleDownSpec

Adding a family is one model here (a subclass of a base above, or of a new base for a new kind of
target, with ``type: Literal["..."]``), listed in :data:`FaultSpec`, plus its builder in
``harness.faults.build_fault``, whose ``match`` mypy checks for exhaustiveness: a model without
a builder is a type error.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, ClassVar, Literal, get_args
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    TypeAdapter,
    ValidationInfo,
    field_validator,
    model_validator,
)

from harness.scenario.common import Strict, check_url, control_chars
from harness.scenario.fault_schedules import ScheduleSpec
from harness.scenario.timelines import AfterSpec
from harness.scenario.units import MAX_DURATION_S, Duration

__all__ = [
    "FAULT_SPEC_CLASSES",
    "FAULT_TYPES",
    "HTTP_TYPES",
    "NETWORK_TYPES",
    "BandwidthSpec",
    "BlackholeSpec",
    "Direction",
    "DownSpec",
    "EndpointKillMode",
    "EndpointKillSpec",
    "FaultSpec",
    "FaultSpecBase",
    "FirstTokenDelaySpec",
    "GpuNodeLossMode",
    "GpuNodeLossSpec",
    "HookFaultSpec",
    "HttpErrorSpec",
    "HttpFaultSpec",
    "HttpProviderFaultSpec",
    "JitterSpec",
    "KubeApiFaultSpec",
    "KubeFaultSpec",
    "KubeNodeLossMode",
    "KubeNodeLossSpec",
    "KubePodKillSpec",
    "KubeQuotaDenialSpec",
    "KubeScaleDownSpec",
    "LatencySpec",
    "MalformedSpec",
    "NetworkFaultSpec",
    "ParamValue",
    "RegionQuotaDenialMode",
    "RegionQuotaDenialSpec",
    "ResetSpec",
    "SCHEDULED_TYPES",
    "ScheduleSpec",
    "ServiceFaultSpec",
    "StreamCutSpec",
    "StreamStallSpec",
    "TargetSpec",
    "ToxicFaultSpec",
    "ToxiproxyFaultSpec",
    "parse_fault_spec",
]

MAX_DELAY_MS = int(MAX_DURATION_S * 1000)
"""A delay or timeout longer than the longest drill (a week) is a typo; Toxiproxy would also
overflow its nanosecond durations long before the 18 digits the YAML loader lets through."""
LOOPBACK_HOSTS = ("127.0.0.1", "localhost")

ParamValue = int | float | str | None
"""What a fault parameter holds: every parameter is a scalar."""

Direction = Literal["downstream", "upstream"]
EndpointKillMode = Literal["kill", "stop", "pause"]
GpuNodeLossMode = Literal["kill", "xid", "hang"]
RegionQuotaDenialMode = Literal["quota_exceeded", "insufficient_capacity"]
"""A family's modes; the first is the default."""


def _shown(value: object) -> str:
    """A value as a person reads it in an error (no Python reprs of containers)."""
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:37] + "...")
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"  # as YAML spells it
    return str(value)


def _whole_number(value: object) -> object:
    """A YAML integer (or a float without a fraction, ``300.0``); text and booleans are refused,
    so ``latency_ms: 500ms`` or ``latency_ms: true`` cannot slip through as a number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"expected a whole number like 300, got {_shown(value)}")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError(f"expected a whole number like 300, got {value:g}")
        return int(value)
    return value


def _real_number(value: object) -> object:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"expected a number like 0.5, got {_shown(value)}")
    return value


def _printable(value: str) -> str:
    if not 1 <= len(value) <= 100 or control_chars(value):
        raise ValueError("expected text of 1 to 100 characters without control characters")
    return value


WholeNumber = Annotated[int, BeforeValidator(_whole_number)]
Number = Annotated[float, BeforeValidator(_real_number)]
Label = Annotated[str, AfterValidator(_printable)]


class TargetSpec(Strict):
    """What a fault acts on: a Toxiproxy ``proxy``, a ``service`` (+ ``labels``), a ``hook`` URL,
    or a provider ``route`` of the HTTP fault proxy. Which of them a fault needs is its family's
    rule (the ``target`` validator of its base)."""

    proxy: str | None = None
    route: str | None = None
    service: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    hook: str | None = None

    @field_validator("hook")
    @classmethod
    def _hook_url(cls, v: str | None) -> str | None:
        return check_url(v, "http://127.0.0.1:8092/fault") if v is not None else v

    def describe(self) -> str:
        if self.proxy:
            return f"proxy {self.proxy}"
        if self.hook:
            return f"hook {self.hook}"
        if self.route:
            return f"route {self.route}"
        sel = ",".join(f"{k}={v}" for k, v in self.labels.items())
        return f"service {self.service or '*'}" + (f" [{sel}]" if sel else "")

    def given(self, *keys: Literal["proxy", "service", "labels", "hook", "route"]) -> list[str]:
        """Those of ``keys`` this target sets."""
        values = {"proxy": self.proxy, "service": self.service, "labels": self.labels, "hook": self.hook,
                  "route": self.route}
        return [key for key in keys if values[key]]


class FaultSpecBase(Strict):
    """What every fault has. ``at`` is the offset into the fault phase; ``duration`` defaults to
    the rest of the phase (the scenario's cross-checks hold both to the phase)."""

    name: Label
    type: str  # each family narrows it to its own Literal tag
    target: TargetSpec
    at: Duration = 0.0
    duration: Duration | None = None
    manual: bool = False
    """Applied when the facilitator injects it from the game-day console (docs/gameday.md), or at
    ``at`` when the scenario gives one and nobody injected it by then; never otherwise."""
    after: AfterSpec | None = None  # compound timelines (harness/scenario/timelines.py)
    branch: Label | None = None

    COMMON_KEYS: ClassVar[tuple[str, ...]] = ("name", "type", "target", "at", "duration", "manual", "after", "branch")
    MAGNITUDE: ClassVar[str | None] = None
    """The parameter a ``schedule`` moves (docs/scenarios.md "Schedules"); None: no schedule."""
    MAGNITUDE_MAX: ClassVar[float] = float(MAX_DELAY_MS)

    @model_validator(mode="before")
    @classmethod
    def _magnitude_from_schedule(cls, data: object) -> object:
        """With a schedule, the magnitude parameter is the schedule's peak (what ``params``
        journals); a ramp or steps set it, so giving it as well is an error."""
        if not isinstance(data, dict) or data.get("schedule") is None:
            return data
        if cls.MAGNITUDE is None:
            raise ValueError(f"{cls.fault_type()} faults have no magnitude to schedule: remove schedule "
                             "(schedules move latency_ms, jitter_ms, delay_ms or share)")
        try:
            schedule = ScheduleSpec.model_validate(data["schedule"])
        except ValueError:
            return data  # the schedule field's own validation names the problem
        own = data.get(cls.MAGNITUDE)
        if schedule.flap is None:
            if own is not None:
                raise ValueError(f"the schedule sets {cls.MAGNITUDE}: remove {cls.MAGNITUDE} (or use a flap)")
        elif schedule.flap.value is None and own is None:
            if cls.model_fields[cls.MAGNITUDE].is_required():
                raise ValueError(f"flap: give flap.value or the fault's {cls.MAGNITUDE}")
            return data  # the family's default magnitude (share: 1) is the flap's on value
        if own is None:
            peak = schedule.peak(None)
            if peak > cls.MAGNITUDE_MAX:
                raise ValueError(f"schedule: {cls.MAGNITUDE} reaches {peak:g}, over its most ({cls.MAGNITUDE_MAX:g})")
            data = {**data, cls.MAGNITUDE: peak if cls.MAGNITUDE == "share" else math.ceil(peak)}
        return data

    @model_validator(mode="after")
    def _one_start_trigger(self) -> FaultSpecBase:
        if self.manual and self.after is not None:
            raise ValueError("a manual fault waits for the facilitator's inject and cannot also start "
                             "`after` another fault: remove manual or after")
        return self

    @model_validator(mode="after")
    def _schedule_fits(self) -> FaultSpecBase:
        schedule: ScheduleSpec | None = getattr(self, "schedule", None)
        if schedule is None:
            return self
        if self.manual:
            raise ValueError("a manual fault cannot follow a schedule (its steps are planned before anyone "
                             "injects it): remove schedule or manual")
        own = getattr(self, self.MAGNITUDE or "", None)
        peak = schedule.peak(float(own) if isinstance(own, (int, float)) else None)
        if peak > self.MAGNITUDE_MAX:
            raise ValueError(f"schedule: {self.MAGNITUDE} reaches {peak:g}, over its most ({self.MAGNITUDE_MAX:g})")
        length = schedule.length_s()
        if self.duration is not None and length is not None and length > self.duration + 1e-9:
            raise ValueError(f"schedule: the {schedule.shape} lasts {length:g}s, longer than the fault "
                             f"(duration {self.duration:g}s)")
        return self

    def planned_at(self) -> float | None:
        """The offset into the fault phase at which the fault is applied without anyone's
        inject: ``at`` for a scheduled fault; for a ``manual`` one only an ``at`` the scenario
        gave (its fallback), else None (it waits for the facilitator)."""
        if self.manual and "at" not in self.model_fields_set:
            return None
        return self.at

    @classmethod
    def fault_type(cls) -> str:
        """This family's ``type`` tag (``latency``, ``endpoint_kill``, ...)."""
        tags = get_args(cls.model_fields["type"].annotation)
        return str(tags[0]) if len(tags) == 1 else cls.__name__

    @classmethod
    def parameter_names(cls) -> tuple[str, ...]:
        """The family's parameters: its own first, then those of its base (direction, toxicity)."""
        names = [name for name in cls.model_fields if name not in cls.COMMON_KEYS and name != "schedule"]
        own = [name for name in names if name in vars(cls).get("__annotations__", {})]
        return tuple(own + [name for name in names if name not in own])

    def parameters(self) -> dict[str, ParamValue]:
        """Every parameter, defaults filled in: what the fault will do (journaled as ``params``)."""
        return {name: getattr(self, name) for name in self.parameter_names()}

    def params(self) -> dict[str, ParamValue]:
        """The parameters the scenario gave, plus ``mode`` where the family has one (it says how
        the fault acts): the short form the dry-run plan prints."""
        shown = self.model_fields_set | {"mode"}
        return {name: getattr(self, name) for name in self.parameter_names() if name in shown}


# --- faults on a Toxiproxy proxy ------------------------------------------------------------


class ToxiproxyFaultSpec(FaultSpecBase):
    """A fault on one Toxiproxy proxy: ``target: {proxy: NAME}`` and nothing else."""

    @field_validator("target")
    @classmethod
    def _proxy_target(cls, target: TargetSpec) -> TargetSpec:
        if not target.proxy:
            raise ValueError(f"{cls.fault_type()} faults act on a Toxiproxy proxy: set target.proxy")
        extra = target.given("service", "labels", "hook", "route")
        if extra:
            raise ValueError(f"{cls.fault_type()} faults act on a Toxiproxy proxy only: remove target.{extra[0]}")
        return target

    @property
    def proxy(self) -> str:
        """The proxy's name (the target validator makes sure there is one)."""
        return self.target.proxy or ""


class ToxicFaultSpec(ToxiproxyFaultSpec):
    """A Toxiproxy toxic: it acts on one ``direction`` of the data, on a share (``toxicity``) of
    the connections."""

    direction: Direction = "downstream"
    toxicity: Number = Field(default=1.0, ge=0, le=1)


class LatencySpec(ToxicFaultSpec):
    """Toxiproxy ``latency`` toxic: every chunk of data waits ``latency_ms`` (± ``jitter_ms``)."""

    type: Literal["latency"]
    schedule: ScheduleSpec | None = None
    MAGNITUDE: ClassVar[str | None] = "latency_ms"
    latency_ms: WholeNumber = Field(gt=0, le=MAX_DELAY_MS)
    jitter_ms: WholeNumber = Field(default=0, ge=0, le=MAX_DELAY_MS)


class JitterSpec(ToxicFaultSpec):
    """Toxiproxy ``latency`` toxic led by its spread: ± ``jitter_ms`` around ``latency_ms``."""

    type: Literal["jitter"]
    schedule: ScheduleSpec | None = None
    MAGNITUDE: ClassVar[str | None] = "jitter_ms"
    jitter_ms: WholeNumber = Field(gt=0, le=MAX_DELAY_MS)
    latency_ms: WholeNumber = Field(default=0, ge=0, le=MAX_DELAY_MS)


class BandwidthSpec(ToxicFaultSpec):
    """Toxiproxy ``bandwidth`` toxic: at most ``rate_kbps`` KB/s."""

    type: Literal["bandwidth"]
    rate_kbps: WholeNumber = Field(gt=0)


class BlackholeSpec(ToxicFaultSpec):
    """Toxiproxy ``timeout`` toxic: data stops; the connection closes after ``timeout_ms`` (0: never)."""

    type: Literal["blackhole"]
    timeout_ms: WholeNumber = Field(default=0, ge=0, le=MAX_DELAY_MS)


class ResetSpec(ToxicFaultSpec):
    """Toxiproxy ``reset_peer`` toxic: connections reset after ``timeout_ms`` (0: on the first data)."""

    type: Literal["reset"]
    timeout_ms: WholeNumber = Field(default=0, ge=0, le=MAX_DELAY_MS)


class DownSpec(ToxiproxyFaultSpec):
    """The proxy is disabled: connections are refused. No parameters."""

    type: Literal["down"]


# --- faults on services (containers or processes) -------------------------------------------


class ServiceFaultSpec(FaultSpecBase):
    """A fault on the containers / processes a selector picks: ``target.service`` and/or
    ``target.labels``."""

    @field_validator("target")
    @classmethod
    def _service_target(cls, target: TargetSpec) -> TargetSpec:
        if not (target.service or target.labels):
            raise ValueError(f"{cls.fault_type()} faults need target.service and/or target.labels")
        extra = target.given("proxy", "hook", "route")
        if extra:
            raise ValueError(
                f"{cls.fault_type()} faults act on services, not a {extra[0]}: remove target.{extra[0]} "
                "(select with target.service and/or target.labels)"
            )
        return target


class EndpointKillSpec(ServiceFaultSpec):
    """Kill, stop or pause the selected containers / processes; restarted at revert."""

    type: Literal["endpoint_kill"]
    mode: EndpointKillMode = "kill"
    max_targets: WholeNumber = Field(default=1, ge=1)


class GpuNodeLossSpec(ServiceFaultSpec):
    """GPU nodes die (``kill``), fall off the bus (``xid``) or hang (``hang``). ``count`` or
    ``percent`` cuts the matched nodes; ``max_targets`` defaults to the number selected with
    either, else 1 (harness/faults/gpu.py)."""

    type: Literal["gpu_node_loss"]
    mode: GpuNodeLossMode = "kill"
    count: WholeNumber | None = Field(default=None, ge=1)
    percent: Number | None = Field(default=None, gt=0, le=100)
    max_targets: WholeNumber | None = Field(default=None, ge=1)

    @field_validator("percent")
    @classmethod
    def _count_or_percent(cls, percent: float | None, info: ValidationInfo) -> float | None:
        if percent is not None and info.data.get("count") is not None:
            raise ValueError("give count or percent, not both")
        return percent


# --- faults through a fault hook ------------------------------------------------------------


class HookFaultSpec(FaultSpecBase):
    """A fault asked of the stack's own fault hook (docs/hooks.md): ``target.hook``, an http://
    URL on loopback, since drills never call other addresses."""

    @field_validator("target")
    @classmethod
    def _hook_target(cls, target: TargetSpec) -> TargetSpec:
        if not target.hook:
            raise ValueError(
                f"{cls.fault_type()} faults need target.hook, the control plane's fault hook, "
                "e.g. http://127.0.0.1:18090/fault"
            )
        if urlsplit(target.hook).hostname not in LOOPBACK_HOSTS:
            raise ValueError(
                f"target.hook must be an http://127.0.0.1:PORT/... URL, got {target.hook!r}: drills only "
                "reach the stack on loopback (publish or port-forward the hook there)"
            )
        extra = target.given("proxy", "service", "labels", "route")
        if extra:
            raise ValueError(f"{cls.fault_type()} faults act through target.hook only: remove target.{extra[0]}")
        return target

    @property
    def hook(self) -> str:
        """The hook URL (the target validator makes sure there is one, on loopback)."""
        return self.target.hook or ""


class RegionQuotaDenialSpec(HookFaultSpec):
    """The control plane refuses new GPU instances in ``region`` (of ``instance_type``, or all)."""

    type: Literal["region_quota_denial"]
    region: Label
    mode: RegionQuotaDenialMode = "quota_exceeded"
    instance_type: Label | None = None


# --- faults through the Kubernetes API (harness/faults/kubernetes.py, docs/kubernetes.md) ------

KubeNodeLossMode = Literal["not_ready", "drain", "cordon"]
KubeName = Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")]


class KubeFaultSpec(FaultSpecBase):
    """A fault the ``kubernetes`` runtime applies through the API. ``target.labels`` select pods
    (``k8s_pod_kill``), nodes (``k8s_node_loss``); ``target.service`` names a service of the
    stack (its pods, its Deployment)."""

    @field_validator("target")
    @classmethod
    def _kube_target(cls, target: TargetSpec) -> TargetSpec:
        extra = target.given("proxy", "hook", "route")
        if extra:
            raise ValueError(f"{cls.fault_type()} faults act through the Kubernetes API: remove target.{extra[0]}")
        return target


class KubePodKillSpec(KubeFaultSpec):
    """Delete the selected pods (``grace_period_s`` 0: a crash); their owner replaces them.
    ``namespace``: the pods' (default the stack's); ``on_nodes``: only pods on nodes matching
    this label selector (``topology.kubernetes.io/region=region-a``: a region-a pod dies)."""

    type: Literal["k8s_pod_kill"]
    max_targets: WholeNumber = Field(default=1, ge=1)
    grace_period_s: WholeNumber = Field(default=0, ge=0, le=300)
    namespace: KubeName | None = None
    on_nodes: str | None = None

    @field_validator("on_nodes")
    @classmethod
    def _node_selector(cls, value: str | None) -> str | None:
        pair = re.compile(r"^[A-Za-z0-9._/-]+=[A-Za-z0-9._-]*$")
        if value is not None and not all(pair.match(part) for part in value.split(",")):
            raise ValueError(f"on_nodes takes node labels as key=value[,key=value] "
                             f"(e.g. topology.kubernetes.io/region=region-a), got {value!r}")
        return value

    @field_validator("target")
    @classmethod
    def _pods(cls, target: TargetSpec) -> TargetSpec:
        if not (target.service or target.labels):
            raise ValueError("k8s_pod_kill faults need target.service and/or target.labels (the pods)")
        return target


class KubeNodeLossSpec(KubeFaultSpec):
    """GPU nodes selected by ``target.labels`` (node labels) are lost: ``not_ready`` (the node
    stops reporting and says Ready=False; kwok nodes), ``drain`` (cordon, then evict its pods
    through the Eviction API, which respects PodDisruptionBudgets) or ``cordon`` (the cordon
    alone: the nodes refuse new pods, the running ones stay; a region out of capacity)."""

    type: Literal["k8s_node_loss"]
    mode: KubeNodeLossMode = "not_ready"
    count: WholeNumber = Field(default=1, ge=1)

    @field_validator("target")
    @classmethod
    def _nodes(cls, target: TargetSpec) -> TargetSpec:
        if not target.labels or target.service:
            raise ValueError("k8s_node_loss faults select nodes by target.labels (node labels) only")
        return target


class KubeQuotaDenialSpec(KubeFaultSpec):
    """A ResourceQuota in ``namespace`` (the region's) holding ``resource`` to ``limit``: the
    API refuses every new pod that would go over it."""

    type: Literal["k8s_quota_denial"]
    target: TargetSpec = Field(default_factory=TargetSpec)
    namespace: KubeName
    resource: Annotated[str, Field(pattern=r"^[a-z0-9.-]+(/[a-z0-9._-]+)?$")] = "nvidia.com/gpu"
    limit: WholeNumber = Field(default=0, ge=0)


class KubeScaleDownSpec(KubeFaultSpec):
    """Scale the Deployment of ``target.service`` down to ``replicas``; scaled back at revert."""

    type: Literal["k8s_scale_down"]
    replicas: WholeNumber = Field(default=0, ge=0)

    @field_validator("target")
    @classmethod
    def _service(cls, target: TargetSpec) -> TargetSpec:
        if not target.service or target.labels:
            raise ValueError("k8s_scale_down faults name target.service (its Deployment) only")
        return target


KubeApiFaultSpec = KubePodKillSpec | KubeNodeLossSpec | KubeQuotaDenialSpec | KubeScaleDownSpec
"""The faults harness/faults/kubernetes.py drives through the Kubernetes API."""


# --- provider faults at the HTTP and streaming layer (the HTTP fault proxy) -----------------

HttpErrorStatus = Literal[429, 500, 502, 503, 529]


class HttpFaultSpec(FaultSpecBase):
    """A fault on one provider route of the HTTP fault proxy (mitmproxy; docs/http-faults.md):
    ``target: {route: NAME}`` and nothing else."""

    @field_validator("target")
    @classmethod
    def _route_target(cls, target: TargetSpec) -> TargetSpec:
        if not target.route:
            raise ValueError(
                f"{cls.fault_type()} faults act on a provider route of the HTTP fault proxy: set target.route"
            )
        extra = target.given("proxy", "service", "labels", "hook")
        if extra:
            raise ValueError(f"{cls.fault_type()} faults act on a provider route only: remove target.{extra[0]}")
        return target

    @property
    def route(self) -> str:
        """The route's name (the target validator makes sure there is one)."""
        return self.target.route or ""


class HttpErrorSpec(HttpFaultSpec):
    """The proxy answers ``status`` itself (the provider is not called) for a ``share`` of requests,
    with ``Retry-After: retry_after_s`` when given and a provider-style JSON error body."""

    type: Literal["http_error"]
    schedule: ScheduleSpec | None = None
    MAGNITUDE: ClassVar[str | None] = "share"
    MAGNITUDE_MAX: ClassVar[float] = 1.0
    status: HttpErrorStatus = 503
    share: Number = Field(default=1.0, gt=0, le=1)
    retry_after_s: WholeNumber | None = Field(default=None, ge=0, le=MAX_DURATION_S)
    body: str | None = None


class FirstTokenDelaySpec(HttpFaultSpec):
    """The first token (the response headers and first event) is held for ``delay_ms``."""

    type: Literal["first_token_delay"]
    schedule: ScheduleSpec | None = None
    MAGNITUDE: ClassVar[str | None] = "delay_ms"
    delay_ms: WholeNumber = Field(gt=0, le=MAX_DELAY_MS)


class StreamCutSpec(HttpFaultSpec):
    """A streamed answer ends after ``after_events`` events or ``after_ms`` (give one), without its
    ``[DONE]``."""

    type: Literal["stream_cut"]
    after_events: WholeNumber | None = Field(default=None, ge=0)
    after_ms: WholeNumber | None = Field(default=None, ge=0, le=MAX_DELAY_MS)

    @model_validator(mode="after")
    def _one_limit(self) -> StreamCutSpec:
        if (self.after_events is None) == (self.after_ms is None):
            raise ValueError("stream_cut: give after_events or after_ms (one of them)")
        return self


class StreamStallSpec(HttpFaultSpec):
    """After ``after_events`` events nothing arrives for ``stall_ms``; the held events follow."""

    type: Literal["stream_stall"]
    after_events: WholeNumber = Field(ge=0)
    stall_ms: WholeNumber = Field(gt=0, le=MAX_DELAY_MS)


class MalformedSpec(HttpFaultSpec):
    """A ``share`` of answers arrive cut in half, ending in bytes that are not JSON."""

    type: Literal["malformed"]
    schedule: ScheduleSpec | None = None
    MAGNITUDE: ClassVar[str | None] = "share"
    MAGNITUDE_MAX: ClassVar[float] = 1.0
    share: Number = Field(default=1.0, gt=0, le=1)


# --- the union --------------------------------------------------------------------------------

NetworkFaultSpec = LatencySpec | JitterSpec | BandwidthSpec | BlackholeSpec | ResetSpec | DownSpec
"""The faults harness/faults/network.py drives through Toxiproxy."""

HttpProviderFaultSpec = HttpErrorSpec | FirstTokenDelaySpec | StreamCutSpec | StreamStallSpec | MalformedSpec
"""The faults harness/faults/http.py drives through the HTTP fault proxy."""

FaultSpec = Annotated[
    LatencySpec
    | JitterSpec
    | BandwidthSpec
    | BlackholeSpec
    | ResetSpec
    | DownSpec
    | EndpointKillSpec
    | GpuNodeLossSpec
    | RegionQuotaDenialSpec
    | HttpErrorSpec
    | FirstTokenDelaySpec
    | StreamCutSpec
    | StreamStallSpec
    | MalformedSpec
    | KubePodKillSpec
    | KubeNodeLossSpec
    | KubeQuotaDenialSpec
    | KubeScaleDownSpec,
    Field(discriminator="type"),
]
"""One fault of a scenario: the family model its ``type`` names."""

FAULT_SPEC_CLASSES: tuple[type[FaultSpecBase], ...] = get_args(get_args(FaultSpec)[0])
FAULT_TYPES: tuple[str, ...] = tuple(cls.fault_type() for cls in FAULT_SPEC_CLASSES)
NETWORK_TYPES: tuple[str, ...] = tuple(
    cls.fault_type() for cls in FAULT_SPEC_CLASSES if issubclass(cls, ToxiproxyFaultSpec)
)
HTTP_TYPES: tuple[str, ...] = tuple(cls.fault_type() for cls in FAULT_SPEC_CLASSES if issubclass(cls, HttpFaultSpec))

SCHEDULED_TYPES: tuple[str, ...] = tuple(cls.fault_type() for cls in FAULT_SPEC_CLASSES if cls.MAGNITUDE)
"""The fault types that take a ``schedule``."""

_ADAPTER: TypeAdapter[FaultSpec] = TypeAdapter(FaultSpec)


def parse_fault_spec(data: object) -> FaultSpec:
    """One fault spec from a mapping (as in a scenario's ``faults`` list); raises pydantic's
    ValidationError. Scenario files go through ``load_scenario``, whose errors name file:line."""
    return _ADAPTER.validate_python(data)
