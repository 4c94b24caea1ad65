"""The network fault family: faults applied to a Toxiproxy proxy.

    fault type   params (defaults)                           what Toxiproxy does
    latency      latency_ms (req), jitter_ms=0               toxic ``latency``
    jitter       jitter_ms (req), latency_ms=0               toxic ``latency``
    bandwidth    rate_kbps (req, KB/s)                       toxic ``bandwidth``
    blackhole    timeout_ms=0 (0 = hold data forever)        toxic ``timeout``
    reset        timeout_ms=0 (0 = reset on first data)      toxic ``reset_peer``
    down         (none)                                      proxy disabled

Toxic faults also take ``direction`` (``downstream``, the default: data flowing back to the
client; or ``upstream``) and ``toxicity`` (0..1, default 1.0: the share of connections hit).

A ``blackhole`` drops the data but not a close: when the upstream closes the connection after
answering, the client still sees the close. Use ``direction: upstream`` to hold the requests
themselves, so the upstream never answers.

Our toxics are named ``drill-<fault name>`` so a leftover can always be recognised and removed
(:func:`stray_toxics`). :func:`undo_network` reverts a fault from the ``undo`` record of
``describe()`` alone, so ``drill recover`` needs no scenario.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.errors import FaultError, ScenarioError
from harness.faults.base import Onset
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
DIRECTIONS = ("downstream", "upstream")

# fault type -> (toxic type or None for `down`, required params, optional params with defaults)
_SPECS: dict[str, tuple[str | None, tuple[str, ...], dict[str, int]]] = {
    "latency": ("latency", ("latency_ms",), {"jitter_ms": 0}),
    "jitter": ("latency", ("jitter_ms",), {"latency_ms": 0}),
    "bandwidth": ("bandwidth", ("rate_kbps",), {}),
    "blackhole": ("timeout", (), {"timeout_ms": 0}),
    "reset": ("reset_peer", (), {"timeout_ms": 0}),
    "down": (None, (), {}),
}
NETWORK_FAULT_TYPES: frozenset[str] = frozenset(_SPECS)

# our param name -> Toxiproxy attribute name (from the Toxiproxy README's toxic table)
_ATTRIBUTE_NAMES = {
    "latency_ms": "latency",
    "jitter_ms": "jitter",
    "rate_kbps": "rate",
    "timeout_ms": "timeout",
}


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


def _whole_ms(fault: str, key: str, value: Any, *, positive: bool) -> int:
    """A non-negative (or positive) whole number, or a ScenarioError saying what is expected."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ScenarioError(f"fault {fault!r}: {key} must be a whole number, got {value!r}")
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        raise ScenarioError(f"fault {fault!r}: {key} must be a whole number, got {value!r}")
    number = int(value)
    if number < 0 or (positive and number == 0):
        bound = "greater than 0" if positive else "0 or more"
        raise ScenarioError(f"fault {fault!r}: {key} must be {bound}, got {value!r}")
    return number


def _normalise(name: str, type: str, params: dict[str, Any]) -> dict[str, Any]:
    """Params with defaults filled in, checked; raises ScenarioError naming the bad field."""
    if type not in _SPECS:
        known = ", ".join(sorted(NETWORK_FAULT_TYPES))
        raise ScenarioError(f"fault {name!r}: type {type!r} is not a network fault; use one of {known}")
    toxic_type, required, optional = _SPECS[type]
    allowed = set(required) | set(optional)
    if toxic_type is not None:
        allowed |= {"direction", "toxicity"}
    unknown = sorted(set(params) - allowed)
    if unknown:
        if toxic_type is None:
            raise ScenarioError(
                f"fault {name!r}: type 'down' takes no parameters (it disables the whole proxy); "
                f"remove {', '.join(unknown)}"
            )
        raise ScenarioError(
            f"fault {name!r}: unknown parameter(s) {', '.join(unknown)} for type {type!r}; "
            f"allowed: {', '.join(sorted(allowed))}"
        )
    missing = [key for key in required if key not in params]
    if missing:
        raise ScenarioError(f"fault {name!r}: type {type!r} needs {', '.join(missing)}")

    out: dict[str, Any] = {}
    for key in required:
        out[key] = _whole_ms(name, key, params[key], positive=True)
    for key, default in optional.items():
        out[key] = _whole_ms(name, key, params.get(key, default), positive=False)
    if toxic_type is None:
        return out

    direction = params.get("direction", "downstream")
    if direction not in DIRECTIONS:
        raise ScenarioError(
            f"fault {name!r}: direction must be 'downstream' or 'upstream', got {direction!r}"
        )
    toxicity = params.get("toxicity", 1.0)
    if (
        isinstance(toxicity, bool)
        or not isinstance(toxicity, (int, float))
        or not 0.0 <= float(toxicity) <= 1.0
    ):
        raise ScenarioError(f"fault {name!r}: toxicity must be a number from 0 to 1, got {toxicity!r}")
    out["direction"] = direction
    out["toxicity"] = float(toxicity)
    return out


