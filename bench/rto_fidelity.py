"""How exact are RTO and time to detect? Targets with a known truth, under three load mixes.

    .venv/bin/python bench/rto_fidelity.py [--repeats 5] [--durations 0.5,2,10] [--mixes 0,8,64]
                                           [--kinds error,slow,refused] [--probe-rate-hz 20]

A loopback aiohttp target (in a thread of this process) misbehaves for exactly T seconds after
a trigger, measured on its own clock:

- ``error``:   every request it receives answers 503. Truth: RTO = T, time to detect = 0.
- ``slow``:    every request it receives is answered 750 ms late (past the default 250 ms bound
               of a good request). Truth: time to detect = the bound (0.25 s: a slow answer is
               visible when it is overdue); RTO = T + 0.75 s (the last slow answer arrives then).
- ``refused``: the listening socket is closed and requests on open connections are dropped.
               Truth: RTO = T, time to detect = 0.

For each kind and load mix (probe only, 8 users, 64 users: Locust, no wait time), one load run
(the real LoadRunner: Locust in a child process plus the 20 Hz open-loop prober) holds every
episode back to back: T in ``--durations``, ``--repeats`` times each, with 7 s of health between
episodes (more than W = 5 s). Each episode is measured by ``harness.measure.measure_run`` from
the run's samples, as its own fault whose onset is the target's trigger instant, with its data
ending at the next trigger. The error of a figure is measured minus truth.

The goal is max(50 ms, 2 probe intervals) for every error. The last line is
``rto_max_err_s=<s> ttd_max_err_s=<s> goal_s=<s>``. Everything goes to 127.0.0.1 only; every
run is bounded by its episode plan (a few minutes per kind and mix at the defaults).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from loopback import free_port  # noqa: E402

from harness import measure  # noqa: E402
from harness.load import LoadPlan, LoadRunner, RequestSpec  # noqa: E402
from harness.rundir.frames import read_samples  # noqa: E402

SLOW_MS = 750.0
HEALTHY_GAP_S = 7.0
BASELINE_S = 4.0




class Target:
    """A chat endpoint that misbehaves in one way for a window opened by :meth:`trigger`."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.window: tuple[float, float] | None = None
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.runner = web.AppRunner(self._app(), access_log=None)
        self.site: web.TCPSite | None = None

    def _in_window(self) -> bool:
        w = self.window
        return w is not None and w[0] <= time.time() < w[1]

    def _app(self) -> web.Application:
        async def chat(request: web.Request) -> web.StreamResponse:
            if self._in_window():
                if self.kind == "error":
                    return web.Response(status=503, text="down")
                if self.kind == "slow":
                    await asyncio.sleep(SLOW_MS / 1000)
                if self.kind == "refused":
                    assert request.transport is not None
                    request.transport.close()
                    raise web.HTTPServiceUnavailable()
            return web.json_response({"ok": True}, headers={"X-Served-By": "m1", "X-Tier": "primary"})

        app = web.Application()
        app.router.add_post("/v1/chat/completions", chat)
        return app

    async def _listen(self) -> None:
        self.site = web.TCPSite(self.runner, "127.0.0.1", self.port, reuse_address=True)
        await self.site.start()

    def start(self) -> str:
        self.loop.run_until_complete(self.runner.setup())
        self.loop.run_until_complete(self._listen())
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.port}"

    def trigger(self, duration_s: float) -> float:
        """Open the window now (on this clock); for ``refused`` also stop listening for it."""

        async def open_window() -> float:
            start = time.time()
            self.window = (start, start + duration_s)
            if self.kind == "refused" and self.site is not None:
                await self.site.stop()
                self.loop.call_later(max(0.0, self.window[1] - time.time()), lambda: asyncio.ensure_future(self._listen()))
            return start

        return asyncio.run_coroutine_threadsafe(open_window(), self.loop).result(timeout=5)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)


@dataclass
class Episode:
    kind: str
    users: int
    duration_s: float
    onset: float
    end: float


