"""What the gateway launchers share: the repository root, where a launcher may write its files,
and running the real gateway as a child in the launcher's process group."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
# The local runtime sets it for every process (harness/runtime/local.py): the stack's log folder.
LOG_DIR_ENV = "DRILL_STACK_LOG_DIR"


def fail(message: str) -> int:
    print(f"[drill gateway launcher] {message}", file=sys.stderr, flush=True)
    return 2


def work_dir(name: str) -> Path:
    """A folder for the gateway's generated files: ``$DRILL_STACK_LOG_DIR/<name>`` when the local
    runtime runs it (the files then stay with the run's logs), else a new temporary folder."""
    base = os.environ.get(LOG_DIR_ENV)
    if base:
        path = Path(base) / name
        path.mkdir(parents=True, exist_ok=True)
        return path
    return Path(tempfile.mkdtemp(prefix=f"drill-{name}-"))


def run(argv: list[str], env: dict[str, str], cwd: Path) -> int:
    """Run the gateway in this process group (the runtime signals the whole group) and return its
    exit status. On SIGTERM/SIGINT this process passes the signal on and stays until the gateway
    has exited and been reaped, so the runtime, which waits for this pid before its SIGKILL of the
    group, never leaves a gateway still shutting down (LiteLLM waits for its background tasks)."""
    print(f"[drill gateway launcher] {' '.join(argv)}", file=sys.stderr, flush=True)
    child = subprocess.Popen(argv, env=env, cwd=cwd)

    def pass_on(signum: int, _frame: object) -> None:
        if child.poll() is None:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, pass_on)
    signal.signal(signal.SIGINT, pass_on)
    return child.wait()
