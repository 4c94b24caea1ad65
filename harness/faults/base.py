"""The Fault protocol every fault family implements, and what apply() reports.

A fault is built from its scenario spec against a :class:`FaultContext`, then driven by the
engine: ``describe()`` (journaled as the intent, with an ``undo`` record), ``apply()``,
``revert()``, then ``verify()``. ``revert()`` must be idempotent: it is called on every exit path,
possibly after a failed or partial apply, and by ``drill recover`` through ``undo`` records.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, TypedDict, runtime_checkable

from pydantic import JsonValue

from harness.httpfaults.client import HttpFaultClient
from harness.rundir.journal import Journal
from harness.rundir.undo import Undo
from harness.runtime.base import Runtime
from harness.toxiproxy import ToxiproxyClient


@dataclass(frozen=True)
class Onset:
    """When a fault took effect: epoch seconds, where that time came from, and how sure it is.

    ``source`` examples: ``toxiproxy-api`` (the API call's response bracket),
    ``docker-state:finished-at`` (a container's exit), ``hook-response``. ``uncertainty_s`` is the
    half-width of the interval the true onset is in.
    """

    at: float
    source: str
    uncertainty_s: float


class FaultDescription(TypedDict):
    """What the engine journals before applying a fault (``fault.intent``)."""

    targets: list[str]  # what it acts on, e.g. ``toxiproxy:hosted``, ``container:gpu-a1``
    params: dict[str, JsonValue]  # its parameters, defaults filled in
    undo: Undo  # enough for ``drill recover`` to revert it without this process (harness/rundir/undo.py)


@runtime_checkable
class Fault(Protocol):
    name: str
    type: str

    def describe(self) -> FaultDescription:
        """``targets`` (list of str), ``params`` (JSON values) and ``undo`` (a typed undo record,
        :mod:`harness.rundir.undo`: enough to revert it later, journaled inside ``FaultIntent``)."""

    def apply(self) -> Onset:
        """Inject the fault; return its onset. Raise FaultError when it cannot be applied."""

    def revert(self) -> float:
        """Remove the fault (idempotent); return the epoch time it was reverted."""

    def verify(self) -> list[str]:
        """After revert, look at the real state: each string is something of this fault that is
        still there (empty when cleanly reverted, or never applied). Network faults read the
        proxy back from Toxiproxy, endpoint kills ask the runtime whether their targets run again,
        hook faults ask the hook. It feeds results.json ``cleanup``."""


@runtime_checkable
class ScheduledMagnitude(Protocol):
    """A fault whose magnitude a schedule moves (docs/scenarios.md "Schedules"): the network
    faults with a latency and the HTTP provider faults with a delay or a share."""

    magnitude_param: str

    def set_magnitude(self, value: float) -> Onset | None:
        """Before :meth:`Fault.apply`: the magnitude apply will use (returns None). Once applied:
        update the toxic / HTTP fault in place, keeping its name (so its undo record still
        reverts it), and return that call's bracket as the step's onset."""


@dataclass
class FaultContext:
    """What faults may act through. Fields are None when the stack has no such thing."""

    journal: Journal | None = None
    toxiproxy: ToxiproxyClient | None = None
    runtime: Runtime | None = None
    http_faults: HttpFaultClient | None = None  # the HTTP fault proxy's control API (provider faults)
    extra: dict[str, str] = field(default_factory=dict)
