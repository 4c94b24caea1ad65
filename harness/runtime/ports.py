"""Who holds a TCP port on 127.0.0.1, and the one command that frees it.

A stack that cannot start because a port is taken says what took it, so the person at the
terminal does not have to go hunting with ``ss``:

    port 8080 (process gateway): compose project drill-staging (container drill-staging-gateway-1)
      free it with: drill stack down --runtime compose --project drill-staging --file compose/staging.yaml

Holders are told apart in this order:

1. a Docker container publishing the port (:func:`harness.runtime.dockerhost.docker_publishers`,
   which also knows ports published without a listening ``docker-proxy``): its compose project,
   or the container;
2. the local stack of a drill run (:func:`harness.rundir.runs.run_stacks`: the runs registered in
   drill's state directory and the process groups their stacks started): a run whose drill died
   is freed by ``drill recover --all``, a live one by stopping its drill;
3. any other program, found through ``/proc/net/tcp{,6}`` (the listening socket's inode) and
   ``/proc/<pid>/fd`` (which process holds that inode): ``kill PID``.

Everything here only reads; nothing is stopped. Each lookup is bounded (one pass over /proc, one
Docker API call with a short timeout) and a lookup that fails only makes the answer vaguer.
"""

from __future__ import annotations

import os
import shlex
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from harness.errors import StackError
from harness.rundir.runs import RunStack, run_stacks
from harness.runtime.dockerhost import Publisher, docker_publishers

__all__ = [
    "PortHolder",
    "busy_ports_message",
    "listening_pids",
    "port_in_use",
    "published_ports",
    "refuse_busy_ports",
    "who_holds",
]

_TCP_LISTEN = "0A"  # the LISTEN state in /proc/net/tcp
_MAX_PARENT_HOPS = 8
_STACK_MARKS = ("targets.", "toxiproxy-server", "mitmdump")


