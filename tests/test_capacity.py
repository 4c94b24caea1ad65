"""Capacity measurement (pure, synthetic frames) and the pool sampler against a real HTTP server."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
from aiohttp import web

from harness.load.capacity import CAPACITY_FILE, CapacitySampler
from harness.measure.capacity import measure_capacity
from harness.measure.model import FaultTiming
from harness.rundir.frames import read_capacity
from harness.testing import serve_in_thread

T0 = 1000.0


def frame(points: list[tuple[float, dict[str, str]]], target: int = 1) -> pd.DataFrame:
    """Capacity rows: (ts, {node: region} healthy)."""
    rows = []
    for ts, nodes in points:
        regions: dict[str, int] = {}
        for region in nodes.values():
            regions[region] = regions.get(region, 0) + 1
        rows.append({"ts": ts, "ok": 1, "healthy": len(nodes), "pool_size": len(nodes), "target": target,
                     "regions": json.dumps(regions), "healthy_nodes": ";".join(f"{n}@{r}" for n, r in nodes.items()),
                     "error": ""})
    return pd.DataFrame(rows)


def timing(name: str = "lost", onset: float = T0) -> FaultTiming:
    return FaultTiming(name=name, type="gpu_node_loss", onset_at=onset, onset_source="signal",
                       onset_uncertainty_s=0.01, reverted_at=onset + 15)


def samples(starts: list[float], degraded: list[int]) -> pd.DataFrame:
    return pd.DataFrame({"start": starts, "ok": [1] * len(starts), "degraded": degraded})


def steps(spec: list[tuple[float, float, dict[str, str]]]) -> list[tuple[float, dict[str, str]]]:
    """(from, to, nodes) spans sampled every 0.5 s."""
    out = []
    for start, end, nodes in spec:
        t = start
        while t < end:
            out.append((t, nodes))
            t += 0.5
    return out


def test_restored_with_a_region_b_replacement_and_degraded_requests_counted() -> None:
    cap = frame(steps([(T0 - 5, T0 + 1, {"gpu-a1": "region-a"}), (T0 + 1, T0 + 6, {}),
                       (T0 + 6, T0 + 20, {"gpu-b1": "region-b"})]))
    reqs = samples([T0 - 1, T0 + 0.5, T0 + 2, T0 + 5.9, T0 + 7], [0, 0, 1, 1, 1])
    m = measure_capacity(cap, [timing()], 1, reqs)
    f = m.per_fault["lost"]
    assert f["capacity_restored_s"] == 6.0
    assert f["capacity_lost_at_s"] == 1.0
    assert f["replacement_region"] == "region-b" and f["replacement_nodes"] == ["gpu-b1"]
    assert f["degraded_requests"] == 2  # the one at +7 s came after restoration
    d = m.to_dict()
    assert d["target"] == 1 and d["interval_s"] == 0.5 and d["resolution_s"] == 0.51
    assert d["timeline"]["min_healthy"] == 0
    assert [c["healthy"] for c in d["timeline"]["changes"]] == [1, 0, 1]


def test_a_short_return_to_target_is_not_restoration() -> None:
    cap = frame(steps([(T0 - 2, T0 + 1, {"a1": "region-a"}), (T0 + 1, T0 + 3, {}),
                       (T0 + 3, T0 + 4, {"a2": "region-a"}), (T0 + 4, T0 + 6, {}),
                       (T0 + 6, T0 + 12, {"a3": "region-a"})]))
    f = measure_capacity(cap, [timing()], 1, samples([], [])).per_fault["lost"]
    assert f["capacity_restored_s"] == 6.0 and f["replacement_nodes"] == ["a3"]


def test_never_restored_and_no_loss_are_said_in_notes() -> None:
    never = frame(steps([(T0 - 2, T0 + 1, {"a1": "region-a"}), (T0 + 1, T0 + 20, {})]))
    f = measure_capacity(never, [timing()], 1, samples([T0 + 2], [1])).per_fault["lost"]
    assert f["capacity_restored_s"] is None and "not back" in f["capacity_notes"]["capacity_restored_s"]
    assert f["degraded_requests"] == 1
    steady = frame(steps([(T0 - 2, T0 + 20, {"a1": "region-a"})]))
    f = measure_capacity(steady, [timing()], None, samples([], [])).per_fault["lost"]
    assert f["capacity_restored_s"] == 0.0 and "no capacity loss" in f["capacity_notes"]["capacity_restored_s"]


def test_the_lost_node_coming_back_is_said_in_notes() -> None:
    cap = frame(steps([(T0 - 2, T0 + 1, {"a1": "region-a"}), (T0 + 1, T0 + 4, {}),
                       (T0 + 4, T0 + 12, {"a1": "region-a"})]))
    f = measure_capacity(cap, [timing()], 1, samples([], [])).per_fault["lost"]
    assert f["capacity_restored_s"] == 4.0 and f["replacement_region"] == "region-a"
    assert "not a replacement" in f["capacity_notes"]["replacement_region"]


def test_sampler_polls_a_real_pool_endpoint_and_read_capacity_reads_it(tmp_path: Path) -> None:
    state = {"healthy": True}

    async def pool(_: web.Request) -> web.Response:
        return web.json_response({"target_size": 2, "nodes": [
            {"name": "gpu-a1", "region": "region-a", "healthy": state["healthy"]},
            {"name": "gpu-b1", "region": "region-b", "healthy": True},
        ]})

    app = web.Application()
    app.router.add_get("/admin/pool", pool)
    out = tmp_path / "samples" / CAPACITY_FILE
    with serve_in_thread(app) as url:
        sampler = CapacitySampler(f"{url}/admin/pool", out, 0.05)
        sampler.start()
        deadline = time.monotonic() + 10
        while sampler.samples_written < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        state["healthy"] = False
        seen = sampler.samples_written
        while sampler.samples_written < seen + 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        sampler.stop()
        sampler.stop()
    assert not sampler.is_running
    cap = read_capacity(tmp_path)
    assert cap is not None and (cap["ok"] == 1).all()
    assert set(cap["healthy"]) == {1, 2} and set(cap["target"]) == {2}
    assert cap["healthy_nodes"].iloc[0] == "gpu-a1@region-a;gpu-b1@region-b"
    assert json.loads(cap["regions"].iloc[-1]) == {"region-a": 0, "region-b": 1}


def test_sampler_records_failed_polls_and_is_bounded(tmp_path: Path) -> None:
    from harness.testing import free_port

    out = tmp_path / "samples" / CAPACITY_FILE
    sampler = CapacitySampler(f"http://127.0.0.1:{free_port()}/admin/pool", out, 0.05, max_samples=3)
    sampler.start()
    deadline = time.monotonic() + 10
    while sampler.is_running and time.monotonic() < deadline:
        time.sleep(0.02)
    cap = read_capacity(tmp_path)
    assert len(cap) == 3 and (cap["ok"] == 0).all() and cap["error"].str.contains("Connect").all()
    assert read_capacity(tmp_path / "nothing") is None
