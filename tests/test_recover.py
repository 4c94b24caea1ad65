"""`drill recover` on real parts: ledger-driven reverts of each undo kind, idempotency, and stray
faults (no ledger knows them) found and removed with force."""

from __future__ import annotations

import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.faults.network import network_fault
from harness.httpfaults.proxy import HttpRoute, running_http_fault_proxy
from harness.rundir import JOURNAL_FILE
from harness.rundir.events import FaultApplied, FaultIntent, FaultReverted, ProxyCreated, ProxyIntent
from harness.rundir.journal import Journal, applied_faults
from harness.rundir.undo import ProxyCreatedUndo, ToxicUndo
from harness.safety.recover import recover_run, recover_strays
from harness.safety.strays import active_faults, hook_urls, scan
from harness.testing import free_port, network_spec, require, require_mitmdump
from harness.testing.drills import SUITE_PACE_HZ, http_fault_hit, kill_9_when, recover_all, stack_status
from harness.testing.stacks import kill9_stack
from harness.toxiproxy import ToxiproxyClient


def apply_journaled(run_dir: Path, fault: Any, fault_id: str, *, record_applied: bool = True) -> None:
    """Apply ``fault`` for real and journal it as the engine does (intent before, outcome after);
    ``record_applied=False`` is a crash between the apply and its journal line."""
    description = fault.describe()
    with Journal(run_dir / JOURNAL_FILE) as journal:
        journal.write(FaultIntent(fault_id=fault_id, name=fault.name, type=fault.type, undo=description["undo"]))
        onset = fault.apply()
        if record_applied:
            journal.write(FaultApplied(fault_id=fault_id, onset_at=onset.at, onset_source=onset.source,
                                       onset_uncertainty_s=onset.uncertainty_s))


def lines(run_dir: Path) -> list[tuple[str, bool]]:
    return list(recover_run(run_dir))


@pytest.fixture
def proxies(toxiproxy_url: str) -> Iterator[ToxiproxyClient]:
    with ToxiproxyClient(toxiproxy_url) as client:
        for name in ("svc-a", "svc-b"):
            client.create_proxy(name, f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}")
        yield client


# --- ledger-driven ------------------------------------------------------------------------------


def test_recover_reverts_a_toxic_and_is_idempotent(tmp_path: Path, proxies: ToxiproxyClient) -> None:
    slow = network_spec("slow", "latency", "svc-a", {"latency_ms": 500})
    apply_journaled(tmp_path, network_fault(slow, proxies), "0-slow")
    assert [t.name for t in proxies.proxies()["svc-a"].toxics] == ["drill-slow"]

    first = lines(tmp_path)
    assert first == [(f"{tmp_path}: fault slow (latency) reverted", True)]
    assert proxies.proxies()["svc-a"].toxics == []
    assert applied_faults(tmp_path / JOURNAL_FILE) == []
    assert lines(tmp_path) == [(f"{tmp_path}: clean (nothing left applied)", True)]


def test_recover_enables_a_disabled_proxy(tmp_path: Path, proxies: ToxiproxyClient) -> None:
    apply_journaled(tmp_path, network_fault(network_spec("dead", "down", "svc-b", {}), proxies), "0-dead")
    assert proxies.proxies()["svc-b"].enabled is False

    assert lines(tmp_path) == [(f"{tmp_path}: fault dead (down) reverted", True)]
    assert proxies.proxies()["svc-b"].enabled is True
    assert lines(tmp_path)[0][0].endswith("clean (nothing left applied)")


def test_recover_reverts_faults_newest_first_even_when_the_crash_beat_the_journal(
    tmp_path: Path, proxies: ToxiproxyClient
) -> None:
    """kill -9 between an apply and its ``fault.applied`` line: the intent alone is enough."""
    apply_journaled(tmp_path, network_fault(network_spec("a", "latency", "svc-a", {"latency_ms": 10}), proxies), "0-a")
    down = network_spec("b", "down", "svc-b", {})
    apply_journaled(tmp_path, network_fault(down, proxies), "1-b", record_applied=False)

    assert [message for message, _ in lines(tmp_path)] == [
        f"{tmp_path}: fault b (down) reverted",
        f"{tmp_path}: fault a (latency) reverted",
    ]
    state = proxies.proxies()
    assert state["svc-b"].enabled and state["svc-a"].toxics == []
    assert active_faults(proxies.url, None) == []


