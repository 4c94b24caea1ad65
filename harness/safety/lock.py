"""One drill at a time per stack: an exclusive ``flock`` on a file named after the stack.

The kernel releases the lock when the holder dies, even by ``kill -9``, so a crash never leaves
a stale lock. Lock files live in drill's private state directory (:mod:`harness.rundir.state`), are
opened with ``O_NOFOLLOW`` and never truncated; who holds a lock is written beside it, by rename,
so a refused run can say so.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import time
from pathlib import Path
from typing import Any

from harness.errors import StackError
from harness.rundir.state import open_private, read_private_json, subdir, write_private_json


class StackBusyError(StackError):
    """Another drill holds the stack (exit 3; nothing was started or applied)."""


class StackLock:
    """``with StackLock(key, run_dir):`` — refuse at once, naming the holder, when already held."""

    def __init__(self, key: str, run_dir: Path) -> None:
        self.key = key
        self.run_dir = run_dir
        self.digest = hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:16]
        self.path: Path | None = None
        self._fd: int | None = None

    def __enter__(self) -> StackLock:
        directory = subdir("locks")
        self.path = directory / f"{self.digest}.lock"
        holder_path = directory / f"{self.digest}.json"
        try:
            fd = open_private(self.path, os.O_RDWR | os.O_CREAT)
        except OSError as exc:  # ELOOP: a symlink planted where the lock file goes
            raise StackError(f"cannot open the stack lock {self.path}: {exc.strerror}; remove it") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            who = read_private_json(holder_path) or {}
            detail = (f"pid {who.get('pid')}, run {who.get('run_dir')}, since {who.get('since')}"
                      if who else "holder unknown")
            raise StackBusyError(
                f"another drill is running against {self.key} ({detail}); drills on one stack run "
                "one at a time: wait for it to end, or stop it (its faults are rolled back)"
            ) from None
        self._fd = fd
        write_private_json(holder_path, {"pid": os.getpid(), "run_dir": str(self.run_dir), "key": self.key,
                                         "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


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
