"""Readers of a run directory's sample files into pandas frames: the per-request samples
(``samples/*.csv``) measure works on, and the capacity timeline (``samples/capacity.csv``).

Damage (bytes that are not UTF-8, numbers out of range, a file drill did not write) is a
:class:`~harness.errors.ScenarioError` naming ``FILE:LINE``, never a traceback from pandas.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pandas as pd

from harness.errors import ScenarioError
from harness.measure.samples import (
    OPTIONAL_DEFAULTS,
    SAMPLE_COLUMNS,
    SAMPLE_DTYPES,
    empty_samples,
    sort_samples,
)
from harness.rundir import capacity_path, request_sample_files

MAX_EPOCH_S = 1e10  # the year 2286: later instants are damage (and overflow date arithmetic)
MAX_LATENCY_MS = 1e9
MAX_TOKENS = 10**9  # more tokens in one answer than any model sends: damage
_NUMERIC = [c for c, t in SAMPLE_DTYPES.items() if t != "object"]
# A row without these cannot be measured; the others default to 0 / "" (OPTIONAL_DEFAULTS).
_REQUIRED = ["start", "end", "status", "ok", "latency_ms"]
# Sample files written before streaming was measured lack the streaming columns, and files written
# before the probe recorded its schedule lack ``intended``: they are read with OPTIONAL_DEFAULTS
# (nothing streamed, no schedule), so old run directories recompute to the same figures.
_FILE_COLUMNS = [c for c in SAMPLE_COLUMNS if c not in OPTIONAL_DEFAULTS]
# Empty cells of these read as NaN (no first token; fewer than 2 tokens; a Locust row), never as 0.
_MAY_BE_EMPTY = {"ttft_ms": [""], "max_gap_ms": [""], "intended": [""], "splice_gap_ms": [""]}
# (column, low, high) a load generator can write; checked on every row, located by _damage.
_RANGES = (("start", 0, MAX_EPOCH_S), ("end", 0, MAX_EPOCH_S), ("latency_ms", 0, MAX_LATENCY_MS),
           ("status", 0, 999), ("ok", 0, 1), ("stream", 0, 1), ("ttft_ms", 0, MAX_LATENCY_MS),
           ("tokens", 0, MAX_TOKENS), ("max_gap_ms", 0, MAX_LATENCY_MS), ("stream_completed", 0, 1),
           ("cut_after_tokens", -1, MAX_TOKENS), ("intended", 0, MAX_EPOCH_S), ("splices", 0, MAX_TOKENS),
           ("splice_tokens_before", -1, MAX_TOKENS), ("splice_gap_ms", 0, MAX_LATENCY_MS),
           ("tokens_lost", -1, MAX_TOKENS), ("tokens_repeated", -1, MAX_TOKENS), ("foreign_tokens", -1, MAX_TOKENS))
CAPACITY_NUMERIC = ("ts", "ok", "healthy", "pool_size", "target")


def read_samples(run_dir: Path) -> pd.DataFrame:
    """Every ``RUN_DIR/samples/*.csv`` of requests concatenated, sorted by ``start``, with
    explicit dtypes (:data:`~harness.measure.samples.SAMPLE_DTYPES`).

    Returns an empty frame when there are none. A torn last line (a crash mid-write) is dropped.
    Raises :class:`~harness.errors.ScenarioError` naming the file when a file lacks sample
    columns (it was not written by drill's load generators) or is damaged.
    """
    frames = [frame for frame in (_read_one(path) for path in request_sample_files(run_dir)) if len(frame)]
    if not frames:
        return empty_samples()
    return sort_samples(pd.concat(frames, ignore_index=True))


def read_capacity(run_dir: Path) -> pd.DataFrame | None:
    """The capacity timeline of a run, sorted by ``ts``; None when the run sampled none."""
    path = capacity_path(run_dir)
    if not path.exists():
        return None
    try:
        frame = pd.read_csv(path, dtype={"regions": "string", "healthy_nodes": "string", "error": "string"},
                            keep_default_na=False, na_values={"healthy": [""], "pool_size": [""], "target": [""]})
    except (OSError, UnicodeDecodeError, ValueError, pd.errors.ParserError) as exc:
        raise ScenarioError(f"{_capacity_damaged_at(path, exc)} cannot be read as the capacity timeline "
                            f"({type(exc).__name__}); it is written by drill: restore the run directory") from None
    missing = [c for c in CAPACITY_NUMERIC if c not in frame.columns]
    if missing:
        raise ScenarioError(f"{path}:1 capacity timeline without column(s) {', '.join(missing)}; it is written "
                            "by drill: restore the run directory")
    for column in CAPACITY_NUMERIC:
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    return frame.sort_values("ts", kind="stable").reset_index(drop=True)


def _capacity_damaged_at(path: Path, exc: BaseException) -> str:
    """``FILE:LINE`` of the first byte that is not UTF-8, else ``FILE:``."""
    if isinstance(exc, UnicodeDecodeError):
        try:
            raw = path.read_bytes()
            raw.decode("utf-8")
        except UnicodeDecodeError as bad:
            line = raw[: bad.start].count(b"\n") + 1
            return f"{path}:{line}"
        except OSError:
            pass
    return f"{path}:"


def _read_one(path: Path) -> pd.DataFrame:
    """One sample file; damage is a ScenarioError naming the file and line."""
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
    inside = pd.Series(True, index=frame.index)
    for column, low, high in _RANGES:
        values = frame[column]
        within = values.between(low, high)
        if column in _MAY_BE_EMPTY:
            within |= values.isna()
        inside &= within
    return inside


def _damage(path: Path, exc: BaseException | None) -> str:
    """``FILE:LINE what is wrong`` for a damaged sample file (found with the csv module: slow, but
    only run once something is known to be wrong)."""
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
        values = dict(zip(header, row, strict=False))
        for column, low, high in _RANGES:
            if column not in values or (column in _MAY_BE_EMPTY and values[column] == ""):
                continue
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
    missing = [c for c in _FILE_COLUMNS if c not in header]
    if missing:
        raise ScenarioError(
            f"{path}: missing sample column(s) {', '.join(missing)}; this file was not written by "
            f"drill's load generators — move it out of {path.parent} and run `drill report` again"
        )
    present = [c for c in SAMPLE_COLUMNS if c in header]
    try:
        frame = pd.read_csv(path, dtype={c: SAMPLE_DTYPES[c] for c in present}, usecols=present,
                            keep_default_na=False, na_values={c: v for c, v in _MAY_BE_EMPTY.items() if c in present})
    except ValueError:
        # A torn row leaves empty or partial numbers: parse leniently and drop what cannot be measured.
        frame = _read_lenient(path, present)
    return _with_defaults(frame)[SAMPLE_COLUMNS]


def _with_defaults(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every optional column it lacks filled with :data:`OPTIONAL_DEFAULTS`."""
    for column, default in OPTIONAL_DEFAULTS.items():
        if column not in frame.columns:
            frame[column] = pd.Series(default, index=frame.index, dtype=SAMPLE_DTYPES[column])
    return frame


def records_schedule(run_dir: Path) -> bool:
    """True when a sample file of the run has the ``intended`` column: the run was made by a
    harness that records probe schedules (and so measures its own health); older run
    directories recompute without a health record, to the figures they gave."""
    for path in request_sample_files(run_dir):
        try:
            header = pd.read_csv(path, nrows=0).columns.tolist()
        except (OSError, ValueError, pd.errors.EmptyDataError):
            continue
        if "intended" in header:
            return True
    return False


def _read_lenient(path: Path, present: list[str]) -> pd.DataFrame:
    raw = pd.read_csv(path, dtype=str, usecols=present, keep_default_na=False)
    numbers = {c: pd.to_numeric(raw[c], errors="coerce") for c in _NUMERIC if c in present}
    keep = np.ones(len(raw), dtype=bool)
    for column in _REQUIRED:
        keep &= numbers[column].notna().to_numpy()
    frame = pd.DataFrame(index=raw.index[keep])
    for column in present:
        if column in numbers:
            default = OPTIONAL_DEFAULTS.get(column, 0)  # NaN stays NaN for the ttft / gap / intended / splice gap
            frame[column] = numbers[column][keep].fillna(default).astype(np.dtype(SAMPLE_DTYPES[column]))
        else:
            frame[column] = raw[column][keep].astype(object)
    return frame.reset_index(drop=True)
