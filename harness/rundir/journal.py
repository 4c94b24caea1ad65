"""The run journal: append-only JSONL of every action and observation, fsynced line by line, and
its ONE reader.

Every fault is journaled *before* it is applied (:class:`~harness.rundir.events.FaultIntent`,
carrying an undo record that is enough to revert it without the scenario) and again after
(``FaultApplied`` or ``FaultApplyFailed``); the same for reverts (``FaultRevertIntent``,
``FaultReverted`` or ``FaultRevertFailed``). The fault ledger — what may be applied right now —
is derived from the journal alone (:func:`fault_ledger`), so ``drill recover`` can clean up
after a ``kill -9``. What each event means is catalogued in :mod:`harness.rundir.events`.

Results (``read_facts``), ``drill recover``, the stray scan, the port-holder lookup and the
report's story all read through :func:`read_journal` (or the small readers below built on it).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from harness.errors import ScenarioError
from harness.rundir.events import (
    MAX_EPOCH_S,
    FaultApplied,
    FaultApplyFailed,
    FaultIntent,
    FaultReverted,
    FaultRevertFailed,
    FaultRevertIntent,
    FaultRevertRetry,
    JournalEvent,
    LoadStarted,
    LoadStopped,
    ProxyDeleted,
    ProxyIntent,
    StackStarted,
    StackStopped,
    parse_event,
)
from harness.rundir.undo import ProxyCreatedUndo, Undo

__all__ = [
    "DamagedFileError",
    "Journal",
    "LedgerEntry",
    "Record",
    "applied_faults",
    "fault_ledger",
    "groups_left",
    "proxies_left",
    "read_journal",
    "stack_process_groups",
    "utc_iso",
]


def utc_iso(ts: float) -> str:
    """Epoch seconds -> ISO 8601 UTC with microseconds, e.g. ``2026-11-23T17:52:16.123456Z``."""
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class Record:
    """One journal line: when (``ts``, epoch seconds) and what (the typed event)."""

    ts: float
    event: JournalEvent

    def document(self) -> dict[str, Any]:
        """The line as JSON: ``ts``, ``at``, ``event``, then the event's fields."""
        return {"ts": self.ts, "at": utc_iso(self.ts), "event": self.event.event, **self.event.fields()}


class Journal:
    """Append-only JSONL writer. Thread-safe; each record is flushed and fsynced before return."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._fh = open(self.path, "a", encoding="utf-8")

    def write(self, event: JournalEvent, *, ts: float | None = None) -> Record:
        """Append ``event`` stamped ``ts`` (now when not given: a phase's start is given its own)."""
        record = Record(round(ts or time.time(), 6), event)
        line = json.dumps(record.document(), default=str, separators=(",", ":"))
        with self._lock:
            self._fh.write(line + "\n")
            self._fh.flush()
            os.fsync(self._fh.fileno())
        return record

    def close(self) -> None:
        with self._lock:
            if not self._fh.closed:
                self._fh.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class DamagedFileError(ScenarioError):
    """A run directory file drill wrote was damaged afterwards (exit 2); names FILE:LINE."""


_NUMBER = (int, float)


def _parse(record: Any) -> Record | str:
    """A parsed journal line as a :class:`Record`, or why it cannot be used."""
    if not isinstance(record, dict):
        return "not a JSON object"
    ts = record.get("ts")
    if isinstance(ts, bool) or not isinstance(ts, _NUMBER) or not 0 <= ts <= MAX_EPOCH_S:
        return f"'ts' must be a number of epoch seconds, got {_short(ts)}"
    name = record.get("event")
    if not isinstance(name, str):
        return f"'event' must be text, got {_short(name)}"
    try:
        return Record(float(ts), parse_event(record))
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        if error["type"] == "missing":
            return f"{name} record without '{where}'"
        return f"{name} record: '{where}' {error['msg'].lower()} ({_short(error.get('input'))})"


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def read_journal(path: Path, *, lenient: bool = False) -> Iterator[Record]:
    """Yield the records of a journal, typed; a torn last line (crash mid-write) is skipped.

    Any other damage (bytes that are not UTF-8, a line that is not a JSON object, a field of the
    wrong type) raises :class:`DamagedFileError` naming ``FILE:LINE``; ``lenient=True`` (for
    ``drill recover``, which must use every intact line) skips damaged lines instead.
    """
    with open(path, "rb") as fh:
        raw_lines = fh.read().split(b"\n")
    last = max((i for i, line in enumerate(raw_lines) if line.strip()), default=-1)
    for number, raw in enumerate(raw_lines, start=1):
        if not raw.strip():
            continue
        parsed: Record | str
        try:
            parsed = _parse(json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant))
        except UnicodeDecodeError:
            parsed = "bytes that are not UTF-8"
        except (ValueError, RecursionError):
            if number - 1 == last:
                continue  # torn by a crash mid-write
            parsed = "not a JSON line"
        if isinstance(parsed, Record):
            yield parsed
        elif not lenient:
            raise DamagedFileError(
                f"{path}:{number} damaged journal line: {parsed}; the journal is written by drill "
                "and must not be edited (restore it from the evidence pack or a backup)"
            )


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# --- the fault ledger ------------------------------------------------------------------------------

