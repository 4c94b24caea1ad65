"""The environment a drill ran in, for results.json ``environment``: drill's and its tools'
versions, the host and operator, the scenario's git commit, and the stack's own fingerprint."""

from __future__ import annotations

import getpass
import platform
import shutil
import socket
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from harness import __version__
from harness.runtime.base import Runtime


def environment(runtime_kind: str, scenario_dir: Path, stack: Runtime) -> dict[str, Any]:
    """What results.json records of the environment (the Toxiproxy server's version is added
    once it answers /version)."""
    env: dict[str, Any] = {
        "runtime": runtime_kind,
        "tools": {"drill": __version__, "python": platform.python_version(), "locust": pkg_version("locust")},
        "host": socket.gethostname(),
        "operator": user(),
        "git_sha": git_sha(scenario_dir),
    }
    try:
        fingerprint = stack.fingerprint()
    except Exception as exc:  # a stack that cannot describe itself costs the fingerprint, not the drill
        env["fingerprint_error"] = str(exc)
    else:
        env.update(fingerprint.details)
        # The Docker engine and compose CLI are real parts of a compose run: listed with the tools.
        env["tools"].update(fingerprint.tools)
    return env


def user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry (a container's arbitrary uid): still a drill
        return "unknown"


def pkg_version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def git_sha(where: Path) -> str | None:
    if shutil.which("git") is None:
        return None
    try:
        out = subprocess.run(
            ["git", "-C", str(where), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None
