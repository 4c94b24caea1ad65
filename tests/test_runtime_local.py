"""The local runtime, for real: toxiproxy-server, model servers and a gateway as processes."""

from __future__ import annotations

import os
import signal
import socket
import textwrap
import time
from pathlib import Path

import httpx
import pytest
import yaml

from harness.errors import ScenarioError, StackError
from harness.httpfaults.client import HttpFaultClient
from harness.runtime.local import LocalRuntime
from harness.runtime.ports import port_in_use
from harness.runtime.stackfile import LocalStackSpec, load_stack
from harness.testing import free_port, require, require_mitmdump, toxiproxy_binary
from harness.testing.stacks import small_stack

CHAT = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A reaped child is gone; an unreaped one would be a zombie, which we also count as gone.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


@pytest.fixture
def need_toxiproxy() -> None:
    require(toxiproxy_binary() is not None, "toxiproxy-server", "run scripts/bootstrap")


@pytest.mark.toxiproxy
def test_start_serves_through_proxy_and_stop_leaves_nothing(tmp_path: Path, need_toxiproxy: None) -> None:
    path, ports = small_stack(tmp_path)
    runtime = LocalRuntime(load_stack(path), tmp_path / "logs")
    endpoints = runtime.start()
    try:
        assert endpoints["gateway"] == f"http://127.0.0.1:{ports['gateway']}"
        assert runtime.toxiproxy_url == f"http://127.0.0.1:{ports['toxiproxy']}"
        status = runtime.status()
        assert set(status) == {"toxiproxy", "hosted", "gpu-a1", "gateway"}
        assert all(entry["running"] and entry["healthy"] for entry in status.values())
        reply = httpx.post(endpoints["gateway"] + "/v1/chat/completions", json=CHAT)
        assert reply.status_code == 200 and reply.headers["x-served-by"] == "hosted"
        proxies = httpx.get(f"{runtime.toxiproxy_url}/proxies").json()
        assert proxies["hosted"]["listen"] == f"127.0.0.1:{ports['proxy']}"
        groups = runtime.process_groups()
        assert (tmp_path / "logs" / "gateway.log").exists()
    finally:
        runtime.stop()
    assert not any(pid_alive(pid) for pid in groups.values())
    assert not any(port_in_use(port) for port in ports.values())
    assert runtime.not_running() == ["toxiproxy", "hosted", "gpu-a1", "gateway"]
    runtime.stop()  # idempotent


def test_refuses_a_busy_port_and_starts_nothing(tmp_path: Path) -> None:
    path, ports = small_stack(tmp_path, with_toxiproxy=False)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", ports["gpu"]))
        holder.listen()
        runtime = LocalRuntime(load_stack(path), tmp_path / "logs")
        with pytest.raises(StackError) as caught:
            runtime.start()
    message = str(caught.value)
    assert f"{ports['gpu']} (process gpu-a1)" in message and "already in use" in message
    assert f"kill {os.getpid()}" in message  # names the holder (this test) and what frees it
    assert not (tmp_path / "logs").exists()
    assert not port_in_use(ports["hosted"])


def test_kill_and_restart_a_process(tmp_path: Path) -> None:
    path, ports = small_stack(tmp_path, with_toxiproxy=False)
    with LocalRuntime(load_stack(path), tmp_path / "logs") as runtime:
        (hosted,) = runtime.find("hosted-model", {})
        assert (hosted.name, hosted.kind, hosted.state, hosted.healthy) == ("hosted", "process", "running", True)
        assert hosted.address == f"http://127.0.0.1:{ports['hosted']}" and hosted.pid is not None
        assert [t.name for t in runtime.find(None, {"tier": "gpu"})] == ["gpu-a1"]
        assert runtime.find("gateway", {"tier": "gpu"}) == []
        old_pid = runtime.process_groups()["hosted"]
        runtime.kill("hosted", signal.SIGKILL)
        assert runtime.not_running() == ["hosted"]
        assert not pid_alive(old_pid)
        assert "hosted" in runtime.unhealthy()
        runtime.restart("hosted")
        new_pid = runtime.process_groups()["hosted"]
        assert new_pid != old_pid
        assert runtime.unhealthy() == []
        assert httpx.get(f"http://127.0.0.1:{ports['hosted']}/health").status_code == 200
    assert not pid_alive(new_pid)