@dataclass(frozen=True)
class PortHolder:
    """What listens on a port (``what``, for people), the command that frees it, and a detail
    (e.g. the container) shown when the holder has only this one port."""

    what: str
    free_with: str
    detail: str = ""


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """True when something listens on host:port (TIME_WAIT leftovers do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # Servers bind with SO_REUSEADDR too, so only a live listener makes this bind fail.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


def published_ports(config: Mapping[str, object]) -> list[tuple[str, int]]:
    """(``service NAME``, host port) for every port a resolved compose config publishes.

    Reads both forms ``compose config`` prints: the long one (``{published: "28080", ...}``,
    compose v2) and the short one (``"127.0.0.1:28080:8080"``, compose v1). A range or a port
    left for Docker to choose is skipped: nothing can be checked before it is bound.
    """
    services = config.get("services")
    found: list[tuple[str, int]] = []
    if not isinstance(services, dict):
        return found
    for name, spec in sorted(services.items()):
        entries = spec.get("ports") if isinstance(spec, dict) else None
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, dict):
                host = str(entry.get("published") or "")
            else:
                fields = str(entry).rsplit("/", 1)[0].rsplit("]", 1)[-1].split(":")
                host = fields[-2] if len(fields) >= 2 else ""
            if host.isdigit():
                found.append((f"service {name}", int(host)))
    return found


# --- /proc ---------------------------------------------------------------------------------------


def _listening_inodes(port: int, proc: Path) -> set[int]:
    inodes: set[int] = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = (proc / "net" / table).read_text(encoding="ascii", errors="replace").splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[3] != _TCP_LISTEN:
                continue
            local_port = fields[1].rpartition(":")[2]
            if int(local_port, 16) == port and fields[9].isdigit() and fields[9] != "0":
                inodes.add(int(fields[9]))
    return inodes


def listening_pids(port: int, proc: Path = Path("/proc")) -> list[int]:
    """Pids of the processes holding a socket that listens on ``port`` (any address), sorted.

    Empty when nothing listens or the holder belongs to a user whose /proc entries we cannot read.
    """
    inodes = _listening_inodes(port, proc)
    if not inodes:
        return []
    wanted = {f"socket:[{inode}]" for inode in inodes}
    pids: set[int] = set()
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            for fd in (entry / "fd").iterdir():
                try:
                    if os.readlink(fd) in wanted:
                        pids.add(int(entry.name))
                        break
                except OSError:
                    continue
        except OSError:
            continue  # gone, or not ours to read
    return sorted(pids)


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode("utf-8", "backslashreplace") for part in raw.split(b"\0") if part]


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return ""


def _parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces; ppid follows the state.
    fields = stat.rpartition(")")[2].split()
    return int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else None


def _alive(pid: int | None) -> bool:
    if pid is None or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _short(argv: list[str], limit: int = 80) -> str:
    # One line: an argument may hold newlines (python -c '...').
    text = " ".join((shlex.join(argv) if argv else "?").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _compose_down(project: str, compose_file: str | None) -> str:
    command = f"drill stack down --runtime compose --project {shlex.quote(project)}"
    if compose_file:
        command += f" --file {shlex.quote(_relative(compose_file))}"
    return command


def _relative(path: str) -> str:
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return path


# --- drill runs ----------------------------------------------------------------------------------


def _supervising_drill(pid: int) -> tuple[int, list[str]] | None:
    """The nearest ancestor of ``pid`` that is a drill command (e.g. ``drill stack up``)."""
    current: int | None = pid
    for _ in range(_MAX_PARENT_HOPS):
        current = _parent(current) if current is not None else None
        if current is None or current <= 1:
            return None
        argv = _cmdline(current)
        if any(Path(part).name == "drill" for part in argv[:2]) or "harness.cli" in argv:
            return current, argv
    return None


# --- the answer ----------------------------------------------------------------------------------


def who_holds(
    port: int,
    *,
    publishers: Mapping[int, Publisher] | None = None,
    runs: list[RunStack] | None = None,
) -> PortHolder:
    """What holds ``port`` on this machine, and the command that frees it.

    ``publishers`` and ``runs`` let a caller asking about many ports look them up once."""
    if publishers is None:
        publishers = docker_publishers([port])
    publisher = publishers.get(port)
    if publisher is not None:
        if publisher.project:
            service = f", service {publisher.service}" if publisher.service else ""
            return PortHolder(
                f"compose project {publisher.project}",
                _compose_down(publisher.project, publisher.compose_file),
                f"container {publisher.container}{service}",
            )
        return PortHolder(f"Docker container {publisher.container}", f"docker rm -f {shlex.quote(publisher.container)}")

    pids = listening_pids(port)
    if not pids:
        return PortHolder(
            "a process this user cannot see (another user's?)",
            f"sudo ss -ltnp 'sport = :{port}'  (then stop what it shows)",
        )
    pid = pids[0]
    argv = _cmdline(pid)
    if _comm(pid) == "docker-proxy":
        return PortHolder(
            f"Docker (docker-proxy pid {pid})", f"docker ps --filter publish={port}  (then stop that container)"
        )

    try:
        group = os.getpgid(pid)
    except OSError:
        group = pid
    for run in runs if runs is not None else run_stacks():
        if group in run.groups or pid in run.groups:
            if _alive(run.drill_pid) and run.drill_pid != os.getpid():
                return PortHolder(
                    f"the local stack of a drill still running "
                    f"(drill pid {run.drill_pid}, run {_relative(run.run_dir)})",
                    f"wait for it to finish, or stop it: kill {run.drill_pid}",
                )
            return PortHolder(
                f"the local stack of a crashed run ({_relative(run.run_dir)}; {_short(argv, 50)} pid {pid})",
                "drill recover --all",
            )

    if any(mark in " ".join(argv) for mark in _STACK_MARKS):
        drill = _supervising_drill(pid)
        if drill is not None:
            return PortHolder(
                f"a local stack started by `{_short(drill[1], 60)}` (pid {drill[0]})",
                f"kill {drill[0]}  (or Ctrl-C in its terminal)",
            )
        return PortHolder(
            f"a stack process left running without its drill ({_short(argv, 60)}, pid {pid}, group {group})",
            f"kill -- -{group}",
        )
    return PortHolder(f"another program: pid {pid} ({_short(argv)})", f"kill {pid}")


def busy_ports_message(
    busy: list[tuple[str, int]],
    stack_label: str,
    source: Path | None = None,
    *,
    publishers: Mapping[int, Publisher] | None = None,
) -> str:
    """The message for a stack that cannot start: each taken port grouped by what holds it,
    with the command that frees it. ``busy`` is (owner in the stack, port)."""
    if publishers is None:
        publishers = docker_publishers(port for _, port in busy)
    runs = run_stacks()
    # One line per holder (a compose project holds many ports): grouped on what it is and what
    # frees it; the detail (its container) is shown when the holder has just this one port.
    grouped: dict[tuple[str, str], list[tuple[str, PortHolder]]] = {}
    for owner, port in busy:
        holder = who_holds(port, publishers=publishers, runs=runs)
        grouped.setdefault((holder.what, holder.free_with), []).append((f"{port} ({owner})", holder))
    lines = [f"cannot start {stack_label}: port(s) already in use on 127.0.0.1:"]
    for (what, free_with), held in grouped.items():
        detail = f" ({held[0][1].detail})" if held[0][1].detail and len(held) == 1 else ""
        lines.append(f"  {', '.join(port for port, _ in held)}: held by {what}{detail}")
        lines.append(f"    free it with: {free_with}")
    where = f" in {_relative(str(source))}" if source is not None else ""
    lines.append(f"Or move this stack's ports{where}.")
    return "\n".join(lines)


def refuse_busy_ports(
    declared: list[tuple[str, int]],
    stack_label: str,
    source: Path | None = None,
    *,
    own_project: str | None = None,
) -> None:
    """Raise StackError (exit 3) naming what holds each of the ``declared`` (owner, port) that is
    taken. A port is taken when something listens on it or a container publishes it (Docker can
    publish without a listener). Ports published by ``own_project`` (a compose project that
    ``up`` will recreate) do not count."""
    ports = [port for _, port in declared]
    publishers = docker_publishers(ports)
    own = {port for port, pub in publishers.items() if own_project is not None and pub.project == own_project}
    busy = [
        (owner, port) for owner, port in declared
        if port not in own and (port in publishers or port_in_use(port))
    ]
    if busy:
        raise StackError(busy_ports_message(busy, stack_label, source, publishers=publishers))
