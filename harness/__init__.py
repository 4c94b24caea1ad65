"""drill: failover drills for AI serving platforms.

The few things a Python user needs::

    from harness import load_scenario, run_drill
    result = run_drill("scenarios/latency.yaml", out="reports/latency/manual")
    assert result.verdict == "passed", result.results.objectives   # typed: harness.results.RunResults

Everything else lives in the rooms (``harness.scenario``, ``harness.faults``, ``harness.load``,
``harness.measure``, ``harness.report``). Names are imported on first use, so importing
``harness`` (as the Locust child process does) stays cheap.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = [
    "AbortedError",
    "DrillError",
    "FaultError",
    "RunResult",
    "Scenario",
    "ScenarioError",
    "StackError",
    "load_scenario",
    "run_drill",
]

_WHERE = {
    "AbortedError": "harness.errors",
    "DrillError": "harness.errors",
    "FaultError": "harness.errors",
    "ScenarioError": "harness.errors",
    "StackError": "harness.errors",
    "RunResult": "harness.engine",
    "run_drill": "harness.engine",
    "Scenario": "harness.scenario",
    "load_scenario": "harness.scenario",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'harness' has no attribute {name!r}")
