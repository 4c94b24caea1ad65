"""The compose runtime and the endpoint_kill fault against a real Docker engine.

A tiny compose project (compose/testing/tiny.yaml: a one-file HTTP server on the offline base
image) is brought up once per module under a unique project name, so parallel runs do not meet.
Under CI=true a missing engine or base image is made with scripts/docker-setup; elsewhere the
tests skip with that advice.
"""

from __future__ import annotations

import functools
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import httpx
import pytest

import harness.faults.container as container_module
from harness.errors import DrillError, FaultError, ScenarioError
from harness.faults.base import Fault
from harness.faults.container import container_fault, stopped_stack_containers, undo_container
from harness.rundir.undo import ContainerUndo
from harness.runtime.compose import (
    PROJECT_LABEL,
    ComposeRuntime,
    compose_command,
    docker_client,
    docker_host_is_local,
    run_compose,
)
from harness.testing import REPO, require, under_ci

pytestmark = pytest.mark.docker

TINY_FILE = REPO / "compose/testing/tiny.yaml"
BASE_IMAGE = os.environ.get("DRILL_TEST_IMAGE", "drill-base:bookworm")  # what tiny.yaml runs
SETUP_HOW = "run scripts/docker-setup"


@functools.lru_cache(maxsize=1)
def docker_ready() -> bool:
    """True when the engine answers and the offline base image exists; under CI=true, makes them."""
    if _engine_and_base():
        return True
    if under_ci():
        subprocess.run([str(REPO / "scripts/docker-setup")], check=False, timeout=1800)
        return _engine_and_base()
    return False


def _engine_and_base() -> bool:
    try:
        docker_client().images.get(BASE_IMAGE)
    except (DrillError, docker.errors.DockerException):
        return False
    return True


def unique_project(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ComposeRuntime, dict[str, dict[str, str]]]]:
    """The tiny project, up and healthy, with its published endpoints; removed afterwards."""
    require(docker_ready(), f"Docker engine with the {BASE_IMAGE} image", SETUP_HOW)
    runtime = ComposeRuntime(TINY_FILE, unique_project("drill-test"), tmp_path_factory.mktemp("tiny-logs"))
    try:
        endpoints = runtime.up(wait_s=90)
        yield runtime, endpoints
    finally:
        runtime.down()


def wait_answers(url: str, timeout_s: float = 30.0) -> httpx.Response:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return httpx.get(url, timeout=1.0)
        except httpx.HTTPError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.1)


def states(runtime: ComposeRuntime) -> dict[str, tuple[str, str]]:
    return {s.service: (s.state, s.health) for s in runtime.status()}


# --- pure logic ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("docker_host", "local"),
    [
        (None, True),
        ("", True),
        ("unix:///var/run/docker.sock", True),
        ("tcp://127.0.0.1:2375", True),
        ("tcp://localhost:2376", True),
        ("tcp://[::1]:2375", True),
        ("tcp://192.0.2.5:2375", False),
        ("ssh://ops@build-host", False),
        ("tcp://docker.example.com:2376", False),
    ],
)
def test_docker_host_locality(docker_host: str | None, local: bool) -> None:
    assert docker_host_is_local(docker_host) is local


def test_remote_docker_host_is_refused_unless_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "tcp://192.0.2.5:2375")
    with pytest.raises(ScenarioError, match="not a local engine"):
        docker_client()
    with pytest.raises(ScenarioError):
        ComposeRuntime(TINY_FILE, "drill-never", Path("/tmp")).status()


def test_bad_mode_and_empty_selector_are_refused_without_docker() -> None:
    with pytest.raises(ScenarioError, match="mode"):
        container_fault("f", "explode", "web", {}, 1, "p", client=object())  # type: ignore[arg-type]
    with pytest.raises(ScenarioError, match="max_targets"):
        container_fault("f", "kill", "web", {}, 0, "p", client=object())  # type: ignore[arg-type]
    with pytest.raises(ScenarioError, match="service, labels"):
        container_fault("f", "kill", "", {}, 1, "p", client=object())  # type: ignore[arg-type]


# --- the compose CLI ----------------------------------------------------------------------


