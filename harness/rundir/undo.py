"""Undo records: what the journal keeps of each fault (and each proxy the drill made) so that
``drill recover`` can revert it without the scenario or the process that applied it.

A fault's ``describe()`` hands one of these to the engine, the engine journals it inside
``fault.intent`` (:mod:`harness.rundir.events`) *before* the apply, and
:func:`harness.faults.undo_fault` matches on the union (``assert_never``: a new record without a
case there is a mypy error). The stray scan (:mod:`harness.safety.strays`) builds the same
records from what it finds on a stack. On disk each is a JSON object with a ``kind``:

=================  ============================================================================
kind               fields
=================  ============================================================================
``toxic``          ``toxiproxy_url``, ``proxy``, ``toxic``: a Toxiproxy toxic to remove
``proxy_disabled`` ``toxiproxy_url``, ``proxy``, ``toxic`` (null): a proxy to enable again
``proxy_created``  ``toxiproxy_url``, ``proxy``: a proxy the drill made, to delete (``proxy.intent``)
``container``      ``container_ids``, ``container_names``, ``mode``: containers to start/unpause
``process``        ``names``, ``mode``: local stack processes (gone with their supervisor)
``process_paused`` ``pgid``, ``name``: a stopped local process group to continue (strays only)
``gpu_hook``       ``hooks``, ``mode``: GPU fault hooks to DELETE
``quota_hook``     ``hook``, ``body``: a cloud-api region denial to lift
``http_fault``     ``proxy_url``, ``fault_id``: a fault of the HTTP fault proxy to remove
``k8s_node``       ``kubeconfig``, ``context``, ``nodes``, ``mode``, ``cordoned``: nodes to
                   hand back to kwok (not_ready) or uncordon (only those drill cordoned)
``k8s_quota``      ... ``namespace``, ``name``: a ResourceQuota drill made, to delete
``k8s_scale``      ... ``namespace``, ``deployment``, ``replicas_before``: scale back
``k8s_pods_deleted`` ... ``namespace``, ``selector``: nothing to undo (the owner replaces them)
(anything else)    :class:`UnknownUndo`: kept whole, so recovery can say what it cannot revert
=================  ============================================================================
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    JsonValue,
    Tag,
    TypeAdapter,
    model_serializer,
    model_validator,
)


class _UndoRecord(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    def document(self) -> dict[str, JsonValue]:
        """The record as the journal writes it (field order = declaration order)."""
        return self.model_dump(mode="json")


class ToxicUndo(_UndoRecord):
    kind: Literal["toxic"] = "toxic"
    toxiproxy_url: str
    proxy: str
    toxic: str


class ProxyDisabledUndo(_UndoRecord):
    kind: Literal["proxy_disabled"] = "proxy_disabled"
    toxiproxy_url: str
    proxy: str
    toxic: None = None


class ProxyCreatedUndo(_UndoRecord):
    kind: Literal["proxy_created"] = "proxy_created"
    toxiproxy_url: str
    proxy: str


class ContainerUndo(_UndoRecord):
    kind: Literal["container"] = "container"
    container_ids: list[str]
    container_names: list[str] = Field(default_factory=list)
    mode: str | None = None


class ProcessUndo(_UndoRecord):
    kind: Literal["process"] = "process"
    names: list[str]
    mode: str


class ProcessPausedUndo(_UndoRecord):
    kind: Literal["process_paused"] = "process_paused"
    pgid: int
    name: str


class GpuHookUndo(_UndoRecord):
    kind: Literal["gpu_hook"] = "gpu_hook"
    hooks: list[str]
    mode: str


class QuotaHookUndo(_UndoRecord):
    kind: Literal["quota_hook"] = "quota_hook"
    hook: str
    body: dict[str, JsonValue] = Field(default_factory=dict)


class HttpFaultUndo(_UndoRecord):
    kind: Literal["http_fault"] = "http_fault"
    proxy_url: str
    fault_id: str


class _KubeUndo(_UndoRecord):
    """Stable cluster coordinates (never a forwarded port): the kubeconfig (None: the client's
    default search) and the context."""

    kubeconfig: str | None = None
    context: str


class KubeNodeUndo(_KubeUndo):
    kind: Literal["k8s_node"] = "k8s_node"
    nodes: list[str]
    mode: str
    cordoned: list[str] = Field(default_factory=list)  # only those drill cordoned (were schedulable)


class KubeQuotaUndo(_KubeUndo):
    kind: Literal["k8s_quota"] = "k8s_quota"
    namespace: str
    name: str


class KubeScaleUndo(_KubeUndo):
    kind: Literal["k8s_scale"] = "k8s_scale"
    namespace: str
    deployment: str
    replicas_before: int


class KubePodsDeletedUndo(_KubeUndo):
    kind: Literal["k8s_pods_deleted"] = "k8s_pods_deleted"
    namespace: str
    selector: str


KubeUndo = KubeNodeUndo | KubeQuotaUndo | KubeScaleUndo | KubePodsDeletedUndo
"""What a Kubernetes API fault journals (harness/faults/kubernetes.py)."""


class UnknownUndo(_UndoRecord):
    """A record this version cannot revert (an empty ``{}``, an unknown kind): kept whole, and
    written back exactly as it was read."""

    kind: Literal["unknown"] = "unknown"
    record: dict[str, JsonValue] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _whole(cls, data: Any) -> Any:
        return {"record": data} if isinstance(data, dict) and set(data) - {"record"} else data

    @model_serializer
    def _as_recorded(self) -> dict[str, JsonValue]:
        return self.record

    def document(self) -> dict[str, JsonValue]:
        return dict(self.record)


NetworkUndo = ToxicUndo | ProxyDisabledUndo
"""What a network fault journals: a toxic to remove, or a proxy to enable again."""

_KINDS = frozenset({"toxic", "proxy_disabled", "proxy_created", "container", "process", "process_paused",
                    "gpu_hook", "quota_hook", "http_fault", "k8s_node", "k8s_quota", "k8s_scale",
                    "k8s_pods_deleted"})


def _kind(value: Any) -> str:
    kind = value.get("kind") if isinstance(value, dict) else getattr(value, "kind", None)
    return kind if kind in _KINDS else "unknown"


Undo = Annotated[
    Annotated[ToxicUndo, Tag("toxic")]
    | Annotated[ProxyDisabledUndo, Tag("proxy_disabled")]
    | Annotated[ProxyCreatedUndo, Tag("proxy_created")]
    | Annotated[ContainerUndo, Tag("container")]
    | Annotated[ProcessUndo, Tag("process")]
    | Annotated[ProcessPausedUndo, Tag("process_paused")]
    | Annotated[GpuHookUndo, Tag("gpu_hook")]
    | Annotated[QuotaHookUndo, Tag("quota_hook")]
    | Annotated[HttpFaultUndo, Tag("http_fault")]
    | Annotated[KubeNodeUndo, Tag("k8s_node")]
    | Annotated[KubeQuotaUndo, Tag("k8s_quota")]
    | Annotated[KubeScaleUndo, Tag("k8s_scale")]
    | Annotated[KubePodsDeletedUndo, Tag("k8s_pods_deleted")]
    | Annotated[UnknownUndo, Tag("unknown")],
    Discriminator(_kind),
]
"""Every undo record, discriminated on ``kind``; an unknown kind reads as :class:`UnknownUndo`."""

_UNDO = TypeAdapter(Undo)


def parse_undo(record: dict[str, JsonValue]) -> Undo:
    """An undo record as the journal holds it (a JSON object) -> its model; an unknown kind reads
    as :class:`UnknownUndo`. Raises pydantic's ``ValidationError`` for a known kind that is damaged."""
    return _UNDO.validate_python(record, strict=True)
