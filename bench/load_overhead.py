"""What does recording every request cost? Plain Locust vs the harness LoadRunner, side by side.

    .venv/bin/python bench/load_overhead.py [--users 20] [--duration-s 15] [--rounds 2] [--sequential]

Both drive the SAME loopback target (an aiohttp server in a child process answering a tiny JSON
body with the X-Served-By/X-Tier/X-Region/X-Degraded headers the harness parses) with the same
users, spawn rate (all users in the first second) and ``--run-time``:

- plain:   ``python -m locust`` headless with a minimal FastHttpUser locustfile, no listener;
           rps = Request Count of Locust's own ``--csv`` stats (Aggregated row) / run time.
- harness: ``LoadRunner`` with the prober disabled (same load), left to end by its own
           ``--run-time`` like the plain one; rps = rows of ``samples/locust.csv`` / run time,
           cross-checked against the Request Count of Locust's own csv (a warning if they differ).

By default the two run AT THE SAME TIME, each in its own session (so its own CFS autogroup, as
LoadRunner places Locust): on a shared 2-core machine, background load then hits both alike,
where one-after-the-other runs (``--sequential``) swing by 2x with what else is running. Which
one starts first alternates each round. Locust's own "Requests/s" column (count / (last request -
stats start)) is shown for reference. Also shown: Locust CPU time per request (user+sys of each
reaped Locust, from ``wait4``/``RUSAGE_CHILDREN``; includes the ~1 s of startup), which shows the
listener's cost even when the target is the bottleneck.

The last line is ``ratio=<harness/plain> harness_rps=<..> plain_rps=<..>`` (medians over rounds).

``--live``: every round runs the pair twice, the second time with ``drill run``'s live progress
(harness/progress.py) ticking in this process every 50 ms as the engine's drive loop does, in
plain mode with ``--events`` NDJSON; the last line then also gives ``ratio_live=<..>`` beside
``ratio`` (live progress must leave it unchanged).
``--stream-parse``: no load; the CPU cost of reading one streamed answer (harness/load/streams.py:
``StreamTally.feed_chunk`` per SSE event as it arrives, then the sample row), per stream and per
token, for ``--stream-tokens`` tokens (default 64). The last line is
``stream_parse_us_per_stream=<..> us_per_token=<..>`` (best of 5 batches).
``--intended``: the cost of the probe's intended-time bookkeeping (issue 24: each probe row carries
its scheduled instant beside the actual send), on vs off side by side: (1) the row path alone —
``sample_row`` + ``csv.writer.writerow`` per probe, with and without ``intended_s`` (best of 5
batches of 20,000) — and (2) the whole prober (``harness.load.prober.Prober``, in this process)
driving the loopback target at ``--probe-rate-hz`` for ``--duration-s``, ``record_intended`` on
and off alternately over ``--rounds`` rounds, CPU time (user+sys of this process) per probe. The
last line is ``intended_row_ratio=<on/off> intended_prober_cpu_ratio=<on/off>`` (medians).
Everything goes to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import csv
import functools
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from loopback import free_port, wait_http

from harness.load import LoadPlan, LoadRunner, RequestSpec
from harness.load.samples import sample_row
from harness.load.streams import StreamTally
from harness.progress import DriveTick, Progress

TICK_S = 0.05  # the engine's drive-loop tick

PLAIN_LOCUSTFILE = '''
from locust import FastHttpUser, constant, task


class PlainUser(FastHttpUser):
    wait_time = constant(0)

    @task
    def send(self):
        self.client.get("/")
'''


def serve(port: int) -> None:
    """The target: answers GET / with a tiny JSON body and the routing headers."""
    from aiohttp import web

    body = b'{"ok":true}'
    headers = {
        "Content-Type": "application/json",
        "X-Served-By": "bench-1",
        "X-Tier": "gpu",
        "X-Region": "region-a",
        "X-Degraded": "false",
    }

    async def handle(_: web.Request) -> web.Response:
        return web.Response(body=body, headers=headers)

    app = web.Application()
    app.router.add_get("/", handle)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


@dataclass
class Measurement:
    mode: str
    requests: int
    rps: float
    locust_csv_rps: float
    cpu_us_per_request: float






def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _locust_csv_aggregate(stats_csv: Path) -> tuple[int, float]:
    """(request count, Requests/s) from the Aggregated row of Locust's ``*_stats.csv``."""
    with open(stats_csv, newline="") as f:
        for row in csv.DictReader(f):
            if row["Name"] == "Aggregated":
                return int(row["Request Count"]), float(row["Requests/s"])
    raise RuntimeError(f"no Aggregated row in {stats_csv}")


