"""Capacity: how long until the serving pool is back at its target size, and from where.

Input is the capacity timeline the sampler wrote (``RUN_DIR/samples/capacity.csv``, see
harness/load/capacity.py; read by :func:`harness.rundir.frames.read_capacity`): healthy GPU
nodes over time, per region and by name. Pure: pandas only.

Per fault (docs/method.md, "Capacity"):

- **capacity lost** at the first sample at or after the onset with fewer healthy nodes than the
  target. None means "no capacity loss observed" (``capacity_restored_s`` 0, said in ``capacity_notes``).
- **capacity restored** at the first later sample that is back at (or above) the target and
  stays there for ``sustain_s`` of samples. ``capacity_restored_s`` = that instant - onset.
  Never sustained before the timeline ends: None, and a note says how far it got.
- **replacement_region**: the region(s) of the node(s) that restored capacity — healthy at
  restoration, not healthy at the lowest point between loss and restoration (comma-joined when
  several). ``capacity_notes`` says when those are the very nodes that were lost.
- **degraded_requests**: requests answered OK by a degraded tier (``degraded`` = 1) that
  started between onset and restoration (run end when never restored).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from harness.measure.model import FaultTiming

DEFAULT_SUSTAIN_S = 5.0


@dataclass
class CapacityMeasure:
    """Capacity figures of one run. ``per_fault`` maps fault name -> figures merged into that
    fault's entry of results.json; :meth:`to_dict` is results.json ``capacity``."""

    target: int | None
    sustain_s: float
    interval_s: float | None
    resolution_s: float | None
    samples: int
    failed_polls: int
    timeline: dict[str, Any]
    per_fault: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "sustain_s": self.sustain_s,
            "interval_s": self.interval_s,
            "resolution_s": self.resolution_s,
            "samples": self.samples,
            "failed_polls": self.failed_polls,
            "timeline": self.timeline,
            "per_fault": self.per_fault,
        }


def _nodes(row: pd.Series) -> dict[str, str]:
    """name -> region of the healthy nodes of one sample."""
    text = row.get("healthy_nodes")
    if not isinstance(text, str) or not text:
        return {}
    out: dict[str, str] = {}
    for item in text.split(";"):
        name, _, region = item.partition("@")
        out[name] = region
    return out


def _regions(row: pd.Series) -> dict[str, int]:
    text = row.get("regions")
    if not isinstance(text, str) or not text:
        return {}
    try:
        loaded = json.loads(text)
    except ValueError:
        return {}
    return {str(k): int(v) for k, v in loaded.items()} if isinstance(loaded, dict) else {}


def capacity_timeline(capacity: pd.DataFrame) -> dict[str, Any]:
    """A compact, lossless summary of the healthy-node step function: the samples where the
    healthy count or its split by region changed (``changes``), plus min / max / first / last."""
    ok = capacity[capacity["ok"] == 1]
    if ok.empty:
        return {"changes": [], "min_healthy": None, "max_healthy": None, "first_healthy": None,
                "last_healthy": None, "regions": []}
    changes: list[dict[str, Any]] = []
    last: tuple[int, str] | None = None
    regions_seen: set[str] = set()
    for _, row in ok.iterrows():
        regions = _regions(row)
        regions_seen.update(regions)
        key = (int(row["healthy"]), json.dumps(regions, sort_keys=True))
        if key != last:
            changes.append({"ts": float(row["ts"]), "healthy": key[0], "regions": regions,
                            "nodes": sorted(_nodes(row))})
            last = key
    return {
        "changes": changes,
        "min_healthy": int(ok["healthy"].min()),
        "max_healthy": int(ok["healthy"].max()),
        "first_healthy": int(ok["healthy"].iloc[0]),
        "last_healthy": int(ok["healthy"].iloc[-1]),
        "regions": sorted(regions_seen),
    }


def _restored_index(ok: pd.DataFrame, start: int, target: int, sustain_s: float) -> int | None:
    """Index (into ``ok``) of the first sample from ``start`` at target that stays there for
    ``sustain_s`` — the timeline must reach that far."""
    ts = ok["ts"].to_numpy()
    healthy = ok["healthy"].to_numpy()
    end_ts = ts[-1]
    i = start
    while i < len(ok):
        if healthy[i] >= target:
            j = i
            while j < len(ok) and healthy[j] >= target and ts[j] < ts[i] + sustain_s:
                j += 1
            if j < len(ok) and healthy[j] < target:
                i = j + 1
                continue
            if end_ts >= ts[i] + sustain_s:
                return i
            return None
        i += 1
    return None


