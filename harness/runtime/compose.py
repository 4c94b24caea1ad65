"""The ``compose`` runtime: a docker compose project driven by the compose CLI and the Docker SDK.

The compose CLI does what only it knows (``up``, ``down``, ``config``); everything the harness
observes — containers, health, published ports, image ids — comes from the Docker Engine API
through the docker SDK, filtered on the labels compose itself sets
(``com.docker.compose.project``, ``com.docker.compose.service``).

Images are not built here: ``scripts/docker-setup`` builds them, and ``up`` refuses to start
when one is missing rather than letting compose try a registry.

    runtime = ComposeRuntime(Path("compose/staging.yaml"), "drill-staging", Path("logs"))
    endpoints = runtime.up(wait_s=120)     # {"gateway": {"8080/tcp": "127.0.0.1:8080"}, ...}
    runtime.status(); runtime.fingerprint()
    runtime.down()                         # nothing of the project is left
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import shutil
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors
import yaml
from docker.models.containers import Container

from harness.errors import ScenarioError, StackError
from harness.runtime.base import Fingerprint, JsonValue, RuntimeKind, Target
from harness.runtime.dockerhost import docker_host_is_local
from harness.runtime.ports import published_ports, refuse_busy_ports

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
ONEOFF_LABEL = "com.docker.compose.oneoff"

HTTP_FAULT_PROXY_SERVICE = "http-fault-proxy"
HTTP_FAULT_PROXY_PORT = 19101  # its hosted-model route inside the network (compose/staging.yaml)

_COMPOSE_TIMEOUT_S = 300.0
# A compose port mapping "[HOST_IP:]HOST_PORT:CONTAINER_PORT" whose host port may be "${VAR:-default}".
_PUBLISHED_PORT = re.compile(r"^(?:[\d.]+:)?(?:\$\{(\w+):-(\d+)\}|(\d+)):(\d+)(?:/tcp)?$")
_POLL_INTERVAL_S = 0.25


# --- the Docker client --------------------------------------------------------------------------


def docker_client(allow_remote: bool = False) -> docker.DockerClient:
    """A docker SDK client from the environment (API version negotiated with the engine).

    Refuses a DOCKER_HOST that is not local (ScenarioError, nothing touched) unless
    ``allow_remote``: drills kill containers, so pointing one at a shared engine by accident
    must not be possible. Raises StackError when the engine does not answer.
    """
    docker_host = os.environ.get("DOCKER_HOST")
    if not allow_remote and not docker_host_is_local(docker_host):
        raise ScenarioError(
            f"DOCKER_HOST={docker_host} is not a local engine; drill only acts on a local Docker "
            "engine (unix:// or 127.0.0.1). Unset DOCKER_HOST, or allow a remote engine explicitly."
        )
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        raise StackError(
            f"the Docker engine does not answer ({exc}); run scripts/docker-setup to install and start it"
        ) from exc
    return client


# --- the compose CLI ----------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def compose_command() -> tuple[str, ...]:
    """The compose CLI to use: ``docker compose`` (v2 plugin) when it works, else ``docker-compose`` (v1).

    Raises StackError when neither is installed.
    """
    if shutil.which("docker"):
        probe = subprocess.run(
            ["docker", "compose", "version"], capture_output=True, text=True, timeout=30
        )
        if probe.returncode == 0:
            return ("docker", "compose")
    if shutil.which("docker-compose"):
        return ("docker-compose",)
    raise StackError(
        "neither `docker compose` (v2) nor `docker-compose` (v1) is installed; run scripts/docker-setup"
    )


def run_compose(
    project: str,
    file: Path,
    args: list[str],
    *,
    log_path: Path | None = None,
    timeout_s: float = _COMPOSE_TIMEOUT_S,
) -> str:
    """Run ``compose -p PROJECT -f FILE ARGS...``; return its stdout.

    The command and its output are appended to ``log_path`` when given. Raises StackError with
    the tail of stderr when compose fails or runs past ``timeout_s``.
    """
    argv = [*compose_command(), "-p", project, "-f", str(file), *args]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        raise StackError(f"`{' '.join(argv)}` did not finish within {timeout_s:.0f}s") from exc
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "a", encoding="utf-8") as fh:
            fh.write(f"$ {' '.join(argv)}  # exit {done.returncode}\n{done.stdout}{done.stderr}\n")
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:])
        raise StackError(f"`{' '.join(argv)}` failed (exit {done.returncode}):\n{tail}")
    return done.stdout


# --- the runtime --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceStatus:
    """One container of a compose service, as the engine reports it."""

    service: str
    container: str
    container_id: str
    state: str  # created | running | paused | restarting | exited | dead
    health: str  # healthy | unhealthy | starting | none (no healthcheck)

    def as_dict(self) -> dict[str, str]:
        return {
            "service": self.service,
            "container": self.container,
            "container_id": self.container_id,
            "state": self.state,
            "health": self.health,
        }


def container_health(container: Container) -> str:
    """``healthy``/``unhealthy``/``starting``, or ``none`` when the container has no healthcheck."""
    health = container.attrs.get("State", {}).get("Health")
    return str(health.get("Status", "none")) if health else "none"


def container_ready(container: Container) -> bool:
    """Running, not paused, and healthy when it has a healthcheck."""
    state = container.attrs.get("State", {})
    return bool(state.get("Running")) and not state.get("Paused") and container_health(container) in ("healthy", "none")


class ComposeRuntime:
    """A compose project on the local Docker engine.

    ``file`` is the compose file, ``project`` the compose project name, ``log_dir`` where the
    compose CLI's output and the logs of services that failed to start are written.
    ``allow_remote_docker`` lifts the refusal of a non-local DOCKER_HOST.
    """

    kind: RuntimeKind = "compose"

    def __init__(
        self,
        file: Path,
        project: str,
        log_dir: Path,
        *,
        allow_remote_docker: bool = False,
        client: docker.DockerClient | None = None,
        fresh: bool = False,
    ) -> None:
        self.file = Path(file)
        self.fresh = fresh
        self.project = project
        self.log_dir = Path(log_dir)
        self._allow_remote = allow_remote_docker
        self._client = client
        if not self.file.is_file():
            raise ScenarioError(f"compose file {self.file} does not exist; check stack.file in the scenario")

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            self._client = docker_client(self._allow_remote)
        return self._client

    def compose(self, *args: str, timeout_s: float = _COMPOSE_TIMEOUT_S) -> str:
        """Run a compose subcommand on this project; output is logged to ``log_dir/compose.log``."""
        _ = self.client  # refuse a remote engine before the CLI touches it
        return run_compose(
            self.project, self.file, list(args), log_path=self.log_dir / "compose.log", timeout_s=timeout_s
        )

    def config(self) -> dict[str, Any]:
        """The compose file as compose resolves it (ScenarioError when compose rejects the file)."""
        try:
            text = self.compose("config")
        except StackError as exc:
            raise ScenarioError(f"compose rejects {self.file}: {exc}") from exc
        loaded = yaml.safe_load(text) or {}
        if not isinstance(loaded, dict) or not loaded.get("services"):
            raise ScenarioError(f"compose file {self.file} declares no services")
        return loaded

    def services(self) -> list[str]:
        return sorted(self.config()["services"])

    # -- lifecycle --------------------------------------------------------------------------

    def up(self, wait_s: float = 120.0) -> dict[str, dict[str, str]]:
        """Start the project (images must exist) and wait until every service is running and healthy.

        Returns the published endpoints: ``{service: {"8080/tcp": "127.0.0.1:8080"}}``.
        Raises ScenarioError for a missing image or a port published beyond loopback (nothing
        started), StackError when a service exits or is not healthy within ``wait_s`` (its
        logs are saved in ``log_dir``).
        """
        config = self.config()
        self._check_images(config)
        self._check_ports_local(config)
        refuse_busy_ports(
            published_ports(config), f"compose project {self.project}", self.file, own_project=self.project
        )
        self.compose("up", "-d", "--no-build", "--remove-orphans")
        self.wait_healthy(sorted(config["services"]), wait_s)
        return self.endpoints()

    def wait_healthy(self, services: list[str], wait_s: float) -> None:
        """Poll the engine until each service has a ready container; fail fast when one exits."""
        deadline = time.monotonic() + wait_s
        waiting: list[str] = list(services)
        while True:
            waiting = []
            for service in services:
                containers = self.containers(service)
                if not containers:
                    waiting.append(f"{service} (no container)")
                    continue
                for container in containers:
                    if container.status in ("exited", "dead"):
                        log_file = self._save_logs(container)
                        raise StackError(
                            f"service {service} exited (code {container.attrs['State'].get('ExitCode')}) "
                            f"while the stack was starting; its logs are in {log_file}"
                        )
                    if not container_ready(container):
                        waiting.append(f"{service} ({container.status}, health {container_health(container)})")
            if not waiting:
                return
            if time.monotonic() >= deadline:
                for container in self.containers():
                    self._save_logs(container)
                raise StackError(
                    f"compose project {self.project} not healthy within {wait_s:.0f}s; waiting on: "
                    f"{', '.join(waiting)}. Service logs are in {self.log_dir}"
                )
            time.sleep(_POLL_INTERVAL_S)

    def down(self) -> None:
        """Remove the project's containers, networks and volumes, then check nothing is left.

        Leftovers (e.g. from another compose version) are force-removed; StackError when some
        cannot be.
        """
        self.compose("down", "-v", "--remove-orphans", "-t", "5")
        left = self._leftovers()
        if left:
            ours: dict[str, str | list[str] | bool] = {"label": f"{PROJECT_LABEL}={self.project}"}
            for container in self.client.containers.list(all=True, filters=ours):
                container.remove(force=True, v=True)
            for network in self.client.networks.list(filters={"label": f"{PROJECT_LABEL}={self.project}"}):
                network.remove()
            left = self._leftovers()
        if left:
            raise StackError(f"compose project {self.project} left behind after down: {', '.join(left)}")

    def _leftovers(self) -> list[str]:
        label: dict[str, str | list[str] | bool] = {"label": f"{PROJECT_LABEL}={self.project}"}
        containers = [f"container {c.name}" for c in self.client.containers.list(all=True, filters=label)]
        networks = [f"network {n.name}" for n in self.client.networks.list(filters=label)]
        return containers + networks

    # -- observation ------------------------------------------------------------------------

    def containers(self, service: str | None = None, labels: Mapping[str, str] | None = None) -> list[Container]:
        """Containers of this project (any state), optionally of one service and carrying ``labels``.

        One-off containers (``compose run``) are left out.
        """
        return find_containers(self.client, self.project, service, labels)

    def find(self, service: str | None = None, labels: Mapping[str, str] | None = None) -> list[Target]:
        """The project's containers as :class:`Target` s (any state), by service and labels."""
        return [self.target(c) for c in self.containers(service or None, labels)]

    def members(self) -> list[Target]:
        return self.find()

    def target(self, container: Container) -> Target:
        """A container as a :class:`Target`; ``address`` is its first port published on loopback."""
        return Target(
            kind="container", name=name_of(container),
            service=container.labels.get(SERVICE_LABEL, name_of(container)),
            scope=self.project, uid=container.id or "", state=container.status, healthy=container_ready(container),
            labels=dict(container.labels), address=published_address(container),
        )

    def status(self) -> list[ServiceStatus]:
        """Every container of the project: service, state and health, sorted by service."""
        return sorted(
            (
                ServiceStatus(
                    service=c.labels.get(SERVICE_LABEL, "?"),
                    container=name_of(c),
                    container_id=c.id or "",
                    state=c.status,
                    health=container_health(c),
                )
                for c in self.containers()
            ),
            key=lambda s: (s.service, s.container),
        )

    def endpoints(self) -> dict[str, dict[str, str]]:
        """Published ports: ``{service: {"8080/tcp": "127.0.0.1:8080"}}`` (services with none are left out)."""
        out: dict[str, dict[str, str]] = {}
        for container in self.containers():
            for port, bindings in (container.ports or {}).items():
                for binding in bindings or []:
                    service = container.labels.get(SERVICE_LABEL, name_of(container))
                    out.setdefault(service, {})[port] = f"{binding['HostIp'] or '0.0.0.0'}:{binding['HostPort']}"
        return out

    def fingerprint(self) -> Fingerprint:
        """What this stack is made of, for results.json ``environment``.

        ``details``: ``compose_file_sha256``, ``images`` ({service: image id, of the running
        container when there is one, else of the image the file names}), ``engine_version``,
        ``compose_version``; ``tools``: the Docker engine's and the compose CLI's versions.
        """
        config = self.config()
        images: dict[str, JsonValue] = {}
        for service, spec in sorted(config["services"].items()):
            running = self.containers(service)
            if running:
                images[service] = str(running[0].attrs.get("Image", ""))
                continue
            try:
                images[service] = str(self.client.images.get(spec.get("image", "")).id)
            except (docker.errors.ImageNotFound, docker.errors.NullResource):
                images[service] = "missing"
        engine_version = str(self.client.version().get("Version", "unknown"))
        details: dict[str, JsonValue] = {
            "compose_file": str(self.file),
            "compose_file_sha256": hashlib.sha256(self.file.read_bytes()).hexdigest(),
            "project": self.project,
            "images": images,
            "engine_version": engine_version,
            "compose_version": compose_version(),
            "compose_command": " ".join(compose_command()),
        }
        tools = {"docker_engine": engine_version, "docker_compose": compose_version()}
        return Fingerprint(details, {name: version for name, version in tools.items() if version})

    # -- the engine's stack interface --------------------------------------------------------

    def start(self) -> dict[str, str]:
        """For ``drill run`` / ``drill stack up``: set Docker up when it is missing (engine, base
        image, stack images, through scripts/docker-setup), then ``up`` and wait for health.
        Returns flat endpoints: ``{"gateway 8080/tcp": "127.0.0.1:8080", ...}``."""
        ensure_docker(self.file, self.project)
        if self.fresh:
            # State lives in the services (the gateway's pool, cloud-api's instances): a drill that
            # must start from the stack's initial state recreates it.
            self.down()
        endpoints = self.up()
        return {f"{svc} {port}": addr for svc, ports in endpoints.items() for port, addr in ports.items()}

    def stop(self) -> None:
        """A drill leaves a compose staging stack running, as it found it: ``drill stack down``
        (``down()``) removes it."""
        return None

    @property
    def toxiproxy_url(self) -> str | None:
        """The Toxiproxy API published by the project's ``toxiproxy`` service, from the compose
        file alone (known before the stack is up)."""
        return self._published_url("toxiproxy", 8474)

    @property
    def prometheus_url(self) -> str | None:
        """The project's ``prometheus`` service as published on 127.0.0.1 (from the compose file)."""
        return self._published_url("prometheus", 9090)

    @property
    def http_fault_proxy_url(self) -> str | None:
        """The project's ``http-fault-proxy`` service (mitmdump + drill's addon) as published on
        127.0.0.1 (from the compose file): its ``hosted-model`` route and control API."""
        return self._published_url(HTTP_FAULT_PROXY_SERVICE, HTTP_FAULT_PROXY_PORT)

    def _published_url(self, service: str, container_port: int) -> str | None:
        """``http://127.0.0.1:HOST_PORT`` where the compose file publishes ``service``'s
        ``container_port`` (``${VAR:-default}`` host ports read from the environment)."""
        try:
            services = yaml.safe_load(self.file.read_text(encoding="utf-8")).get("services", {})
        except (OSError, yaml.YAMLError, AttributeError):
            return None
        for port in (services.get(service) or {}).get("ports") or []:
            match = _PUBLISHED_PORT.match(str(port))
            if match and int(match.group(4)) == container_port:
                variable, default, literal, _ = match.groups()
                host_port = os.environ.get(variable, default) if variable else literal
                return f"http://127.0.0.1:{host_port}"
        return None

    def unhealthy(self) -> list[str]:
        """Stack members that are not running and healthy (empty when all are)."""
        return [f"{c.name}: {c.status}/{container_health(c)}" for c in self.containers() if not container_ready(c)]

    def not_running(self) -> list[str]:
        """Names of project containers that are not running (exited, paused, dead)."""
        return [name_of(c) for c in self.containers() if c.status != "running"]

    def process_groups(self) -> dict[str, int]:
        """None: the containers are the engine's children, not the harness's."""
        return {}

    # -- checks -----------------------------------------------------------------------------

    def _check_images(self, config: dict[str, Any]) -> None:
        missing = []
        for service, spec in sorted(config["services"].items()):
            image = spec.get("image")
            if not image:
                raise ScenarioError(f"service {service} in {self.file} names no image; every service needs `image:`")
            try:
                self.client.images.get(image)
            except docker.errors.ImageNotFound:
                missing.append(f"{image} (service {service})")
        if missing:
            raise ScenarioError(
                f"images missing for {self.file}: {', '.join(missing)}; run scripts/docker-setup to build them"
            )

    def _check_ports_local(self, config: dict[str, Any]) -> None:
        public = []
        for service, spec in sorted(config["services"].items()):
            for port in spec.get("ports") or []:
                host_ip = _port_host_ip(port)
                if host_ip not in ("127.0.0.1", "::1", "localhost"):
                    public.append(f"{service}: {port}")
        if public:
            raise ScenarioError(
                f"{self.file} publishes ports beyond loopback ({'; '.join(public)}); "
                "publish as 127.0.0.1:HOST:CONTAINER"
            )

    def _save_logs(self, container: Container) -> Path:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        path = self.log_dir / f"{container.name}.log"
        try:
            path.write_bytes(container.logs(tail=500))
        except docker.errors.APIError as exc:
            path.write_text(f"could not read logs: {exc}\n")
        return path


