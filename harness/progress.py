"""Live progress of a running drill, for the person watching and for machines.

The engine calls a :class:`Progress` once per drive-loop tick with a :class:`DriveTick` (where
the drill is and which faults are on); at most once per ``interval_s`` it reads what the load
wrote since the last time and shows:

- phase, elapsed / remaining;
- rps: Locust answers in the last second, counted as new lines of ``samples/locust.csv`` (bytes
  only, never parsed: the harness must not compete with the load for CPU);
- error rate, p95 latency and share of answers per tier, from the constant-rate probe's samples
  of the last second (``samples/probe.csv``: few rows, a fixed rate, so a stable figure);
- the active faults.

On a terminal it is a rich live line under the phase messages; otherwise a plain line every
``plain_every_s``; ``quiet`` shows nothing. ``events_path`` gets the same figures as NDJSON, one
record per second, for CI and dashboards (schema ``drill.progress/v1``).

Everything here runs in the harness process and only reads files the load generators flush
anyway; ``bench/load_overhead.py --live`` measures that it costs the load nothing.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.text import Text

from harness.load.samples import LOCUST_FILE, PROBE_FILE, SAMPLES_DIR
from harness.load.tail import SampleTail

Mode = Literal["live", "plain", "quiet"]
EVENTS_SCHEMA = "drill.progress/v1"
PHASE_ORDER = ("baseline", "fault", "recovery")


@dataclass(frozen=True)
class DriveTick:
    """Where the drive loop is: wall-clock ``now_s``, the phase windows (name -> [start, end]
    epoch seconds) and the names of the faults applied and not yet reverted."""

    now_s: float
    run_dir: Path
    phases: dict[str, list[float]]
    active_faults: tuple[str, ...]


@dataclass(frozen=True)
class Snapshot:
    """One second of figures (the NDJSON record)."""

    ts: float
    phase: str
    elapsed_s: float
    remaining_s: float
    phase_remaining_s: float
    window_s: float
    rps: float
    probe_requests: int
    error_rate: float | None
    p95_ms: float | None
    active_faults: tuple[str, ...]
    tiers: dict[str, float]
    ttft_p95_ms: float | None = None
    """p95 time to first token of the probe's streamed answers this second (None: no stream)."""

    def record(self) -> dict[str, object]:
        return {
            "schema": EVENTS_SCHEMA,
            "ts": round(self.ts, 3),
            "phase": self.phase,
            "elapsed_s": round(self.elapsed_s, 3),
            "remaining_s": round(self.remaining_s, 3),
            "phase_remaining_s": round(self.phase_remaining_s, 3),
            "window_s": round(self.window_s, 3),
            "rps": round(self.rps, 1),
            "probe_requests": self.probe_requests,
            "error_rate": None if self.error_rate is None else round(self.error_rate, 4),
            "p95_ms": None if self.p95_ms is None else round(self.p95_ms, 1),
            "active_faults": list(self.active_faults),
            "tiers": {k: round(v, 4) for k, v in self.tiers.items()},
            "ttft_p95_ms": None if self.ttft_p95_ms is None else round(self.ttft_p95_ms, 1),
        }

    def plain_line(self) -> str:
        errors = "-" if self.error_rate is None else f"{self.error_rate * 100:.1f}%"
        p95 = "-" if self.p95_ms is None else f"{self.p95_ms:.1f}ms"
        tiers = ",".join(f"{k}:{v * 100:.0f}%" for k, v in self.tiers.items()) or "-"
        faults = ",".join(self.active_faults) or "-"
        return (
            f"progress phase={self.phase} elapsed={self.elapsed_s:.0f}s remaining={self.remaining_s:.0f}s "
            f"rps={self.rps:.0f} errors={errors} p95={p95} faults={faults} tiers={tiers}"
        )

    def rich_text(self) -> Text:
        text = Text.from_markup(
            f"[bold]{self.phase}[/bold] {_clock(self.elapsed_s)} elapsed, {_clock(self.remaining_s)} left "
            f"(phase {_clock(self.phase_remaining_s)})  [cyan]{self.rps:.0f} rps[/cyan]"
        )
        if self.error_rate is None:
            text.append("  errors -  p95 -", style="dim")
        else:
            text.append(f"  errors {self.error_rate * 100:.1f} %", style="red" if self.error_rate > 0 else "green")
            text.append(f"  p95 {self.p95_ms:.1f} ms" if self.p95_ms is not None else "  p95 -")
        faults = ", ".join(self.active_faults)
        text.append("  faults: ")
        text.append(faults or "none", style="yellow" if faults else "dim")
        if self.tiers:
            text.append("  tiers: " + " · ".join(f"{k} {v * 100:.0f} %" for k, v in self.tiers.items()))
        return text


