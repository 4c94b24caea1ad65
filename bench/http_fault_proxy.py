"""What the HTTP fault proxy costs: its added latency and its throughput ceiling, beside direct calls.

    flock /tmp/drill-integration.lock .venv/bin/python bench/http_fault_proxy.py \
        [--requests 2000] [--seconds 5] [--concurrency 16]

One loopback aiohttp upstream (a child process, so it has its own core time) answers a small JSON
chat completion and, on ``?stream=true``, 20 SSE events. The same client code calls it directly
and through ``mitmdump`` (reverse mode, drill's addon loaded, no fault active), side by side in one
run, alternating blocks of 100 requests so drift hits both alike:

- **latency**: one keep-alive client, sequential requests; p50 / p99 per path and what the proxy
  adds (``added_p50_ms``, ``added_p99_ms``); the same for a stream's time to first event.
- **throughput ceiling**: ``--concurrency`` clients for ``--seconds`` each, per path; requests per
  second and the ratio ``proxy_rps / direct_rps``.

Every request goes to 127.0.0.1; every loop is bounded by its count and a deadline. The last line
is ``added_p50_ms=<> added_p99_ms=<> ttft_added_p50_ms=<> direct_rps=<> proxy_rps=<> ratio=<>``.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.loopback import free_port, wait_http  # noqa: E402
from harness.httpfaults.proxy import HttpRoute, running_http_fault_proxy  # noqa: E402

UPSTREAM = """
import asyncio, sys
from aiohttp import web
async def chat(request):
    if request.query.get("stream") != "true":
        return web.json_response({"choices": [{"message": {"role": "assistant", "content": "ok"}}]})
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    for i in range(20):
        await response.write(b'data: {"choices": [{"delta": {"content": "t"}}]}\\n\\n')
    await response.write(b"data: [DONE]\\n\\n")
    return response
app = web.Application(); app.router.add_post("/v1/chat/completions", chat)
app.router.add_get("/health", lambda r: web.json_response({"ok": True}))
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""
BLOCK = 100


async def one(session: aiohttp.ClientSession, base: str, stream: bool) -> float:
    """Seconds to the full answer, or to the first event of a stream (the stream is read to its end)."""
    started = time.perf_counter()
    async with session.post(f"{base}/v1/chat/completions", params={"stream": str(stream).lower()},
                            json={"stream": stream}) as response:
        response.raise_for_status()
        if not stream:
            await response.read()
            return time.perf_counter() - started
        first = await response.content.readline()
        elapsed = time.perf_counter() - started
        assert first.startswith(b"data:")
        await response.read()
        return elapsed


async def latencies(bases: dict[str, str], total: int, stream: bool) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {name: [] for name in bases}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        for base in bases.values():  # warm each connection
            for _ in range(20):
                await one(session, base, stream)
        for _ in range(max(1, total // BLOCK)):
            for name, base in bases.items():
                out[name] += [await one(session, base, stream) for _ in range(BLOCK)]
    return out


async def throughput(base: str, seconds: float, concurrency: int) -> float:
    done = 0
    deadline = time.perf_counter() + seconds
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10),
                                     connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                await one(session, base, False)
                done += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done / (time.perf_counter() - started)


def pct_ms(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values) * 1000.0, q))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    port = free_port()
    upstream = subprocess.Popen([sys.executable, "-c", UPSTREAM, str(port)])
    try:
        wait_http(f"http://127.0.0.1:{port}/health", 10.0)
        route = HttpRoute("provider", free_port(), f"http://127.0.0.1:{port}")
        with running_http_fault_proxy([route]):
            bases = {"direct": f"http://127.0.0.1:{port}", "proxy": route.url}
            plain = asyncio.run(latencies(bases, args.requests, stream=False))
            ttft = asyncio.run(latencies(bases, args.requests // 2, stream=True))
            rps = {name: asyncio.run(throughput(base, args.seconds, args.concurrency)) for name, base in bases.items()}
    finally:
        upstream.terminate()
        upstream.wait(timeout=10)
    print(f"{'path':<8} {'p50 ms':>8} {'p99 ms':>8} {'ttft p50':>9} {'ttft p99':>9} {'rps':>8}")
    for name in ("direct", "proxy"):
        print(f"{name:<8} {pct_ms(plain[name], 50):8.2f} {pct_ms(plain[name], 99):8.2f} "
              f"{pct_ms(ttft[name], 50):9.2f} {pct_ms(ttft[name], 99):9.2f} {rps[name]:8.0f}")
    added_p50 = pct_ms(plain["proxy"], 50) - pct_ms(plain["direct"], 50)
    added_p99 = pct_ms(plain["proxy"], 99) - pct_ms(plain["direct"], 99)
    ttft_added = pct_ms(ttft["proxy"], 50) - pct_ms(ttft["direct"], 50)
    print(f"added_p50_ms={added_p50:.2f} added_p99_ms={added_p99:.2f} ttft_added_p50_ms={ttft_added:.2f} "
          f"direct_rps={rps['direct']:.0f} proxy_rps={rps['proxy']:.0f} ratio={rps['proxy'] / rps['direct']:.3f}")


if __name__ == "__main__":
    main()
