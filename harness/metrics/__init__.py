"""The stack's own metrics, from Prometheus (docs/metrics.md).

- :mod:`harness.metrics.client`  a typed Prometheus HTTP API client (httpx)
- :mod:`harness.metrics.checks`  PromQL bounds judged on what Prometheus answered (pure)
- :mod:`harness.metrics.drill`   what a drill does with them: preflight, stop conditions, the
                                 steady state after recovery, recording series
- :mod:`harness.metrics.results` results.json's ``metrics`` key from the run directory
"""

from __future__ import annotations

METRICS_FILE = "metrics.json"
"""The run directory's recorded series (the scenario's ``metrics`` queries over the run)."""
