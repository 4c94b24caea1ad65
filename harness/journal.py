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
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

JOURNAL_NAME = "journal.jsonl"


def utc_iso(ts: float) -> str:
    """Epoch seconds -> ISO 8601 UTC with microseconds, e.g. ``2026-11-23T17:52:16.123456Z``."""
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


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

    def __enter__(self) -> "Journal":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_journal(path: Path) -> Iterator[dict[str, Any]]:
    """Yield the records of a journal; a torn last line (crash mid-write) is skipped."""
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue


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


def fault_ledger(path: Path) -> dict[str, LedgerEntry]:
    """Derive each fault's state from the journal alone, keyed by fault id, in intent order."""
    ledger: dict[str, LedgerEntry] = {}
    for rec in read_journal(path):
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


def applied_faults(path: Path) -> list[LedgerEntry]:
    """Faults the journal says may still be applied, newest first (the order to revert in)."""
    return [e for e in reversed(list(fault_ledger(path).values())) if e.possibly_applied]