def test_recover_deletes_proxies_the_run_created(tmp_path: Path, proxies: ToxiproxyClient) -> None:
    undo = ProxyCreatedUndo(toxiproxy_url=proxies.url, proxy="made-by-run")
    with Journal(tmp_path / JOURNAL_FILE) as journal:
        journal.write(ProxyIntent(proxy="made-by-run", undo=undo))
        proxies.create_proxy("made-by-run", f"127.0.0.1:{free_port()}", "127.0.0.1:1")
        journal.write(ProxyCreated(proxy="made-by-run"))

    assert lines(tmp_path) == [(f"{tmp_path}: proxy made-by-run deleted", True)]
    assert "made-by-run" not in proxies.proxies()
    assert lines(tmp_path)[0][0].endswith("clean (nothing left applied)")


def test_recover_reports_failure_and_keeps_the_fault_in_the_ledger(tmp_path: Path, toxiproxy_url: str) -> None:
    """When the revert cannot be done (Toxiproxy gone), say so and leave it for the next recover."""
    dead_url = f"http://127.0.0.1:{free_port()}"
    with Journal(tmp_path / JOURNAL_FILE) as journal:
        journal.write(FaultIntent(
            fault_id="0-x", name="x", type="latency",
            undo=ToxicUndo(toxiproxy_url=dead_url, proxy="p", toxic="drill-x"),
        ))
    result = lines(tmp_path)
    assert len(result) == 1 and result[0][1] is False and "NOT reverted" in result[0][0]
    assert [e.fault_id for e in applied_faults(tmp_path / JOURNAL_FILE)] == ["0-x"]


def test_recover_of_a_folder_without_journal_says_so(tmp_path: Path) -> None:
    assert lines(tmp_path) == [(f"{tmp_path}: no {JOURNAL_FILE}; nothing to recover", False)]


# --- stray faults: Toxiproxy and hooks on a real local stack ---------------------------------------


def hook_stack(tmp_path: Path) -> Any:
    """A local stack of one GPU model server and the cloud-api, on free ports (real processes)."""
    from harness.runtime.local import LocalRuntime
    from harness.runtime.stackfile import load_stack

    gpu, cloud = free_port(), free_port()
    path = tmp_path / "stack.yaml"
    path.write_text(textwrap.dedent(f"""\
        apiVersion: drill/v1
        kind: Stack
        name: hooks
        processes:
          - name: gpu-x1
            argv: [python, -m, targets.model_server]
            env: {{HOST: 127.0.0.1, PORT: {gpu}, NODE_ID: gpu-x1, TIER: gpu, REGION: region-a}}
            port: {gpu}
            health: http://127.0.0.1:{gpu}/health
          - name: cloud-api
            argv: [python, -m, targets.cloud_api]
            env:
              HOST: 127.0.0.1
              PORT: {cloud}
              REGIONS: '{{"region-a": {{"quota": 2, "running": [], "standby": []}}, "region-b": {{"quota": 1, "running": [], "standby": []}}}}'
            port: {cloud}
            health: http://127.0.0.1:{cloud}/health
        """))
    return LocalRuntime(load_stack(path), tmp_path / "logs")


def test_strays_found_listed_and_removed_only_with_force(tmp_path: Path, proxies: ToxiproxyClient) -> None:
    url = proxies.url
    with hook_stack(tmp_path) as runtime:
        endpoints = runtime.endpoints()
        gpu_hook = f"{endpoints['gpu-x1']}/fault"
        cloud_hook = f"{endpoints['cloud-api']}/fault"
        assert hook_urls(runtime) == sorted([gpu_hook, cloud_hook])
        clean = scan(url, runtime)
        assert clean.faults == [] and clean.unchecked == []  # every hook answered: nothing set
        proxies.add_toxic("svc-a", "latency", {"latency": 300}, name="drill-left-behind")
        proxies.add_toxic("svc-a", "latency", {"latency": 1}, name="someone-elses")  # not ours: kept
        proxies.set_enabled("svc-b", False)
        httpx.post(gpu_hook, json={"mode": "xid", "status": 503}, timeout=5).raise_for_status()
        httpx.post(cloud_hook, json={"mode": "quota_exceeded", "region": "region-a"}, timeout=5).raise_for_status()

        found = active_faults(url, runtime)
        assert sorted((f.kind, f.target) for f in found) == sorted([
            ("toxic", "toxiproxy:svc-a"),
            ("proxy_disabled", "toxiproxy:svc-b"),
            ("gpu_hook", f"hook:{gpu_hook}"),
            ("quota_hook", f"hook:{cloud_hook} region region-a"),
        ])
        assert all(set(f.document()) == {"kind", "target", "detail", "undo"} for f in found)

        listed = list(recover_strays(url, runtime, force=False))
        assert len(listed) == 4 and all(ok is False and "--force" in message for message, ok in listed)
        assert len(active_faults(url, runtime)) == 4  # listing changed nothing

        removed = list(recover_strays(url, runtime, force=True))
        assert len(removed) == 4 and all(ok for _, ok in removed), removed
        assert active_faults(url, runtime) == []
        assert httpx.get(gpu_hook, timeout=5).json()["mode"] is None
        assert httpx.get(cloud_hook, timeout=5).json()["denials"] == []
        state = proxies.proxies()
        assert [t.name for t in state["svc-a"].toxics] == ["someone-elses"]
        assert state["svc-b"].enabled
        assert list(recover_strays(url, runtime, force=True)) == [("no stray faults on the stack", True)]