class Progress:
    """The observer the engine calls every tick; see the module docstring."""

    def __init__(
        self,
        console: Console,
        mode: Mode,
        events_path: Path | None = None,
        *,
        interval_s: float = 1.0,
        plain_every_s: float = 5.0,
    ) -> None:
        self.console = console
        self.mode = mode
        self.events_path = events_path
        self.interval_s = interval_s
        self.plain_every_s = plain_every_s
        self.snapshots_written = 0
        self._events: IO[str] | None = None
        self._live: Live | None = None
        self._probe: SampleTail | None = None
        self._locust: Path | None = None
        self._locust_offset = 0
        self._next_at = 0.0
        self._last_at: float | None = None
        self._next_plain_at = 0.0

    @staticmethod
    def mode_for(console: Console, quiet: bool, stdout_is_terminal: bool) -> Mode:
        """quiet wins; a live line only when both the console and stdout are terminals."""
        if quiet:
            return "quiet"
        return "live" if console.is_terminal and stdout_is_terminal else "plain"

    def __enter__(self) -> Progress:
        if self.events_path is not None:
            self.events_path.parent.mkdir(parents=True, exist_ok=True)
            self._events = open(self.events_path, "w", encoding="utf-8")  # noqa: SIM115
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
        if self._events is not None:
            self._events.close()
            self._events = None

    def __call__(self, tick: DriveTick) -> None:
        if tick.now_s < self._next_at:
            return
        if self._probe is None:
            self._probe = SampleTail(tick.run_dir / SAMPLES_DIR / PROBE_FILE)
            self._locust = tick.run_dir / SAMPLES_DIR / LOCUST_FILE
            self._last_at = tick.now_s
            self._next_at = tick.now_s + self.interval_s
            self._count_new_locust_lines()  # the rows from before the baseline are not "this second"
            self._probe.read_new()
            return
        self._next_at = tick.now_s + self.interval_s
        snapshot = self.snapshot(tick)
        self.show(snapshot)

    def snapshot(self, tick: DriveTick) -> Snapshot:
        assert self._probe is not None and self._last_at is not None
        window_s = max(tick.now_s - self._last_at, 1e-3)
        self._last_at = tick.now_s
        locust_rows = self._count_new_locust_lines()
        probes = self._probe.read_new()
        start = min(w[0] for w in tick.phases.values())
        end = max(w[1] for w in tick.phases.values())
        phase, phase_end = _phase_at(tick.phases, tick.now_s)
        bad = sum(1 for r in probes if not r["ok"])
        latencies = sorted(float(str(r["latency_ms"])) for r in probes if r["status"])
        ttfts = sorted(v for v in (_number(r.get("ttft_ms")) for r in probes) if v is not None)
        answered = Counter(str(r["tier"]) or "untagged" for r in probes if r["status"])
        total_answered = sum(answered.values())
        return Snapshot(
            ts=tick.now_s,
            phase=phase,
            elapsed_s=max(0.0, tick.now_s - start),
            remaining_s=max(0.0, end - tick.now_s),
            phase_remaining_s=max(0.0, phase_end - tick.now_s),
            window_s=window_s,
            rps=locust_rows / window_s,
            probe_requests=len(probes),
            error_rate=bad / len(probes) if probes else None,
            p95_ms=latencies[math.ceil(0.95 * len(latencies)) - 1] if latencies else None,
            active_faults=tick.active_faults,
            tiers={k: n / total_answered for k, n in sorted(answered.items())},
            ttft_p95_ms=ttfts[math.ceil(0.95 * len(ttfts)) - 1] if ttfts else None,
        )

    def show(self, snapshot: Snapshot) -> None:
        if self._events is not None:
            self._events.write(json.dumps(snapshot.record()) + "\n")
            self._events.flush()
            self.snapshots_written += 1
        if self.mode == "live":
            if self._live is None:
                self._live = Live(snapshot.rich_text(), console=self.console, auto_refresh=False, transient=True)
                self._live.start()
            self._live.update(snapshot.rich_text(), refresh=True)
        elif self.mode == "plain" and snapshot.ts >= self._next_plain_at:
            self._next_plain_at = snapshot.ts + self.plain_every_s
            self.console.print(
                f"[dim]{time.strftime('%H:%M:%S', time.localtime(snapshot.ts))}[/dim] {escape(snapshot.plain_line())}",
                soft_wrap=True,
            )

    def _count_new_locust_lines(self) -> int:
        """Complete lines appended to locust.csv since the last call (header excluded once)."""
        assert self._locust is not None
        try:
            with open(self._locust, "rb") as f:
                f.seek(self._locust_offset)
                chunk = f.read()
        except FileNotFoundError:
            return 0
        complete_end = chunk.rfind(b"\n") + 1
        lines = chunk[:complete_end].count(b"\n")
        if self._locust_offset == 0 and lines:
            lines -= 1  # the header
        self._locust_offset += complete_end
        return lines


def _number(value: object) -> float | None:
    """A sample's optional number (an absent TTFT reads as "" or NaN) -> float or None."""
    try:
        number = float(str(value))
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _phase_at(phases: dict[str, list[float]], now_s: float) -> tuple[str, float]:
    for name in PHASE_ORDER:
        if name in phases and now_s < phases[name][1]:
            return name, phases[name][1]
    last = max(phases.items(), key=lambda item: item[1][1])
    return last[0], last[1][1]


def _clock(seconds: float) -> str:
    whole = int(round(seconds))
    return f"{whole // 60}:{whole % 60:02d}"
