"""What does a drill cost the machine it runs on? CPU and memory of the harness vs the stack under test.

    flock /tmp/drill-integration.lock .venv/bin/python bench/footprint.py [scenarios/latency.yaml]
                                                                          [--interval-s 1]

Runs ``drill run SCENARIO`` (default: the default drill, on the local runtime) as a child and
every ``--interval-s`` reads ``/proc`` for every process descended from it: its user+system CPU
time (``/proc/PID/stat``) and resident memory (``VmRSS`` of ``/proc/PID/status``). Each process
is put in one group by its command line:

    drill       the drill process itself (engine, fault control, journal, tail of samples)
    locust      Locust (the closed-loop users and the listener writing samples/locust.csv)
    probe       the open-loop prober (``harness.load.prober``)
    toxiproxy   ``toxiproxy-server``
    stack       the stack under test (``targets.*``: gateway, model servers, cloud API, autoscaler)
    other       anything else below drill

A group's CPU seconds are the sum of its processes' last sampled CPU times; its peak RSS is the
largest sum of its processes' RSS at one sample. A process's CPU after its last sample (< one
interval) is missed; the total of the whole tree, from ``wait4`` on drill (which reaps its
children), is printed beside the sampled total so the gap is visible. Needs Linux ``/proc``.

The last line is ``harness_cpu_s=<> stack_cpu_s=<> harness_to_stack_cpu=<> harness_peak_rss_mib=<>
stack_peak_rss_mib=<> drill_exit=<>``; the harness is drill + locust + probe + toxiproxy. Hold
/tmp/drill-integration.lock while it runs (it starts the stack, Toxiproxy and Locust).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
GROUPS = ("drill", "locust", "probe", "toxiproxy", "stack", "other")
HARNESS = ("drill", "locust", "probe", "toxiproxy")
CLOCK_TICKS_HZ = os.sysconf("SC_CLK_TCK")
MAX_RUN_S = 900.0


@dataclass
class Proc:
    group: str
    cpu_s: float = 0.0
    peak_rss_mib: float = 0.0
    last_rss_mib: float = 0.0


@dataclass
class Footprint:
    procs: dict[int, Proc] = field(default_factory=dict)
    peak_group_rss_mib: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    samples: int = 0
    alive: set[int] = field(default_factory=set)

    def last_rss_by_group(self) -> dict[str, float]:
        """Each group's RSS at the last sample (processes alive then only)."""
        out: dict[str, float] = defaultdict(float)
        for pid in self.alive:
            out[self.procs[pid].group] += self.procs[pid].last_rss_mib
        return dict(out)


