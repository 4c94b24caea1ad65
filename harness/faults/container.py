"""The ``endpoint_kill`` fault: kill, stop or pause the containers of a compose service.

Targets are chosen by compose service name plus labels within one compose project, and resolved
once — before anything is applied. A selector that matches no running container, or more than
``max_targets``, is refused with ScenarioError (exit 2) naming what it matched.

Onset is an interval: it opens when drill sends the API call and closes at the first instant the
engine records the fault as done, and ``Onset`` states its middle and half-width (:func:`onset`).
For kill and stop that instant is the container's exit as containerd stamped it (``State.
FinishedAt``, source ``docker-state:finished-at``), read once the ``die`` event arrived; for pause
it is the ``pause`` event. The ``die`` event itself comes 16–50 ms after the exit (median 19 ms;
docker 20.10, 20 kills of the compose stack's hosted-model, ``bench/fault_latency.py --docker``):
dockerd logs it after deleting the task and draining the container's output, so it is not when
the process died. The event stream is opened *before* the action so the event cannot be missed;
when no event arrives in time the API call's own bracket is used (source ``docker-api``).

Revert starts (or unpauses) the same containers and waits until they run — and are healthy when
they have a healthcheck. ``undo_container`` does the same from a journaled ``undo`` record, for
``drill recover`` after a crash.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import datetime
from typing import get_args

import docker
import docker.errors
from docker.models.containers import Container
from pydantic import JsonValue

from harness.errors import FaultError, ScenarioError
from harness.faults.base import Fault, FaultDescription, Onset
from harness.rundir.undo import ContainerUndo
from harness.runtime.compose import (
    SERVICE_LABEL,
    container_health,
    container_ready,
    docker_client,
    find_containers,
    name_of,
)
from harness.scenario.fault_specs import EndpointKillMode

# The spec model holds the rule; the check in ContainerFault is for callers that build one directly.
MODES: tuple[str, ...] = get_args(EndpointKillMode)
_EVENT_FOR_MODE = {"kill": "die", "stop": "die", "pause": "pause"}
_POLL_INTERVAL_S = 0.2


class _EventWatcher:
    """Reads container events of one action for some container ids, in a thread.

    The stream is opened in the constructor — before the caller acts — and replays from
    ``since_s`` so nothing between opening and acting is lost.
    """

    def __init__(self, client: docker.DockerClient, container_ids: list[str], action: str, since_s: float) -> None:
        self._ids = set(container_ids)
        self._since_ns = int(since_s * 1e9)
        self.times_ns: dict[str, int] = {}
        self._all_seen = threading.Event()
        # `since` is whole seconds in the API; older events are dropped by timeNano below.
        self._stream = client.events(
            decode=True,
            since=int(since_s),
            filters={"type": "container", "event": [action], "container": sorted(self._ids)},
        )
        self._thread = threading.Thread(target=self._read, name="docker-events", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for event in self._stream:
                time_ns = int(event.get("timeNano", 0))
                container_id = event.get("id") or event.get("Actor", {}).get("ID", "")
                if time_ns < self._since_ns or container_id not in self._ids:
                    continue
                self.times_ns.setdefault(container_id, time_ns)
                if len(self.times_ns) == len(self._ids):
                    self._all_seen.set()
                    return
        except Exception:  # noqa: BLE001 - closing the stream from wait() ends the read this way
            return

    def wait(self, timeout_s: float) -> dict[str, int]:
        """Wait until every container's event arrived or ``timeout_s``; close the stream."""
        self._all_seen.wait(timeout_s)
        self.close()
        return dict(self.times_ns)

    def close(self) -> None:
        try:
            self._stream.close()
        except Exception:  # noqa: BLE001 - already closed or the engine went away: nothing to free
            pass
        self._thread.join(timeout=2.0)


def onset(started_s: float, finished_s: float, action: str, event_s: float | None, exited_s: float | None) -> Onset:
    """The onset of a container fault whose API call ran from ``started_s`` to ``finished_s``.

    The fault took effect after the call began and no later than the first of: the exit containerd
    stamped (``exited_s``, kill and stop), the engine's event (``event_s``), or, with neither, the
    call's return. A time that falls before the call began (another clock's, or a stale record) is
    not used. The onset is that interval's middle, its uncertainty the half-width."""
    candidates = [(exited_s, "docker-state:finished-at"), (event_s, f"docker-event:{action}")]
    closed_s, source = next(((t, name) for t, name in candidates if t is not None and t >= started_s),
                            (finished_s, "docker-api"))
    half_width_s = (closed_s - started_s) / 2
    return Onset(at=started_s + half_width_s, source=source, uncertainty_s=half_width_s)


