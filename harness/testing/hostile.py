"""Hostile scenario files, each of which must end in exit 2 and one ``FILE:LINE`` message.

Shared by ``tests/test_hostile.py`` and ``tests/test_fuzz.py`` (exit code and message) and
``bench/hostile_inputs.py`` (time and memory per case). ``write_cases(folder)`` writes them and
returns name -> path.
"""
# ruff: noqa: E501 - one case a line: the tables read best unbroken, as in tests/

from __future__ import annotations

import os
from pathlib import Path

BASE = """\
apiVersion: drill/v1
kind: Scenario
name: hostile
toxiproxy: {url: http://127.0.0.1:8474}
load:
  host: http://127.0.0.1:8080
  request: {method: GET, path: /}
phases: {baseline: 1s, fault: 5s, recovery: 1s}
faults:
  - {name: slow, type: latency, target: {proxy: p}, latency_ms: 10}
"""


def _sub(old: str, new: str) -> str:
    assert old in BASE
    return BASE.replace(old, new)


def _alias_bomb() -> str:
    """Nine levels of nine aliases: 9**9 (387 million) leaves from a few hundred bytes."""
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    for i in range(8):
        prev, name = chr(97 + i), chr(98 + i)
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    return "\n".join(lines) + "\n"


_TOXIPROXY = "toxiproxy: {url: http://127.0.0.1:8474}"

# name -> (scenario text, the words the one message must hold)
CASES: dict[str, tuple[str, str]] = {
    "bad-date-in-duration": (_sub("fault: 5s", "fault: 2020-13-45"), "phases.fault"),
    "bool-maybe": (BASE + "description: !!bool maybe\n", "!!bool"),
    "float-empty": (BASE + "description: !!float ''\n", "!!float"),
    "timestamp-x": (BASE + "description: !!timestamp x\n", "!!timestamp"),
    "int-5000-digits": (_sub("latency_ms: 10", "latency_ms: " + "9" * 5000), "5000 digits"),
    "nesting-600": (BASE + "description: " + "[" * 600 + "]" * 600 + "\n", "nested deeper"),
    "stack-file-300-chars": (_sub(_TOXIPROXY, "stack: {file: " + "a" * 300 + "}\n" + _TOXIPROXY), "stack.file"),
    "stack-file-nul": (_sub(_TOXIPROXY, 'stack: {file: "a\\0b"}\n' + _TOXIPROXY), "stack.file"),
    "stack-file-surrogate": (_sub(_TOXIPROXY, 'stack: {file: "a\\ud800b"}\n' + _TOXIPROXY), "surrogate"),
    "locustfile-300-chars": (_sub("  request: {method: GET, path: /}", "  locustfile: " + "b" * 300), "load.locustfile"),
    "duration-310-digits": (_sub("fault: 5s", "fault: " + "9" * 310), "310 digits"),
    "duration-huge-text": (_sub("fault: 5s", "fault: " + "9" * 300 + "h"), "phases.fault"),
    "alias-bomb": (_alias_bomb() + BASE, "aliases"),
    "alias-in-request-json": (
        _sub("  request: {method: GET, path: /}",
             "  request: {method: POST, path: /, json: &j [1]}\n  probe: {method: POST, path: /, json: *j}"),
        "aliases",
    ),
    "nan-duration": (_sub("fault: 5s", "fault: .nan"), "not a finite number"),
    "inf-rto": (BASE + "objectives: {rto_s: .inf}\n", "not a finite number"),
    "nan-error-rate-as-text": (BASE + "objectives: {max_error_rate: 'nan'}\n", "objectives.max_error_rate"),
    "inf-p95-as-text": (BASE + "objectives: {p95_ms: 'inf'}\n", "objectives.p95_ms"),
    "bucket-zero": (BASE + "measurement: {bucket: 0}\n", "measurement.bucket"),
    "bucket-sub-ms": (BASE + "measurement: {bucket: 0.000001ms}\n", "measurement.bucket"),
    "listen-port-99999": (BASE + "proxies: [{name: p, listen: '0.0.0.0:99999', upstream: '127.0.0.1:80'}]\n",
                          "proxies[0].listen"),
    "host-port-99999": (_sub("http://127.0.0.1:8080", "http://127.0.0.1:99999"), "load.host"),
    "crlf-in-path": (_sub("path: /}", 'path: "/x\\r\\nHost: evil"}'), "load.request.path"),
    "crlf-in-header": (_sub("path: /}", 'path: /, headers: {X-A: "v\\r\\nX-B: w"}}'), "load.request.headers"),
    "project-as-option": (_sub(_TOXIPROXY, "stack: {runtime: compose, file: x.yaml, project: '--file=/etc/x'}"),
                          "stack.project"),
    "oversized-file": (BASE + "description: '" + "x" * 300_000 + "'\n", "KiB"),
}

SPECIAL = ("fifo", "dev-zero", "directory")


def write_cases(folder: Path) -> dict[str, tuple[Path, str]]:
    """Write every case into ``folder``; name -> (path, expected words). Includes a FIFO,
    /dev/zero and a directory, which must be refused without being read."""
    folder.mkdir(parents=True, exist_ok=True)
    written: dict[str, tuple[Path, str]] = {}
    for name, (text, words) in CASES.items():
        path = folder / f"{name}.yaml"
        path.write_text(text, encoding="utf-8")
        written[name] = (path, words)
    fifo = folder / "fifo.yaml"
    if not fifo.exists():
        os.mkfifo(fifo)
    written["fifo"] = (fifo, "not a regular file")
    written["dev-zero"] = (Path("/dev/zero"), "not a regular file")
    (folder / "dir.yaml").mkdir(exist_ok=True)
    written["directory"] = (folder / "dir.yaml", "not a regular file")
    return written


