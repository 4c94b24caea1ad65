"""Each hostile input through the real CLI: exit code, wall time and peak memory.

    .venv/bin/python bench/hostile_inputs.py

Every scenario of harness/testing/hostile.py goes through ``drill validate FILE`` and every damaged
run directory through ``drill report RUN_DIR``, each in a fresh process (peak RSS from
``wait4``, so it is that process's own). The contract: exit 2, one message naming FILE(:LINE),
within 2 s and 200 MB. The last line is ``cases=<n> failed=<k> max_s=<..> max_mb=<..>``.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from harness.testing.hostile import DAMAGES, synthetic_run, write_cases  # noqa: E402

LIMIT_S = 2.0
LIMIT_MB = 200.0


def measure(args: list[str]) -> tuple[int, float, float, list[str]]:
    """Exit code, seconds, peak RSS in MB and the non-empty output lines of one CLI call."""
    read_fd, write_fd = os.pipe()
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:
        os.dup2(write_fd, 1)
        os.dup2(write_fd, 2)
        os.close(read_fd)
        os.chdir(REPO)
        os.execv(sys.executable, [sys.executable, "-m", "harness.cli", *args])
    os.close(write_fd)
    with os.fdopen(read_fd, encoding="utf-8", errors="replace") as fh:
        output = fh.read()
    _, status, usage = os.wait4(pid, 0)
    seconds = time.monotonic() - started
    lines = [line for line in output.splitlines() if line.strip()]
    return os.waitstatus_to_exitcode(status), seconds, usage.ru_maxrss / 1024, lines


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="drill-hostile-"))
    runs: list[tuple[str, list[str]]] = [
        (f"validate {name}", ["validate", str(path)]) for name, (path, _) in write_cases(work / "scenarios").items()
    ]
    for name, (harm, _, _) in sorted(DAMAGES.items()):
        run_dir = synthetic_run(work / "runs" / name)
        harm(run_dir)
        runs.append((f"report {name}", ["report", str(run_dir)]))
    failed = 0
    worst_s = worst_mb = 0.0
    print(f"{'case':40} {'exit':>4} {'s':>6} {'MB':>6}  message")
    for label, args in runs:
        code, seconds, mb, lines = measure(args)
        ok = code == 2 and len(lines) <= 2 and not any("Traceback" in line for line in lines) \
            and seconds <= LIMIT_S and mb <= LIMIT_MB
        failed += 0 if ok else 1
        worst_s, worst_mb = max(worst_s, seconds), max(worst_mb, mb)
        first = lines[0][:90] if lines else ""
        print(f"{label:40} {code:>4} {seconds:6.2f} {mb:6.0f}  {'' if ok else 'FAIL '}{first}")
    print(f"cases={len(runs)} failed={failed} max_s={worst_s:.2f} max_mb={worst_mb:.0f}")


if __name__ == "__main__":
    main()
