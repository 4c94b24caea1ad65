"""How the harness reaches a stack: ``local`` (processes on 127.0.0.1) or ``compose`` (Docker)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.scenario.model import StackRef


class ExternalStack:
    """A stack the user runs themselves: the harness starts and stops nothing."""

    kind = "local"
    toxiproxy_url: str | None = None

    def start(self) -> dict[str, Any]:
        return {}

    def stop(self) -> None:
        return None

    def find(self, service: str | None, labels: dict[str, str]) -> list[str]:
        return []

    def fingerprint(self) -> dict[str, Any]:
        return {"runtime": "local", "stack": "external (started by the user)"}

    def unhealthy(self) -> list[str]:
        return []


def open_stack(ref: StackRef, run_dir: Path, runtime: str | None = None) -> Any:
    """The runtime for a scenario's ``stack:`` (``runtime`` overrides stack.runtime)."""
    kind = runtime or ref.runtime
    log_dir = run_dir / "stack-logs"
    if kind == "compose":
        from harness.runtime.compose import ComposeRuntime

        return ComposeRuntime(
            ref.file, ref.project or "drill-staging", log_dir, allow_remote_docker=ref.allow_remote_docker,
            fresh=ref.fresh,
        )
    if ref.file is None:
        return ExternalStack()
    from harness.runtime.local import LocalRuntime, load_stack

    return LocalRuntime(load_stack(ref.file), log_dir)