FAULT_EVENTS = (FaultIntent, FaultApplied, FaultApplyFailed, FaultRevertIntent, FaultRevertRetry, FaultRevertFailed,
                FaultReverted)
"""The events of one fault's life, each carrying its ``fault_id``."""


@dataclass
class LedgerEntry:
    """One fault as the journal tells it."""

    fault_id: str
    name: str
    type: str
    undo: Undo
    state: str  # "intended" (apply may or may not have happened) | "applied" | "reverted"
    records: list[Record] = field(default_factory=list)

    @property
    def possibly_applied(self) -> bool:
        return self.state in ("intended", "applied")


def fault_ledger(path: Path, *, lenient: bool = True) -> dict[str, LedgerEntry]:
    """Derive each fault's state from the journal alone, keyed by fault id, in intent order.
    Lenient by default: recovery uses every intact line of a damaged journal."""
    ledger: dict[str, LedgerEntry] = {}
    for record in read_journal(path, lenient=lenient):
        event = record.event
        if isinstance(event, FaultIntent):
            ledger[event.fault_id] = LedgerEntry(event.fault_id, event.name, event.type, event.undo, "intended")
        if not isinstance(event, FAULT_EVENTS) or (entry := ledger.get(event.fault_id)) is None:
            continue
        entry.records.append(record)
        match event:
            case FaultApplied():
                entry.state = "applied"
            case FaultApplyFailed():
                entry.state = "intended"  # the call failed, but it may have half-happened: keep it revertable
            case FaultReverted():
                entry.state = "reverted"
    return ledger


def applied_faults(path: Path, *, lenient: bool = True) -> list[LedgerEntry]:
    """Faults the journal says may still be applied, newest first (the order to revert in)."""
    return [e for e in reversed(list(fault_ledger(path, lenient=lenient).values())) if e.possibly_applied]


# --- what else a crashed run may have left ---------------------------------------------------------


def proxies_left(path: Path) -> list[ProxyCreatedUndo]:
    """Toxiproxy proxies the run created and never deleted (their undo records)."""
    created: dict[str, ProxyCreatedUndo] = {}
    for record in read_journal(path, lenient=True):
        match record.event:
            case ProxyIntent(proxy=proxy, undo=ProxyCreatedUndo() as undo):
                created[proxy] = undo
            case ProxyDeleted(proxy=proxy):
                created.pop(proxy, None)
    return list(created.values())


def groups_left(path: Path, of: type[StackStarted] | type[LoadStarted]) -> dict[str, int]:
    """Process groups a run journaled as started (the stack's or the load's) and never stopped."""
    stopped = StackStopped if of is StackStarted else LoadStopped
    groups: dict[str, int] = {}
    for record in read_journal(path, lenient=True):
        if isinstance(record.event, of):
            groups = {name: pgid for name, pgid in record.event.process_groups.items() if pgid is not None and pgid > 1}
        elif isinstance(record.event, stopped):
            groups = {}
    return groups


def stack_process_groups(path: Path) -> set[int]:
    """Every process group the run's local stack was journaled to have started (for the
    port-holder lookup: which registered run holds a port)."""
    groups: set[int] = set()
    for record in read_journal(path, lenient=True):
        if isinstance(record.event, StackStarted):
            groups.update(pgid for pgid in record.event.process_groups.values() if pgid is not None and pgid > 1)
    return groups
