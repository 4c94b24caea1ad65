"""How soon after drill applies a fault does it act, and does the onset uncertainty drill states cover it?

    flock /tmp/drill-integration.lock .venv/bin/python bench/fault_latency.py \
        [--applications 200] [--latency-ms 100] [--hook-applications 200] [--docker --kills 5]

Three fault families, each applied through drill's own fault classes (the code a drill runs):

- **toxic** (``NetworkFault``, type ``latency``): a local ``toxiproxy-server`` (from .venv/bin)
  in front of a loopback aiohttp upstream (a child process), under load from a second child: 8
  closed-loop aiohttp clients on keep-alive connections through the proxy, recording each
  request's start and end (``time.time()``, the same clock as drill's). Each application adds a
  ``--latency-ms`` L downstream toxic, holds it 0.25 s, removes it and waits 0.15 s. A response
  that is L late passed the proxy at or before ``end - L``; the **wire onset** lies between the
  start of the last request that came back undelayed (its answer passed the proxy after it was
  sent, so the toxic was not in force yet) and the earliest ``end - L`` of a delayed response
  (latency >= 0.8 L). Onset latency = the upper bound - the start of the API call
  (``Onset.at - Onset.uncertainty_s``). drill states the onset as the API call's response
  bracket: ``at`` = its middle, ``u`` = half its width, so the stated window is the call itself.
  It is **proven too early** when a request sent after the call was answered came back undelayed.
- **hook** (``QuotaFault``, ``region_quota_denial``): ``targets.cloud_api`` (a child process on
  loopback); time from the POST to its acknowledgement (the 2xx answer), which is the bracket
  drill states. Right after each acknowledgement one ``POST /instances`` must be refused with
  403: the denial is in force when the hook says so.
- **kill** (``--docker``; ``ContainerFault``, ``endpoint_kill`` mode ``kill``): the compose
  staging stack under a unique project name on free loopback ports, ``--kills`` times (each
  revert waits until the container is healthy again, so a kill costs ~10 s). Per kill: from the
  start of the kill call to the exit containerd stamped (``State.FinishedAt``, where drill's
  stated window closes), and from that exit to the engine's ``die`` event (``timeNano``, read
  back from the event log): how late an onset taken from the event would be.

Goals: toxic p99 <= 20 ms, kill <= 150 ms. The last line is
``toxic_p50_ms=<> toxic_p99_ms=<> kill_to_exit_ms=<> exit_to_die_ms=<>`` (kill: the medians;
``n/a`` without ``--docker``). Everything goes to 127.0.0.1 only; every loop is bounded by its count and a
deadline. Hold /tmp/drill-integration.lock while it runs (it starts Toxiproxy and maybe Docker).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from loopback import free_port, wait_http  # noqa: E402

from harness.faults.network import network_fault  # noqa: E402
from harness.faults.quota import QuotaFault  # noqa: E402
from harness.scenario.fault_specs import LatencySpec  # noqa: E402
from harness.toxiproxy import ToxiproxyClient  # noqa: E402

LOAD_CLIENTS = 8
TOXIC_ON_S = 0.25
TOXIC_OFF_S = 0.15
AFFECTED_SHARE = 0.8
"""A response counts as delayed by the toxic when it took at least this share of L."""
LOAD_MAX_S = 900.0
STAGING_PORT_VARIABLES = (
    "DRILL_PORT_GATEWAY", "DRILL_PORT_TOXIPROXY", "DRILL_PORT_HOSTED_MODEL", "DRILL_PORT_GPU_A1",
    "DRILL_PORT_GPU_A2", "DRILL_PORT_GPU_A3", "DRILL_PORT_GPU_B1", "DRILL_PORT_CPU_FALLBACK",
    "DRILL_PORT_CLOUD_API", "DRILL_PORT_AUTOSCALER",
)






# -- child processes ---------------------------------------------------------------------------


def serve_upstream(port: int) -> None:
    """The upstream behind the proxy: a tiny JSON answer."""
    from aiohttp import web

    async def handle(_: web.Request) -> web.Response:
        return web.Response(body=b'{"ok":true}', content_type="application/json")

    app = web.Application()
    app.router.add_get("/", handle)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


def run_load(url: str, out_path: Path) -> None:
    """Closed-loop clients until SIGTERM (or LOAD_MAX_S); then (start, end, latency) to ``out_path``."""
    import aiohttp

    rows: list[tuple[float, float]] = []

    async def client(session: aiohttp.ClientSession, stop: asyncio.Event) -> None:
        while not stop.is_set():
            start = time.time()
            try:
                async with session.get(url) as response:
                    await response.read()
            except (TimeoutError, aiohttp.ClientError):
                await asyncio.sleep(0.01)
                continue
            rows.append((start, time.time()))

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.call_later(LOAD_MAX_S, stop.set)
        connector = aiohttp.TCPConnector(limit=LOAD_CLIENTS)
        timeout = aiohttp.ClientTimeout(total=5)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            await asyncio.gather(*(client(session, stop) for _ in range(LOAD_CLIENTS)))

    asyncio.run(main())
    np.save(out_path, np.array(rows, dtype=np.float64).reshape(-1, 2))


def spawn(*args: str, env: dict[str, str] | None = None, log: Path | None = None) -> subprocess.Popen[bytes]:
    out = open(log, "wb") if log else subprocess.DEVNULL
    return subprocess.Popen(list(args), stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


# -- toxic ---------------------------------------------------------------------------------------


@dataclass
class Application:
    call_s: float
    stated_at_s: float
    stated_u_s: float


@dataclass
class ToxicFigures:
    onset_ms: np.ndarray
    """Call -> wire onset, upper bound: the earliest ``end - L`` of a delayed response."""
    clean_after_ms: np.ndarray
    """Call -> start of the last request that came back undelayed before the wire onset: its
    response passed the proxy after it was sent, so the toxic was not in force yet then (a lower
    bound of the wire onset; 0 when none was sent after the call)."""
    stated_u_ms: np.ndarray
    stated_end_ms: np.ndarray
    """Call -> end of the stated window (at + u): the API call's duration."""
    requests: int
    missed: int


