"""The rollback, on every exit path: stop load, revert faults newest first, check what is really
left, delete the proxies the drill created, stop the stack. Nothing here may raise: each step's
failure is journaled and the next step still runs; a journal record that cannot be written (a
full disk) is skipped, never a reason to stop reverting."""

from __future__ import annotations

from typing import Any

from harness.engine.parts import Parts
from harness.engine.schedule import FaultSchedule
from harness.safety.journal import Journal


def _note(journal: Journal, event: str, **fields: Any) -> None:
    """A rollback record, best effort: the disk may be full, and the rollback must go on."""
    try:
        journal.write(event, **fields)
    except OSError:
        pass


def rollback(parts: Parts, schedule: FaultSchedule | None, why: str) -> dict[str, Any]:
    """Undo everything the drill did; return the cleanup check (results.json ``cleanup``)."""
    journal = parts.journal
    for name, part in (("load", parts.load), ("capacity", parts.capacity), ("watchdog", parts.watchdog)):
        if part is None:
            continue
        try:
            part.stop()
        except Exception as exc:
            _note(journal, f"{name}.stop_failed", error=repr(exc))
        else:
            _note(journal, f"{name}.stopped")
    if schedule is not None:
        schedule.revert_all(why)
    cleanup = verify_cleanup(parts, schedule)
    toxiproxy = parts.toxiproxy
    for name in reversed(parts.proxies_created):
        try:
            assert toxiproxy is not None  # proxies are only created through it
            toxiproxy.delete_proxy(name)
            _note(journal, "proxy.deleted", proxy=name)
        except Exception as exc:
            _note(journal, "proxy.delete_failed", proxy=name, error=str(exc))
    if parts.stack is not None and parts.stack_started:
        try:
            parts.stack.stop()
            _note(journal, "stack.stopped")
        except Exception as exc:
            _note(journal, "stack.stop_failed", error=repr(exc))
    if toxiproxy is not None:
        toxiproxy.close()
    if parts.http_faults is not None:
        parts.http_faults.close()
    return cleanup


def verify_cleanup(parts: Parts, schedule: FaultSchedule | None) -> dict[str, Any]:
    """After the reverts, look at the real state: toxics left, stack members not running, and
    each fault's own ``verify()``. Journaled as ``cleanup.verified``."""
    journal = parts.journal
    toxics_left: int | None = 0
    not_running: list[str] | None = []
    if parts.toxiproxy is not None:
        try:
            toxics_left = sum(len(p.toxics) + (0 if p.enabled else 1) for p in parts.toxiproxy.proxies().values())
        except Exception as exc:
            _note(journal, "cleanup.check_failed", what="toxiproxy", error=str(exc))
            toxics_left = None
    if parts.stack is not None and parts.stack_started:
        try:
            not_running = list(parts.stack.not_running())
        except Exception as exc:
            _note(journal, "cleanup.check_failed", what="stack", error=str(exc))
            not_running = None
    unreverted = schedule.unreverted() if schedule is not None else []
    still_active = schedule.still_active() if schedule is not None else []
    cleanup = {
        "ok": toxics_left == 0 and not_running == [] and not unreverted and not still_active,
        "toxics_left": toxics_left,
        "containers_not_running": not_running,
        "faults_not_reverted": unreverted,
        "hook_faults_active": still_active,
    }
    _note(journal, "cleanup.verified", **cleanup)
    return cleanup


def cleanup_doubts(cleanup: dict[str, Any]) -> list[str]:
    """What the rollback's own check found still applied or not running (empty when clean)."""
    return [f"{key}: {', '.join(map(str, cleanup[key]))}"
            for key in ("faults_not_reverted", "hook_faults_active", "containers_not_running")
            if cleanup.get(key)]
