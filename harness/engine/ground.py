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

from harness.load.samples import SAMPLES_DIR, sample_files
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


def disk_full(run_dir: Path) -> bool:
    """No block left for this process on the run directory's file system (root may use the
    blocks ext4 keeps for it; others may not). A sample writer that failed says so itself (exit
    74); this catches the engine's own files and a writer that could not say it."""
    try:
        st = os.statvfs(run_dir)
    except OSError:
        return False
    return st.f_bfree == 0 or (os.geteuid() != 0 and st.f_bavail == 0)


def disk_lost(run_dir: Path, what: str, exc: OSError | None = None) -> str:
    """The run directory can take no more data: free the reserve (the rollback needs it), record
    a ``write_error`` trouble unless a sample writer already did, and return the abort reason,
    which says where the samples end."""
    from harness.rundir.health import read_health

    free_reserve(run_dir)
    written = [t for t in read_health(run_dir) if t.kind == "write_error"]
    if written:
        return f"sample writing failed ({what}): " + "; ".join(t.detail for t in written)
    reason = exc.strerror if exc is not None and exc.strerror else "no space left"
    ends = [f"{SAMPLES_DIR}/{path.name} ends at {_iso(at)}"
            for path in sample_files(run_dir) if (at := last_sample_start(path)) is not None]
    detail = (f"{what}: the run directory could not be written ({reason}); its samples end there: "
              + ("; ".join(ends) or "no sample was written"))
    now = time.time()
    first_end = min((at for path in sample_files(run_dir) if (at := last_sample_start(path)) is not None),
                    default=now)
    record(run_dir, Trouble("write_error", first_end, now, 0.0, detail), partial=True)
    return detail


def last_sample_start(path: Path, tail_bytes: int = 1 << 16) -> float | None:
    """The ``start`` of the last whole row of a sample file (a torn last line is skipped)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - tail_bytes))
            lines = fh.read().split(b"\n")[:-1]  # what follows the last newline is torn
    except OSError:
        return None
    for line in reversed(lines):
        try:
            return float(line.split(b",")[1])
        except (IndexError, ValueError):
            continue
    return None


def _iso(at: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + f".{int(at % 1 * 1000):03d}Z"
