"""results.json: the machine-readable outcome of one run (schema ``drill.results/v1``).

The shape is the one in DESIGN.md ("results.json"); :data:`REQUIRED_KEYS` are never renamed.
Optional keys the report also reads (all additive):

- ``abort_reason``          why an ``aborted`` run stopped (stop condition, unhealthy stack, ...)
- ``objectives[].note``     why ``measured`` is missing, or how ``target`` was resolved
- ``faults[].notes``        ``{field: reason}`` for fault figures that are missing (``null``)
- ``measurement.bucket_s``  bucket width; ``measurement.recovery_window_s`` the W of the method

Every file in a run directory is written atomically (temp file in the same directory, fsync,
rename), so a crash never leaves a half-written results.json, junit.xml or report.html.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from datetime import date, datetime
from pathlib import Path
from typing import Any

from harness.errors import ScenarioError
from harness.rundir import RESULTS_FILE, results_path
from harness.verdict import RESULT_VERDICTS

SCHEMA = "drill.results/v1"
RESULTS_NAME = RESULTS_FILE
REQUIRED_KEYS = (
    "schema",
    "run_id",
    "scenario",
    "started_at",
    "ended_at",
    "verdict",
    "environment",
    "phases",
    "faults",
    "objectives",
    "measurement",
    "cleanup",
)
VERDICTS = tuple(v.value for v in RESULT_VERDICTS)


def objective_target(results: dict[str, Any], name: str) -> Any:
    """The target of the first objective called ``name`` (or ``name[...]``); None when absent."""
    for objective in results.get("objectives") or []:
        if str(objective.get("name", "")).split("[")[0] == name:
            return objective.get("target")
    return None


def p95_limit_ms(results: dict[str, Any]) -> float | None:
    """The p95 objective in ms: ``measurement.latency_bound_ms`` when measure recorded it, else a
    numeric target as is, else ``Nx baseline`` resolved against ``phases.baseline.p95_ms``.

    None when there is no p95 objective or the baseline p95 is missing.
    """
    target = objective_target(results, "p95_ms")
    if target is None:
        return None
    bound = (results.get("measurement") or {}).get("latency_bound_ms")
    if isinstance(bound, (int, float)) and not isinstance(bound, bool) and math.isfinite(bound):
        return float(bound)
    if isinstance(target, (int, float)) and not isinstance(target, bool):
        return float(target)
    if isinstance(target, str):
        match = re.match(r"\s*([0-9]*\.?[0-9]+)\s*x\s*baseline", target)
        baseline = ((results.get("phases") or {}).get("baseline") or {}).get("p95_ms")
        if match and isinstance(baseline, (int, float)) and math.isfinite(baseline):
            return float(match.group(1)) * float(baseline)
    return None


def ttft_limit_ms(results: dict[str, Any]) -> float | None:
    """The ``ttft_p95_ms`` objective in ms: a numeric target as is, the bound a relative target
    states (``2x baseline (= 84.0 ms)``), else ``Nx baseline`` resolved against the baseline
    phase's ``streaming.ttft_p95_ms``. None without the objective or without a baseline."""
    target = objective_target(results, "ttft_p95_ms")
    if isinstance(target, (int, float)) and not isinstance(target, bool):
        return float(target)
    if not isinstance(target, str):
        return None
    stated = re.search(r"\(=\s*([0-9][0-9,]*\.?[0-9]*)\s*ms\)", target)
    if stated:
        return float(stated.group(1).replace(",", ""))
    number = re.match(r"\s*([0-9]*\.?[0-9]+)\s*(ms)?\s*(during\b.*)?$", target)
    if number:
        return float(number.group(1))
    factor = re.match(r"\s*([0-9]*\.?[0-9]+)\s*x\s*baseline", target)
    baseline = (((results.get("phases") or {}).get("baseline") or {}).get("streaming") or {}).get("ttft_p95_ms")
    if factor and isinstance(baseline, (int, float)) and math.isfinite(baseline):
        return float(factor.group(1)) * float(baseline)
    return None


def atomic_write_text(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` via a temp file in the same directory and an atomic rename.

    On any error the temp file is removed and an existing ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def _fsync_dir(directory: Path) -> None:
    # The rename is only durable once the directory entry is on disk.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _json_default(value: Any) -> Any:
    # numpy / pandas scalars (measure hands these over) expose .item(); paths and times as text.
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    raise TypeError(f"results.json cannot hold a {type(value).__name__}: {value!r}")


def _nan_to_none(value: Any) -> Any:
    # JSON has no NaN; a NaN figure is a missing one.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_nan_to_none(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and not isinstance(value, (str, bytes)):
        try:
            return _nan_to_none(value.item())
        except (TypeError, ValueError):
            return value
    return value


def write_results(run_dir: Path, results: dict[str, Any]) -> Path:
    """Write ``RUN_DIR/results.json`` atomically (indent 2, keys in the caller's order).

    ``schema`` is set to :data:`SCHEMA` when absent. NaN/inf become ``null``. Raises
    ``ValueError`` for another schema and ``TypeError`` for a value JSON cannot hold; either
    way nothing is written.
    """
    schema = results.get("schema", SCHEMA)
    if schema != SCHEMA:
        raise ValueError(f"results schema is {schema!r}; this writer writes {SCHEMA!r}")
    document = {"schema": SCHEMA, **{k: v for k, v in results.items() if k != "schema"}}
    text = json.dumps(
        _nan_to_none(document),
        indent=2,
        sort_keys=False,
        ensure_ascii=False,
        allow_nan=False,
        default=_json_default,
    )
    return atomic_write_text(results_path(run_dir), text + "\n")


def read_results(run_dir: Path) -> dict[str, Any]:
    """Read and check ``RUN_DIR/results.json``.

    Raises :class:`~harness.errors.ScenarioError` (exit 2) naming the file and what to do when
    the file is missing, is not JSON, is not schema ``drill.results/v1`` or lacks a required key.
    """
    path = results_path(run_dir)
    if not path.is_file():
        raise ScenarioError(
            f"{path}: no results.json here; pass a run directory written by `drill run` "
            f"(reports/<scenario>/<timestamp>-<id>/)"
        )
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ScenarioError(
            f"{path}:{exc.lineno}:{exc.colno}: not valid JSON ({exc.msg}); the file is damaged — "
            f"recompute it with `drill report {Path(run_dir)}`"
        ) from exc
    if not isinstance(document, dict):
        raise ScenarioError(f"{path}: expected a JSON object at the top, got {type(document).__name__}")
    schema = document.get("schema")
    if schema != SCHEMA:
        raise ScenarioError(
            f"{path}: field 'schema' is {schema!r}, expected {SCHEMA!r}; this file was not "
            f"written by this drill version — use the matching drill version or recompute it with "
            f"`drill report {Path(run_dir)}`"
        )
    missing = [key for key in REQUIRED_KEYS if key not in document]
    if missing:
        raise ScenarioError(
            f"{path}: missing required field(s) {', '.join(missing)}; recompute the file with "
            f"`drill report {Path(run_dir)}`"
        )
    if document["verdict"] not in VERDICTS:
        raise ScenarioError(
            f"{path}: field 'verdict' is {document['verdict']!r}, expected one of {', '.join(VERDICTS)}"
        )
    return document
