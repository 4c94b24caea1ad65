"""The capacity sampler: polls the serving pool's endpoint during a drill, one CSV row per poll.

The pool endpoint is the gateway's ``GET /admin/pool`` (targets/README.md): ``target_size``,
``healthy`` and ``nodes`` ``[{name, region, healthy, ...}]``. Each poll writes a row of
:data:`CAPACITY_COLUMNS` to ``RUN_DIR/samples/capacity.csv``:

- ``ts``            epoch seconds when the answer arrived
- ``ok``            1 when the endpoint answered 200 with a pool, else 0 (the other fields empty)
- ``healthy``       healthy nodes in the pool
- ``pool_size``     nodes in the pool, healthy or not
- ``target``        the pool's target size as the endpoint reports it
- ``regions``       JSON ``{region: healthy nodes}`` (every region in the pool, 0 included)
- ``healthy_nodes`` ``name@region`` of every healthy node, ``;``-separated
- ``error``         why a poll failed ("" when ok)

Polling runs in a daemon thread, bounded in count (``max_samples``) and time (``max_duration_s``);
``stop()`` ends it and is safe to call more than once or before ``start()``.
"""

from __future__ import annotations

import csv
import json
import threading
import time
from pathlib import Path
from typing import Any

import httpx

CAPACITY_FILE = "capacity.csv"
CAPACITY_COLUMNS = ["ts", "ok", "healthy", "pool_size", "target", "regions", "healthy_nodes", "error"]
MIN_INTERVAL_S = 0.05


def pool_row(ts: float, pool: dict[str, Any]) -> list[str]:
    """One CSV row from a ``/admin/pool`` answer."""
    nodes = [n for n in pool.get("nodes", []) if isinstance(n, dict)]
    regions: dict[str, int] = {}
    healthy_nodes: list[str] = []
    for node in nodes:
        region = str(node.get("region") or "")
        regions.setdefault(region, 0)
        if node.get("healthy"):
            regions[region] += 1
            healthy_nodes.append(f"{node.get('name', '?')}@{region}")
    healthy = sum(regions.values())
    target = pool.get("target_size")
    return [
        f"{ts:.6f}",
        "1",
        str(healthy),
        str(len(nodes)),
        "" if target is None else str(int(target)),
        json.dumps(regions, sort_keys=True),
        ";".join(sorted(healthy_nodes)),
        "",
    ]


def failed_row(ts: float, error: str) -> list[str]:
    return [f"{ts:.6f}", "0", "", "", "", "", "", error[:200]]


class CapacitySampler:
    """Samples ``pool_url`` every ``interval_s`` into ``out_path`` (see module docstring)."""

    def __init__(
        self,
        pool_url: str,
        out_path: Path,
        interval_s: float = 0.5,
        *,
        timeout_s: float = 1.0,
        max_samples: int = 100_000,
        max_duration_s: float = 4 * 3600.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.pool_url = pool_url
        self.out_path = Path(out_path)
        self.interval_s = max(MIN_INTERVAL_S, float(interval_s))
        self.timeout_s = timeout_s
        self.max_samples = max_samples
        self.max_duration_s = max_duration_s
        self.samples_written = 0
        self._transport = transport
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        self.out_path.parent.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._run, name="capacity-sampler", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)

    @property
    def is_running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_duration_s
        with (
            self.out_path.open("w", newline="", encoding="utf-8") as handle,
            httpx.Client(timeout=self.timeout_s, trust_env=False, transport=self._transport) as client,
        ):
            writer = csv.writer(handle)
            writer.writerow(CAPACITY_COLUMNS)
            handle.flush()
            next_at = time.monotonic()
            while not self._stop.is_set() and self.samples_written < self.max_samples and time.monotonic() < deadline:
                writer.writerow(self._poll(client))
                handle.flush()  # the file is the record: readable while the drill runs
                self.samples_written += 1
                next_at += self.interval_s
                # A fixed schedule, not sleep(interval) after each poll, so slow answers do not
                # stretch the sampling interval the resolution is quoted from.
                self._stop.wait(max(0.0, next_at - time.monotonic()))

    def _poll(self, client: httpx.Client) -> list[str]:
        try:
            reply = client.get(self.pool_url)
        except httpx.HTTPError as exc:
            return failed_row(time.time(), f"{type(exc).__name__}: {exc}")
        ts = time.time()
        if reply.status_code != 200:
            return failed_row(ts, f"HTTP {reply.status_code}")
        try:
            pool = reply.json()
        except ValueError:
            return failed_row(ts, "not JSON")
        if not isinstance(pool, dict) or not isinstance(pool.get("nodes"), list):
            return failed_row(ts, "no `nodes` list in the answer")
        return pool_row(ts, pool)


__all__ = ["CAPACITY_COLUMNS", "CAPACITY_FILE", "CapacitySampler", "failed_row", "pool_row"]