class NetworkFault:
    """One network fault on one Toxiproxy proxy. Build it with :func:`network_fault`."""

    def __init__(
        self, name: str, type: str, proxy: str, params: dict[str, Any], client: ToxiproxyClient
    ) -> None:
        self.name = name
        self.type = type
        self.proxy = proxy
        self.params = _normalise(name, type, params)
        self.client = client
        self._plan = self._make_plan()

    def _make_plan(self) -> _ToxicPlan | None:
        toxic_type = _SPECS[self.type][0]
        if toxic_type is None:
            return None
        attributes = {
            _ATTRIBUTE_NAMES[key]: value
            for key, value in self.params.items()
            if key in _ATTRIBUTE_NAMES
        }
        return _ToxicPlan(
            toxic_type=toxic_type,
            attributes=attributes,
            stream=self.params["direction"],
            toxicity=self.params["toxicity"],
        )

    @property
    def toxic(self) -> str | None:
        """The toxic name this fault adds, or None for ``down``."""
        return toxic_name(self.name) if self._plan is not None else None

    def describe(self) -> dict[str, Any]:
        """``targets``, ``params`` (defaults filled in) and the ``undo`` record for recovery."""
        return {
            "targets": [f"toxiproxy:{self.proxy}"],
            "params": dict(self.params),
            "undo": {
                "kind": "toxic" if self._plan is not None else "proxy_disabled",
                "toxiproxy_url": self.client.url,
                "proxy": self.proxy,
                "toxic": self.toxic,
            },
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
        return Onset(
            at=(t_before + t_after) / 2,
            source=ONSET_SOURCE,
            uncertainty_s=(t_after - t_before) / 2,
        )

    def revert(self) -> float:
        """Remove the fault (idempotent; safe after a failed or missing apply); see :func:`undo_network`."""
        undo_network(self.describe()["undo"], self.client)
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


def network_fault(
    name: str, type: str, proxy: str, params: dict[str, Any], client: ToxiproxyClient
) -> NetworkFault:
    """Build a network fault (see the module docstring for types and params).

    Raises ScenarioError (exit 2, nothing applied) for an unknown type or a bad parameter.
    """
    if not name:
        raise ScenarioError("a network fault needs a name")
    if not proxy:
        raise ScenarioError(f"fault {name!r}: needs a target proxy name")
    return NetworkFault(name, type, proxy, dict(params or {}), client)


def undo_network(undo: dict[str, Any], client: ToxiproxyClient) -> None:
    """Revert a network fault from its ``undo`` record (``describe()["undo"]``). Idempotent.

    ``client`` should talk to ``undo["toxiproxy_url"]``. A toxic or proxy that is already gone
    counts as reverted. Escalation when the removal fails or times out: retry once, then
    POST /reset — which removes *every* toxic on *every* proxy and re-enables every proxy, not
    just this fault's; acceptable as a last resort because a drill must never leave a fault
    behind — then, for ``down``, one more re-enable. Raises FaultError only when all fail.
    """
    kind = undo.get("kind")
    proxy = undo.get("proxy")
    toxic = undo.get("toxic")
    if not isinstance(proxy, str) or not proxy:
        raise FaultError(f"network undo record has no proxy name: {undo!r}")
    step: Callable[[], None]
    if kind == "toxic":
        if not isinstance(toxic, str) or not toxic:
            raise FaultError(f"network undo record of kind 'toxic' has no toxic name: {undo!r}")

        def step() -> None:
            client.remove_toxic(proxy, toxic, missing_ok=True)

        last_resorts: list[tuple[str, Callable[[], None]]] = [("POST /reset", client.reset)]
    elif kind == "proxy_disabled":

        def step() -> None:
            try:
                client.set_enabled(proxy, True)
            except ToxiproxyError as exc:
                # A proxy that no longer exists carries no fault.
                if exc.status_code != 404:
                    raise

        last_resorts = [("POST /reset", client.reset), ("re-enable after reset", step)]
    else:
        raise FaultError(
            f"network undo record has unknown kind {kind!r} (expected 'toxic' or 'proxy_disabled'): {undo!r}"
        )

    failures: list[str] = []
    for label, action in [("remove", step), ("retry", step), *last_resorts]:
        try:
            action()
            return
        except FaultError as exc:
            failures.append(f"{label}: {exc}")
    what = f"toxic {toxic!r} on proxy {proxy!r}" if kind == "toxic" else f"proxy {proxy!r} disabled"
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