def _port_host_ip(port: Any) -> str:
    """The host address a compose ``ports`` entry binds (long dict form or short string form)."""
    if isinstance(port, dict):
        return str(port.get("host_ip") or "0.0.0.0")
    parts = str(port).rsplit("/", 1)[0]
    if parts.startswith("["):  # [::1]:8080:80
        return parts[1 : parts.index("]")]
    fields = parts.split(":")
    return fields[0] if len(fields) == 3 else "0.0.0.0"


def name_of(container: Container) -> str:
    """The container's name (the SDK types it optional: a container always has one)."""
    return container.name or (container.id or "")[:12]


def published_address(container: Container) -> str | None:
    """``http://127.0.0.1:PORT`` of the container's first port published on loopback, or None."""
    for bindings in (container.ports or {}).values():
        for binding in bindings or []:
            if binding.get("HostIp") in ("127.0.0.1", "localhost"):
                return f"http://127.0.0.1:{binding['HostPort']}"
    return None


def find_containers(
    client: docker.DockerClient,
    project: str,
    service: str | None = None,
    labels: Mapping[str, str] | None = None,
) -> list[Container]:
    """Containers of compose ``project`` (any state), by service and extra labels; no one-offs."""
    wanted = [f"{PROJECT_LABEL}={project}"]
    if service:
        wanted.append(f"{SERVICE_LABEL}={service}")
    wanted += [f"{key}={value}" for key, value in sorted((labels or {}).items())]
    found = client.containers.list(all=True, filters={"label": wanted})
    return sorted(
        (c for c in found if c.labels.get(ONEOFF_LABEL, "False") != "True"),
        key=name_of,
    )