def _read(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            return f.read().decode(errors="replace")
    except OSError:  # the process ended between listing and reading
        return None


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, user+system CPU seconds) from /proc/PID/stat."""
    text = _read(f"/proc/{pid}/stat")
    if text is None:
        return None
    # The command name (field 2) is in parentheses and may hold spaces: split after its end.
    fields = text[text.rindex(")") + 2:].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / CLOCK_TICKS_HZ


def _rss_mib(pid: int) -> float:
    text = _read(f"/proc/{pid}/status") or ""
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def group_of(pid: int, root: int) -> str:
    if pid == root:
        return "drill"
    cmdline = (_read(f"/proc/{pid}/cmdline") or "").replace("\0", " ")
    if "toxiproxy-server" in cmdline:
        return "toxiproxy"
    if "harness.load.prober" in cmdline:
        return "probe"
    if "locust" in cmdline:
        return "locust"
    if "targets." in cmdline:
        return "stack"
    return "other"


def sample(root: int, footprint: Footprint) -> None:
    """One look at every process descended from ``root``."""
    parents: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            stat = _stat(int(name))
            if stat is not None:
                parents[int(name)], cpu[int(name)] = stat
    tree = {root} if root in parents else set()
    grew = True
    while grew:  # parents before children is not guaranteed: repeat until nothing is added
        before = len(tree)
        tree |= {pid for pid, parent in parents.items() if parent in tree}
        grew = len(tree) > before
    group_rss: dict[str, float] = defaultdict(float)
    for pid in tree:
        proc = footprint.procs.get(pid)
        if proc is None:
            proc = footprint.procs[pid] = Proc(group_of(pid, root))
        rss = _rss_mib(pid)
        proc.cpu_s = max(proc.cpu_s, cpu[pid])
        proc.peak_rss_mib = max(proc.peak_rss_mib, rss)
        proc.last_rss_mib = rss
        group_rss[proc.group] += rss
    for group, rss in group_rss.items():
        footprint.peak_group_rss_mib[group] = max(footprint.peak_group_rss_mib[group], rss)
    footprint.samples += 1
    footprint.alive = tree


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenario", nargs="?", default="scenarios/latency.yaml")
    parser.add_argument("--interval-s", type=float, default=1.0)
    args = parser.parse_args()
    if not 0.1 <= args.interval_s <= 10:
        parser.error("--interval-s must be in [0.1, 10]")
    if not Path("/proc/self/stat").exists():
        parser.error("needs Linux /proc")
    drill = Path(sys.executable).parent / "drill"
    footprint = Footprint()
    print(f"cores={os.cpu_count()} load_average={' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    with tempfile.TemporaryDirectory(prefix="drill-bench-footprint-") as tmp:
        started = time.monotonic()
        with open(Path(tmp) / "drill.log", "wb") as log:
            proc = subprocess.Popen([str(drill), "run", args.scenario, "--out", str(Path(tmp) / "run")],
                                    cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        status, usage = None, None
        while time.monotonic() - started < MAX_RUN_S:
            sample(proc.pid, footprint)
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            time.sleep(args.interval_s)
        else:
            proc.terminate()
            _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall_s = time.monotonic() - started
        if proc.returncode not in (0, 1):
            print((Path(tmp) / "drill.log").read_text()[-3000:], file=sys.stderr)
    assert usage is not None
    tree_cpu_s = usage.ru_utime + usage.ru_stime  # drill + every child it reaped, recursively

    cpu_s: dict[str, float] = defaultdict(float)
    count: dict[str, int] = defaultdict(int)
    for p in footprint.procs.values():
        cpu_s[p.group] += p.cpu_s
        count[p.group] += 1
    sampled_total_s = sum(cpu_s.values())
    print(f"drill run {args.scenario}: exit {proc.returncode}, {wall_s:.0f} s wall, {footprint.samples} samples "
          f"every {args.interval_s:g} s")
    print(f"{'group':<10} {'processes':>9} {'cpu_s':>8} {'cpu_share':>9} {'peak_rss_MiB':>12}")
    for group in GROUPS:
        if count[group]:
            print(f"{group:<10} {count[group]:>9} {cpu_s[group]:>8.1f} {cpu_s[group] / max(sampled_total_s, 1e-9):>9.0%} "
                  f"{footprint.peak_group_rss_mib[group]:>12.0f}")
    harness_cpu_s = sum(cpu_s[g] for g in HARNESS)
    harness_rss = sum(footprint.peak_group_rss_mib[g] for g in HARNESS)
    stack_cpu_s = cpu_s["stack"]
    print(f"sampled cpu total {sampled_total_s:.1f} s; whole tree from wait4 {tree_cpu_s:.1f} s "
          f"(missed after last samples: {tree_cpu_s - sampled_total_s:.1f} s); "
          f"harness = {' + '.join(HARNESS)}; its peak RSS is the sum of each group's peak")
    print(f"load_average_after={' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"harness_cpu_s={harness_cpu_s:.1f} stack_cpu_s={stack_cpu_s:.1f} "
          f"harness_to_stack_cpu={harness_cpu_s / max(stack_cpu_s, 1e-9):.2f} harness_peak_rss_mib={harness_rss:.0f} "
          f"stack_peak_rss_mib={footprint.peak_group_rss_mib['stack']:.0f} drill_exit={proc.returncode}")
    return 0 if proc.returncode in (0, 1) else 1


if __name__ == "__main__":
    sys.exit(main())
