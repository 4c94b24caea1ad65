"""The harness survives its own dependencies failing mid-drill: Toxiproxy killed, a stack
container dying on its own. Each ends in an abort (exit 3) with what can be reverted reverted,
the journal saying what happened, and no "passed"/"failed" verdict computed over a broken run."""

from __future__ import annotations

import json
import signal
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.rundir import JOURNAL_FILE
from harness.rundir.journal import read_journal
from harness.rundir.state import registered_runs
from harness.testing import free_port, require, serve_in_thread, toxiproxy_binary, wait_http
from harness.testing.drills import EXIT_TIMEOUT_S, SUITE_PACE_HZ, own_service, start_drill, tail, wait_event
from harness.testing.stacks import compose_env, compose_problems
from harness.toxiproxy import ToxiproxyClient

EXIT_ABORTED = 3


def events(run_dir: Path) -> list[dict[str, Any]]:
    return [record.document() for record in read_journal(run_dir / JOURNAL_FILE, lenient=True)]


@pytest.fixture
def killable_toxiproxy() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A toxiproxy-server this test may kill."""
    binary = toxiproxy_binary()
    require(binary is not None, "toxiproxy-server", "run scripts/bootstrap")
    port = free_port()
    proc = subprocess.Popen([str(binary), "-host", "127.0.0.1", "-port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/version")
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


@pytest.mark.slow
def test_toxiproxy_killed_mid_drill_aborts_with_exit_3(
    tmp_path: Path, killable_toxiproxy: tuple[str, subprocess.Popen[bytes]]
) -> None:
    url, toxiproxy = killable_toxiproxy
    with serve_in_thread(own_service()) as service, ToxiproxyClient(url) as client:
        port = free_port()
        client.create_proxy("svc-a", f"127.0.0.1:{port}", service.removeprefix("http://"))
        scenario = tmp_path / "s.yaml"
        scenario.write_text(
            "apiVersion: drill/v1\nkind: Scenario\nname: toxiproxy-dies\n"
            f"toxiproxy: {{url: {url}}}\n"
            f"load: {{host: 'http://127.0.0.1:{port}', users: 1, pace_hz: {SUITE_PACE_HZ}, probe_rate_hz: 10, timeout_s: 1,"
            " request: {method: POST, path: /v1/chat/completions, json: {model: chat}}}\n"
            "phases: {baseline: 1s, fault: 20s, recovery: 1s}\n"
            "faults:\n  - {name: a-slow, type: latency, target: {proxy: svc-a}, latency_ms: 50}\n",
            encoding="utf-8")
        run_dir = tmp_path / "run"
        proc = start_drill(scenario, run_dir)
        try:
            wait_event(proc, run_dir, "fault.applied")
            toxiproxy.send_signal(signal.SIGKILL)
            code = proc.wait(timeout=EXIT_TIMEOUT_S)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert code == EXIT_ABORTED, tail(run_dir)
    records = events(run_dir)
    assert any(r["event"] == "dependency.lost" and r.get("what") == "toxiproxy" for r in records)
    aborted = [r for r in records if r["event"] == "run.aborted"]
    assert aborted and "Toxiproxy" in aborted[0]["reason"]
    # The revert was attempted and its failure journaled, not glossed over.
    assert any(r["event"] == "fault.revert_failed" for r in records)
    results = json.loads((run_dir / "results.json").read_text())
    assert results["verdict"] == "aborted" and results["cleanup"]["ok"] is False
    # Still registered: `drill recover --all` will come back for it.
    assert str(run_dir.resolve()) in [e["run_dir"] for e in registered_runs()]


def compose_latency_scenario(path: Path, runtime: Any, ports: dict[str, int]) -> Path:
    path.write_text(textwrap.dedent(f"""\
        apiVersion: drill/v1
        kind: Scenario
        name: member-dies
        stack: {{runtime: compose, file: {runtime.file}, project: {runtime.project}}}
        load:
          host: http://127.0.0.1:{ports['gateway']}
          users: 2
          pace_hz: {SUITE_PACE_HZ}
          request: {{method: POST, path: /v1/chat/completions, json: {{model: chat, messages: [{{role: user, content: hi}}]}}}}
          timeout_s: 5
          probe_rate_hz: 20
        phases: {{baseline: 1s, fault: 20s, recovery: 1s}}
        faults:
          - {{name: gpu-slow, type: latency, target: {{proxy: gpu-a1}}, latency_ms: 100}}
        """))
    return path


@pytest.mark.docker
@pytest.mark.slow
def test_a_stack_container_dying_on_its_own_aborts_with_exit_3(tmp_path: Path, staging_stack: Any) -> None:
    runtime, ports = staging_stack
    run_dir = tmp_path / "run"
    proc = start_drill(compose_latency_scenario(tmp_path / "s.yaml", runtime, ports), run_dir, compose_env(ports))
    victim = runtime.containers("cpu-fallback")[0]
    try:
        wait_event(proc, run_dir, "fault.applied")
        victim.kill()  # not a drill fault: the member dies on its own
        code = proc.wait(timeout=EXIT_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        victim.start()
        runtime.wait_healthy(["cpu-fallback"], 120)
    assert code == EXIT_ABORTED, tail(run_dir)
    records = events(run_dir)
    lost = [r for r in records if r["event"] == "dependency.lost"]
    assert lost and any("cpu-fallback" in m for m in lost[0]["members"])
    reverted = [r for r in records if r["event"] == "fault.reverted"]
    assert reverted and reverted[0]["why"] == "rollback"
    assert json.loads((run_dir / "results.json").read_text())["verdict"] == "aborted"
    assert compose_problems(runtime, run_dir) == []