@functools.lru_cache(maxsize=1)
def compose_version() -> str:
    """The compose CLI's version (e.g. ``1.29.2`` or ``2.29.1``)."""
    done = subprocess.run([*compose_command(), "version", "--short"], capture_output=True, text=True, timeout=30)
    return done.stdout.strip() or "unknown"


def _docker_setup_script() -> Path:
    return Path(__file__).resolve().parents[2] / "scripts" / "docker-setup"


def ensure_docker(file: Path, project: str) -> None:
    """Run scripts/docker-setup when the engine does not answer or the stack's images are missing.

    docker-setup is idempotent and quick when everything is there; it installs Debian's docker.io,
    starts dockerd, makes the offline base image and builds the images.
    """
    try:
        client = docker_client()
        config_images = _images_named(file)
        missing = [image for image in config_images if not _has_image(client, image)]
        if not missing:
            return
    except StackError:
        pass
    script = _docker_setup_script()
    if not script.exists():
        raise StackError(
            f"Docker is not ready for compose project {project} and {script} is not there to set it up"
        )
    done = subprocess.run([str(script)], timeout=1800)
    if done.returncode != 0:
        raise StackError(f"{script} failed (exit {done.returncode}); see its output above")


def _images_named(file: Path) -> list[str]:
    data = yaml.safe_load(Path(file).read_text(encoding="utf-8")) or {}
    return sorted({str(spec.get("image")) for spec in (data.get("services") or {}).values() if spec.get("image")})


def _has_image(client: docker.DockerClient, image: str) -> bool:
    try:
        client.images.get(image)
        return True
    except docker.errors.ImageNotFound:
        return False
