"""How the harness reaches a stack: ``local`` (processes on 127.0.0.1), ``compose`` (Docker), or
``external`` (the user's own, already running). All three implement :class:`Runtime`."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from harness.errors import ScenarioError
from harness.runtime.base import Fingerprint, Runtime, RuntimeKind, Target
from harness.runtime.kinds import is_compose, is_local
from harness.scenario.model import StackRef

__all__ = ["ExternalRuntime", "Fingerprint", "Runtime", "RuntimeKind", "Target", "is_compose", "is_local",
           "open_stack"]


class ExternalRuntime:
    """A stack the user runs themselves (``runtime: local`` without ``stack.file``): the harness
    starts, stops and kills nothing of it, so it has no members to select."""

    kind: RuntimeKind = "external"

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir

    @property
    def toxiproxy_url(self) -> str | None:
        return None

    @property
    def prometheus_url(self) -> str | None:
        return None

    @property
    def http_fault_proxy_url(self) -> str | None:
        return None  # the user's own stack: a scenario names its proxy with http_fault_proxy: {url}

    def start(self) -> dict[str, str]:
        return {}

    def stop(self) -> None:
        return None

    def down(self) -> None:
        return None

    def find(self, service: str | None = None, labels: Mapping[str, str] | None = None) -> list[Target]:
        return []

    def members(self) -> list[Target]:
        return []

    def unhealthy(self) -> list[str]:
        return []

    def not_running(self) -> list[str]:
        return []

    def process_groups(self) -> dict[str, int]:
        return {}

    def fingerprint(self) -> Fingerprint:
        # results.json keeps naming the scenario's runtime word (`local`) for the user's own stack.
        return Fingerprint({"runtime": "local", "stack": "external (started by the user)"})


def open_stack(ref: StackRef, run_dir: Path, runtime: str | None = None) -> Runtime:
    """The runtime for a scenario's ``stack:`` (``runtime`` overrides stack.runtime)."""
    kind = runtime or ref.runtime
    log_dir = run_dir / "stack-logs"
    if kind == "kubernetes":
        # Imported here: the kubernetes client is only loaded for cluster stacks.
        from harness.runtime.kubernetes import KubernetesRuntime

        return KubernetesRuntime(ref, log_dir)
    if kind == "compose":
        # Imported here: the docker SDK is only loaded for compose stacks.
        from harness.runtime.compose import ComposeRuntime

        if ref.file is None:  # the scenario model refuses this; a caller building a StackRef may not
            raise ScenarioError("the compose runtime needs stack.file (the compose file)")
        return ComposeRuntime(
            ref.file, ref.project or "drill-staging", log_dir, allow_remote_docker=ref.allow_remote_docker,
            fresh=ref.fresh,
        )
    if ref.file is None:
        return ExternalRuntime(log_dir)
    # Imported here as the others: `drill` commands that reach no stack (validate, report, pack,
    # --help) start without the supervisor's imports (numpy, httpx, the journal's models).
    from harness.runtime.local import LocalRuntime
    from harness.runtime.stackfile import load_stack

    return LocalRuntime(load_stack(ref.file), log_dir)
