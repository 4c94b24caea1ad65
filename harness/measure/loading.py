"""Reading the per-request sample files of a run directory into one DataFrame.

This is the only place measure touches the file system, and it only reads.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from harness.errors import ScenarioError
from harness.load.samples import COLUMNS, SAMPLES_DIR

SAMPLE_DTYPES: dict[str, str] = {
    "source": "object",
    "start": "float64",
    "end": "float64",
    "status": "int64",
    "ok": "int8",
    "latency_ms": "float64",
    "bytes": "int64",
    "served_by": "object",
    "tier": "object",
    "region": "object",
    "degraded": "int8",
    "error": "object",
}
"""The dtype of every sample column; text columns hold "" (never NaN) when a value is absent."""

_TEXT = [c for c, t in SAMPLE_DTYPES.items() if t == "object"]
_NUMERIC = [c for c, t in SAMPLE_DTYPES.items() if t != "object"]
# A row without these cannot be measured; the others default to 0 / "".
_REQUIRED = ["start", "end", "status", "ok", "latency_ms"]


def empty_samples() -> pd.DataFrame:
    """A frame with no rows and the sample columns and dtypes."""
    return pd.DataFrame({c: pd.Series(dtype=SAMPLE_DTYPES[c]) for c in COLUMNS})


def load_samples(run_dir: Path) -> pd.DataFrame:
    """Every ``RUN_DIR/samples/*.csv`` concatenated, sorted by ``start``, with explicit dtypes.

    Returns :func:`empty_samples` when there are none. A torn last line (a crash mid-write) is
    dropped. Raises :class:`~harness.errors.ScenarioError` naming the file when a file lacks
    sample columns (it was not written by drill's load generators).
    """
    directory = Path(run_dir) / SAMPLES_DIR
    # capacity.csv (the pool sampler's timeline, harness/load/capacity.py) is not request samples.
    files = sorted(p for p in directory.glob("*.csv") if p.name != "capacity.csv") if directory.is_dir() else []
    frames = [frame for frame in (_read_one(path) for path in files) if len(frame)]
    if not frames:
        return empty_samples()
    samples = pd.concat(frames, ignore_index=True)
    return sort_samples(samples)


def sort_samples(samples: pd.DataFrame) -> pd.DataFrame:
    """``samples`` ordered by start time (stable), with a fresh 0..n-1 index."""
    if samples["start"].is_monotonic_increasing:
        return samples.reset_index(drop=True)
    return samples.sort_values("start", kind="mergesort", ignore_index=True)


def _read_one(path: Path) -> pd.DataFrame:
    try:
        header = pd.read_csv(path, nrows=0).columns.tolist()
    except pd.errors.EmptyDataError:
        return empty_samples()
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise ScenarioError(
            f"{path}: missing sample column(s) {', '.join(missing)}; this file was not written by "
            f"drill's load generators — move it out of {path.parent} and run `drill report` again"
        )
    try:
        frame = pd.read_csv(path, dtype=SAMPLE_DTYPES, usecols=COLUMNS, keep_default_na=False)
    except ValueError:
        # A torn row leaves empty or partial numbers: parse leniently and drop what cannot be measured.
        frame = _read_lenient(path)
    return frame[COLUMNS]


def _read_lenient(path: Path) -> pd.DataFrame:
    raw = pd.read_csv(path, dtype=str, usecols=COLUMNS, keep_default_na=False)
    numbers = {c: pd.to_numeric(raw[c], errors="coerce") for c in _NUMERIC}
    keep = np.ones(len(raw), dtype=bool)
    for column in _REQUIRED:
        keep &= numbers[column].notna().to_numpy()
    frame = pd.DataFrame(index=raw.index[keep])
    for column in COLUMNS:
        if column in numbers:
            frame[column] = numbers[column][keep].fillna(0).astype(SAMPLE_DTYPES[column])
        else:
            frame[column] = raw[column][keep].astype(object)
    return frame.reset_index(drop=True)
