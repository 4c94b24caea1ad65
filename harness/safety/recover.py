"""``drill recover``: undo what a crashed run (``kill -9``, power loss) left applied.

Works from the run directory's journal alone: every fault the ledger shows as possibly applied is
reverted through its journaled ``undo`` record, proxies the run created are deleted, and the
processes the run's stack started are stopped (a local stack's, counted; the kubernetes
runtime's ``kubectl proxy``, named with its pid and URL). Each action is appended to the same journal, so a second
``drill recover`` finds nothing left to do.

Faults no journal knows (a lost run directory, a hand-made ``drill-`` toxic, a container left
paused) are found on the stack itself by :func:`recover_strays` (``drill recover --force``),
from :mod:`harness.safety.strays`.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness.faults import undo_fault
from harness.rundir import JOURNAL_FILE, RESERVE_FILE
from harness.rundir.events import (
    FaultReverted,
    FaultRevertFailed,
    FaultRevertIntent,
    LoadStarted,
    LoadStopped,
    ProxyDeleted,
    StackStarted,
    StackStarting,
    StackStopped,
)
from harness.rundir.journal import Journal, applied_faults, groups_left, proxies_left, read_journal
from harness.rundir.state import registered_runs, subdir, unregister_run
from harness.runtime.base import Runtime
from harness.runtime.ports import port_in_use
from harness.runtime.stackfile import load_stack
from harness.safety.lock import StackBusyError, StackLock
from harness.safety.strays import recover_strays

__all__ = ["recover_all", "recover_run", "recover_strays", "run_dirs", "stack_stopped_text"]


def run_dirs(reports_dir: Path) -> list[Path]:
    """Every run directory (a folder holding a journal) under ``reports_dir``."""
    return sorted(p.parent for p in Path(reports_dir).glob(f"**/{JOURNAL_FILE}"))


def recover_all(reports_dir: Path | None, force: bool = False) -> Iterator[tuple[str, bool]]:
    """``drill recover --all``: every run registered in drill's state directory that did not
    finish its rollback (wherever its ``--out`` was) and every run directory under
    ``reports_dir``; then the stacks those registered runs touched are scanned for faults still
    applied (``force`` removes strays no journal knows). Yields (message, ok); a run whose drill
    is still running is left alone and reported not ok. A registered run is forgotten once
    nothing of it is left applied."""
    entries = registered_runs()
    seen: set[Path] = set()
    stacks: dict[str, dict[str, Any]] = {}
    done: list[tuple[dict[str, Any], bool]] = []
    for entry in entries:
        run_dir = Path(entry["run_dir"])
        seen.add(run_dir.resolve())
        stack = entry["stack"]
        try:
            with StackLock(str(stack.get("key") or run_dir), run_dir):
                ok = True
                if (run_dir / JOURNAL_FILE).is_file():
                    for line, line_ok in recover_run(run_dir):
                        ok &= line_ok
                        yield line, line_ok
                else:
                    yield f"{run_dir}: run directory gone; checking its stack for faults left", True
        except StackBusyError:
            yield f"{run_dir}: its drill is still running (pid {entry.get('pid')}); left alone", False
            continue
        stacks.setdefault(str(stack.get("key")), stack)
        done.append((entry, ok))
    for run_dir in run_dirs(reports_dir) if reports_dir is not None else []:
        if run_dir.resolve() not in seen:
            yield from recover_run(run_dir)
    clean_stacks: set[str] = set()
    for key, stack in stacks.items():
        clean = True
        for line, ok in _check_stack(stack, force):
            clean &= ok
            yield line, ok
        if clean:
            clean_stacks.add(key)
    for entry, ok in done:
        journal = Path(entry["run_dir"]) / JOURNAL_FILE
        left = applied_faults(journal) if journal.is_file() else []
        if ok and not left and str(entry["stack"].get("key")) in clean_stacks:
            unregister_run(Path(entry["run_dir"]))


def _check_stack(stack: dict[str, Any], force: bool) -> Iterator[tuple[str, bool]]:
    """Scan a registered run's stack for faults still applied (see harness.safety.strays)."""
    kind = stack.get("runtime")
    label = str(stack.get("key"))
    hooks = [h for h in stack.get("hooks") or [] if isinstance(h, str)]
    url = stack.get("toxiproxy_url") if isinstance(stack.get("toxiproxy_url"), str) else None
    http_url = stack.get("http_fault_proxy_url") if isinstance(stack.get("http_fault_proxy_url"), str) else None
    if kind == "local" and stack.get("file"):
        # A local stack that is down (recover_run just stopped it) took its own Toxiproxy and HTTP
        # fault proxy, and every fault on them, with it: there is nothing left there to ask.
        gone = _parts_of_a_stopped_local_stack(Path(str(stack["file"])))
        if gone and (url in gone or http_url in gone):
            url, http_url = (None if url in gone else url), (None if http_url in gone else http_url)
            if not url and not http_url and not hooks:
                yield f"{label}: stopped; its Toxiproxy and HTTP fault proxy went with it", True
                return
    try:
        runtime: Runtime | None = None
        if kind == "compose" and stack.get("file"):
            # Imported here: the docker SDK is only loaded for compose stacks.
            from harness.runtime.compose import ComposeRuntime

            runtime = ComposeRuntime(Path(stack["file"]), str(stack.get("project") or "drill-staging"),
                                     subdir("logs"))
        if runtime is None and not url and not hooks and not http_url:
            return
        for line, ok in recover_strays(url, runtime, hooks, force=force, http_fault_proxy_url=http_url):
            if not ok and not force and line.startswith("stray"):
                line = line.replace("(run `drill recover --force` to remove it)",
                                    "(no journal knows it: `drill recover --all --force` removes it)")
            yield f"{label}: {line}", ok
    except Exception as exc:  # one stack that cannot be asked must not hide the others
        yield f"{label}: could not check the stack: {exc}", False


