"""The run journal: append-only JSONL of every action and observation, fsynced line by line.

Every fault is journaled *before* it is applied (``fault.intent``, carrying an ``undo`` record
that is enough to revert it without the scenario) and again after (``fault.applied`` or
``fault.apply_failed``); the same for reverts (``fault.revert_intent``, ``fault.reverted`` or
``fault.revert_failed``). The fault ledger — what may be applied right now — is derived from
the journal alone, so ``drill recover`` can clean up after a ``kill -9``.
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

from harness.errors import ScenarioError
from harness.rundir import JOURNAL_FILE

JOURNAL_NAME = JOURNAL_FILE  # the run-directory layout is harness/rundir's


def utc_iso(ts: float) -> str:
    """Epoch seconds -> ISO 8601 UTC with microseconds, e.g. ``2026-11-23T17:52:16.123456Z``."""
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Journal:
    """Append-only JSONL writer. Thread-safe; each record is flushed and fsynced before return."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._fh = open(self.path, "a", encoding="utf-8")

    def write(self, event: str, **fields: Any) -> dict[str, Any]:
        ts = fields.pop("ts", None) or time.time()
        record = {"ts": round(ts, 6), "at": utc_iso(ts), "event": event, **fields}
        line = json.dumps(record, default=str, separators=(",", ":"))
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


# Fields whose type later readers rely on, per event (``ts`` and ``event`` for every record).
_NUMBER = (int, float)
_RECORD_TYPES: dict[str, dict[str, tuple[type, ...]]] = {
    "run.start": {"run_id": (str,), "scenario": (str,)},
    "phase.start": {"phase": (str,)},
    "phase.end": {"phase": (str,)},
    "fault.intent": {"fault_id": (str,), "name": (str,), "type": (str,), "undo": (dict,), "targets": (list,),
                     "params": (dict,)},
    "fault.applied": {"fault_id": (str,), "onset_at": _NUMBER, "onset_source": (str,),
                      "onset_uncertainty_s": _NUMBER},
    "fault.reverted": {"fault_id": (str,), "reverted_at": _NUMBER},
    "run.environment": {"environment": (dict,)},
    "cleanup.verified": {},
    "run.aborted": {"reason": (str,)},
    "proxy.intent": {"proxy": (str,), "undo": (dict,)},
    "proxy.deleted": {"proxy": (str,)},
    "load.started": {"process_groups": (dict,)},
    "stack.started": {"process_groups": (dict,)},
}
MAX_EPOCH_S = 1e10  # the year 2286: a larger instant is damage, and would overflow date arithmetic
_NUMBER_RANGE = {"onset_uncertainty_s": 1e6}
# Required in a record of that event (the others are checked only when present).
_REQUIRED = {"phase.start": ("phase",), "fault.intent": ("fault_id",),
             "fault.applied": ("fault_id", "onset_at", "onset_source", "onset_uncertainty_s"),
             "fault.reverted": ("fault_id",), "proxy.intent": ("proxy",)}


def _record_problem(record: Any) -> str | None:
    """Why a parsed journal line cannot be used (None when it can)."""
    if not isinstance(record, dict):
        return "not a JSON object"
    ts = record.get("ts")
    if isinstance(ts, bool) or not isinstance(ts, _NUMBER) or not 0 <= ts <= MAX_EPOCH_S:
        return f"'ts' must be a number of epoch seconds, got {_short(ts)}"
    event = record.get("event")
    if not isinstance(event, str):
        return f"'event' must be text, got {_short(event)}"
    for key in _REQUIRED.get(event, ()):
        if key not in record:
            return f"{event} record without '{key}'"
    for key, types in _RECORD_TYPES.get(event, {}).items():
        value = record.get(key)
        if key in record and (isinstance(value, bool) or not isinstance(value, types)):
            return f"{event} record: '{key}' has the wrong type ({_short(value)})"
        if (key in record and types is _NUMBER and isinstance(value, int | float)
                and not 0 <= value <= _NUMBER_RANGE.get(key, MAX_EPOCH_S)):
            return f"{event} record: '{key}' is out of range ({_short(value)})"
    return None


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def read_journal(path: Path, *, lenient: bool = False) -> Iterator[dict[str, Any]]:
    """Yield the records of a journal; a torn last line (crash mid-write) is skipped.

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
        problem: str | None
        try:
            record = json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
            problem = _record_problem(record)
        except UnicodeDecodeError:
            problem = "bytes that are not UTF-8"
        except (ValueError, RecursionError):
            if number - 1 == last:
                continue  # torn by a crash mid-write
            problem = "not a JSON line"
        if problem is None:
            yield record
        elif not lenient:
            raise DamagedFileError(
                f"{path}:{number} damaged journal line: {problem}; the journal is written by drill "
                "and must not be edited (restore it from the evidence pack or a backup)"
            )


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


@dataclass
class LedgerEntry:
    """One fault as the journal tells it."""

    fault_id: str
    name: str
    type: str
    undo: dict[str, Any]
    state: str  # "intended" (apply may or may not have happened) | "applied" | "reverted" | "failed"
    records: list[dict[str, Any]] = field(default_factory=list)

    @property
    def possibly_applied(self) -> bool:
        return self.state in ("intended", "applied")


def fault_ledger(path: Path, *, lenient: bool = True) -> dict[str, LedgerEntry]:
    """Derive each fault's state from the journal alone, keyed by fault id, in intent order.
    Lenient by default: recovery uses every intact line of a damaged journal."""
    ledger: dict[str, LedgerEntry] = {}
    for rec in read_journal(path, lenient=lenient):
        event = rec.get("event", "")
        if not event.startswith("fault."):
            continue
        fid = rec.get("fault_id")
        if fid is None:
            continue
        if event == "fault.intent":
            ledger[fid] = LedgerEntry(
                fault_id=fid,
                name=rec.get("name", ""),
                type=rec.get("type", ""),
                undo=rec.get("undo", {}),
                state="intended",
            )
        entry = ledger.get(fid)
        if entry is None:
            continue
        entry.records.append(rec)
        if event == "fault.applied":
            entry.state = "applied"
        elif event == "fault.apply_failed":
            # The call failed, but it may have half-happened: keep it revertable.
            entry.state = "intended"
        elif event == "fault.reverted":
            entry.state = "reverted"
    return ledger


def applied_faults(path: Path, *, lenient: bool = True) -> list[LedgerEntry]:
    """Faults the journal says may still be applied, newest first (the order to revert in)."""
    return [e for e in reversed(list(fault_ledger(path, lenient=lenient).values())) if e.possibly_applied]