def toxic_bench(applications: int, latency_ms: int, work: Path) -> ToxicFigures:
    api_port, upstream_port = free_port(), free_port()
    proxy_port = free_port()
    binary = Path(sys.executable).parent / "toxiproxy-server"
    procs = [
        spawn(str(binary), "-host", "127.0.0.1", "-port", str(api_port), log=work / "toxiproxy.log"),
        spawn(sys.executable, __file__, "--serve-upstream", str(upstream_port)),
    ]
    load: subprocess.Popen[bytes] | None = None
    out = work / "load.npy"
    applied: list[Application] = []
    try:
        wait_http(f"http://127.0.0.1:{api_port}/version", 15)
        wait_http(f"http://127.0.0.1:{upstream_port}/", 15)
        with ToxiproxyClient(f"http://127.0.0.1:{api_port}") as client:
            client.create_proxy("bench", f"127.0.0.1:{proxy_port}", f"127.0.0.1:{upstream_port}")
            load = spawn(sys.executable, __file__, "--load", f"http://127.0.0.1:{proxy_port}/", str(out))
            time.sleep(2.0)  # the load child's import and connection warm-up
            spec = LatencySpec.model_validate(
                {"name": "onset-bench", "type": "latency", "target": {"proxy": "bench"}, "latency_ms": latency_ms}
            )
            fault = network_fault(spec, client)
            deadline = time.monotonic() + applications * (TOXIC_ON_S + TOXIC_OFF_S) * 3 + 60
            for _ in range(applications):
                if time.monotonic() > deadline:
                    break
                onset = fault.apply()
                applied.append(Application(onset.at - onset.uncertainty_s, onset.at, onset.uncertainty_s))
                time.sleep(TOXIC_ON_S)
                fault.revert()
                time.sleep(TOXIC_OFF_S)
            time.sleep(latency_ms / 1000 + 0.1)
        stop(load)
    finally:
        if load is not None:
            stop(load)
        for proc in procs:
            stop(proc)
    rows = np.load(out)
    return analyse_toxic(rows, applied, latency_ms)


