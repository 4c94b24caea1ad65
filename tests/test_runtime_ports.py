"""harness/runtime/ports.py: a taken port is reported with what holds it and the command that frees it.

The Docker test brings up the compose stack and the local stack on their default ports at the
same time: run it under the machine-wide lock (`flock /tmp/drill-integration.lock`).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
from conftest import REPO, VENV_BIN, require
from test_runtime_local import small_stack

from harness.errors import StackError
from harness.rundir.events import StackStarted
from harness.rundir.journal import Journal
from harness.rundir.state import read_private_json, register_run, write_private_json
from harness.runtime.ports import listening_pids, published_ports, who_holds

LISTENER = "import socket, sys, time; s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(); " \
           "print(s.getsockname()[1], flush=True); time.sleep(120)"


def test_published_ports_reads_the_long_and_the_short_compose_forms() -> None:
    config = {"services": {
        "gateway": {"ports": [{"host_ip": "127.0.0.1", "published": "28080", "target": 8080}]},
        "toxiproxy": {"ports": ["127.0.0.1:28474:8474/tcp"]},
        "internal": {"ports": ["8000"]},  # a port Docker picks: nothing to check beforehand
    }}
    assert published_ports(config) == [("service gateway", 28080), ("service toxiproxy", 28474)]


def test_a_plain_listening_socket_is_named_by_pid_and_the_stack_exits_3(tmp_path: Path) -> None:
    path, ports = small_stack(tmp_path, with_toxiproxy=False)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", ports["gpu"]))
        holder.listen()
        assert listening_pids(ports["gpu"]) == [os.getpid()]
        done = subprocess.run(
            [str(VENV_BIN / "drill"), "stack", "up", "--runtime", "local", "--file", str(path)],
            capture_output=True, text=True, timeout=60, cwd=tmp_path,
        )
    assert done.returncode == 3, done.stderr
    message = " ".join(done.stderr.split())
    assert f"{ports['gpu']} (process gpu-a1): held by another program: pid {os.getpid()}" in message
    assert f"free it with: kill {os.getpid()}" in message
    assert "Traceback" not in done.stderr


def test_a_crashed_runs_stack_is_named_with_drill_recover_all(tmp_path: Path) -> None:
    """A stack process whose drill died (kill -9): the run's journal knows its process group."""
    orphan = subprocess.Popen([sys.executable, "-c", LISTENER], stdout=subprocess.PIPE, text=True,
                              start_new_session=True)
    try:
        assert orphan.stdout is not None
        port = int(orphan.stdout.readline())
        run_dir = tmp_path / "reports" / "latency" / "run-1"
        run_dir.mkdir(parents=True)
        entry_path = register_run(run_dir, "latency", {"key": "local", "runtime": "local"})
        with Journal(run_dir / "journal.jsonl") as journal:
            journal.write(StackStarted(process_groups={"gateway": orphan.pid}))
        dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)
        entry = read_private_json(entry_path)
        assert entry is not None
        write_private_json(entry_path, {**entry, "pid": int(dead.stdout)})  # its drill is gone

        holder = who_holds(port, publishers={})
        assert "crashed run" in holder.what and "run-1" in holder.what
        assert holder.free_with == "drill recover --all"
    finally:
        orphan.kill()
        orphan.wait(timeout=10)


@pytest.mark.docker
def test_compose_and_local_stacks_are_up_side_by_side(tmp_path: Path) -> None:
    """Both reference stacks on their default ports at once; a second compose project on the same
    ports is refused naming the first and the command that removes it."""
    from test_docker_staging import staging_ready

    from harness.runtime.compose import ComposeRuntime
    from harness.runtime.local import LocalRuntime
    from harness.runtime.stackfile import load_stack

    require(staging_ready(), "Docker engine with the drill-targets and drill-toxiproxy images",
            "run scripts/docker-setup")
    compose_file = REPO / "compose/staging.yaml"
    project = f"drill-ports-{uuid.uuid4().hex[:6]}"
    compose = ComposeRuntime(compose_file, project, tmp_path / "compose-logs")
    local = LocalRuntime(load_stack(REPO / "targets/local-stack.yaml"), tmp_path / "local-logs")
    try:
        compose.up(wait_s=180)
        local.start()
    except BaseException:
        compose.down()
        raise
    try:
        for gateway in ("http://127.0.0.1:8080", "http://127.0.0.1:28080"):
            assert httpx.get(f"{gateway}/health", timeout=5).status_code == 200
        assert httpx.get("http://127.0.0.1:28474/version", timeout=5).status_code == 200
        assert httpx.get("http://127.0.0.1:8474/version", timeout=5).status_code == 200

        second = ComposeRuntime(compose_file, f"{project}-2", tmp_path / "second-logs")
        with pytest.raises(StackError) as caught:
            second.up(wait_s=30)
        message = str(caught.value)
        print(message)  # shown with -s: the text a user sees
        assert f": held by compose project {project}\n" in message  # one line for all its ports
        assert f"drill stack down --runtime compose --project {project}" in message
        assert second.find() == []  # refused before compose created anything
    finally:
        local.stop()
        compose.down()
