"""results.json on disk: written atomically, read back as a :class:`RunResults` and checked.

The schema constant is :data:`harness.results.model.SCHEMA` (one, not two). :data:`REQUIRED_KEYS`
are never renamed (DESIGN.md "results.json"). Every file in a run directory is written atomically
(temp file in the same directory, fsync, rename), so a crash never leaves a half-written
results.json, junit.xml or report.html; :func:`atomic_write_text` is that writer for all of them.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

from pydantic import JsonValue, ValidationError

from harness.errors import ScenarioError
from harness.results.model import SCHEMA, RunResults
from harness.rundir import results_path
from harness.verdict import RESULT_VERDICTS

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


def _nan_to_none(value: JsonValue) -> JsonValue:
    # JSON has no NaN; a NaN figure is a missing one.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nan_to_none(v) for v in value]
    return value


def results_text(results: RunResults) -> str:
    """results.json's text: :meth:`RunResults.document`, indent 2, keys in the model's order,
    NaN/inf as ``null``."""
    return json.dumps(_nan_to_none(results.document()), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def write_results(run_dir: Path, results: RunResults) -> Path:
    """Write ``RUN_DIR/results.json`` atomically; returns its path."""
    return atomic_write_text(results_path(run_dir), results_text(results))


def _field(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc).replace("schema_", "schema") or "(top level)"


def parse_results(text: str, source: Path, run_dir: Path | None = None) -> RunResults:
    """One results.json's text as a :class:`RunResults`, or :class:`ScenarioError` (exit 2)
    naming ``source`` (with line and column for broken JSON), the field and what to do."""
    redo = f"`drill report {run_dir if run_dir is not None else source.parent}`"
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ScenarioError(
            f"{source}:{exc.lineno}:{exc.colno}: not valid JSON ({exc.msg}); the file is damaged — "
            f"recompute it with {redo}"
        ) from exc
    if not isinstance(document, dict):
        raise ScenarioError(f"{source}: expected a JSON object at the top, got {type(document).__name__}")
    schema = document.get("schema")
    if schema != SCHEMA:
        raise ScenarioError(
            f"{source}: field 'schema' is {schema!r}, expected {SCHEMA!r}; this file was not "
            f"written by this drill version — use the matching drill version or recompute it with {redo}"
        )
    missing = [key for key in REQUIRED_KEYS if key not in document]
    if missing:
        raise ScenarioError(f"{source}: missing required field(s) {', '.join(missing)}; recompute the file with {redo}")
    if document["verdict"] not in VERDICTS:
        raise ScenarioError(
            f"{source}: field 'verdict' is {document['verdict']!r}, expected one of {', '.join(VERDICTS)}"
        )
    try:
        return RunResults.from_document(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ScenarioError(
            f"{source}: field '{_field(first['loc'])}': {first['msg']}{more}; recompute the file with {redo}"
        ) from exc


def read_results(run_dir: Path) -> RunResults:
    """Read and check ``RUN_DIR/results.json`` (see :func:`parse_results`)."""
    path = results_path(run_dir)
    if not path.is_file():
        raise ScenarioError(
            f"{path}: no results.json here; pass a run directory written by `drill run` "
            f"(reports/<scenario>/<timestamp>-<id>/)"
        )
    return parse_results(path.read_text(encoding="utf-8"), path, Path(run_dir))
