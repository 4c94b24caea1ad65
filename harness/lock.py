"""One drill at a time per stack: an exclusive ``flock`` on a file named after the stack.

The kernel releases the lock when the holder dies, even by ``kill -9``, so a crash never leaves
a stale lock; the file records who holds it so a refused run can say so.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from harness.errors import StackError

LOCK_DIR = Path(os.environ.get("DRILL_LOCK_DIR", Path(tempfile.gettempdir()) / "drill-locks"))


class StackBusyError(StackError):
    """Another drill holds the stack (exit 3; nothing was started or applied)."""


class StackLock:
    """``with StackLock(key, run_dir):`` — refuse at once, naming the holder, when already held."""

    def __init__(self, key: str, run_dir: Path) -> None:
        self.key = key
        self.run_dir = run_dir
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        self.path = LOCK_DIR / f"{digest}.lock"
        self._fh: Any = None

    def __enter__(self) -> "StackLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+", encoding="utf-8")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip()
            fh.close()
            try:
                who = json.loads(holder)
                detail = f"pid {who.get('pid')}, run {who.get('run_dir')}, since {who.get('since')}"
            except json.JSONDecodeError:
                detail = "holder unknown"
            raise StackBusyError(
                f"another drill is running against {self.key} ({detail}); drills on one stack run "
                "one at a time: wait for it to end, or stop it (its faults are rolled back)"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps({"pid": os.getpid(), "run_dir": str(self.run_dir),
                             "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}))
        fh.flush()
        self._fh = fh
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None


def stack_key(scenario: Any, runtime: str | None) -> str:
    """What identifies the stack a scenario drills: compose project, local stack file, or the
    Toxiproxy server and load host of a user's own stack."""
    kind = runtime or scenario.stack.runtime
    if kind == "compose":
        return f"compose project {scenario.stack.project or 'drill-staging'}"
    if scenario.stack.file is not None:
        return f"local stack {Path(scenario.stack.file).resolve()}"
    toxiproxy = scenario.toxiproxy.url if scenario.toxiproxy else "no toxiproxy"
    return f"stack at {scenario.load.host} ({toxiproxy})"