def _parts_of_a_stopped_local_stack(file: Path) -> set[str]:
    """The URLs of the Toxiproxy and the HTTP fault proxy a local stack file starts itself, when
    none of the stack's ports is in use (the stack is down); empty otherwise."""
    try:
        spec = load_stack(file)
    except Exception:  # a stack file changed or gone since the run: scan what was recorded
        return set()
    if any(port_in_use(port) for _, port in spec.declared_ports()):
        return set()
    own = {spec.http_fault_proxy.url} if spec.http_fault_proxy is not None else set()
    if spec.toxiproxy is not None and spec.toxiproxy.start:
        own.add(spec.toxiproxy.url)
    return own


def recover_run(run_dir: Path) -> Iterator[tuple[str, bool]]:
    """Revert what the run's journal says may still be applied; yield (message, ok) per action."""
    path = Path(run_dir) / JOURNAL_FILE
    if not path.exists():
        yield f"{run_dir}: no {JOURNAL_FILE}; nothing to recover", False
        return
    # The space a killed drill held back for its rollback is no evidence and no longer needed.
    (Path(run_dir) / RESERVE_FILE).unlink(missing_ok=True)
    pending = applied_faults(path)
    proxies = proxies_left(path)
    load = groups_left(path, LoadStarted)
    groups = groups_left(path, StackStarted)
    if not (pending or proxies or groups or load):
        yield f"{run_dir}: clean (nothing left applied)", True
        return
    with Journal(path) as journal:
        if load:
            stopped = [name for name, pgid in load.items() if _stop_group(pgid)]
            journal.write(LoadStopped(why="recover", groups=stopped))
            yield f"{run_dir}: load stopped ({len(stopped)} load generators were still running)", True
        for entry in pending:
            journal.write(FaultRevertIntent(fault_id=entry.fault_id, why="recover"))
            try:
                undo_fault(entry.undo)
            except Exception as exc:
                journal.write(FaultRevertFailed(fault_id=entry.fault_id, error=str(exc), why="recover"))
                yield f"{run_dir}: fault {entry.name} ({entry.type}) NOT reverted: {exc}", False
                continue
            journal.write(FaultReverted(fault_id=entry.fault_id, reverted_at=time.time(), why="recover"))
            yield f"{run_dir}: fault {entry.name} ({entry.type}) reverted", True
        for undo in proxies:
            try:
                undo_fault(undo)
            except Exception as exc:
                yield f"{run_dir}: proxy {undo.proxy} NOT deleted: {exc}", False
                continue
            journal.write(ProxyDeleted(proxy=undo.proxy, why="recover"))
            yield f"{run_dir}: proxy {undo.proxy} deleted", True
        if groups:
            runtime, endpoints = _stack_started(path)
            stopped = [name for name, pgid in groups.items() if _stop_group(pgid)]
            journal.write(StackStopped(why="recover", groups=stopped))
            yield f"{run_dir}: {stack_stopped_text(runtime, groups, stopped, endpoints)}", True


def _stack_started(path: Path) -> tuple[str, dict[str, str]]:
    """The runtime the run started its stack with and the endpoints it journaled (the last
    ``stack.starting`` and ``stack.started``)."""
    runtime, endpoints = "local", {}
    for record in read_journal(path, lenient=True):
        if isinstance(record.event, StackStarting):
            runtime = record.event.runtime
        elif isinstance(record.event, StackStarted):
            endpoints = dict(record.event.endpoints)
    return runtime, endpoints


def stack_stopped_text(runtime: str, groups: dict[str, int], stopped: list[str], endpoints: dict[str, str]) -> str:
    """What recover stopped of a stack: a local stack's process groups by count; another
    runtime's helper processes (the kubernetes runtime's ``kubectl proxy``) by name, pid and the
    endpoint of the same name, e.g. ``stopped the kubernetes runtime's kubectl-proxy (pid 4242,
    http://127.0.0.1:18181)``."""
    if runtime == "local":
        return f"local stack stopped ({len(stopped)} process groups were still running)"
    named = {name: f"{name} (pid {pgid}" + (f", {endpoints[name]})" if name in endpoints else ")")
             for name, pgid in groups.items()}
    said = []
    if ran := [named[name] for name in groups if name in stopped]:
        said.append(f"stopped the {runtime} runtime's " + ", ".join(ran))
    if gone := [named[name] for name in groups if name not in stopped]:
        said.append(f"the {runtime} runtime's " + ", ".join(gone) + " no longer running")
    return "; ".join(said)


def _ours(pgid: int) -> bool:
    """Only signal a group whose leader still looks like ours — a stack process or a load
    generator — since pids get reused."""
    try:
        cmdline = Path(f"/proc/{pgid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    return any(mark in cmdline for mark in ("targets.", "toxiproxy-server", "mitmdump", "locust",
                                            "harness.load.prober", "kubectl proxy"))


def _stop_group(pgid: int, grace_s: float = 5.0) -> bool:
    if not _ours(pgid):
        return False
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and _ours(pgid):
        time.sleep(0.05)
    if _ours(pgid):
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return True
