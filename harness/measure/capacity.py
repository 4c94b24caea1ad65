"""Capacity over time — the place where a capacity timeline will be measured. Not built yet.

When the reference stack's autoscaler and cloud-api report GPU pool size and quota decisions
(journaled observations, or samples of a capacity probe), this module will turn them into a
per-bucket series aligned with :func:`harness.measure.timeline.timeline`: nodes ready per tier
and region, provisioning requests and their denials, and the time from a ``gpu_node_loss`` or
``region_quota_denial`` onset until capacity is back to target. Like the rest of measure it
will be pure: observations in, a DataFrame out. Until then :func:`capacity_timeline` raises.
"""

from __future__ import annotations

from typing import Any

import pandas as pd


def capacity_timeline(observations: list[dict[str, Any]], run_start_s: float, bucket_s: float) -> pd.DataFrame:
    """Not implemented yet: see the module docstring for what it will return."""
    raise NotImplementedError("capacity timelines are not measured yet (harness/measure/capacity.py)")
