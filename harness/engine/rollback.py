"""The rollback, on every exit path: stop load, revert faults newest first, check what is really
left, delete the proxies the drill created, stop the stack. Nothing here may raise: each step's
failure is journaled and the next step still runs. A journal record that cannot
be written (a full disk) is skipped, never a reason to stop reverting."""

from __future__ import annotations

from harness.engine.parts import Parts
from harness.engine.schedule import FaultSchedule
from harness.rundir.events import (
    CapacityStopFailed,
    CapacityStopped,
    CleanupCheckFailed,
    CleanupVerified,
    JournalEvent,
    LoadStopFailed,
    LoadStopped,
    ProxyDeleted,
    ProxyDeleteFailed,
    StackStopFailed,
    StackStopped,
)
from harness.rundir.journal import Journal


def _note(journal: Journal, event: JournalEvent) -> None:
    """A rollback record, best effort: the disk may be full, and the rollback must go on."""
    try:
        journal.write(event)
    except OSError:
        pass


def rollback(parts: Parts, schedule: FaultSchedule | None, why: str) -> CleanupVerified:
    """Undo everything the drill did; return the cleanup check (results.json ``cleanup``)."""
    journal = parts.journal
    if parts.load is not None:
        try:
            parts.load.stop()
        except Exception as exc:
            _note(journal, LoadStopFailed(error=repr(exc)))
        else:
            _note(journal, LoadStopped())
    if parts.capacity is not None:
        try:
            parts.capacity.stop()
        except Exception as exc:
            _note(journal, CapacityStopFailed(error=repr(exc)))
        else:
            _note(journal, CapacityStopped())
    if parts.watchdog is not None:
        try:
            parts.watchdog.stop()
        except Exception:  # noqa: BLE001, S110 - the host-stall watchdog ends by itself anyway
            pass
    if schedule is not None:
        schedule.revert_all(why)
    cleanup = verify_cleanup(parts, schedule)
    toxiproxy = parts.toxiproxy
    for name in reversed(parts.proxies_created):
        try:
            assert toxiproxy is not None  # proxies are only created through it
            toxiproxy.delete_proxy(name)
            _note(journal, ProxyDeleted(proxy=name))
        except Exception as exc:
            _note(journal, ProxyDeleteFailed(proxy=name, error=str(exc)))
    if parts.stack is not None and parts.stack_started:
        try:
            parts.stack.stop()
            _note(journal, StackStopped())
        except Exception as exc:
            _note(journal, StackStopFailed(error=repr(exc)))
    if toxiproxy is not None:
        toxiproxy.close()
    if parts.http_faults is not None:
        parts.http_faults.close()
    return cleanup


def verify_cleanup(parts: Parts, schedule: FaultSchedule | None) -> CleanupVerified:
    """After the reverts, look at the real state: toxics left, stack members not running, and
    each fault's own ``verify()``. Journaled as ``cleanup.verified``."""
    journal = parts.journal
    toxics_left: int | None = 0
    not_running: list[str] | None = []
    if parts.toxiproxy is not None:
        try:
            toxics_left = sum(len(p.toxics) + (0 if p.enabled else 1) for p in parts.toxiproxy.proxies().values())
        except Exception as exc:
            _note(journal, CleanupCheckFailed(what="toxiproxy", error=str(exc)))
            toxics_left = None
    if parts.stack is not None and parts.stack_started:
        try:
            not_running = list(parts.stack.not_running())
        except Exception as exc:
            _note(journal, CleanupCheckFailed(what="stack", error=str(exc)))
            not_running = None
    unreverted = schedule.unreverted() if schedule is not None else []
    still_active = schedule.still_active() if schedule is not None else []
    cleanup = CleanupVerified(
        ok=toxics_left == 0 and not_running == [] and not unreverted and not still_active,
        toxics_left=toxics_left,
        containers_not_running=not_running,
        faults_not_reverted=unreverted,
        hook_faults_active=still_active,
    )
    _note(journal, cleanup)
    return cleanup