def _fault_capacity(
    ok: pd.DataFrame, fault: FaultTiming, target: int, sustain_s: float, samples: pd.DataFrame, run_end: float
) -> dict[str, Any]:
    notes: dict[str, str] = {}
    out: dict[str, Any] = {
        "capacity_restored_s": None,
        "capacity_lost_at_s": None,
        "capacity_min_healthy": None,
        "replacement_region": None,
        "replacement_nodes": [],
        "degraded_requests": None,
        "capacity_notes": notes,
    }
    t0 = fault.onset_at
    after = ok.index[ok["ts"] >= t0]
    if len(after) == 0:
        notes["capacity_restored_s"] = "no capacity sample after the onset"
        return out
    first = int(np.flatnonzero((ok["ts"] >= t0).to_numpy())[0])
    below = [k for k in range(first, len(ok)) if ok["healthy"].iloc[k] < target]
    if not below:
        out["capacity_restored_s"] = 0.0
        out["degraded_requests"] = 0
        notes["capacity_restored_s"] = (
            f"no capacity loss observed: the pool stayed at its target of {target} healthy nodes"
        )
        return out
    lost = below[0]
    out["capacity_lost_at_s"] = round(float(ok["ts"].iloc[lost]) - t0, 3)
    restored = _restored_index(ok, lost, target, sustain_s)
    stop = restored if restored is not None else len(ok)
    window = ok.iloc[lost:stop]
    low = window.index[int(window["healthy"].to_numpy().argmin())]
    out["capacity_min_healthy"] = int(ok.loc[low, "healthy"])
    restored_at = float(ok["ts"].iloc[restored]) if restored is not None else None
    if restored is None:
        last = int(ok["healthy"].iloc[-1])
        notes["capacity_restored_s"] = (
            f"pool not back at its target of {target} healthy nodes for {sustain_s:g}s before the "
            f"timeline ended (last seen: {last})"
        )
    else:
        restored_at = float(ok["ts"].iloc[restored])
        out["capacity_restored_s"] = round(restored_at - t0, 3)
        before = _nodes(ok.loc[low])
        now = _nodes(ok.iloc[restored])
        newcomers = {name: region for name, region in now.items() if name not in before}
        out["replacement_nodes"] = sorted(newcomers)
        regions = sorted(set(newcomers.values()))
        out["replacement_region"] = ",".join(regions) if regions else None
        earlier = ok[ok["ts"] < t0]
        before_onset = _nodes(earlier.iloc[-1]) if not earlier.empty else {}
        if newcomers and all(name in before_onset for name in newcomers):
            notes["replacement_region"] = "capacity came back with the node(s) that were lost, not a replacement"
    end = restored_at if restored_at is not None else run_end
    if samples is not None and not samples.empty and "degraded" in samples:
        in_window = samples[(samples["start"] >= t0) & (samples["start"] < end)]
        out["degraded_requests"] = int(((in_window["ok"] == 1) & (in_window["degraded"] == 1)).sum())
    else:
        notes["degraded_requests"] = "no request samples"
    return out


def measure_capacity(
    capacity: pd.DataFrame,
    faults: list[FaultTiming],
    target: int | None,
    samples: pd.DataFrame,
    sustain_s: float = DEFAULT_SUSTAIN_S,
) -> CapacityMeasure:
    """Capacity figures per fault (module docstring). ``target`` None takes the pool's own
    reported target size (its last value)."""
    ok = capacity[(capacity["ok"] == 1) & capacity["healthy"].notna()].reset_index(drop=True)
    reported = capacity["target"].dropna() if "target" in capacity else pd.Series(dtype=float)
    effective = target if target is not None else (int(reported.iloc[-1]) if not reported.empty else None)
    diffs = ok["ts"].diff().dropna()
    interval_s = round(float(diffs.median()), 3) if not diffs.empty else None
    measure = CapacityMeasure(
        target=effective,
        sustain_s=sustain_s,
        interval_s=interval_s,
        resolution_s=None,
        samples=int(len(capacity)),
        failed_polls=int((capacity["ok"] != 1).sum()),
        timeline=capacity_timeline(capacity),
    )
    uncertainty = max((f.onset_uncertainty_s for f in faults), default=0.0)
    if interval_s is not None:
        measure.resolution_s = round(interval_s + uncertainty, 3)
    run_end = float(capacity["ts"].max()) if not capacity.empty else 0.0
    for fault in faults:
        if ok.empty or effective is None:
            why = "no successful capacity sample" if ok.empty else "no target size known"
            measure.per_fault[fault.name] = {
                "capacity_restored_s": None, "replacement_region": None, "replacement_nodes": [],
                "degraded_requests": None, "capacity_notes": {"capacity_restored_s": why},
            }
            continue
        measure.per_fault[fault.name] = _fault_capacity(ok, fault, effective, sustain_s, samples, run_end)
    return measure


__all__ = ["CapacityMeasure", "capacity_timeline", "measure_capacity"]