def test_a_process_that_dies_at_start_fails_with_its_log_and_stops_the_rest(tmp_path: Path) -> None:
    path, ports = small_stack(tmp_path, with_toxiproxy=False)
    stack = yaml.safe_load(path.read_text())
    # The gateway with a broken UPSTREAMS exits with a configuration error.
    stack["processes"][2]["env"]["UPSTREAMS"] = "{not json"
    path.write_text(yaml.safe_dump(stack))
    runtime = LocalRuntime(load_stack(path), tmp_path / "logs")
    with pytest.raises(StackError) as caught:
        runtime.start()
    assert "process gateway exited with code 2" in str(caught.value)
    assert "UPSTREAMS is not valid JSON" in str(caught.value)  # the log tail
    assert runtime.not_running() == ["hosted", "gpu-a1", "gateway"]
    assert not any(port_in_use(port) for port in ports.values())


def test_another_runtime_on_the_same_log_dir_sees_and_stops_the_stack(tmp_path: Path) -> None:
    path, ports = small_stack(tmp_path, with_toxiproxy=False)
    first = LocalRuntime(load_stack(path), tmp_path / "logs")
    first.start()
    try:
        second = LocalRuntime(load_stack(path), tmp_path / "logs")  # e.g. `drill stack down`
        assert second.unhealthy() == []
        pids = list(first.process_groups().values())
        second.stop()
        # Bounded wait: on a busy machine (the suite runs drills side by side) the last child's
        # exit and its listening socket's release can trail stop() by a scheduler tick.
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline and (any(pid_alive(pid) for pid in pids)
                                               or any(port_in_use(port) for port in ports.values())):
            time.sleep(0.05)
        assert [pid for pid in pids if pid_alive(pid)] == []
        assert [port for port in ports.values() if port_in_use(port)] == []
    finally:
        first.stop()


def test_stack_file_errors_name_the_line_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        textwrap.dedent(
            """\
            kind: Stack
            processes:
              - name: a
                argv: [python, -m, targets.gateway]
                colour: blue
            """
        )
    )
    with pytest.raises(ScenarioError) as caught:
        load_stack(bad)
    assert f"{bad}:5" in str(caught.value) and "colour" in str(caught.value)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"processes": [{"name": "a", "argv": ["x"], "start_after": ["b"]},
                        {"name": "b", "argv": ["x"], "start_after": ["a"]}]}, "cycle"),
        ({"proxies": [{"name": "p", "listen": "0.0.0.0:9", "upstream": "127.0.0.1:1"}],
          "toxiproxy": {}}, "only listens on 127.0.0.1"),
        ({"processes": [{"name": "a", "argv": ["x"], "port": 5}, {"name": "b", "argv": ["x"], "port": 5}]},
         "declared twice"),
        ({"processes": [{"name": "a", "argv": ["x"], "health": "http://192.0.2.1/health"}]}, "127.0.0.1"),
    ],
)
def test_stack_model_rejects_unsafe_or_inconsistent_stacks(change: dict[str, object], expected: str) -> None:
    with pytest.raises(ValueError) as caught:
        LocalStackSpec.model_validate({"kind": "Stack", **change})
    assert expected in str(caught.value)


def test_env_values_become_strings() -> None:
    spec = LocalStackSpec.model_validate(
        {"kind": "Stack", "processes": [{"name": "a", "argv": ["python"], "env": {"PORT": 1, "DEGRADED": True}}]}
    )
    assert spec.processes[0].env == {"PORT": "1", "DEGRADED": "true"}


def test_shipped_local_stack_declares_the_documented_ports_and_proxies() -> None:
    spec = load_stack(Path(__file__).resolve().parent.parent / "targets" / "local-stack.yaml")
    assert spec.toxiproxy is not None and spec.toxiproxy.listen == "127.0.0.1:8474"
    assert {p.name for p in spec.proxies} == {
        "hosted-model", "gpu-a1", "gpu-a2", "gpu-a3", "gpu-b1", "cpu-fallback", "cloud-api", "gateway-admin"
    }
    ports = dict(spec.declared_ports())
    assert ports["process gateway"] == 8080
    assert all(18000 <= port < 20000 for owner, port in ports.items() if owner not in ("process gateway", "toxiproxy"))