def analyse_toxic(rows: np.ndarray, applied: list[Application], latency_ms: int) -> ToxicFigures:
    starts, ends = rows[:, 0], rows[:, 1]
    delay_s = latency_ms / 1000
    delayed = ends - starts >= AFFECTED_SHARE * delay_s
    passed_s = ends - delay_s
    onset, clean_after, stated_u, stated_end = [], [], [], []
    missed = 0
    for a in applied:
        # Delayed responses that passed the proxy after the call began (earlier ones are noise).
        hit = delayed & (passed_s >= a.call_s) & (passed_s <= a.call_s + TOXIC_ON_S)
        if not hit.any():
            missed += 1
            continue
        wire_s = float(passed_s[hit].min())
        clean = ~delayed & (starts >= a.call_s) & (starts < wire_s)
        onset.append(wire_s - a.call_s)
        clean_after.append(float(starts[clean].max()) - a.call_s if clean.any() else 0.0)
        stated_u.append(a.stated_u_s)
        stated_end.append(a.stated_at_s + a.stated_u_s - a.call_s)
    to_ms = lambda xs: np.array(xs) * 1000  # noqa: E731
    return ToxicFigures(to_ms(onset), to_ms(clean_after), to_ms(stated_u), to_ms(stated_end), len(rows), missed)


# -- hook ----------------------------------------------------------------------------------------


def hook_bench(applications: int, work: Path) -> tuple[np.ndarray, int]:
    """(call -> acknowledgement in ms per application, how many were not in force at the ack)."""
    port = free_port()
    env = dict(os.environ, HOST="127.0.0.1", PORT=str(port), PROVISION_DELAY_MS="0",
               REGIONS=json.dumps({"region-a": {"quota": 3, "capacity": 3, "running": [], "standby": []}}))
    proc = spawn(sys.executable, "-m", "targets.cloud_api", env=env, log=work / "cloud_api.log")
    acks_ms: list[float] = []
    not_in_force = 0
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/health", 15)
        fault = QuotaFault("onset-bench", f"{base}/fault", {"mode": "quota_exceeded", "region": "region-a"})
        with httpx.Client(timeout=5) as http:
            deadline = time.monotonic() + applications * 0.5 + 30
            for _ in range(applications):
                if time.monotonic() > deadline:
                    break
                onset = fault.apply()
                refused = http.post(f"{base}/instances", json={"region": "region-a", "instance_type": "gpu.h100"})
                not_in_force += refused.status_code != 403
                acks_ms.append(2 * onset.uncertainty_s * 1000)
                fault.revert()
    finally:
        stop(proc)
    return np.array(acks_ms), not_in_force


# -- kill ----------------------------------------------------------------------------------------


def kill_bench(kills: int, work: Path) -> tuple[np.ndarray, np.ndarray]:
    """For each kill of hosted-model on the compose staging stack: call -> exit and exit -> ``die``
    event, in ms."""
    from harness.faults.container import container_fault
    from harness.runtime.compose import ComposeRuntime, docker_client

    for variable in STAGING_PORT_VARIABLES:
        os.environ[variable] = str(free_port())
    project = f"drill-bench-onset-{uuid.uuid4().hex[:8]}"
    runtime = ComposeRuntime(REPO / "compose/staging.yaml", project, work / "compose-logs")
    client = docker_client()
    to_exit_ms: list[float] = []
    exit_to_die_ms: list[float] = []
    try:
        runtime.up(wait_s=180)
        for i in range(kills):
            fault = container_fault(f"kill-{i}", "kill", "hosted-model", {}, 1, project)
            (target,) = fault.targets()  # resolve the target first: the timing starts at the kill call
            call_s = time.time()
            try:
                onset = fault.apply()
            finally:
                fault.revert()
            if onset.source != "docker-state:finished-at":
                print(f"warning: kill {i}: no exit time (onset from {onset.source})", file=sys.stderr)
                continue
            exit_s = onset.at + onset.uncertainty_s
            dies = [e["timeNano"] / 1e9 for e in client.events(
                since=int(call_s), until=int(time.time()) + 1, decode=True,
                filters={"type": "container", "event": ["die"], "container": [target.id or ""]},
            ) if e["timeNano"] / 1e9 >= call_s]
            to_exit_ms.append((exit_s - call_s) * 1000)
            exit_to_die_ms.append((min(dies) - exit_s) * 1000 if dies else float("nan"))
    finally:
        runtime.down()
    return np.array(to_exit_ms), np.array(exit_to_die_ms)


