"""Live progress (harness/progress.py): the figures of the last second from the sample files,
plain lines when not on a terminal, NDJSON events, quiet. Pure logic on real files: no stack."""

from __future__ import annotations

import io
import json
from pathlib import Path

from rich.console import Console

from harness.load.samples import COLUMNS, sample_row
from harness.progress import DriveTick, Progress

PHASES = {"baseline": [100.0, 110.0], "fault": [110.0, 130.0], "recovery": [130.0, 145.0]}


class _Headers(dict[str, str]):
    pass


def _append(path: Path, rows: list[list[str]]) -> None:
    new = not path.exists()
    with open(path, "a", encoding="utf-8") as f:
        if new:
            f.write(",".join(COLUMNS) + "\n")
        for row in rows:
            f.write(",".join(row) + "\n")


def _probe(start: float, ok: bool, latency_ms: float, tier: str) -> list[str]:
    headers = _Headers({"X-Tier": tier})
    status = 200 if ok else 503
    return sample_row("probe", start, start + latency_ms / 1000, status, 10, headers, "" if ok else "HTTP 503")


def _tick(run_dir: Path, now: float, faults: tuple[str, ...] = ()) -> DriveTick:
    return DriveTick(now_s=now, run_dir=run_dir, phases=PHASES, active_faults=faults)


def test_one_record_per_second_with_the_last_seconds_figures(tmp_path: Path) -> None:
    samples = tmp_path / "samples"
    samples.mkdir()
    events = tmp_path / "events.ndjson"
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=200)
    with Progress(console, "plain", events, plain_every_s=0) as progress:
        progress(_tick(tmp_path, 111.0))  # first call: starts the tails, shows nothing
        # one second of load: 20 probes, 2 failed, 18 answered by gpu / cpu; 300 locust rows
        _append(samples / "probe.csv", [_probe(111 + i / 20, i >= 2, 10.0 + i, "gpu" if i < 14 else "cpu")
                                        for i in range(20)])
        _append(samples / "locust.csv", [_probe(111.0, True, 5.0, "gpu") for _ in range(300)])
        for now in (111.5, 111.99):  # ticks within the second do nothing
            progress(_tick(tmp_path, now, ("provider-slow",)))
        progress(_tick(tmp_path, 112.0, ("provider-slow",)))
        progress(_tick(tmp_path, 113.0, ()))  # a second with no samples at all
    records = [json.loads(line) for line in events.read_text().splitlines()]
    assert len(records) == 2
    first, second = records
    assert first["schema"] == "drill.progress/v1"
    assert first["phase"] == "fault" and first["elapsed_s"] == 12.0 and first["remaining_s"] == 33.0
    assert first["phase_remaining_s"] == 18.0
    assert first["rps"] == 300.0 and first["probe_requests"] == 20
    assert first["error_rate"] == 0.1
    # answered probes: latencies 10 ms + i; 503s are answers too (tier from their headers)
    assert first["p95_ms"] == 28.0  # nearest rank: the 19th of 20
    assert first["tiers"] == {"cpu": 0.3, "gpu": 0.7}
    assert first["active_faults"] == ["provider-slow"]
    assert second["rps"] == 0.0 and second["error_rate"] is None and second["p95_ms"] is None
    assert second["active_faults"] == []
    lines = [line for line in out.getvalue().splitlines() if "progress" in line]
    assert len(lines) == 2
    assert "phase=fault" in lines[0] and "rps=300" in lines[0] and "errors=10.0%" in lines[0]
    assert "faults=provider-slow" in lines[0] and "tiers=cpu:30%,gpu:70%" in lines[0]


def test_plain_lines_are_spaced_and_quiet_prints_nothing(tmp_path: Path) -> None:
    (tmp_path / "samples").mkdir()
    for mode, expected_lines in (("plain", 2), ("quiet", 0)):
        out = io.StringIO()
        progress = Progress(Console(file=out, width=200), mode, plain_every_s=5.0)
        for second in range(11):
            progress(_tick(tmp_path, 100.0 + second))
        progress.close()
        assert out.getvalue().count("progress phase=") == expected_lines, mode


def test_mode_follows_the_terminal_and_quiet() -> None:
    terminal = Console(file=io.StringIO(), force_terminal=True)
    piped = Console(file=io.StringIO(), force_terminal=False)
    assert Progress.mode_for(terminal, quiet=False, stdout_is_terminal=True) == "live"
    assert Progress.mode_for(terminal, quiet=False, stdout_is_terminal=False) == "plain"
    assert Progress.mode_for(piped, quiet=False, stdout_is_terminal=True) == "plain"
    assert Progress.mode_for(terminal, quiet=True, stdout_is_terminal=True) == "quiet"


def test_live_mode_draws_the_figures_on_a_terminal(tmp_path: Path) -> None:
    samples = tmp_path / "samples"
    samples.mkdir()
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=200)
    with Progress(console, "live") as progress:
        progress(_tick(tmp_path, 111.0))
        _append(samples / "probe.csv", [_probe(111.2, True, 12.0, "gpu")])
        progress(_tick(tmp_path, 112.0, ("provider-slow",)))
    text = out.getvalue()
    assert "fault" in text and "0:12 elapsed" in text and "provider-slow" in text and "gpu 100 %" in text