def test_compose_command_is_one_that_works() -> None:
    require(docker_ready(), "Docker engine", SETUP_HOW)
    command = compose_command()
    assert command in (("docker", "compose"), ("docker-compose",))
    done = subprocess.run([*command, "version"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    # the runner passes project and file through: `config --services` lists the tiny services
    listed = run_compose("drill-never-started", TINY_FILE, ["config", "--services"])
    assert sorted(listed.split()) == ["twin-a", "twin-b", "web"]


def test_missing_image_is_refused_before_anything_starts(tmp_path: Path) -> None:
    require(docker_ready(), "Docker engine", SETUP_HOW)
    compose_file = tmp_path / "missing.yaml"
    compose_file.write_text("services:\n  ghost:\n    image: drill-does-not-exist:never\n")
    runtime = ComposeRuntime(compose_file, unique_project("drill-test-missing"), tmp_path)
    with pytest.raises(ScenarioError, match="scripts/docker-setup"):
        runtime.up(wait_s=10)
    assert runtime.status() == []


def test_public_port_is_refused_before_anything_starts(tmp_path: Path) -> None:
    require(docker_ready(), "Docker engine", SETUP_HOW)
    compose_file = tmp_path / "public.yaml"
    compose_file.write_text(f"services:\n  open:\n    image: {BASE_IMAGE}\n    ports: ['8000:8000']\n")
    runtime = ComposeRuntime(compose_file, unique_project("drill-test-public"), tmp_path)
    with pytest.raises(ScenarioError, match="beyond loopback"):
        runtime.up(wait_s=10)
    assert runtime.status() == []


# --- the runtime ----------------------------------------------------------------------------


def test_up_publishes_on_loopback_and_every_service_is_healthy(tiny) -> None:
    runtime, endpoints = tiny
    assert set(endpoints) == {"web"}
    address = endpoints["web"]["8000/tcp"]
    assert address.startswith("127.0.0.1:")
    assert wait_answers(f"http://{address}/health").status_code == 200
    assert states(runtime) == {name: ("running", "healthy") for name in ("web", "twin-a", "twin-b")}


def test_find_by_service_and_labels(tiny) -> None:
    runtime, _ = tiny
    assert [c.labels["drill.service"] for c in runtime.containers("web")] == ["web"]
    assert sorted(c.labels["drill.service"] for c in runtime.containers(labels={"drill.role": "twin"})) == ["twin-a", "twin-b"]
    assert runtime.containers("web", {"drill.role": "twin"}) == []
    (web,) = runtime.find("web")  # the same selection as the Runtime protocol's Target
    assert (web.kind, web.service, web.state, web.healthy, web.scope) == ("container", "web", "running", True,
                                                                         runtime.project)
    assert web.uid == runtime.containers("web")[0].id


def test_fingerprint_names_file_images_and_versions(tiny) -> None:
    runtime, _ = tiny
    fingerprint = runtime.fingerprint().details
    assert len(fingerprint["compose_file_sha256"]) == 64
    base_id = runtime.client.images.get(BASE_IMAGE).id
    assert fingerprint["images"] == {"web": base_id, "twin-a": base_id, "twin-b": base_id}
    assert fingerprint["engine_version"] not in ("", "unknown")
    assert fingerprint["compose_version"][0].isdigit()
    assert runtime.fingerprint().tools["docker_engine"] == fingerprint["engine_version"]


# --- the endpoint_kill fault ----------------------------------------------------------------


@pytest.mark.parametrize(("mode", "event", "source", "stopped_state"), [
    ("kill", "die", "docker-state:finished-at", "exited"),
    ("stop", "die", "docker-state:finished-at", "exited"),
    ("pause", "pause", "docker-event:pause", "paused"),
], ids=["kill", "stop", "pause"])
def test_endpoint_kill_onset_from_the_engines_record_and_revert(
    tiny, mode: str, event: str, source: str, stopped_state: str
) -> None:
    """The stated onset window opens with the API call and closes at the exit containerd stamped
    (kill, stop) or the pause event, never after the engine's event."""
    runtime, _ = tiny
    fault = container_fault(f"web-{mode}", mode, "web", {}, 1, runtime.project)
    assert isinstance(fault, Fault)
    undo = fault.describe()["undo"]
    web = runtime.containers("web")[0]
    assert undo.document() == {"kind": "container", "container_ids": [web.id], "container_names": [web.name], "mode": mode}

    before_s = time.time()
    onset = fault.apply()
    after_s = time.time()
    events_ns = [e["timeNano"] for e in runtime.client.events(
        since=int(before_s), until=int(time.time()) + 1, decode=True,
        filters={"type": "container", "event": [event], "container": [web.id]},
    ) if e["timeNano"] >= before_s * 1e9]
    stopped = states(runtime)["web"][0]
    left = [c["name"] for c in stopped_stack_containers(runtime.project)]
    twin = states(runtime)["twin-a"][0]
    reverted_s = fault.revert()  # first: a failed check below must not leave web stopped for the next test

    assert onset.source == source
    # The window's ends, to the microsecond (the middle and half-width are floats of epoch seconds).
    opened_s, closed_s = onset.at - onset.uncertainty_s, onset.at + onset.uncertainty_s
    assert before_s - 1e-6 <= opened_s < closed_s <= after_s + 1e-6, (before_s, onset, after_s)
    assert len(events_ns) == 1 and closed_s <= events_ns[0] / 1e9 + 1e-6, (closed_s, events_ns)
    assert stopped == stopped_state
    assert left == [web.name]
    assert twin == "running"  # the other services were not touched

    assert reverted_s >= onset.at
    assert states(runtime)["web"] == ("running", "healthy")
    # a restarted container gets a new ephemeral host port: ask the runtime again
    assert wait_answers(f"http://{runtime.endpoints()['web']['8000/tcp']}/health").status_code == 200
    assert stopped_stack_containers(runtime.project) == []
    fault.revert()  # idempotent
    assert states(runtime)["web"] == ("running", "healthy")


def test_no_event_falls_back_to_the_api_bracket(tiny, monkeypatch: pytest.MonkeyPatch) -> None:
    """An onset is still reported when the event never comes (here: watching for the wrong action)."""
    runtime, _ = tiny
    monkeypatch.setitem(container_module._EVENT_FOR_MODE, "pause", "destroy")
    fault = container_fault("web-pause-no-event", "pause", "web", {}, 1, runtime.project)
    fault.event_wait_s = 0.5  # type: ignore[attr-defined]
    try:
        before_s = time.time()
        onset = fault.apply()
        after_s = time.time()
    finally:
        fault.revert()
    assert onset.source == "docker-api"
    assert before_s <= onset.at - onset.uncertainty_s <= onset.at + onset.uncertainty_s <= after_s
    assert states(runtime)["web"] == ("running", "healthy")


@pytest.mark.parametrize(
    ("service", "labels", "max_targets", "message"),
    [
        ("nope", {}, 1, "matches no running container"),
        ("", {"drill.role": "twin"}, 1, "matches 2 containers"),
        ("web", {"drill.role": "twin"}, 1, "matches no running container"),
    ],
)
def test_selector_refused_before_anything_is_applied(tiny, service: str, labels: dict[str, str], max_targets: int, message: str) -> None:
    runtime, _ = tiny
    before = states(runtime)
    fault = container_fault("bad-selector", "kill", service, labels, max_targets, runtime.project)
    with pytest.raises(ScenarioError, match=message) as refused:
        fault.apply()
    assert refused.value.exit_code == 2
    if "matches 2" in message:
        assert "twin-a" in str(refused.value) and "twin-b" in str(refused.value)
    assert states(runtime) == before


def test_two_targets_allowed_when_max_targets_says_so(tiny) -> None:
    runtime, _ = tiny
    fault = container_fault("twins-kill", "kill", "", {"drill.role": "twin"}, 2, runtime.project)
    try:
        onset = fault.apply()
        assert onset.source == "docker-state:finished-at"
        assert sorted(c["service"] for c in stopped_stack_containers(runtime.project)) == ["twin-a", "twin-b"]
    finally:
        fault.revert()
    assert states(runtime)["twin-a"] == ("running", "healthy")
    assert states(runtime)["twin-b"] == ("running", "healthy")


def test_undo_record_restores_after_a_crashed_run(tiny) -> None:
    runtime, _ = tiny
    fault = container_fault("crashed-run", "kill", "twin-a", {}, 1, runtime.project)
    undo = fault.describe()["undo"]
    fault.apply()
    # the run "crashed": a new process has only the journaled undo record
    done = undo_container(undo)
    assert done == [f"started {runtime.containers('twin-a')[0].name}"]
    assert states(runtime)["twin-a"] == ("running", "healthy")


def test_revert_of_a_removed_container_says_what_to_do() -> None:
    require(docker_ready(), "Docker engine", SETUP_HOW)
    with pytest.raises(FaultError, match="drill stack up"):
        undo_container(ContainerUndo(container_ids=["0" * 64], mode="kill"))


# --- down -----------------------------------------------------------------------------------


def test_down_leaves_no_containers_or_networks(tmp_path: Path) -> None:
    require(docker_ready(), f"Docker engine with the {BASE_IMAGE} image", SETUP_HOW)
    runtime = ComposeRuntime(TINY_FILE, unique_project("drill-test-down"), tmp_path)
    runtime.up(wait_s=90)
    label = {"label": f"{PROJECT_LABEL}={runtime.project}"}
    assert len(runtime.client.containers.list(all=True, filters=label)) == 3
    # a stopped container must not survive down either
    container_fault("stop-before-down", "stop", "twin-b", {}, 1, runtime.project).apply()
    runtime.down()
    assert runtime.client.containers.list(all=True, filters=label) == []
    assert runtime.client.networks.list(filters=label) == []
    assert (tmp_path / "compose.log").read_text().count("down -v --remove-orphans") == 1
