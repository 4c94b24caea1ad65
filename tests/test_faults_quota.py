"""region_quota_denial against the real cloud-api program over HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import free_port, wait_http
from pydantic import ValidationError

from harness.faults.base import FaultContext
from harness.faults.quota import active_denials, quota_fault, undo_quota
from harness.scenario.fault_specs import RegionQuotaDenialSpec, parse_fault_spec

REPO = Path(__file__).resolve().parents[1]
REGIONS = {"region-a": {"quota": 3, "running": [], "standby": [{"node": "a", "url": "http://127.0.0.1:1"}]},
           "region-b": {"quota": 1, "running": [], "standby": [{"node": "b", "url": "http://127.0.0.1:2"}]}}


@pytest.fixture
def cloud_api() -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(port), "REGIONS": json.dumps(REGIONS),
           "PROVISION_DELAY_MS": "0", "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "targets.cloud_api"], env=env, cwd=REPO)
    try:
        wait_http(f"http://127.0.0.1:{port}/health")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def spec(hook: str, **params: object) -> RegionQuotaDenialSpec:
    parsed = parse_fault_spec({"name": "deny", "type": "region_quota_denial", "target": {"hook": hook},
                               "region": "region-a", **params})
    assert isinstance(parsed, RegionQuotaDenialSpec)
    return parsed


def test_denial_is_in_force_until_reverted_and_revert_is_idempotent(cloud_api: str) -> None:
    hook = f"{cloud_api}/fault"
    s = spec(hook)
    fault = quota_fault(s, FaultContext())
    assert fault.describe()["undo"].document() == {"kind": "quota_hook", "hook": hook,
                                        "body": {"mode": "quota_exceeded", "region": "region-a"}}
    onset = fault.apply()
    assert fault.verify(), "verify() must see the applied fault"
    assert onset.source == "hook-response" and onset.uncertainty_s >= 0
    assert active_denials(hook) == [{"mode": "quota_exceeded", "region": "region-a", "instance_type": None}]
    denied = httpx.post(f"{cloud_api}/instances", json={"region": "region-a"})
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "QuotaExceeded"
    assert httpx.post(f"{cloud_api}/instances", json={"region": "region-b"}).status_code == 201
    fault.revert()
    fault.revert()
    assert fault.verify() == []
    assert active_denials(hook) == []
    assert httpx.post(f"{cloud_api}/instances", json={"region": "region-a"}).status_code == 201


def test_insufficient_capacity_per_instance_type_and_recovery_from_undo(cloud_api: str) -> None:
    hook = f"{cloud_api}/fault"
    s = spec(hook, mode="insufficient_capacity", instance_type="gpu.h100")
    fault = quota_fault(s, FaultContext())
    fault.apply()
    reply = httpx.post(f"{cloud_api}/instances", json={"region": "region-a", "instance_type": "gpu.h100"})
    assert reply.status_code == 503 and reply.json()["error"]["code"] == "InsufficientCapacity"
    undo_quota(fault.describe()["undo"])  # what `drill recover` does after a crash
    assert active_denials(hook) == []


def test_hook_off_loopback_or_unknown_mode_never_reaches_the_fault() -> None:
    """The spec model refuses them (file:line messages: test_scenario_fault_specs.py)."""
    with pytest.raises(ValidationError, match="127.0.0.1"):
        spec("http://192.0.2.5:8090/fault")
    with pytest.raises(ValidationError, match="mode"):
        spec("http://127.0.0.1:8090/fault", mode="embargo")


def test_onset_bracket_opens_after_the_http_client_is_built(cloud_api: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Building an httpx client loads the TLS trust store (tens of ms): inside the bracket it
    would only widen the stated onset uncertainty (bench/fault_latency.py, docs/performance.md)."""
    built_at: list[float] = []
    real_init = httpx.Client.__init__

    def recording_init(self: httpx.Client, *args: object, **kwargs: object) -> None:
        real_init(self, *args, **kwargs)  # type: ignore[arg-type]
        built_at.append(time.time())

    monkeypatch.setattr(httpx.Client, "__init__", recording_init)
    s = spec(f"{cloud_api}/fault")
    fault = quota_fault(s, FaultContext())
    built_at.clear()  # only the clients apply() builds
    onset = fault.apply()
    fault.revert()
    assert built_at, "apply() must call the hook through an httpx client"
    assert onset.at - onset.uncertainty_s >= built_at[0]