def run_series(kind: str, users: int, durations: list[float], repeats: int, rate_hz: float, work: Path) -> list[dict[str, float | str | int]]:
    plan_s = BASELINE_S + sum((t + HEALTHY_GAP_S) for t in durations) * repeats + 2.0
    target = Target(kind)
    url = target.start()
    run_dir = work / f"{kind}-{users}"
    run_dir.mkdir(parents=True)
    plan = LoadPlan(
        host=url, users=users, spawn_rate=max(users, 1), duration_s=plan_s,
        request=RequestSpec(method="POST", path="/v1/chat/completions", json={"m": "x"}),
        timeout_s=3.0, probe_rate_hz=rate_hz,
    )
    runner = LoadRunner(plan, run_dir)
    episodes: list[Episode] = []
    runner.start()
    try:
        runner.wait_ready()
        start = time.time()
        time.sleep(BASELINE_S)  # a fixed span of healthy load before the first episode
        for _ in range(repeats):
            for duration in durations:
                onset = target.trigger(duration)
                time.sleep(duration + HEALTHY_GAP_S)
                episodes.append(Episode(kind, users, duration, onset, time.time()))
    finally:
        runner.stop()
        target.stop()
    samples = read_samples(run_dir)
    rows = []
    baseline = (start, start + BASELINE_S)
    for e in episodes:
        phases = {"baseline": baseline, "fault": (e.onset, e.onset + e.duration_s), "recovery": (e.onset + e.duration_s, e.end)}
        fault = measure.FaultTiming("episode", kind, e.onset, "target-clock", 0.0005, e.onset + e.duration_s)
        m = measure.measure_run(samples, phases, [fault], measure.ObjectiveSpec(), measure.MeasureSettings(rate_hz))
        f = m.faults[0]
        bound_s = (m.latency_bound_ms or 0.0) / 1000
        true_rto = e.duration_s + (SLOW_MS / 1000 if kind == "slow" else 0.0)
        true_ttd = bound_s if kind == "slow" else 0.0
        rows.append({
            "kind": kind, "users": users, "T_s": e.duration_s,
            "rto_s": f.rto_s if f.rto_s is not None else float("nan"),
            "rto_err_s": (f.rto_s - true_rto) if f.rto_s is not None else float("inf"),
            "ttd_s": f.time_to_detect_s if f.time_to_detect_s is not None else float("nan"),
            "ttd_err_s": (f.time_to_detect_s - true_ttd) if f.time_to_detect_s is not None else float("inf"),
            "probe_vs_all_s": abs((f.rto_by_stream.get("probe") or 0) - (f.rto_by_stream.get("all") or 0)),
        })
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--durations", default="0.5,2,10", help="outage lengths T in seconds")
    parser.add_argument("--mixes", default="0,8,64", help="Locust users per load mix (0: probe only)")
    parser.add_argument("--kinds", default="error,slow,refused")
    parser.add_argument("--probe-rate-hz", type=float, default=20.0)
    args = parser.parse_args()
    durations = [float(x) for x in args.durations.split(",")]
    mixes = [int(x) for x in args.mixes.split(",")]
    kinds = args.kinds.split(",")
    if args.repeats < 1 or any(t <= 0 or t > 60 for t in durations) or any(u < 0 or u > 256 for u in mixes):
        parser.error("repeats >= 1, durations in (0, 60] s, mixes in [0, 256] users")
    goal_s = max(0.05, 2 / args.probe_rate_hz)
    rows: list[dict[str, float | str | int]] = []
    with tempfile.TemporaryDirectory(prefix="rto-fidelity-") as work:
        for kind in kinds:
            for users in mixes:
                t = time.time()
                rows += run_series(kind, users, durations, args.repeats, args.probe_rate_hz, Path(work))
                print(f"# {kind} with {users} users: {time.time() - t:.0f} s", flush=True)
    print(f"{'kind':8} {'users':>5} {'T_s':>5} {'n':>2} {'rto_err_max_s':>14} {'ttd_err_max_s':>14} {'probe_vs_all_max_s':>18}")
    for kind in kinds:
        for users in mixes:
            for t in durations:
                sel = [r for r in rows if r["kind"] == kind and r["users"] == users and r["T_s"] == t]
                rto = max(abs(float(r["rto_err_s"])) for r in sel)
                ttd = max(abs(float(r["ttd_err_s"])) for r in sel)
                pva = max(float(r["probe_vs_all_s"]) for r in sel)
                print(f"{kind:8} {users:>5} {t:>5g} {len(sel):>2} {rto:>14.3f} {ttd:>14.3f} {pva:>18.3f}")
    rto_max = max(abs(float(r["rto_err_s"])) for r in rows)
    ttd_max = max(abs(float(r["ttd_err_s"])) for r in rows)
    print(f"rto_max_err_s={rto_max:.3f} ttd_max_err_s={ttd_max:.3f} goal_s={goal_s:.3f}")
    return 0 if rto_max <= goal_s and ttd_max <= goal_s else 1


if __name__ == "__main__":
    sys.exit(main())
