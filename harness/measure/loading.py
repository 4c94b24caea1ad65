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

MAX_EPOCH_S = 1e10  # the year 2286: later instants are damage (and overflow date arithmetic)
MAX_LATENCY_MS = 1e9
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
    """One sample file; damage (bytes that are not UTF-8, numbers out of range, not a file) is a
    ScenarioError naming the file and line, never a traceback from pandas."""
    try:
        frame = _parse_one(path)
    except ScenarioError:
        raise
    except (OSError, UnicodeDecodeError, ValueError, OverflowError, pd.errors.ParserError) as exc:
        raise ScenarioError(_damage(path, exc)) from None
    if len(frame) and not _in_range(frame).all():
        raise ScenarioError(_damage(path, None))
    return frame


def _in_range(frame: pd.DataFrame) -> pd.Series:
    """Rows whose numbers a load generator could have written."""
    return (
        frame["start"].between(0, MAX_EPOCH_S) & frame["end"].between(0, MAX_EPOCH_S)
        & frame["latency_ms"].between(0, MAX_LATENCY_MS) & frame["status"].between(0, 999) & frame["ok"].isin([0, 1])
    )


def _damage(path: Path, exc: BaseException | None) -> str:
    """``FILE:LINE what is wrong`` for a damaged sample file (found with the csv module: slow, but
    only run once something is known to be wrong)."""
    import csv
    import math

    hint = "; sample files are written by drill: restore the run directory from its evidence pack"
    if isinstance(exc, OSError):
        return f"{path}: cannot read: {exc.strerror or exc}{hint}"
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as bad:
        line = raw[: bad.start].count(b"\n") + 1
        return f"{path}:{line} bytes that are not UTF-8{hint}"
    lines = text.split("\n")
    rows = csv.reader(lines)
    header = next(rows, [])
    for number, row in enumerate(rows, start=2):
        if not row or (number == len(lines) and not text.endswith("\n")):
            continue  # blank, or torn by a crash mid-write
        values = dict(zip(header, row))
        for column, low, high in (("start", 0, MAX_EPOCH_S), ("end", 0, MAX_EPOCH_S), ("latency_ms", 0, MAX_LATENCY_MS),
                                  ("status", 0, 999), ("ok", 0, 1)):
            try:
                number_value = float(values.get(column, ""))
            except ValueError:
                continue  # not a number: the lenient reader drops such torn rows
            if not (math.isfinite(number_value) and low <= number_value <= high):
                return f"{path}:{number} {column} {values.get(column, '')[:30]!r} is out of range{hint}"
    return f"{path}: cannot be read as samples ({type(exc).__name__ if exc else 'values out of range'}){hint}"


def _parse_one(path: Path) -> pd.DataFrame:
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