# --- the HTTP fault proxy (issue 13) -----------------------------------------------------------

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("routes", "line", "expected"),
    [
        ("    - {name: hosted, listen: 0.0.0.0:19101, upstream: http://127.0.0.1:19001}\n", 4,
         "only listens on 127.0.0.1"),
        ("    - {name: hosted, listen: 127.0.0.1:19101, upstream: http://192.0.2.1:19001}\n", 4,
         "http://127.0.0.1:PORT"),
        ("    - {name: hosted, listen: 127.0.0.1:19101, upstream: 127.0.0.1:19001}\n", 4, "http://127.0.0.1:PORT"),
        ("    - {name: hosted, listen: 127.0.0.1:19101, upstream: http://127.0.0.1:19001, colour: blue}\n", 4,
         "colour"),
        ("    - {name: a, listen: 127.0.0.1:19101, upstream: http://127.0.0.1:1}\n"
         "    - {name: a, listen: 127.0.0.1:19102, upstream: http://127.0.0.1:1}\n", 2, "a repeated"),
        ("    - {name: a, listen: 127.0.0.1:18001, upstream: http://127.0.0.1:1}\n", 1, "declared twice"),
        ("    []\n", 3, "at least 1"),
    ],
)
def test_http_fault_proxy_key_errors_name_the_file_line_and_field(
    tmp_path: Path, routes: str, line: int, expected: str
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "kind: Stack\nhttp_fault_proxy:\n  routes:\n" + routes
        + "processes:\n  - {name: hosted, argv: [python], port: 18001}\n"
    )
    with pytest.raises(ScenarioError) as caught:
        load_stack(bad)
    assert f"{bad}:{line}" in str(caught.value), str(caught.value)
    assert expected in str(caught.value)


@pytest.mark.parametrize("path", sorted((REPO_ROOT / "targets").glob("local-stack*.yaml")), ids=lambda p: p.name)
def test_every_shipped_local_stack_routes_hosted_model_through_the_http_fault_proxy(path: Path) -> None:
    """The hosted provider of every shipped stack sits behind the HTTP fault proxy: the chat
    stacks' ``hosted-model`` route, the embeddings stacks' ``embeddings-hosted`` one."""
    spec = load_stack(path)
    assert spec.http_fault_proxy is not None
    route, listen, upstream = (("embeddings-hosted", 19301, 19201) if "embeddings" in path.name
                               else ("hosted-model", 19101, 19001))
    assert [(r.name, r.listen, r.upstream) for r in spec.http_fault_proxy.routes] == [
        (route, f"127.0.0.1:{listen}", f"http://127.0.0.1:{upstream}")
    ]
    assert dict(spec.declared_ports())[f"http route {route}"] == listen
    gateway = next(p for p in spec.processes if p.name == "gateway")
    hosted = [u["url"] for u in yaml.safe_load(gateway.env["UPSTREAMS"]) if u["name"] == route]
    assert hosted in ([], [f"http://127.0.0.1:{listen}"])  # the gpu-pool variants route no hosted tier


def test_http_fault_proxy_starts_with_the_stack_and_another_command_stops_it(tmp_path: Path) -> None:
    """mitmdump is a child like the others: in status and members, in the state file (so
    `drill stack down` from another command stops it) and its port is free after stop."""
    require_mitmdump()
    route_port = free_port()
    path = tmp_path / "stack.yaml"
    path.write_text(
        "kind: Stack\nname: http-only\nstop_grace_s: 3\nhttp_fault_proxy:\n  routes:\n"
        f"    - {{name: hosted-model, listen: 127.0.0.1:{route_port}, upstream: http://127.0.0.1:{free_port()}}}\n"
    )
    first = LocalRuntime(load_stack(path), tmp_path / "logs")
    try:
        first.start()
        assert first.http_fault_proxy_url == f"http://127.0.0.1:{route_port}"
        with HttpFaultClient(first.http_fault_proxy_url) as client:
            assert client.health() == {"hosted-model": route_port}
        assert first.status()["http-fault-proxy"]["healthy"] is True
        member = next(m for m in first.members() if m.name == "http-fault-proxy")
        assert member.running and member.healthy and member.address == first.http_fault_proxy_url
        assert (tmp_path / "logs" / "http-fault-proxy.log").exists()
        pid = first.process_groups()["http-fault-proxy"]

        second = LocalRuntime(load_stack(path), tmp_path / "logs")  # e.g. `drill stack down`
        state = (tmp_path / "logs" / "local-stack.state.json")
        shown = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        assert second.not_running() == [], (state.read_text() if state.exists() else "no state", shown)
        second.stop()
        # SIGKILLed: its command line is gone at once (what stop() waits for), the pid a moment
        # later, when the kernel has finished the exit (a busy machine showed the gap).
        deadline = time.monotonic() + 5.0
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not pid_alive(pid)
        assert not port_in_use(route_port)
    finally:
        first.stop()


def test_a_busy_route_port_is_refused_naming_the_route(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        path = tmp_path / "stack.yaml"
        path.write_text(
            "kind: Stack\nhttp_fault_proxy:\n  routes:\n"
            f"    - {{name: hosted-model, listen: 127.0.0.1:{port}, upstream: http://127.0.0.1:1}}\n"
        )
        with pytest.raises(StackError) as caught:
            LocalRuntime(load_stack(path), tmp_path / "logs").start()
    assert f"{port} (http route hosted-model)" in str(caught.value)
