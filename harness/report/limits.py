"""The bounds a report draws beside the figures: objective targets, resolved to numbers."""

from __future__ import annotations

import re

from harness.results.model import RunResults, Target


def objective_target(results: RunResults, name: str) -> Target | None:
    """The target of the first objective called ``name`` (or ``name[...]``); None when absent."""
    for objective in results.objectives:
        if objective.name.split("[")[0] == name:
            return objective.target
    return None


def _number(value: Target | None) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def p95_limit_ms(results: RunResults) -> float | None:
    """The p95 objective in ms: ``measurement.latency_bound_ms`` when measure recorded it, else a
    numeric target as is, else ``Nx baseline`` resolved against ``phases.baseline.p95_ms``.

    None when there is no p95 objective or the baseline p95 is missing.
    """
    target = objective_target(results, "p95_ms")
    if target is None:
        return None
    if results.measurement.latency_bound_ms is not None:
        return results.measurement.latency_bound_ms
    if _number(target) is not None:
        return _number(target)
    match = re.match(r"\s*([0-9]*\.?[0-9]+)\s*x\s*baseline", str(target))
    baseline = results.phases.get("baseline")
    if match and baseline is not None and baseline.p95_ms is not None:
        return float(match.group(1)) * baseline.p95_ms
    return None


def ttft_limit_ms(results: RunResults) -> float | None:
    """The ``ttft_p95_ms`` objective in ms: a numeric target as is, the bound a relative target
    states (``2x baseline (= 84.0 ms)``), else ``Nx baseline`` resolved against the baseline
    phase's ``streaming.ttft_p95_ms``. None without the objective or without a baseline."""
    target = objective_target(results, "ttft_p95_ms")
    if _number(target) is not None:
        return _number(target)
    if not isinstance(target, str):
        return None
    stated = re.search(r"\(=\s*([0-9][0-9,]*\.?[0-9]*)\s*ms\)", target)
    if stated:
        return float(stated.group(1).replace(",", ""))
    number = re.match(r"\s*([0-9]*\.?[0-9]+)\s*(ms)?\s*(during\b.*)?$", target)
    if number:
        return float(number.group(1))
    factor = re.match(r"\s*([0-9]*\.?[0-9]+)\s*x\s*baseline", target)
    baseline = results.phases.get("baseline")
    ttft = baseline.streaming.ttft_p95_ms if baseline is not None and baseline.streaming is not None else None
    if factor and ttft is not None:
        return float(factor.group(1)) * ttft
    return None
