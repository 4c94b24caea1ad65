"""gpu_node_loss on the local runtime: real model-server processes, their real fault hooks."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import free_port

from harness.errors import ScenarioError
from harness.faults.base import FaultContext
from harness.faults.gpu import gpu_fault, select, undo_gpu
from harness.runtime.local import LocalRuntime
from harness.runtime.stackfile import LocalStackSpec
from harness.scenario.fault_specs import parse_fault_spec


def node(name: str, region: str, port: int) -> dict[str, object]:
    return {
        "name": name,
        "argv": ["python", "-m", "targets.model_server"],
        "env": {"HOST": "127.0.0.1", "PORT": port, "TIER": "gpu", "NODE_ID": name, "REGION": region},
        "port": port,
        "health": f"http://127.0.0.1:{port}/health",
        "labels": {"drill.gpu": "true", "drill.region": region},
    }


@pytest.fixture(scope="module")
def gpu_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalRuntime, dict[str, int]]]:
    ports = {n: free_port() for n in ("gpu-a1", "gpu-a2", "gpu-b1")}
    regions = {"gpu-a1": "region-a", "gpu-a2": "region-a", "gpu-b1": "region-b"}
    spec = LocalStackSpec.model_validate({
        "apiVersion": "drill/v1", "kind": "Stack", "name": "gpus", "stop_grace_s": 3,
        "processes": [node(n, regions[n], p) for n, p in ports.items()],
    })
    runtime = LocalRuntime(spec, tmp_path_factory.mktemp("gpu-logs"), base_dir=Path(__file__).parent)
    with runtime:
        yield runtime, ports


def build(runtime: LocalRuntime, **fields: object):
    s = parse_fault_spec({"name": "gpu", "type": "gpu_node_loss", **fields})
    return gpu_fault(s, FaultContext(runtime=runtime))


def health(port: int) -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)


def test_select_by_count_and_percent() -> None:
    names = ["c", "a", "b", "d"]
    assert select(names, 1, None) == ["a"]
    assert select(names, None, 50) == ["a", "b"]
    assert select(names, None, 10) == ["a"]
    assert select(names, None, None) == ["a", "b", "c", "d"]


def test_xid_fails_the_node_like_a_lost_gpu_and_revert_restores_it(gpu_stack) -> None:
    runtime, ports = gpu_stack
    fault = build(runtime, target={"labels": {"drill.region": "region-a"}}, mode="xid", count=1)
    described = fault.describe()
    assert described["targets"] == ["gpu-a1"]
    assert described["undo"].document() == {"kind": "gpu_hook", "hooks": [f"http://127.0.0.1:{ports['gpu-a1']}/fault"],
                                 "mode": "xid"}
    onset = fault.apply()
    assert fault.verify(), "verify() must see the applied fault"
    assert onset.source == "hook-response"
    reply = health(ports["gpu-a1"])
    assert reply.status_code == 500 and "Xid 79" in reply.text
    assert health(ports["gpu-a2"]).status_code == 200  # count: 1 left the neighbour alone
    assert runtime.status()["gpu-a1"]["running"] is True  # the process stays up
    fault.revert()
    fault.revert()
    assert fault.verify() == []
    assert health(ports["gpu-a1"]).status_code == 200


def test_percent_selects_both_region_a_nodes_and_undo_clears_them(gpu_stack) -> None:
    runtime, ports = gpu_stack
    fault = build(runtime, target={"labels": {"drill.gpu": "true", "drill.region": "region-a"}}, mode="xid",
                  percent=100)
    assert fault.describe()["targets"] == ["gpu-a1", "gpu-a2"]
    fault.apply()
    assert {health(ports[n]).status_code for n in ("gpu-a1", "gpu-a2")} == {500}
    undo_gpu(fault.describe()["undo"])  # drill recover's path
    assert {health(ports[n]).status_code for n in ("gpu-a1", "gpu-a2")} == {200}


def test_kill_mode_kills_the_process_and_revert_restarts_it(gpu_stack) -> None:
    runtime, ports = gpu_stack
    fault = build(runtime, target={"service": "gpu-b1"}, mode="kill")
    assert fault.type == "gpu_node_loss"
    assert fault.describe()["undo"].kind == "process"
    fault.apply()
    assert runtime.status()["gpu-b1"]["running"] is False
    with pytest.raises(httpx.ConnectError):
        health(ports["gpu-b1"])
    fault.revert()
    assert health(ports["gpu-b1"]).status_code == 200


def test_selectors_matching_nothing_or_too_many_are_refused_before_anything(gpu_stack) -> None:
    runtime, ports = gpu_stack
    with pytest.raises(ScenarioError, match="matches no GPU node"):
        build(runtime, target={"labels": {"drill.region": "region-z"}}, mode="xid")
    with pytest.raises(ScenarioError, match="max_targets is 1"):
        build(runtime, target={"labels": {"drill.gpu": "true"}}, mode="xid")
    with pytest.raises(ScenarioError, match="max_targets is 2"):
        build(runtime, target={"labels": {"drill.gpu": "true"}}, mode="xid", percent=100, max_targets=2)
    assert all(health(p).status_code == 200 for p in ports.values())


def test_onset_bracket_opens_after_the_http_client_is_built(gpu_stack, monkeypatch: pytest.MonkeyPatch) -> None:
    """Building an httpx client loads the TLS trust store (tens of ms): inside the bracket it
    would only widen the stated onset uncertainty (bench/fault_latency.py, docs/performance.md)."""
    runtime, _ = gpu_stack
    built_at: list[float] = []
    real_init = httpx.Client.__init__

    def recording_init(self: httpx.Client, *args: object, **kwargs: object) -> None:
        real_init(self, *args, **kwargs)  # type: ignore[arg-type]
        built_at.append(time.time())

    monkeypatch.setattr(httpx.Client, "__init__", recording_init)
    fault = build(runtime, target={"labels": {"drill.region": "region-b"}}, mode="xid", count=1)
    built_at.clear()  # only the clients apply() builds
    onset = fault.apply()
    fault.revert()
    assert fault.verify() == []
    assert built_at, "apply() must call the hook through an httpx client"
    assert onset.at - onset.uncertainty_s >= built_at[0]