# --- damaged run directories for `drill report` -------------------------------------------------

T0 = 1_700_000_000.0


def synthetic_run(run_dir: Path, fault_name: str = "provider-down", tier: str = "hosted") -> Path:
    """A small, complete run directory as a drill writes it: scenario.yaml, journal.jsonl and
    samples/probe.csv (20 s: 5 s baseline, a 4 s outage, recovery)."""
    import json

    from harness.load.samples import COLUMNS
    from harness.measure.testing import concat_samples, probe_segment

    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "scenario.yaml").write_text(
        "apiVersion: drill/v1\nkind: Scenario\nname: synthetic\n"
        "load: {host: 'http://127.0.0.1:9', probe_rate_hz: 20}\n"
        "phases: {baseline: 5s, fault: 10s, recovery: 5s}\n"
        f"faults:\n  - {{name: {json.dumps(fault_name)}, type: down, target: {{proxy: p}}, duration: 4s}}\n"
        "objectives: {rto_s: 5}\n", encoding="utf-8")
    records = [
        {"ts": T0 - 1, "event": "run.start", "run_id": run_dir.name, "scenario": "synthetic"},
        {"ts": T0, "event": "phase.start", "phase": "baseline"},
        {"ts": T0 + 5, "event": "phase.start", "phase": "fault"},
        {"ts": T0 + 5, "event": "fault.intent", "fault_id": "0-x", "name": fault_name, "type": "down",
         "targets": ["p"], "params": {}, "undo": {}},
        {"ts": T0 + 5.01, "event": "fault.applied", "fault_id": "0-x", "onset_at": T0 + 5.01,
         "onset_source": "toxiproxy", "onset_uncertainty_s": 0.01},
        {"ts": T0 + 9, "event": "fault.reverted", "fault_id": "0-x", "reverted_at": T0 + 9},
        {"ts": T0 + 15, "event": "phase.start", "phase": "recovery"},
        {"ts": T0 + 20, "event": "phase.end", "phase": "recovery"},
        {"ts": T0 + 20.1, "event": "cleanup.verified", "ok": True, "toxics_left": 0, "containers_not_running": []},
        {"ts": T0 + 20.2, "event": "run.finished"},
    ]
    (run_dir / "journal.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    samples = concat_samples(probe_segment(T0, 5.0, tier=tier), probe_segment(T0 + 5.0, 4.0, status=503),
                             probe_segment(T0 + 9, 11.0, tier=tier))
    (run_dir / "samples").mkdir(exist_ok=True)
    samples[COLUMNS].to_csv(run_dir / "samples" / "probe.csv", index=False)
    return run_dir


def _replace(run_dir: Path, name: str, old: bytes, new: bytes, count: int = 1) -> None:
    path = run_dir / name
    data = path.read_bytes()
    assert old in data, (name, old)
    path.write_bytes(data.replace(old, new, count))


# name -> (damage, the file named, its line (None: no line))
DAMAGES = {
    "samples-not-utf8": (lambda d: _replace(d, "samples/probe.csv", b"hosted-1", b"h\xffsted", 1), "probe.csv", 2),
    "journal-not-utf8": (lambda d: _replace(d, "journal.jsonl", b"synthetic", b"syn\xfe"), "journal.jsonl", 1),
    "status-30-digits": (lambda d: _replace(d, "samples/probe.csv", b",200,", b"," + b"9" * 30 + b","), "probe.csv", 2),
    "latency-inf": (lambda d: _replace(d, "samples/probe.csv", b",20.0,", b",inf,"), "probe.csv", 2),
    "journal-without-onset": (lambda d: _replace(d, "journal.jsonl", b'"onset_at": 1700000005.01, ', b""), "journal.jsonl", 5),
    "journal-string-ts": (lambda d: _replace(d, "journal.jsonl", b'"ts": 1700000000.0,', b'"ts": "x",'), "journal.jsonl", 2),
    "journal-not-an-object": (lambda d: _replace(d, "journal.jsonl", b'{"ts": 1700000000.0', b'[1]\n{"ts": 1700000000.0'),
                              "journal.jsonl", 2),
    "journal-onset-1e300": (lambda d: _replace(d, "journal.jsonl", b'"onset_at": 1700000005.01', b'"onset_at": 1e300'),
                            "journal.jsonl", 5),
    "bucket-zero": (lambda d: _append(d, "scenario.yaml", b"measurement: {bucket: 0}\n"), "scenario.yaml", 9),
    "bucket-nan": (lambda d: _append(d, "scenario.yaml", b"measurement: {bucket: .nan}\n"), "scenario.yaml", 9),
    "bucket-1ns": (lambda d: _append(d, "scenario.yaml", b"measurement: {bucket: 0.000000001}\n"), "scenario.yaml", 9),
    "capacity-not-utf8": (lambda d: _capacity_not_utf8(d), "capacity.csv", 3),
    "samples-file-is-a-folder": (lambda d: ((d / "samples/probe.csv").unlink(), (d / "samples/probe.csv").mkdir()),
                                 "probe.csv", None),
}


def _capacity_not_utf8(run_dir: Path) -> None:
    _append(run_dir, "scenario.yaml", b'capacity: {pool_url: "http://127.0.0.1:9/pool"}\n')
    (run_dir / "samples/capacity.csv").write_bytes(b"ts,ok\n1,1\n\xff,1\n")


def _append(run_dir: Path, name: str, text: bytes) -> None:
    path = run_dir / name
    path.write_bytes(path.read_bytes() + text)
