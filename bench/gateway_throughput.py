"""Gateway throughput with the hosted tier healthy, side by side with the model server alone.

    .venv/bin/python bench/gateway_throughput.py [--duration-s 10] [--connections 64]

What runs (all on 127.0.0.1, free ports, every process stopped at the end):
- run 1: ``wrk`` -> gateway (pinned to CPU 0) -> hosted model server (pinned to CPU 1)
- run 2: ``wrk`` -> hosted model server (pinned to CPU 0), the same request, no gateway
``wrk`` (``apt-get install wrk``) runs in its own process pinned to the last CPU, so the measured
program has one core to itself in both runs. The ratio gateway/direct says how much of one
core's request rate the routing layer keeps. The runbook needs >= 1,500 req/s on one core.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
WRK_SCRIPT = """wrk.method = "POST"
wrk.body = '{"model": "chat", "messages": [{"role": "user", "content": "hi"}]}'
wrk.headers["Content-Type"] = "application/json"
"""
REQUIRED_RPS = 1500


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(module: str, port: int, cpu: int, log_dir: Path, **env: str) -> subprocess.Popen[bytes]:
    full_env = {**os.environ, "PYTHONPATH": str(REPO), "HOST": "127.0.0.1", "PORT": str(port), **env}
    log = (log_dir / f"{module}-{port}.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", f"targets.{module}"], env=full_env, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    os.sched_setaffinity(proc.pid, {cpu})
    deadline = time.monotonic() + 15
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=0.5).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"{module} did not start; see {log.name}")
        time.sleep(0.05)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


def wrk(url: str, duration_s: int, connections: int, cpu: int, script: Path) -> dict[str, float]:
    """One bounded wrk run (one thread, ``duration_s``): req/s, p50/p99 ms, non-2xx count."""
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{duration_s}s", "--latency", "-s", str(script), url]
    out = subprocess.run(
        ["taskset", "-c", str(cpu), *argv], capture_output=True, text=True, timeout=duration_s + 30, check=True
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)

    def percentile(label: str) -> float:
        match = re.search(rf"\s{label}%\s+([\d.]+)(us|ms|s)", out)
        if match is None:
            return float("nan")
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    return {
        "rps": rps,
        "p50_ms": percentile("50"),
        "p99_ms": percentile("99"),
        "non_2xx": float(non_2xx.group(1)) if non_2xx else 0.0,
        "socket_errors": 1.0 if errors else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration-s", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--service-time-ms", type=int, default=5, help="model server service time (default 5)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args()
    if shutil.which("wrk") is None or shutil.which("taskset") is None:
        raise SystemExit("wrk and taskset are needed: apt-get install wrk util-linux")
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        raise SystemExit("needs 2 CPUs: one for the program under test, one for the load generator")
    measured_cpu, other_cpu = cpus[0], cpus[-1]

    with tempfile.TemporaryDirectory(prefix="drill-bench-") as tmp:
        tmp_dir = Path(tmp)
        script = tmp_dir / "post.lua"
        script.write_text(WRK_SCRIPT)
        model_port, gateway_port = free_port(), free_port()
        model = start("model_server", model_port, other_cpu, tmp_dir, TIER="hosted", NODE_ID="hosted-model",
                      REGION="external", SERVICE_TIME_MS=str(args.service_time_ms))
        upstreams = [{"name": "hosted-model", "url": f"http://127.0.0.1:{model_port}", "tier": "hosted",
                      "region": "external"}]
        gateway = start("gateway", gateway_port, measured_cpu, tmp_dir, UPSTREAMS=json.dumps(upstreams))
        try:
            gateway_url = f"http://127.0.0.1:{gateway_port}/v1/chat/completions"
            wrk(gateway_url, 2, args.connections, other_cpu, script)  # warm-up: connections, baseline
            via_gateway = wrk(gateway_url, args.duration_s, args.connections, other_cpu, script)
            served = httpx.post(gateway_url, json={"model": "chat", "messages": []}).headers.get("x-tier")
        finally:
            stop(gateway)
        os.sched_setaffinity(model.pid, {measured_cpu})
        try:
            model_url = f"http://127.0.0.1:{model_port}/v1/chat/completions"
            wrk(model_url, 2, args.connections, other_cpu, script)
            direct = wrk(model_url, args.duration_s, args.connections, other_cpu, script)
        finally:
            stop(model)

    ratio = via_gateway["rps"] / direct["rps"] if direct["rps"] else float("nan")
    print(f"gateway throughput, {args.duration_s}s per run, {args.connections} connections, "
          f"service time {args.service_time_ms} ms, program under test pinned to CPU {measured_cpu}, "
          f"wrk on CPU {other_cpu}")
    print(f"{'target':<28}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'non-2xx':>10}")
    for label, figures in (("gateway -> hosted (1 core)", via_gateway), ("model server direct (1 core)", direct)):
        print(f"{label:<28}{figures['rps']:>10.0f}{figures['p50_ms']:>10.2f}{figures['p99_ms']:>10.2f}"
              f"{figures['non_2xx']:>10.0f}")
    print(f"ratio gateway/direct: {ratio:.2f}   served tier: {served}   "
          f"{'meets' if via_gateway['rps'] >= REQUIRED_RPS else 'BELOW'} the {REQUIRED_RPS} req/s target")
    if args.json:
        print(json.dumps({"gateway": via_gateway, "direct": direct, "ratio": ratio}))


if __name__ == "__main__":
    main()
