"""The run directory's answer-quality files, read once (harness/load/canaries.py writes them):
``samples/quality.csv`` (one row per scored canary answer) and ``samples/quality-index.json``
(who built the document index). Damage is a :class:`~harness.errors.ScenarioError` naming the
file, never a traceback from pandas."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from harness.errors import ScenarioError
from harness.measure.quality import QUALITY_COLUMNS, RETRIEVAL
from harness.rundir import QUALITY_FILE, QUALITY_INDEX_FILE, samples_dir


@dataclass(frozen=True)
class QualityIndex:
    """Who built the canary documents' index, and why not when it could not be built."""

    served_by: str
    tier: str
    kind: str  # retrieval | chat
    model: str
    documents: int
    k: int | None
    problem: str | None


def quality_path(run_dir: Path) -> Path:
    return samples_dir(run_dir) / QUALITY_FILE


def quality_index_path(run_dir: Path) -> Path:
    return samples_dir(run_dir) / QUALITY_INDEX_FILE


def read_quality(run_dir: Path) -> pd.DataFrame | None:
    """The scored answers (:data:`~harness.measure.quality.QUALITY_COLUMNS`) sorted by start;
    None when the run scored none (no ``load.canaries``). A torn last line is dropped."""
    path = quality_path(run_dir)
    if not path.exists():
        return None
    try:
        frame = pd.read_csv(path, dtype={"served_by": "string", "tier": "string", "nearest": "string"},
                            keep_default_na=False, on_bad_lines="skip")
    except (OSError, UnicodeDecodeError, ValueError, pd.errors.ParserError) as exc:
        raise ScenarioError(f"{path}: cannot be read as answer-quality rows ({type(exc).__name__}); it is "
                            "written by drill: restore the run directory") from None
    missing = [c for c in QUALITY_COLUMNS if c not in frame.columns]
    if missing:
        raise ScenarioError(f"{path}:1 answer-quality rows without column(s) {', '.join(missing)}; it is written "
                            "by drill: restore the run directory")
    for column in ("start", "canary", "k", "score"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    frame = frame.dropna(subset=["start", "canary", "k", "score"])
    bad = frame[(frame["score"] < 0) | (frame["score"] > 1)]
    if len(bad):
        raise ScenarioError(f"{path}: score {bad['score'].iloc[0]} out of 0..1; it is written by drill: "
                            "restore the run directory")
    frame["tier"] = frame["tier"].fillna("").astype(str)
    frame["served_by"] = frame["served_by"].fillna("").astype(str)
    return frame.sort_values("start", kind="stable").reset_index(drop=True)


def read_quality_index(run_dir: Path) -> QualityIndex | None:
    """The index record; None when the run has none."""
    path = quality_index_path(run_dir)
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ScenarioError(f"{path}: cannot be read as the canary index record ({type(exc).__name__}); it is "
                            "written by drill: restore the run directory") from None
    if not isinstance(data, dict):
        raise ScenarioError(f"{path}: not the canary index record; restore the run directory")
    k = data.get("k")
    return QualityIndex(served_by=str(data.get("served_by") or ""), tier=str(data.get("tier") or ""),
                        kind=str(data.get("kind") or RETRIEVAL),
                        model=str(data.get("model") or ""), documents=int(data.get("documents") or 0),
                        k=k if isinstance(k, int) else None,
                        problem=data.get("problem") if isinstance(data.get("problem"), str) else None)