# -- main ----------------------------------------------------------------------------------------


def pct(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else float("nan")


def peak(values: np.ndarray) -> float:
    return float(values.max()) if len(values) else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--applications", type=int, default=200, help="toxic applications")
    parser.add_argument("--latency-ms", type=int, default=100, help="the toxic's added latency L")
    parser.add_argument("--hook-applications", type=int, default=200)
    parser.add_argument("--docker", action="store_true", help="also kill a container of the compose staging stack")
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--serve-upstream", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--load", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_upstream:
        serve_upstream(args.serve_upstream)
        return 0
    if args.load:
        run_load(args.load[0], Path(args.load[1]))
        return 0
    if not (1 <= args.applications <= 2000 and 20 <= args.latency_ms <= 1000
            and 0 <= args.hook_applications <= 2000 and 1 <= args.kills <= 50):
        parser.error("applications in [1, 2000], latency-ms in [20, 1000], hook-applications in [0, 2000], kills in [1, 50]")

    print(f"cores={os.cpu_count()} load_average={' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory(prefix="drill-bench-onset-") as tmp:
        work = Path(tmp)
        toxic = toxic_bench(args.applications, args.latency_ms, work)
        late_ms = toxic.clean_after_ms - toxic.stated_end_ms
        proven_late = late_ms > 0
        print(f"toxic (latency {args.latency_ms} ms, {len(toxic.onset_ms)} applications measured, "
              f"{toxic.missed} without a delayed response, {toxic.requests:,} requests):")
        print(f"  {'figure (from the start of the API call)':<52} {'p50':>7} {'p99':>7} {'max':>7}")
        for label, values in (
            ("wire onset, upper bound (first delayed response), ms", toxic.onset_ms),
            ("wire onset, lower bound (last clean request), ms", toxic.clean_after_ms),
            ("stated window end (API call answered), ms", toxic.stated_end_ms),
            ("stated uncertainty u (half the call), ms", toxic.stated_u_ms),
            ("upper bound - stated window end, ms", toxic.onset_ms - toxic.stated_end_ms),
        ):
            print(f"  {label:<52} {pct(values, 50):>7.2f} {pct(values, 99):>7.2f} {peak(values):>7.2f}")
        print(f"  stated window proven too early (a request sent after the call was answered came back "
              f"undelayed): {int(proven_late.sum())}/{len(late_ms)}"
              + (f", by up to {peak(late_ms[proven_late]):.2f} ms" if proven_late.any() else ""))
        if args.hook_applications:
            acks, not_in_force = hook_bench(args.hook_applications, work)
            print(f"hook (region_quota_denial, {len(acks)} applications): call -> acknowledgement "
                  f"p50 {pct(acks, 50):.2f} ms, p99 {pct(acks, 99):.2f} ms, max {peak(acks):.2f} ms; "
                  f"not in force at the acknowledgement: {not_in_force}")
        kill_ms = lag_ms = "n/a"
        if args.docker:
            to_exit, to_die = kill_bench(args.kills, work)
            print(f"kill (endpoint_kill hosted-model, {len(to_exit)} kills): kill call -> exit (State.FinishedAt) "
                  f"{', '.join(f'{x:.1f}' for x in to_exit)} ms (median {pct(to_exit, 50):.1f} ms); "
                  f"exit -> die event {', '.join(f'{x:.1f}' for x in to_die)} ms (median {pct(to_die, 50):.1f} ms)")
            kill_ms, lag_ms = f"{pct(to_exit, 50):.1f}", f"{pct(to_die, 50):.1f}"
    print(f"load_average_after={' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"toxic_p50_ms={pct(toxic.onset_ms, 50):.2f} toxic_p99_ms={pct(toxic.onset_ms, 99):.2f} "
          f"kill_to_exit_ms={kill_ms} exit_to_die_ms={lag_ms}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