class ContainerFault:
    """``endpoint_kill`` on containers of ``service`` in compose ``project`` (see module docstring).

    Use :func:`container_fault` to build one. ``stop_timeout_s`` is the grace period of mode
    ``stop``; ``event_wait_s`` how long to wait for the Docker event before falling back to the
    API bracket; ``revert_wait_s`` how long revert waits for running (and healthy).
    """

    type = "endpoint_kill"

    def __init__(
        self,
        name: str,
        mode: str,
        service: str,
        labels: dict[str, str],
        max_targets: int,
        project: str,
        client: docker.DockerClient | None = None,
        *,
        stop_timeout_s: float = 10.0,
        event_wait_s: float = 5.0,
        revert_wait_s: float = 90.0,
    ) -> None:
        if mode not in MODES:
            raise ScenarioError(f"fault {name}: mode {mode!r} is not one of {', '.join(MODES)}")
        if max_targets < 1:
            raise ScenarioError(f"fault {name}: max_targets must be at least 1 (got {max_targets})")
        if not service and not labels:
            raise ScenarioError(f"fault {name}: target needs a service, labels or both")
        self.name = name
        self.mode = mode
        self.service = service
        self.labels = dict(labels)
        self.max_targets = max_targets
        self.project = project
        self.stop_timeout_s = stop_timeout_s
        self.event_wait_s = event_wait_s
        self.revert_wait_s = revert_wait_s
        self._client = client
        self._targets: list[Container] | None = None

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            self._client = docker_client()
        return self._client

    # -- selection ------------------------------------------------------------------------

    def _selector_text(self) -> str:
        parts = [f"project={self.project}"]
        if self.service:
            parts.append(f"service={self.service}")
        parts += [f"{key}={value}" for key, value in sorted(self.labels.items())]
        return " ".join(parts)

    def targets(self) -> list[Container]:
        """The running containers this fault acts on, resolved once.

        Raises ScenarioError, before anything is applied, when no running container matches or
        more than ``max_targets`` do.
        """
        if self._targets is not None:
            return self._targets
        matched = find_containers(self.client, self.project, self.service or None, self.labels)
        running = [c for c in matched if c.status == "running"]
        if not running:
            others = ", ".join(f"{c.name} ({c.status})" for c in matched) or "nothing"
            raise ScenarioError(
                f"fault {self.name}: target {self._selector_text()} matches no running container "
                f"(matched: {others}); is the stack up (drill stack status), or left stopped by an "
                "earlier run (drill recover)?"
            )
        if len(running) > self.max_targets:
            names = ", ".join(name_of(c) for c in running)
            raise ScenarioError(
                f"fault {self.name}: target {self._selector_text()} matches {len(running)} containers "
                f"({names}) but max_targets is {self.max_targets}; narrow the labels or raise max_targets"
            )
        self._targets = running
        return running

    # -- the Fault protocol ---------------------------------------------------------------

    def describe(self) -> FaultDescription:
        targets = self.targets()
        return {
            "targets": [str(c.name) for c in targets],
            "params": {
                "mode": self.mode,
                "service": self.service,
                "labels": dict[str, JsonValue](self.labels),
                "max_targets": self.max_targets,
                "project": self.project,
            },
            "undo": ContainerUndo(
                container_ids=[str(c.id) for c in targets], container_names=[str(c.name) for c in targets],
                mode=self.mode,
            ),
        }

    def apply(self) -> Onset:
        targets = self.targets()
        action = _EVENT_FOR_MODE[self.mode]
        started_s = time.time()
        try:
            watcher = _EventWatcher(self.client, [c.id or "" for c in targets], action, since_s=started_s)
        except docker.errors.DockerException as exc:
            raise FaultError(
                f"fault {self.name}: cannot open the Docker event stream: {exc}", target=self.service
            ) from exc
        try:
            for container in targets:
                self._act(container)
        except docker.errors.DockerException as exc:
            watcher.close()
            raise FaultError(
                f"fault {self.name}: docker {self.mode} of {container.name} failed: {exc}", target=container.name
            ) from exc
        finished_s = time.time()
        times_ns = watcher.wait(self.event_wait_s)
        event_s = min(times_ns.values()) / 1e9 if times_ns else None
        exited_s = self._first_exit_s(targets) if times_ns and action == "die" else None
        return onset(started_s, finished_s, action, event_s, exited_s)

    def _first_exit_s(self, targets: list[Container]) -> float | None:
        """The earliest ``State.FinishedAt`` of the targets (epoch s), or None if unreadable."""
        exits: list[float] = []
        for container in targets:
            try:
                container.reload()
                exits.append(datetime.fromisoformat(container.attrs["State"]["FinishedAt"]).timestamp())
            except (docker.errors.DockerException, KeyError, TypeError, ValueError):
                continue
        return min(exits, default=None)

    def _act(self, container: Container) -> None:
        if self.mode == "kill":
            container.kill(signal="SIGKILL")
        elif self.mode == "stop":
            container.stop(timeout=int(round(self.stop_timeout_s)))
        else:
            container.pause()

    def revert(self) -> float:
        """Start / unpause the targets and wait until they run (and are healthy). Idempotent."""
        if self._targets is None:
            return time.time()  # never resolved, so never applied
        ids = [c.id or "" for c in self._targets]
        try:
            reverted_s, _ = _restore(self.client, ids, self.revert_wait_s)
        except docker.errors.DockerException as exc:
            raise FaultError(f"fault {self.name}: revert failed: {exc}", target=self.service) from exc
        return reverted_s

    def verify(self) -> list[str]:
        """After revert, every target runs again (not exited, not paused), as the Docker engine
        reports it. Health is the revert's own wait; a member unhealthy later is the stack's."""
        if self._targets is None:
            return []
        problems: list[str] = []
        for container in self._targets:
            try:
                container.reload()
            except docker.errors.NotFound:
                problems.append(f"container {name_of(container)} no longer exists")
                continue
            if container.status != "running":
                problems.append(f"container {name_of(container)} is {container.status} after the revert")
        return problems


