"""The stack's own record of what happened (``stack.events_url``), kept in the run directory so
results can set its failover instants beside the harness's."""

from __future__ import annotations

from pathlib import Path

import httpx

from harness.rundir import STACK_EVENTS_FILE, write_stack_events
from harness.rundir.events import StackEvents
from harness.rundir.journal import Journal
from harness.scenario import LoadedScenario

FETCH_TIMEOUT_S = 2.0


def save_stack_events(
    loaded: LoadedScenario, run_dir: Path, journal: Journal, phases: dict[str, list[float]]
) -> None:
    """Fetch the events since the baseline began into the run directory. Best effort: a stack that
    cannot answer costs the agreement figure, never the drill."""
    url = loaded.spec.stack.events_url
    if not url or "baseline" not in phases:
        return
    # Fetched before the rollback (a local stack stops with it), so kept short.
    try:
        reply = httpx.get(url, params={"since": phases["baseline"][0] - 1}, timeout=FETCH_TIMEOUT_S)
        reply.raise_for_status()
        events = reply.json()
        if not isinstance(events, list):
            raise ValueError(f"expected a JSON list, got {type(events).__name__}")
        write_stack_events(run_dir, url, events)
    except (httpx.HTTPError, ValueError, OSError) as exc:
        journal.write(StackEvents(url=url, ok=False, error=str(exc)))
        return
    journal.write(StackEvents(url=url, ok=True, count=len(events), file=STACK_EVENTS_FILE))
