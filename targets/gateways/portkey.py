"""Run the pinned Portkey AI gateway (``scripts/portkey-setup``) on Node.

Environment:

- ``PORT``            where the gateway listens (``--port``). Portkey's server takes no host: it
  listens on every interface; drills still send to 127.0.0.1 only
- ``DRILL_PORTKEY_DIR`` the npm prefix holding it (default ``.gateways/portkey``)
- ``DRILL_NODE``      the ``node`` executable (default: on PATH)

The open-source gateway has no server-side routing file: each request carries its config in the
``x-portkey-config`` header (https://portkey.ai/docs/product/ai-gateway/configs, "Via the REST
API through the x-portkey-config header"), so a Portkey scenario declares it in
``load.request.headers``.

**The gateway's own record.** The server runs without ``--headless``: its console then serves
``GET /log/stream``, an SSE stream with one ``log`` event per request (every target tried, with
its ``createdAt``, ``lastUsedOptionIndex``, ``executionTime``; the final status and duration).
A thread here reads it and writes one JSON line per request to ``$DRILL_STACK_LOG_DIR/portkey/
calls.jsonl``: ``{received, status, duration_ms, attempts: [{target, host, created, execution_ms}]}``
(epoch seconds; ``received`` is when the log reached us, after the answer was sent). The console
adds only the log page routes (``/public/``) to the gateway.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import httpx

from targets.gateways.common import REPO_ROOT, fail, run, work_dir

SERVER = Path("node_modules", "@portkey-ai", "gateway", "build", "start-server.js")


def record_line(data: str, received: float) -> str | None:
    """One line of the record from one ``log`` event's JSON (None for what is not a request)."""
    try:
        log = json.loads(data)
    except ValueError:
        return None
    options = log.get("requestOptions") if isinstance(log, dict) else None
    if not isinstance(options, list) or not options:
        return None
    attempts = []
    for option in options:
        created = option.get("createdAt")
        try:
            stamp = datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp() if created else None
        except (AttributeError, ValueError):
            stamp = None
        attempts.append({
            "target": option.get("lastUsedOptionIndex"),
            "host": (option.get("providerOptions") or {}).get("customHost"),
            "created": stamp,
            "execution_ms": option.get("executionTime"),
            "span": option.get("hookSpanId"),
        })
    return json.dumps({"received": round(received, 6), "status": log.get("status"),
                       "duration_ms": log.get("duration"), "attempts": attempts})


def follow_log(url: str, out: Path, stop: threading.Event) -> None:
    """Read the gateway's ``/log/stream`` into ``out`` until ``stop``; reconnect while the gateway
    starts or after it dropped a slow reader (it does, after 1 s without delivery). The stream
    repeats events to every client registration; a request is kept once (its last span id)."""
    seen: set[str] = set()
    timeout = httpx.Timeout(5.0, read=None)
    with open(out, "a", encoding="utf-8") as sink, httpx.Client(trust_env=False, timeout=timeout) as client:
        while not stop.is_set():
            try:
                with client.stream("GET", url) as response:
                    event = ""
                    for line in response.iter_lines():
                        if line.startswith("event:"):
                            event = line[6:].strip()
                        elif line.startswith("data:") and event == "log":
                            row = record_line(line[5:].strip(), time.time())
                            if row is None:
                                continue
                            span = json.loads(row)["attempts"][-1].get("span") or row
                            if span in seen:
                                continue
                            seen.add(span)
                            sink.write(row + "\n")
                            sink.flush()
                        if stop.is_set():
                            return
            except httpx.HTTPError:
                pass
            stop.wait(0.2)


def main() -> int:
    port = os.environ.get("PORT", "8787")
    prefix = Path(os.environ.get("DRILL_PORTKEY_DIR") or REPO_ROOT / ".gateways" / "portkey")
    server = prefix / SERVER
    if not server.is_file():
        return fail(f"{server} not found: run scripts/portkey-setup (docs/gateways.md)")
    node = os.environ.get("DRILL_NODE") or shutil.which("node")
    if not node:
        return fail("node not found on PATH: Portkey's gateway needs Node.js 20 (docs/gateways.md)")
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    # Without --headless the console (and its log stream) is on unless NODE_ENV is production.
    env.pop("NODE_ENV", None)
    env.pop("ENVIRONMENT", None)
    folder = work_dir("portkey")
    stop = threading.Event()
    reader = threading.Thread(target=follow_log, daemon=True,
                              args=(f"http://127.0.0.1:{port}/log/stream", folder / "calls.jsonl", stop))
    reader.start()
    try:
        return run([node, str(server), f"--port={port}"], env, folder)
    finally:
        stop.set()


if __name__ == "__main__":
    sys.exit(main())
