"""build_fault: each spec model reaches its family's builder (pure: no stack, Toxiproxy offline)."""

from __future__ import annotations

import httpx
import pytest

from harness.errors import ScenarioError
from harness.faults import build_fault
from harness.faults.base import FaultContext
from harness.faults.network import NetworkFault
from harness.faults.quota import QuotaFault
from harness.scenario.fault_specs import parse_fault_spec
from harness.toxiproxy import ToxiproxyClient


def offline_toxiproxy() -> ToxiproxyClient:
    def never(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"building a fault must not call Toxiproxy: {request.method} {request.url}")

    return ToxiproxyClient("http://127.0.0.1:8474", transport=httpx.MockTransport(never))


@pytest.mark.parametrize("type, params", [("latency", {"latency_ms": 5}), ("jitter", {"jitter_ms": 5}),
                                          ("bandwidth", {"rate_kbps": 5}), ("blackhole", {}), ("reset", {}),
                                          ("down", {})])
def test_network_specs_build_network_faults(type: str, params: dict[str, object]) -> None:
    spec = parse_fault_spec({"name": "n", "type": type, "target": {"proxy": "p"}, **params})
    fault = build_fault(spec, FaultContext(toxiproxy=offline_toxiproxy()))
    assert isinstance(fault, NetworkFault)
    assert (fault.type, fault.proxy, fault.describe()["params"]) == (type, "p", spec.parameters())


def test_network_spec_without_toxiproxy_is_bad_input() -> None:
    spec = parse_fault_spec({"name": "n", "type": "down", "target": {"proxy": "p"}})
    with pytest.raises(ScenarioError, match="needs Toxiproxy") as caught:
        build_fault(spec, FaultContext())
    assert caught.value.exit_code == 2


def test_quota_spec_builds_the_hook_fault_from_typed_fields() -> None:
    spec = parse_fault_spec({"name": "q", "type": "region_quota_denial", "region": "region-a",
                             "instance_type": "gpu.h100", "target": {"hook": "http://127.0.0.1:18090/fault"}})
    fault = build_fault(spec, FaultContext())
    assert isinstance(fault, QuotaFault)
    assert fault.describe()["undo"].document() == {
        "kind": "quota_hook", "hook": "http://127.0.0.1:18090/fault",
        "body": {"mode": "quota_exceeded", "region": "region-a", "instance_type": "gpu.h100"},
    }


@pytest.mark.parametrize("type", ["endpoint_kill", "gpu_node_loss"])
def test_service_specs_without_a_managed_stack_are_bad_input(type: str) -> None:
    spec = parse_fault_spec({"name": "s", "type": type, "target": {"service": "hosted-model"}})
    with pytest.raises(ScenarioError, match="needs a stack the harness manages"):
        build_fault(spec, FaultContext())