def start_plain(host: str, users: int, duration_s: float, work: Path) -> subprocess.Popen[bytes]:
    work.mkdir(parents=True, exist_ok=True)
    locustfile = work / "plain_locustfile.py"
    locustfile.write_text(PLAIN_LOCUSTFILE)
    with open(work / "locust.log", "wb") as log:
        return subprocess.Popen(
            [
                sys.executable, "-m", "locust", "-f", str(locustfile), "--headless",
                "--host", host, "--users", str(users), "--spawn-rate", str(users),
                "--run-time", f"{round(duration_s)}s", "--only-summary", "--loglevel", "WARNING",
                "--csv", str(work / "locust"), "--exit-code-on-error", "0",
            ],
            cwd=work, stdout=log, stderr=subprocess.STDOUT,
            # Own session, as LoadRunner does: with CFS autogroup each session gets its own CPU
            # share, so the two Locusts must be placed alike to be compared.
            start_new_session=True,
        )  # fmt: skip


def finish_plain(proc: subprocess.Popen[bytes], work: Path, duration_s: float) -> Measurement:
    """Reap the plain Locust with wait4 so its own CPU time is known even when another Locust
    runs at the same time."""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"plain Locust exited with {proc.returncode}; see {work / 'locust.log'}")
    cpu_s = usage.ru_utime + usage.ru_stime
    count, locust_rps = _locust_csv_aggregate(work / "locust_stats.csv")
    return Measurement("plain", count, count / duration_s, locust_rps, cpu_s / max(count, 1) * 1e6)


def run_plain(host: str, users: int, duration_s: float, work: Path) -> Measurement:
    return finish_plain(start_plain(host, users, duration_s, work), work, duration_s)


def _harness_plan(host: str, users: int, duration_s: float) -> LoadPlan:
    return LoadPlan(
        host=host,
        users=users,
        spawn_rate=users,
        duration_s=duration_s,
        request=RequestSpec(method="GET", path="/"),
        timeout_s=5.0,
        probe_rate_hz=0,
    )


