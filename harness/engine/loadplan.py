"""The scenario's ``load:`` block as the load room's :class:`~harness.load.plan.LoadPlan`."""

from __future__ import annotations

from harness.load.canaries import read_canaries
from harness.load.plan import LoadPlan
from harness.load.plan import RequestSpec as PlanRequest
from harness.scenario.model import LoadSpec, RequestSpec


def load_plan(load: LoadSpec, duration_s: float) -> LoadPlan:
    """Users, spawn rate (default: all at once), the request and the probe stream, for
    ``duration_s`` seconds."""
    return LoadPlan(
        host=load.host,
        users=load.users,
        spawn_rate=load.spawn_rate or float(max(load.users, 1)),
        duration_s=duration_s,
        pace_hz=load.pace_hz,
        request=_request(load.request or RequestSpec()),
        locustfile=load.locustfile,
        timeout_s=load.timeout_s,
        probe_rate_hz=load.probe_rate_hz,
        probe_request=_request(load.probe_request),
        workers=load.workers,
        master_bind=load.master.bind if load.master else None,
        expect_workers=load.master.expect_workers if load.master else None,
        attribution=load.attribution.model_dump() if load.attribution else None,
        # Checked when the scenario was loaded (harness.scenario.load_scenario names FILE:LINE).
        canaries=read_canaries(load.canaries.file, load.canaries.k) if load.canaries else None,
    )


def _request(r: RequestSpec) -> PlanRequest:
    return PlanRequest(method=r.method, path=r.path, json=r.json_body, headers=dict(r.headers), body=r.body,
                       answer_schema=r.answer_schema)
