"""The Docker engine on this host: whether ``DOCKER_HOST`` is local, and which containers publish
a host port (asked of the Engine API, which also knows ports published without a listening
``docker-proxy``). The compose runtime refuses a remote engine with the first; the port-holder
lookup (:mod:`harness.runtime.ports`) names a container holding a port with the second.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

__all__ = ["Publisher", "docker_host_is_local", "docker_publishers"]

_DOCKER_TIMEOUT_S = 3.0
_PROJECT_LABEL = "com.docker.compose.project"
_SERVICE_LABEL = "com.docker.compose.service"
_CONFIG_FILES_LABEL = "com.docker.compose.project.config_files"


def docker_host_is_local(docker_host: str | None) -> bool:
    """True for an unset DOCKER_HOST, a ``unix://`` socket or a TCP engine on loopback."""
    if not docker_host:
        return True
    parsed = urlparse(docker_host)
    if parsed.scheme in ("unix", "npipe"):
        return True
    host = parsed.hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Publisher:
    """A container publishing a host port, from the Docker Engine API."""

    container: str
    project: str | None
    service: str | None
    compose_file: str | None


def docker_publishers(ports: Iterable[int]) -> dict[int, Publisher]:
    """Containers of the local Docker engine publishing any of ``ports`` on the host.

    Empty when Docker is not installed or does not answer within a few seconds: a local stack
    must start on a machine without Docker.
    """
    wanted = set(ports)
    if not wanted:
        return {}
    # Imported here: the docker SDK is heavy and only needed when a port is taken.
    import docker
    import docker.errors

    if not docker_host_is_local(os.environ.get("DOCKER_HOST")):
        return {}
    if not os.environ.get("DOCKER_HOST") and not Path("/var/run/docker.sock").exists():
        return {}
    try:
        client = docker.from_env(timeout=int(_DOCKER_TIMEOUT_S))
        containers = client.containers.list()
    except (docker.errors.DockerException, OSError):
        return {}
    found: dict[int, Publisher] = {}
    try:
        for container in containers:
            labels = container.labels or {}
            for bindings in (container.ports or {}).values():
                for binding in bindings or []:
                    host_port = str(binding.get("HostPort") or "")
                    if host_port.isdigit() and int(host_port) in wanted:
                        found[int(host_port)] = Publisher(
                            container=str(container.name),
                            project=labels.get(_PROJECT_LABEL),
                            service=labels.get(_SERVICE_LABEL),
                            compose_file=(labels.get(_CONFIG_FILES_LABEL) or "").split(",")[0] or None,
                        )
    finally:
        client.close()
    return found
