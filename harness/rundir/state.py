"""drill's private per-machine state: stack locks and the register of runs not yet finished.

    <state dir>/            0700, owned by the user running drill
      locks/<key>.lock      flock target, one per stack (harness.safety.lock)
      locks/<key>.json      who holds it (written by rename, never by truncation)
      runs/<id>.json        one per run that may still have something applied (this module)

The state dir is ``$DRILL_STATE_DIR`` when set (tests), else ``/var/lib/drill`` for root, else
``$XDG_STATE_HOME/drill`` (``~/.local/state/drill``). A fixed, shared place such as
``/tmp/drill-locks`` would let whoever creates it first point drill's files anywhere; so every
directory here is checked (a real directory, not a symlink, ours, mode 0700) and every file is
opened with ``O_NOFOLLOW``.

A run registers itself before it applies anything and unregisters once its rollback left
nothing applied, so ``drill recover --all`` finds a crashed run wherever its ``--out`` was.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import time
from pathlib import Path
from typing import Any

from harness.errors import StackError

STATE_ENV = "DRILL_STATE_DIR"


def state_dir() -> Path:
    """The private state directory, created (0700) when missing; refused when unsafe."""
    override = os.environ.get(STATE_ENV)
    if override:
        root = Path(override)
    elif os.geteuid() == 0:
        root = Path("/var/lib/drill")
    else:
        base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
        root = Path(base) / "drill"
    return private_dir(root)


def private_dir(path: Path) -> Path:
    """``path`` as a directory only the current user can use: created 0700 when missing;
    a symlink, a non-directory or someone else's directory is refused (StackError, exit 3)."""
    path = Path(path).absolute()
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise StackError(f"cannot create drill's state directory {path}: {exc.strerror}") from None
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise StackError(f"drill's state directory {path} is not a plain directory (a symlink?); "
                         f"remove it or set {STATE_ENV} to a private directory")
    if info.st_uid != os.geteuid():
        raise StackError(f"drill's state directory {path} belongs to uid {info.st_uid}, not to you "
                         f"(uid {os.geteuid()}); set {STATE_ENV} to a directory of your own")
    if stat.S_IMODE(info.st_mode) & 0o077:
        os.chmod(path, 0o700)
    return path


def subdir(name: str) -> Path:
    return private_dir(state_dir() / name)


def open_private(path: Path, flags: int) -> int:
    """``os.open`` that never follows a symlink and only accepts a regular file of ours."""
    fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
        os.close(fd)
        raise StackError(f"{path} is not a regular file of yours; remove it")
    return fd


def write_private_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` to ``path`` atomically (a fresh temporary file renamed over it): an existing
    file is never opened for writing, so a planted symlink cannot redirect the write."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{time.monotonic_ns()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_private_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, or None when it is missing, not ours or damaged."""
    try:
        fd = open_private(path, os.O_RDONLY)
    except (OSError, StackError):
        return None
    with os.fdopen(fd, encoding="utf-8", errors="replace") as fh:
        try:
            data = json.loads(fh.read(1_000_000))
        except json.JSONDecodeError:
            return None
    return data if isinstance(data, dict) else None


# --- the register of runs ----------------------------------------------------------------------


def _entry_path(run_dir: Path) -> Path:
    digest = hashlib.sha256(str(Path(run_dir).resolve()).encode("utf-8", "surrogateescape")).hexdigest()[:20]
    return subdir("runs") / f"{digest}.json"


def register_run(run_dir: Path, scenario: str, stack: dict[str, Any]) -> Path:
    """Record a run before it applies anything. ``stack`` says how to reach the stack again
    (``key``, ``runtime``, ``file``, ``project``, ``toxiproxy_url``, ``hooks``)."""
    path = _entry_path(run_dir)
    write_private_json(path, {
        "run_dir": str(Path(run_dir).resolve()), "scenario": scenario, "pid": os.getpid(),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "stack": stack,
    })
    return path


def update_run(run_dir: Path, **stack: Any) -> None:
    """Add what became known about the stack (e.g. its Toxiproxy URL) to a run's entry."""
    path = _entry_path(run_dir)
    entry = read_private_json(path)
    if entry is not None:
        entry["stack"] = {**entry.get("stack", {}), **{k: v for k, v in stack.items() if v}}
        write_private_json(path, entry)


def unregister_run(run_dir: Path) -> None:
    _entry_path(run_dir).unlink(missing_ok=True)


def registered_runs() -> list[dict[str, Any]]:
    """Every registered run (oldest first); damaged entries are skipped."""
    entries = [read_private_json(p) for p in subdir("runs").glob("*.json")]
    valid = [e for e in entries if e and isinstance(e.get("run_dir"), str) and isinstance(e.get("stack"), dict)]
    return sorted(valid, key=lambda e: str(e.get("started_at", "")))
