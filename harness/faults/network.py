"""The network fault family: faults applied to a Toxiproxy proxy.

    fault type   what Toxiproxy does
    latency      toxic ``latency`` (``latency_ms`` ± ``jitter_ms``)
    jitter       toxic ``latency`` (led by ``jitter_ms``)
    bandwidth    toxic ``bandwidth`` (``rate_kbps``, KB/s)
    blackhole    toxic ``timeout`` (``timeout_ms``; 0 = hold data forever)
    reset        toxic ``reset_peer`` (``timeout_ms``; 0 = reset on the first data)
    down         proxy disabled

Each fault arrives as its typed spec model (harness/scenario/fault_specs.py), which holds every
parameter rule and default; toxic faults also carry ``direction`` and ``toxicity``.

A ``blackhole`` drops the data but not a close: when the upstream closes the connection after
answering, the client still sees the close. Use ``direction: upstream`` to hold the requests
themselves, so the upstream never answers.

Our toxics are named ``drill-<fault name>`` so a leftover can always be recognised and removed
(:func:`stray_toxics`). :func:`undo_network` reverts a fault from the ``undo`` record of
``describe()`` alone, so ``drill recover`` needs no scenario.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import assert_never

from harness.errors import FaultError
from harness.faults.base import FaultDescription, Onset
from harness.rundir.undo import NetworkUndo, ProxyDisabledUndo, ToxicUndo
from harness.scenario.fault_specs import (
    NETWORK_TYPES,
    BandwidthSpec,
    BlackholeSpec,
    DownSpec,
    JitterSpec,
    LatencySpec,
    NetworkFaultSpec,
    ParamValue,
    ResetSpec,
)
from harness.toxiproxy import Proxy, Toxic, ToxiproxyClient, ToxiproxyError

__all__ = [
    "NETWORK_FAULT_TYPES",
    "TOXIC_PREFIX",
    "NetworkFault",
    "network_fault",
    "undo_network",
    "stray_toxics",
    "disabled_proxies",
]

TOXIC_PREFIX = "drill-"
ONSET_SOURCE = "toxiproxy-api"
NETWORK_FAULT_TYPES: frozenset[str] = frozenset(NETWORK_TYPES)
_MAGNITUDE_ATTRIBUTES = {"latency_ms": "latency", "jitter_ms": "jitter"}
"""A scheduled parameter -> the toxic attribute it sets."""


@dataclass(frozen=True)
class _ToxicPlan:
    """What apply() sends for a toxic fault."""

    toxic_type: str
    attributes: dict[str, int]
    stream: str
    toxicity: float


def toxic_name(fault_name: str) -> str:
    """The deterministic toxic name of a fault: ``drill-<fault name>``."""
    return TOXIC_PREFIX + fault_name


def _toxic_plan(spec: NetworkFaultSpec) -> _ToxicPlan | None:
    """The toxic a spec becomes (types and attribute names from the Toxiproxy README's toxic
    table); None for ``down``, which disables the proxy instead."""
    match spec:
        case LatencySpec() | JitterSpec():
            toxic_type, attributes = "latency", {"latency": spec.latency_ms, "jitter": spec.jitter_ms}
        case BandwidthSpec():
            toxic_type, attributes = "bandwidth", {"rate": spec.rate_kbps}
        case BlackholeSpec():
            toxic_type, attributes = "timeout", {"timeout": spec.timeout_ms}
        case ResetSpec():
            toxic_type, attributes = "reset_peer", {"timeout": spec.timeout_ms}
        case DownSpec():
            return None
        case _:
            assert_never(spec)
    return _ToxicPlan(toxic_type, attributes, spec.direction, spec.toxicity)


class NetworkFault:
    """One network fault on one Toxiproxy proxy. Build it with :func:`network_fault`."""

    def __init__(self, spec: NetworkFaultSpec, client: ToxiproxyClient) -> None:
        self.spec = spec
        self.name: str = spec.name
        self.type: str = spec.type
        self.proxy = spec.proxy
        self.params: dict[str, ParamValue] = spec.parameters()
        self.client = client
        self._plan = _toxic_plan(spec)
        self.magnitude_param: str = spec.MAGNITUDE or ""
        self._applied = False

    @property
    def toxic(self) -> str | None:
        """The toxic name this fault adds, or None for ``down``."""
        return toxic_name(self.name) if self._plan is not None else None

    def undo(self) -> NetworkUndo:
        """What ``drill recover`` needs to revert this fault without this process."""
        if self.toxic is not None:
            return ToxicUndo(toxiproxy_url=self.client.url, proxy=self.proxy, toxic=self.toxic)
        return ProxyDisabledUndo(toxiproxy_url=self.client.url, proxy=self.proxy)

    def describe(self) -> FaultDescription:
        """``targets``, ``params`` (defaults filled in) and the ``undo`` record for recovery."""
        return {
            "targets": [f"toxiproxy:{self.proxy}"],
            "params": dict(self.params),
            "undo": self.undo(),
        }

    def apply(self) -> Onset:
        """Add the toxic (or disable the proxy). The onset is the API call's response bracket.

        Raises FaultError when the proxy does not exist (the message lists those that do), when
        a toxic of ours with the same name is already there (a leftover of an earlier run), when
        a ``down`` target is already disabled, or when Toxiproxy refuses or cannot be reached.
        """
        existing = self.client.proxies()
        target = existing.get(self.proxy)
        where = f"toxiproxy at {self.client.url}: fault {self.name!r}"
        if target is None:
            names = ", ".join(existing) or "none"
            raise FaultError(
                f"{where}: proxy {self.proxy!r} does not exist (existing proxies: {names}); "
                "fix the fault's target proxy in the scenario or the stack's proxy config",
                target=f"toxiproxy:{self.proxy}",
            )
        if self._plan is None:
            if not target.enabled:
                raise FaultError(
                    f"{where}: proxy {self.proxy!r} is already disabled, so this drill cannot "
                    "inject `down`; something else (or a crashed drill) disabled it: run "
                    "`drill recover --force` or re-enable it, then run again",
                    target=f"toxiproxy:{self.proxy}",
                )
        elif any(t.name == self.toxic for t in target.toxics):
            raise FaultError(
                f"{where}: toxic {self.toxic!r} is already on proxy {self.proxy!r} (left by an "
                "earlier run?): run `drill recover --force` to remove drill's leftovers, then run again",
                target=f"toxiproxy:{self.proxy}",
            )

        t_before = time.time()
        if self._plan is None:
            self.client.set_enabled(self.proxy, False)
        else:
            self.client.add_toxic(
                self.proxy,
                self._plan.toxic_type,
                self._plan.attributes,
                name=self.toxic,
                stream=self._plan.stream,
                toxicity=self._plan.toxicity,
            )
        t_after = time.time()
        self._applied = True
        return Onset(
            at=(t_before + t_after) / 2,
            source=ONSET_SOURCE,
            uncertainty_s=(t_after - t_before) / 2,
        )

    def set_magnitude(self, value: float) -> Onset | None:
        """A schedule's step (:class:`harness.faults.base.ScheduledMagnitude`): before apply, the
        toxic apply adds; after, the same toxic updated in place (``update_toxic``)."""
        attribute = _MAGNITUDE_ATTRIBUTES.get(self.magnitude_param)
        if attribute is None or self._plan is None:
            raise FaultError(f"fault {self.name!r}: {self.type} has no magnitude a schedule can move")
        whole = int(round(value))
        self.params[self.magnitude_param] = whole
        attributes = {**self._plan.attributes, attribute: whole}
        self._plan = _ToxicPlan(self._plan.toxic_type, attributes, self._plan.stream, self._plan.toxicity)
        if not self._applied:
            return None
        assert self.toxic is not None
        t_before = time.time()
        self.client.update_toxic(self.proxy, self.toxic, attributes)
        t_after = time.time()
        return Onset(at=(t_before + t_after) / 2, source=ONSET_SOURCE, uncertainty_s=(t_after - t_before) / 2)

    def revert(self) -> float:
        """Remove the fault (idempotent; safe after a failed or missing apply); see :func:`undo_network`."""
        undo_network(self.undo(), self.client)
        return time.time()

    def verify(self) -> list[str]:
        """After revert, Toxiproxy's own view: this fault's toxic is gone and the proxy enabled."""
        proxy = self.client.get_proxy(self.proxy)
        if proxy is None:
            return []
        if self._plan is None:
            return [] if proxy.enabled else [f"proxy {self.proxy} is still disabled"]
        return [f"toxic {t.name} is still on proxy {self.proxy}" for t in proxy.toxics if t.name == self.toxic]

    def __repr__(self) -> str:
        return f"NetworkFault({self.name!r}, {self.type!r}, proxy={self.proxy!r}, params={self.params!r})"


def network_fault(spec: NetworkFaultSpec, client: ToxiproxyClient) -> NetworkFault:
    """Build a network fault from its spec (see the module docstring for types and params; the
    spec model has checked every parameter)."""
    return NetworkFault(spec, client)


def undo_network(undo: NetworkUndo, client: ToxiproxyClient) -> None:
    """Revert a network fault from its undo record (:meth:`NetworkFault.undo`). Idempotent.

    ``client`` should talk to ``undo.toxiproxy_url``. A toxic or proxy that is already gone
    counts as reverted. Escalation when the removal fails or times out: retry once, then
    POST /reset — which removes *every* toxic on *every* proxy and re-enables every proxy, not
    just this fault's; acceptable as a last resort because a drill must never leave a fault
    behind — then, for ``down``, one more re-enable. Raises FaultError only when all fail.
    """
    proxy = undo.proxy
    step: Callable[[], None]
    match undo:
        case ToxicUndo(toxic=toxic):

            def step() -> None:
                client.remove_toxic(proxy, toxic, missing_ok=True)

            last_resorts: list[tuple[str, Callable[[], None]]] = [("POST /reset", client.reset)]
            what = f"toxic {toxic!r} on proxy {proxy!r}"
        case ProxyDisabledUndo():

            def step() -> None:
                try:
                    client.set_enabled(proxy, True)
                except ToxiproxyError as exc:
                    # A proxy that no longer exists carries no fault.
                    if exc.status_code != 404:
                        raise

            last_resorts = [("POST /reset", client.reset), ("re-enable after reset", step)]
            what = f"proxy {proxy!r} disabled"
        case _:
            assert_never(undo)

    failures: list[str] = []
    for label, action in [("remove", step), ("retry", step), *last_resorts]:
        try:
            action()
            return
        except FaultError as exc:
            failures.append(f"{label}: {exc}")
    raise FaultError(
        f"could not revert {what} at {client.url} after every escalation; the fault may still be "
        "applied: check toxiproxy (`drill stack status`) and run `drill recover --force`. "
        + " | ".join(failures),
        target=f"toxiproxy:{proxy}",
    )


def stray_toxics(client: ToxiproxyClient) -> list[tuple[str, Toxic]]:
    """``(proxy name, toxic)`` for every toxic named ``drill-...``: drill's own leftovers."""
    return [
        (proxy.name, toxic)
        for proxy in client.proxies().values()
        for toxic in proxy.toxics
        if toxic.name.startswith(TOXIC_PREFIX)
    ]


def disabled_proxies(client: ToxiproxyClient) -> list[Proxy]:
    """Every proxy that is disabled right now (a ``down`` fault that may have been left behind)."""
    return [proxy for proxy in client.proxies().values() if not proxy.enabled]
