"""The harness's own ground, checked during a drill: the disk its run directory is on, and the
Docker daemon a compose stack runs on. When either moves, the drill ends cleanly (rollback,
verdict ``aborted``) with a trouble in ``health.jsonl`` saying what moved and when, instead of
going on to judge a stack on data that is partial or on a daemon that was not there.

- **Disk**: a sample writer that cannot write exits ``EXIT_WRITE_ERROR`` (a channel that needs
  no disk); any write of the engine's own that fails with ENOSPC/EIO lands here too. The run
  directory holds a reserve (``.reserve``, 1 MiB) from the start; it is freed first, so the
  rollback's journal records and the write-error trouble still fit.
- **Docker daemon** (compose runtime): its identity is the pid at the other end of the Docker
  socket (``SO_PEERCRED``) and that process's start time (``/proc/PID/stat``): a restarted
  daemon has another. Read once a second; no API call.
"""

from __future__ import annotations

import os
import socket
import struct
import time
from dataclasses import dataclass
from pathlib import Path

from harness.load.watchdog import Trouble, free_reserve, record

DOCKER_SOCKET = "/var/run/docker.sock"


@dataclass(frozen=True)
class DaemonId:
    """A Docker daemon process: its pid and its start time (clock ticks since boot)."""

    pid: int
    started: int


def docker_socket_path() -> str:
    """The Docker socket the compose runtime talks to (``DOCKER_HOST=unix://...`` or the default)."""
    host = os.environ.get("DOCKER_HOST", "")
    return host.removeprefix("unix://") if host.startswith("unix://") else DOCKER_SOCKET


def daemon_id(path: str | None = None) -> DaemonId | None:
    """Who answers on the Docker socket now; None when nobody does (the daemon is down)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(1.0)
            sock.connect(path or docker_socket_path())
            creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        pid = struct.unpack("3i", creds)[0]
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return DaemonId(pid, int(fields[19]))  # field 22 of stat: starttime
    except (OSError, ValueError, IndexError):
        return None


class DaemonWatch:
    """Remembers the daemon a drill started on; :meth:`moved` says, once a second, whether it
    is still that one (None) or what happened (the trouble, already recorded)."""

    def __init__(self, run_dir: Path, path: str | None = None) -> None:
        self.run_dir = run_dir
        self.path = path
        self.first = daemon_id(path)
        self.last_seen = time.time()

    def moved(self) -> Trouble | None:
        if self.first is None:
            return None  # nothing to compare with (a remote daemon, a TCP DOCKER_HOST)
        now_id = daemon_id(self.path)
        now = time.time()
        if now_id == self.first:
            self.last_seen = now
            return None
        if now_id is None:
            detail = f"the Docker daemon (pid {self.first.pid}) stopped answering on its socket"
        else:
            detail = f"the Docker daemon restarted (pid {self.first.pid} -> {now_id.pid})"
        trouble = Trouble("docker_restart", self.last_seen, now, now - self.last_seen, detail)
        record(self.run_dir, trouble, partial=True)
        return trouble


def disk_lost(run_dir: Path, what: str, exc: OSError | None = None) -> str:
    """The run directory can take no more data: free the reserve (the rollback needs it), record
    a ``write_error`` trouble unless a sample writer already did, and return the abort reason,
    which says where the samples end."""
    from harness.rundir.health import read_health

    free_reserve(run_dir)
    written = [t for t in read_health(run_dir) if t.kind == "write_error"]
    if written:
        return f"sample writing failed ({what}): " + "; ".join(t.detail for t in written)
    reason = exc.strerror if exc is not None and exc.strerror else "write failed"
    detail = (f"{what}: the run directory could not be written ({reason}); the samples end where "
              f"their files end")
    now = time.time()
    record(run_dir, Trouble("write_error", now, now, 0.0, detail), partial=True)
    return detail