def test_explicit_hooks_and_unreachable_parts_are_reported(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    result = scan(dead, None, hooks=[dead])
    assert result.faults == []
    assert len(result.unchecked) == 2 and all(dead in line for line in result.unchecked)
    messages = list(recover_strays(dead, None, [dead], force=True))
    assert messages and all(ok is False and message.startswith("could not check") for message, ok in messages)


def test_a_paused_local_process_is_a_stray_and_force_continues_it(tmp_path: Path) -> None:
    import os
    import signal

    with hook_stack(tmp_path) as runtime:
        pid = runtime.status()["gpu-x1"]["pid"]
        os.killpg(pid, signal.SIGSTOP)
        try:
            # SIGSTOP takes effect when the process next runs: await the stop (it is our child).
            os.waitpid(pid, os.WUNTRACED)
            kinds = [(f.kind, f.target) for f in scan(None, runtime).faults]
            assert ("process_paused", "process:gpu-x1") in kinds
            assert all(ok for _, ok in recover_strays(None, runtime, force=True))
            assert scan(None, runtime).faults == []
        finally:
            os.killpg(pid, signal.SIGCONT)


# --- containers (Docker) --------------------------------------------------------------------------


def docker_ready() -> bool:
    try:
        from harness.runtime.compose import docker_client

        client = docker_client()
        client.images.get("drill-targets:latest")
    except Exception:
        return False
    return True


@pytest.fixture
def sleeper() -> Iterator[tuple[Any, str]]:
    """One container labelled as service ``sleeper`` of a throw-away compose project (no network)."""
    require(docker_ready(), "Docker engine with the drill-targets image", "run scripts/docker-setup")
    from harness.runtime.compose import PROJECT_LABEL, SERVICE_LABEL, docker_client

    client = docker_client()
    project = f"drill-recover-test-{uuid.uuid4().hex[:8]}"
    container = client.containers.run(
        "drill-targets:latest", ["python", "-c", "import time; time.sleep(900)"], detach=True,
        network_mode="none", labels={PROJECT_LABEL: project, SERVICE_LABEL: "sleeper"},
        name=f"{project}-sleeper",
    )
    try:
        yield client, project
    finally:
        container.remove(force=True)


@pytest.mark.docker
@pytest.mark.parametrize("mode", ["pause", "kill"])
def test_recover_restores_a_container_from_the_ledger(tmp_path: Path, sleeper: Any, mode: str) -> None:
    from harness.faults.container import container_fault, stopped_stack_containers

    client, project = sleeper
    fault = container_fault("box", mode, "sleeper", {}, 1, project, client)
    apply_journaled(tmp_path, fault, "0-box")
    assert [c["state"] for c in stopped_stack_containers(project, client)] == ["paused" if mode == "pause" else "exited"]

    first = lines(tmp_path)
    assert first == [(f"{tmp_path}: fault box (endpoint_kill) reverted", True)]
    assert stopped_stack_containers(project, client) == []
    assert lines(tmp_path)[0][0].endswith("clean (nothing left applied)")


@pytest.mark.docker
def test_a_stopped_container_is_a_stray_and_force_starts_it(tmp_path: Path, sleeper: Any) -> None:
    from harness.runtime.compose import ComposeRuntime

    client, project = sleeper
    compose_file = tmp_path / "compose.yaml"  # no toxiproxy service: only the container is looked at
    compose_file.write_text("services:\n  sleeper: {image: drill-targets:latest}\n")
    runtime = ComposeRuntime(compose_file, project, tmp_path, client=client)
    assert runtime.toxiproxy_url is None
    (box,) = runtime.containers("sleeper")
    box.pause()
    strays = active_faults(None, runtime)
    assert [(f.kind, f.target, f.detail) for f in strays] == [
        ("container", f"container:{box.name}", "service sleeper is paused")
    ]
    assert [ok for _, ok in recover_strays(None, runtime, force=False)] == [False]
    assert runtime.not_running() == [box.name]
    assert all(ok for _, ok in recover_strays(None, runtime, force=True))
    assert runtime.not_running() == [] and active_faults(None, runtime) == []


# --- the HTTP fault proxy (issue 13) -----------------------------------------------------------


def test_a_drill_made_http_fault_is_a_stray_and_force_removes_only_it(tmp_path: Path) -> None:
    """On the proxy a stack runs: `drill-...` faults are strays (listed, removed with force); a
    fault someone made by hand with another name is theirs and stays."""
    require_mitmdump()
    route = HttpRoute("hosted-model", free_port(), f"http://127.0.0.1:{free_port()}")
    with running_http_fault_proxy([route], tmp_path / "mitmdump.log") as client:
        client.add("drill-storm", "http_error", "hosted-model", {"status": 429})
        client.add("by-hand", "first_token_delay", "hosted-model", {"delay_ms": 10})
        found = scan(None, None, http_fault_proxy_url=route.url)
        assert [(f.kind, f.target, f.undo.fault_id) for f in found.faults] == [
            ("http_fault", "http-route:hosted-model", "drill-storm")
        ]
        listed = list(recover_strays(None, None, http_fault_proxy_url=route.url))
        assert [ok for _, ok in listed] == [False] and "--force" in listed[0][0]
        forced = list(recover_strays(None, None, force=True, http_fault_proxy_url=route.url))
        assert forced == [(f"stray http_fault on http-route:hosted-model: {found.faults[0].detail}: "
                           "HTTP fault removed", True)]
        assert [f.id for f in client.faults()] == ["by-hand"]


@pytest.mark.slow
def test_kill_9_mid_http_fault_then_recover_all_leaves_no_http_fault(tmp_path: Path) -> None:
    """Must show (issue 13): a drill on the local runtime applies a 429 storm through the stack's
    own HTTP fault proxy; kill -9 while it is active; `drill recover --all`; then `drill stack
    status --json` shows no HTTP fault, and nothing of the stack is left running."""

    from harness.rundir.journal import read_journal
    from harness.runtime.ports import port_in_use
    from harness.testing import toxiproxy_binary

    require(toxiproxy_binary() is not None, "toxiproxy-server", "run scripts/bootstrap")
    require_mitmdump()
    stack_path, ports = kill9_stack(tmp_path)
    route_url = f"http://127.0.0.1:{ports['route']}"
    scenario = tmp_path / "storm.yaml"
    scenario.write_text(textwrap.dedent(f"""\
        apiVersion: drill/v1
        kind: Scenario
        name: http-kill9
        stack: {{runtime: local, file: {stack_path}}}
        load:
          host: {route_url}
          users: 1
          pace_hz: {SUITE_PACE_HZ}
          request: {{method: POST, path: /v1/chat/completions, json: {{model: chat}}}}
          timeout_s: 2
          probe_rate_hz: 10
        phases: {{baseline: 2s, fault: 60s, recovery: 2s}}
        faults:
          - {{name: storm, type: http_error, target: {{route: hosted-model}}, status: 429, retry_after_s: 1}}
        """))
    run_dir = tmp_path / "run"
    # Await the fault on the proxy itself, with hits: it is applied and acting.
    kill_9_when(scenario, run_dir, http_fault_hit(route_url), "the HTTP fault became active", cwd=tmp_path,
                timeout_s=90)

    def status() -> dict[str, Any]:
        return stack_status(stack_path, tmp_path)

    left = status()  # the fault outlived its drill: status sees it
    assert [(f["id"], f["type"], f["proxy"]) for f in left["http_faults"]] == [("drill-storm", "http_error", "hosted-model")]
    assert left["http_faults"][0]["hits"] > 0
    assert [f["kind"] for f in left["active_faults"]] == ["http_fault"]

    assert "fault storm (http_error) reverted" in recover_all(tmp_path)
    reverted = [r.event for r in read_journal(run_dir / JOURNAL_FILE) if isinstance(r.event, FaultReverted)]
    assert [(r.fault_id, r.why) for r in reverted] == [("0-storm", "recover")]

    after = status()
    assert after["http_faults"] == []
    assert [f for f in after["active_faults"] if f["kind"] == "http_fault"] == []
    assert not any(port_in_use(port) for port in ports.values())  # mitmdump and the stack are gone
