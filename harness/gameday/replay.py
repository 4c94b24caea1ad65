"""Replay of a finished run for a tabletop exercise (docs/gameday.md "Replay").

The same page walks through a run directory's timeline at real speed or faster, pausable: its
phases, its faults as the journal recorded them, the live figures recomputed second by second
from its probe samples (as the terminal showed them), and the entries people recorded during
the drill. Nothing is applied to any stack. People at the tabletop record their own entries on
the original drill's clock; they go to a new directory, never into the original run: a copy of
the run directory with ``replay.json`` (naming the original run and its results' SHA-256) whose
journal gains the tabletop's ``gameday.participants`` and ``human.entry`` records, and whose
results, recomputed when the replay ends, carry them in ``human``. ``drill pack`` packs it like
any run, the original run's files and the tabletop's entries signed together.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import pandas as pd

from harness.engine.controls import ControlRefused
from harness.errors import ScenarioError
from harness.gameday.session import LOG_LINES, MAX_NOTE, MAX_PARTICIPANTS, Role, clean_name
from harness.progress import Snapshot
from harness.rundir import JOURNAL_FILE
from harness.rundir.events import (
    HUMAN_KINDS,
    FaultApplied,
    FaultIntent,
    FaultReverted,
    GamedayParticipants,
    HumanEntry,
    HumanKind,
    PhaseEnd,
    PhaseStart,
    RunStart,
)
from harness.rundir.frames import read_samples
from harness.rundir.journal import Journal, read_journal

SPEEDS = (0.5, 1.0, 2.0, 4.0, 8.0)
REPLAY_FILE = "replay.json"


@dataclass(frozen=True)
class _Fault:
    name: str
    type: str
    onset: float | None
    reverted: float | None


class ReplayDay:
    """A run directory played back; the server calls :meth:`state` and the commands."""

    def __init__(self, run_dir: Path, out_dir: Path, speed: float = 1.0) -> None:
        self.run_dir = run_dir
        self.out_dir = out_dir
        self.speed = speed
        if not (run_dir / JOURNAL_FILE).exists():
            raise ScenarioError(f"{run_dir}: no {JOURNAL_FILE}: not a drill run directory")
        records = list(read_journal(run_dir / JOURNAL_FILE))
        self.scenario = run_dir.name
        self.phase_starts: dict[str, float] = {}
        self.end: float | None = None
        intents: dict[str, tuple[str, str]] = {}
        onsets: dict[str, float] = {}
        reverts: dict[str, float] = {}
        self.recorded: list[tuple[float, str, str, str]] = []
        self.timeline: list[tuple[float, str]] = []
        for record in records:
            match record.event:
                case RunStart() as start:
                    self.scenario = start.scenario or self.scenario
                case PhaseStart(phase=phase):
                    self.phase_starts[phase] = record.ts
                    self.timeline.append((record.ts, f"phase {phase}"))
                case PhaseEnd():
                    self.end = record.ts
                case FaultIntent() as intent:
                    intents[intent.fault_id] = (intent.name, intent.type)
                case FaultApplied() as applied:
                    onsets[applied.fault_id] = applied.onset_at or record.ts
                    name = intents.get(applied.fault_id, (applied.fault_id, ""))[0]
                    self.timeline.append((onsets[applied.fault_id], f"fault {name} applied"))
                case FaultReverted() as reverted:
                    reverts[reverted.fault_id] = reverted.reverted_at or record.ts
                    name = intents.get(reverted.fault_id, (reverted.fault_id, ""))[0]
                    self.timeline.append((reverts[reverted.fault_id], f"fault {name} reverted ({reverted.why})"))
                case HumanEntry() as entry:
                    self.recorded.append((record.ts, entry.participant, entry.kind, entry.note))
        if "baseline" not in self.phase_starts:
            raise ScenarioError(f"{run_dir}: the run never reached its baseline: nothing to replay")
        self.origin = self.phase_starts["baseline"]
        self.end = self.end or (records[-1].ts if records else self.origin)
        self.faults = [_Fault(name, kind, onsets.get(fid), reverts.get(fid)) for fid, (name, kind) in intents.items()]
        self.timeline.sort()
        samples = read_samples(run_dir)
        probe = samples[samples["source"] == "probe"] if len(samples) else samples
        self.probe = probe.sort_values("end") if len(probe) else probe
        self.locust_ends = samples.loc[samples["source"] != "probe", "end"].sort_values().to_numpy() \
            if len(samples) else pd.Series(dtype=float).to_numpy()
        self.participants: tuple[str, ...] = ()
        self.entries: list[tuple[float, str, str, str]] = []
        self.status = "waiting"  # waiting -> running (playing or paused) -> finished
        self.paused = False
        self._position = 0.0  # seconds of the drill's clock from the baseline's start
        self._since: float | None = None  # wall clock when the position was last set while playing
        self._lock = threading.Lock()
        self._journal: Journal | None = None
        self.log: deque[str] = deque(maxlen=LOG_LINES)

    # --- the replay clock ---------------------------------------------------------------------
    def position(self) -> float:
        """Where the replay is on the drill's clock (seconds from the baseline's start)."""
        with self._lock:
            if self._since is None or self.paused:
                return self._position
            here = self._position + (time.time() - self._since) * self.speed
        assert self.end is not None
        if here >= self.end - self.origin:
            self.status = "finished"
            return self.end - self.origin
        return here

    def _set_playing(self, paused: bool) -> None:
        here = self.position()
        with self._lock:
            self._position = here
            self._since = time.time()
            self.paused = paused

    # --- commands -----------------------------------------------------------------------------
    def start(self, participants: object) -> None:
        if not isinstance(participants, list) or len(participants) > MAX_PARTICIPANTS:
            raise ControlRefused(f"participants must be a list of at most {MAX_PARTICIPANTS} names")
        names = tuple(dict.fromkeys(n for n in (clean_name(p, "a participant") for p in participants) if n))
        if self.status != "waiting":
            raise ControlRefused("the replay has already started")
        self.participants = names
        if self.out_dir.exists() and any(self.out_dir.iterdir()):
            raise ControlRefused(f"{self.out_dir} is not empty: choose another --out")
        if self.out_dir.exists():
            self.out_dir.rmdir()
        shutil.copytree(self.run_dir, self.out_dir)  # the original is never written
        results = self.run_dir / "results.json"
        (self.out_dir / REPLAY_FILE).write_text(json.dumps({
            "schema": "drill.replay/v1",
            "source_run": str(self.run_dir.resolve()),
            "source_run_id": self.run_dir.name,
            "source_results_sha256": hashlib.sha256(results.read_bytes()).hexdigest() if results.exists() else None,
            "speed": self.speed,
            "started_at": time.time(),
        }, indent=2) + "\n", encoding="utf-8")
        self._journal = Journal(self.out_dir / JOURNAL_FILE)
        self._journal.write(GamedayParticipants(participants=list(names)))
        self.status = "running"
        self._set_playing(False)

    def pause(self) -> None:
        self._running()
        self._set_playing(True)

    def resume(self) -> None:
        self._running()
        self._set_playing(False)

    def set_speed(self, speed: object) -> None:
        if speed not in SPEEDS:
            raise ControlRefused(f"speed must be one of {', '.join(f'{s:g}' for s in SPEEDS)}")
        here = self.position()
        with self._lock:
            self._position, self._since = here, time.time()
            self.speed = float(speed)  # one of SPEEDS, checked above

    def _running(self) -> None:
        if self.status == "waiting":
            raise ControlRefused("the replay has not started")

    def inject(self, fault: object, by: str) -> None:
        raise ControlRefused("a replay applies nothing: its faults happen as they did")

    def hold(self, seconds: object, by: str) -> None:
        raise ControlRefused("a replay cannot hold a phase: pause it")

    def abort(self, by: str) -> None:
        raise ControlRefused("a replay has nothing to abort: pause it or close the console")

    def record(self, participant: object, kind: object, note: object) -> object:
        who = clean_name(participant, "participant")
        if who not in self.participants:
            raise ControlRefused(f"{who!r} is not a participant of this tabletop")
        if not isinstance(kind, str) or kind not in HUMAN_KINDS:
            raise ControlRefused(f"kind must be one of {', '.join(HUMAN_KINDS)}")
        text = clean_name(note if note is not None else "", "note", MAX_NOTE)
        if self._journal is None:
            raise ControlRefused("the replay has not started")
        at = self.origin + self.position()  # on the original drill's clock
        self._journal.write(HumanEntry(participant=who, kind=cast(HumanKind, kind), note=text), ts=at)
        self.entries.append((at, who, kind, text))
        return at

    def close(self) -> None:
        """End the tabletop: close its journal and recompute its results (with the room's lane)."""
        if self._journal is None:
            return
        self._journal.close()
        self._journal = None
        from harness.engine.outputs import write_outputs
        from harness.results import compute_results

        results, timeline = compute_results(self.out_dir)
        write_outputs(self.out_dir, results, timeline)

    # --- what the page shows ------------------------------------------------------------------
    def _snapshot(self, now_s: float) -> Snapshot | None:
        t = self.origin + now_s
        if now_s < 1.0 or not len(self.probe):
            return None
        ends = self.probe["end"].to_numpy()
        lo, hi = ends.searchsorted(t - 1.0), ends.searchsorted(t)
        rows = self.probe.iloc[lo:hi]
        answered = rows[rows["status"] > 0]
        latencies = sorted(float(v) for v in answered["latency_ms"])
        ttfts = sorted(float(v) for v in rows.get("ttft_ms", pd.Series(dtype=float)) if math.isfinite(float(v)))
        tiers = Counter(str(v) or "untagged" for v in answered["tier"])
        total = sum(tiers.values())
        locust = int(self.locust_ends.searchsorted(t) - self.locust_ends.searchsorted(t - 1.0))
        return Snapshot(
            ts=t, phase=self._phase_at(t), elapsed_s=now_s, remaining_s=max(0.0, (self.end or t) - t),
            phase_remaining_s=0.0, window_s=1.0, rps=float(locust), probe_requests=len(rows),
            error_rate=float(1 - rows["ok"].mean()) if len(rows) else None,
            p95_ms=latencies[math.ceil(0.95 * len(latencies)) - 1] if latencies else None,
            active_faults=tuple(f.name for f in self.faults
                                if f.onset is not None and f.onset <= t and (f.reverted is None or f.reverted > t)),
            tiers={k: n / total for k, n in sorted(tiers.items())},
            ttft_p95_ms=ttfts[math.ceil(0.95 * len(ttfts)) - 1] if ttfts else None,
        )

    def _phase_at(self, t: float) -> str:
        current = "baseline"
        for name, start in sorted(self.phase_starts.items(), key=lambda item: item[1]):
            if start <= t:
                current = name
        return current

    def _phases(self) -> list[dict[str, object]]:
        ordered = sorted(self.phase_starts.items(), key=lambda item: item[1])
        out: list[dict[str, object]] = []
        for i, (name, start) in enumerate(ordered):
            end = ordered[i + 1][1] if i + 1 < len(ordered) else self.end
            out.append({"name": name, "start_s": round(start - self.origin, 3),
                        "end_s": round((end or start) - self.origin, 3)})
        return out

    def state(self, role: Role) -> dict[str, object]:
        now_s = self.position()
        t = self.origin + now_s
        snapshot = self._snapshot(now_s)

        def rel(at: float | None) -> float | None:
            return None if at is None or at > t else round(at - self.origin, 3)

        faults = []
        for f in self.faults:
            state = ("reverted" if f.reverted is not None and f.reverted <= t else
                     "applied" if f.onset is not None and f.onset <= t else "not applied yet")
            faults.append({"name": f.name, "type": f.type, "manual": False, "state": state,
                           "applied_at_s": rel(f.onset), "reverted_at_s": rel(f.reverted), "can_inject": False})
        shown = [e for e in self.recorded if e[0] <= t]
        entries = ([{"at_s": round(at - self.origin, 3), "participant": who, "kind": kind,
                     "note": note, "lane": "drill"} for at, who, kind, note in shown]
                   + [{"at_s": round(at - self.origin, 3), "participant": who, "kind": kind,
                       "note": note, "lane": "tabletop"} for at, who, kind, note in self.entries])
        entries.sort(key=lambda e: cast(float, e["at_s"]))
        return {
            "role": role,
            "scenario": f"replay of {self.scenario} (run {self.run_dir.name})",
            "status": self.status,
            "now_s": round(now_s, 3) if self.status != "waiting" else None,
            "participants": list(self.participants),
            "kinds": list(HUMAN_KINDS),
            "phases": self._phases(),
            "figures": snapshot.record() if snapshot is not None else None,
            "faults": faults,
            "entries": entries,
            "hold_left_s": None,
            "aborting": False,
            "log": [f"T+{at - self.origin:.1f}s {text}" for at, text in self.timeline if at <= t][-LOG_LINES:],
            "verdict": None,
            "exit_code": None,
            "run_dir": str(self.out_dir) if self.status == "finished" else None,
            "error": None,
            "replay": {"speed": self.speed, "paused": self.paused, "speeds": list(SPEEDS),
                       "source_run": self.run_dir.name, "out_dir": str(self.out_dir)},
        }
