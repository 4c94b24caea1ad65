"""Once a second during a drill: the parts it relies on are still there. Toxiproxy gone means
its faults can be neither observed nor reverted; a stack member that stopped without a drill
fault makes every figure about something else. Either aborts the drill (rollback, exit 3)."""

from __future__ import annotations

from harness.engine.parts import Parts
from harness.errors import AbortedError
from harness.rundir.events import DependencyLost


def members_not_running(parts: Parts) -> list[str]:
    """Stack members that are not running (none before the stack is ours)."""
    if parts.stack is None or not parts.stack_started:
        return []
    return list(parts.stack.not_running())


def check_dependencies(parts: Parts, down_at_start: set[str], targeted: set[str]) -> None:
    """Raise AbortedError when Toxiproxy stopped answering or a member stopped that was running
    at the start and no applied fault targets (``targeted``: names with and without kind)."""
    journal = parts.journal
    if parts.toxiproxy is not None:
        try:
            parts.toxiproxy.version()
        except Exception as exc:
            journal.write(DependencyLost(what="toxiproxy", url=parts.toxiproxy.url, error=str(exc)))
            raise AbortedError(
                f"Toxiproxy at {parts.toxiproxy.url} stopped answering during the drill ({exc}); "
                "its faults can be neither watched nor reverted from here", reason="dependency",
            ) from None
    try:
        down = set(members_not_running(parts))
    except Exception as exc:
        journal.write(DependencyLost(what="stack", error=str(exc)))
        raise AbortedError(f"the stack stopped answering during the drill: {exc}", reason="dependency") from None
    lost = sorted(down - down_at_start - targeted)
    if lost:
        journal.write(DependencyLost(what="stack members", members=lost))
        raise AbortedError(
            f"stack member(s) {', '.join(lost)} stopped on their own during the drill (no drill fault "
            "targets them); the figures would describe that failure, not the drill's",
            reason="dependency",
        )
