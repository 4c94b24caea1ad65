"""Sample files: one CSV row per request, written by the load generators, read by measure.

Files live in ``RUN_DIR/samples/``: ``locust.csv`` (Locust users) and ``probe.csv`` (the
fixed-rate open-loop prober). Both share :data:`COLUMNS`:

- ``source``      ``locust`` | ``probe``
- ``start``/``end`` epoch seconds (``time.time()``), 6 decimals
- ``status``      HTTP status, 0 when no response arrived
- ``ok``          1 when a response arrived with a 2xx status, else 0
- ``latency_ms``  end - start in milliseconds, 3 decimals
- ``bytes``       response body length
- ``served_by``, ``tier``, ``region``  from ``X-Served-By``, ``X-Tier``, ``X-Region`` ("" if absent)
- ``degraded``    1 when ``X-Degraded`` is true-ish, else 0
- ``error``       short error text ("" when none), e.g. ``timeout``, ``ConnectionRefused``, ``HTTP 503``
"""

from __future__ import annotations

from pathlib import Path

COLUMNS = [
    "source",
    "start",
    "end",
    "status",
    "ok",
    "latency_ms",
    "bytes",
    "served_by",
    "tier",
    "region",
    "degraded",
    "error",
]

SAMPLES_DIR = "samples"
LOCUST_FILE = "locust.csv"
PROBE_FILE = "probe.csv"


def sample_files(run_dir: Path) -> list[Path]:
    """The sample files present in a run directory."""
    d = Path(run_dir) / SAMPLES_DIR
    return [p for p in (d / LOCUST_FILE, d / PROBE_FILE) if p.exists()]