def harness_measurement(runner: LoadRunner, cpu_s: float) -> Measurement:
    with open(runner.locust_samples, newline="") as f:
        rows = sum(1 for _ in csv.DictReader(f))
    locust_count, locust_rps = _locust_csv_aggregate(runner.run_dir / "locust_stats.csv")
    if abs(locust_count - rows) > max(10, rows // 1000):
        print(f"warning: harness sample rows {rows} != Locust's own count {locust_count}", file=sys.stderr)
    duration_s = runner.plan.duration_s
    return Measurement("harness", rows, rows / duration_s, locust_rps, cpu_s / max(rows, 1) * 1e6)


def _run_out(runner: LoadRunner, duration_s: float, live: bool = False) -> None:
    """Let the harness Locust end by its own --run-time, exactly like the plain one does; with
    ``live``, tick the live progress meanwhile as the engine does."""
    deadline = time.monotonic() + duration_s + 60
    if not live:
        while runner.is_running and time.monotonic() < deadline:
            time.sleep(0.1)
        runner.stop()
        return
    from rich.console import Console

    t0 = time.time()
    phases = {"baseline": [t0, t0 + duration_s / 3], "fault": [t0 + duration_s / 3, t0 + 2 * duration_s / 3],
              "recovery": [t0 + 2 * duration_s / 3, t0 + duration_s]}
    events = runner.run_dir / "events.ndjson"
    with open(os.devnull, "w") as null, Progress(Console(file=null), "plain", events) as progress:
        while runner.is_running and time.monotonic() < deadline:
            progress(DriveTick(time.time(), runner.run_dir, phases, ()))
            time.sleep(TICK_S)
        if progress.snapshots_written < duration_s - 2:
            print(f"warning: live progress wrote only {progress.snapshots_written} records", file=sys.stderr)
    runner.stop()


def run_harness(host: str, users: int, duration_s: float, work: Path) -> Measurement:
    cpu_before_s = _children_cpu_s()
    runner = LoadRunner(_harness_plan(host, users, duration_s), work, run_time_margin_s=0)
    with runner:
        _run_out(runner, duration_s)
    return harness_measurement(runner, _children_cpu_s() - cpu_before_s)


def run_together(
    host: str, users: int, duration_s: float, work: Path, plain_first: bool, live: bool = False
) -> list[Measurement]:
    """Both at once against the same target: background load on the machine hits both alike."""
    cpu_before_s = _children_cpu_s()
    runner = LoadRunner(_harness_plan(host, users, duration_s), work / "harness", run_time_margin_s=0)
    if plain_first:
        plain_proc = start_plain(host, users, duration_s, work / "plain")
        runner.start()
    else:
        runner.start()
        plain_proc = start_plain(host, users, duration_s, work / "plain")
    runner.wait_ready()
    _run_out(runner, duration_s, live)
    plain = finish_plain(plain_proc, work / "plain", duration_s)
    # RUSAGE_CHILDREN now holds both reaped Locusts; the plain one's share is known from wait4.
    harness_cpu_s = _children_cpu_s() - cpu_before_s - plain.cpu_us_per_request * plain.requests / 1e6
    harness = harness_measurement(runner, harness_cpu_s)
    if live:
        plain.mode, harness.mode = "plain+", "live"
    return [plain, harness]


def stream_parse_cost(tokens: int, streams_per_batch: int = 2000, batches: int = 5) -> tuple[float, float]:
    """(microseconds per stream, per token) to read a ``tokens``-token OpenAI chat stream that
    arrives one SSE event per network chunk, and write its sample row; best of ``batches``."""
    chunks = [
        ('data: {"id": "c", "object": "chat.completion.chunk", "model": "m", "choices": [{"index": 0, '
         f'"delta": {{"content": "tok{i} "}}, "finish_reason": null}}]}}\n\n').encode()
        for i in range(tokens)
    ]
    chunks.append(b'data: {"id": "c", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}\n\n')
    chunks.append(b"data: [DONE]\n\n")
    best_s = float("inf")
    for _ in range(batches):
        started = time.perf_counter()
        for _ in range(streams_per_batch):
            tally = StreamTally(1.0)
            arrival_s = 1.0
            for chunk in chunks:
                arrival_s += 0.02
                tally.feed_chunk(arrival_s, chunk)
            tally.end(arrival_s)
            sample_row("probe", 1.0, arrival_s, 200, tally.body_bytes, None, tally.error_text(200),
                       tally.columns(200))
        best_s = min(best_s, time.perf_counter() - started)
    per_stream_us = best_s / streams_per_batch * 1e6
    return per_stream_us, per_stream_us / tokens


def intended_row_cost(rows_per_batch: int = 20_000, batches: int = 5) -> tuple[float, float]:
    """(us per probe row without ``intended``, with it): the row path the prober runs per probe."""
    import io

    best = {False: float("inf"), True: float("inf")}
    for _ in range(batches):
        for with_intended in (False, True):
            out = csv.writer(io.StringIO())
            wall_t0, interval_s = 1_733_490_000.0, 0.05
            started = time.perf_counter()
            for i in range(rows_per_batch):
                intended_s = wall_t0 + i * interval_s if with_intended else None
                out.writerow(sample_row("probe", wall_t0 + i * interval_s, wall_t0 + i * interval_s + 0.012, 200, 64,
                                        None, "", intended_s=intended_s))
            best[with_intended] = min(best[with_intended], time.perf_counter() - started)
    return best[False] / rows_per_batch * 1e6, best[True] / rows_per_batch * 1e6


def prober_cpu_per_probe(host: str, rate_hz: float, duration_s: float, record_intended: bool) -> float:
    """CPU microseconds (user+sys of this process) per probe of a Prober run in this process."""
    import asyncio
    import io

    from harness.load.prober import Prober

    plan = LoadPlan(host=host, users=0, spawn_rate=1, duration_s=duration_s, probe_rate_hz=rate_hz,
                    request=RequestSpec(method="GET", path="/"), timeout_s=2.0)
    prober = Prober(plan, io.StringIO(), record_intended=record_intended)
    before = resource.getrusage(resource.RUSAGE_SELF)
    asyncio.run(prober.run())
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu_s / max(prober.launched, 1) * 1e6


def bench_intended(rate_hz: float, duration_s: float, rounds: int) -> int:
    off_us, on_us = intended_row_cost()
    print(f"row path: {off_us:.2f} us/probe without intended, {on_us:.2f} us/probe with it")
    port = free_port()
    host = f"http://127.0.0.1:{port}"
    target = subprocess.Popen([sys.executable, __file__, "--serve", str(port)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    cpu: dict[bool, list[float]] = {False: [], True: []}
    try:
        wait_http(host + "/", timeout_s=15)
        for i in range(rounds):
            for record in ((False, True) if i % 2 == 0 else (True, False)):
                cpu[record].append(prober_cpu_per_probe(host, rate_hz, duration_s, record))
    finally:
        target.terminate()
        target.wait(timeout=10)
    print(f"prober at {rate_hz:g} Hz for {duration_s:g} s, {rounds} rounds: cpu us/probe off "
          f"{', '.join(f'{v:.0f}' for v in cpu[False])}; on {', '.join(f'{v:.0f}' for v in cpu[True])}")
    row_ratio = on_us / off_us
    prober_ratio = statistics.median(cpu[True]) / statistics.median(cpu[False])
    print(f"intended_row_ratio={row_ratio:.3f} intended_prober_cpu_ratio={prober_ratio:.3f} "
          f"row_us_off={off_us:.2f} row_us_on={on_us:.2f} prober_cpu_us_off={statistics.median(cpu[False]):.0f} "
          f"prober_cpu_us_on={statistics.median(cpu[True]):.0f}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--duration-s", type=float, default=15.0)
    parser.add_argument("--rounds", type=int, default=2, help="repeat, alternating which starts first")
    parser.add_argument(
        "--sequential",
        action="store_true",
        help="run plain then harness one after the other (default: both at the same time)",
    )
    parser.add_argument("--live", action="store_true",
                        help="also run each pair with drill run's live progress ticking; print ratio_live")
    parser.add_argument("--stream-parse", action="store_true",
                        help="no load: the CPU cost of reading one streamed answer, per stream and per token")
    parser.add_argument("--stream-tokens", type=int, default=64, help="tokens per stream for --stream-parse")
    parser.add_argument("--intended", action="store_true",
                        help="the probe's intended-time bookkeeping, on vs off (row path and whole prober)")
    parser.add_argument("--probe-rate-hz", type=float, default=200.0, help="probe rate for --intended")
    parser.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve)
        return 0
    if args.stream_parse:
        per_stream_us, per_token_us = stream_parse_cost(args.stream_tokens)
        print(f"stream_parse_us_per_stream={per_stream_us:.1f} us_per_token={per_token_us:.2f} "
              f"tokens={args.stream_tokens}")
        return 0
    if args.intended:
        return bench_intended(args.probe_rate_hz, args.duration_s, args.rounds)
    if args.live and args.sequential:
        parser.error("--live compares pairs run together; drop --sequential")

    port = free_port()
    host = f"http://127.0.0.1:{port}"
    target = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    results: list[Measurement] = []
    try:
        wait_http(host + "/", timeout_s=15)
        with tempfile.TemporaryDirectory(prefix="drill-bench-") as tmp:
            for i in range(args.rounds):
                if not args.sequential:
                    results += run_together(
                        host, args.users, args.duration_s, Path(tmp) / f"round-{i}", plain_first=i % 2 == 0
                    )
                    if args.live:
                        results += run_together(host, args.users, args.duration_s, Path(tmp) / f"round-{i}-live",
                                                plain_first=i % 2 == 0, live=True)
                    continue
                # Alternate which goes first so a drift in background load does not favour one.
                pair = [
                    functools.partial(run_plain, host, args.users, args.duration_s, Path(tmp) / f"plain-{i}"),
                    functools.partial(run_harness, host, args.users, args.duration_s, Path(tmp) / f"harness-{i}"),
                ]
                for run in pair if i % 2 == 0 else reversed(pair):
                    results.append(run())
    finally:
        target.terminate()
        target.wait(timeout=10)

    how = "sequential" if args.sequential else "together"
    print(f"users={args.users} duration_s={args.duration_s:g} rounds={args.rounds} {how} target=aiohttp@127.0.0.1")
    print(f"{'mode':<8} {'requests':>9} {'rps':>9} {'locust_Requests/s':>18} {'cpu_us/req':>11}")
    for m in results:
        print(f"{m.mode:<8} {m.requests:>9} {m.rps:>9.1f} {m.locust_csv_rps:>18.1f} {m.cpu_us_per_request:>11.1f}")
    plain = [m for m in results if m.mode == "plain"]
    harness = [m for m in results if m.mode == "harness"]
    plain_rps = statistics.median(m.rps for m in plain)
    harness_rps = statistics.median(m.rps for m in harness)
    cpu_ratio = statistics.median(m.cpu_us_per_request for m in plain) / statistics.median(
        m.cpu_us_per_request for m in harness
    )
    print(f"cpu_efficiency_ratio={cpu_ratio:.2f} (plain cpu/req over harness cpu/req)")
    if args.live:
        live_rps = statistics.median(m.rps for m in results if m.mode == "live")
        plain_live_rps = statistics.median(m.rps for m in results if m.mode == "plain+")
        print(f"ratio={harness_rps / plain_rps:.2f} ratio_live={live_rps / plain_live_rps:.2f} "
              f"harness_rps={harness_rps:.1f} live_rps={live_rps:.1f} plain_rps={plain_rps:.1f} "
              f"plain_beside_live_rps={plain_live_rps:.1f}")
        return 0
    print(f"ratio={harness_rps / plain_rps:.2f} harness_rps={harness_rps:.1f} plain_rps={plain_rps:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