def container_fault(
    name: str,
    mode: str,
    service: str,
    labels: dict[str, str] | None,
    max_targets: int,
    project: str,
    client: docker.DockerClient | None = None,
) -> Fault:
    """Build an ``endpoint_kill`` fault. Targets are resolved (and refused) at the first
    ``describe()`` or ``apply()``, or explicitly with ``.targets()``."""
    return ContainerFault(name, mode, service, labels or {}, max_targets, project, client)


# --- recovery -----------------------------------------------------------------------------


def _restore(client: docker.DockerClient, container_ids: list[str], wait_s: float) -> tuple[float, list[str]]:
    """Unpause or start each container, then wait until all are ready.

    Returns (epoch time the last start/unpause returned, what was done per container).
    Raises FaultError when a container is gone or not ready within ``wait_s``.
    """
    done: list[str] = []
    containers: list[Container] = []
    for container_id in container_ids:
        try:
            container = client.containers.get(container_id)
        except docker.errors.NotFound as exc:
            raise FaultError(
                f"container {container_id[:12]} no longer exists; recreate the stack (drill stack up)",
                target=container_id,
            ) from exc
        if container.status == "paused":
            container.unpause()
            done.append(f"unpaused {container.name}")
        elif container.status != "running":
            container.start()
            done.append(f"started {container.name}")
        else:
            done.append(f"{container.name} already running")
        containers.append(container)
    reverted_s = time.time()
    deadline = time.monotonic() + wait_s
    for container in containers:
        _wait_ready(container, deadline, wait_s)
    return reverted_s, done


def _wait_ready(container: Container, deadline: float, wait_s: float) -> None:
    while True:
        container.reload()
        if container_ready(container):
            return
        if container.status in ("exited", "dead"):
            tail = container.logs(tail=20).decode(errors="replace")
            raise FaultError(
                f"container {container.name} exited again after revert (code "
                f"{container.attrs['State'].get('ExitCode')}); last log lines:\n{tail}",
                target=container.name,
            )
        if time.monotonic() >= deadline:
            raise FaultError(
                f"container {container.name} not ready {wait_s:.0f}s after revert "
                f"(state {container.status}, health {container_health(container)})",
                target=container.name,
            )
        time.sleep(_POLL_INTERVAL_S)


def undo_container(undo: ContainerUndo, client: docker.DockerClient | None = None, wait_s: float = 90.0) -> list[str]:
    """Revert a journaled ``endpoint_kill`` from its ``undo`` record (``drill recover``).

    Returns what was done, one line per container. Raises FaultError when a container is gone
    or does not come back within ``wait_s``.
    """
    _, done = _restore(client or docker_client(), list(undo.container_ids), wait_s)
    return done


def stopped_stack_containers(project: str, client: docker.DockerClient | None = None) -> list[dict[str, str]]:
    """Containers of compose ``project`` that are not running: exited, dead, created or paused.

    Each as ``{"id", "name", "service", "state"}`` — what ``drill recover --force`` and
    ``drill stack status`` show.
    """
    client = client or docker_client()
    return [
        {"id": c.id or "", "name": name_of(c), "service": c.labels.get(SERVICE_LABEL, "?"), "state": c.status}
        for c in _not_running(find_containers(client, project))
    ]


def _not_running(containers: list[Container]) -> Iterator[Container]:
    return (c for c in containers if c.status != "running")
