"""``drill worker``: one Locust worker on this machine, attached to a drill run's master.

A scenario with ``load.master: {bind: 0.0.0.0:5557, expect_workers: N}`` makes ``drill run``
start Locust as a master that waits for N workers; on each load machine::

    drill worker scenario.yaml --master DRILL_HOST:5557 [--id NAME]

runs ``locust --worker`` in the foreground with the scenario's request (and locustfile). The
worker ships its samples to the master, on the master's clock (see ``locustfile.py``), and exits
when the master quits. Its exit code is Locust's.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from harness.errors import ScenarioError
from harness.load.plan import LoadPlan, split_host_port
from harness.load.plan import RequestSpec as PlanRequest
from harness.load.runner import locust_worker_command
from harness.scenario.model import LoadSpec, RequestSpec

# A worker's own plan only tells it what to send; the master decides users and run time.
WORKER_PLAN_DURATION_S = 1.0


def worker_plan(load: LoadSpec) -> LoadPlan:
    """What a worker sends: the scenario's request, locustfile and timeout."""

    def req(r: RequestSpec) -> PlanRequest:
        return PlanRequest(method=r.method, path=r.path, json=r.json_body, headers=dict(r.headers), body=r.body,
                           answer_schema=r.answer_schema)

    return LoadPlan(
        host=load.host,
        users=max(load.users, 1),
        spawn_rate=1.0,
        duration_s=WORKER_PLAN_DURATION_S,
        pace_hz=load.pace_hz,
        request=req(load.request or RequestSpec()),
        locustfile=load.locustfile,
        timeout_s=load.timeout_s,
        probe_rate_hz=0,
    )


def run_worker(load: LoadSpec, master: str, worker_id: str | None, log: Path | None = None) -> int:
    """Run one Locust worker until its master quits; return its exit code. ``master`` is
    HOST:PORT; a bad one is a ScenarioError (exit 2)."""
    try:
        host, port = split_host_port(master)
    except ValueError as exc:
        raise ScenarioError(f"--master: {exc}") from None
    env = dict(os.environ)
    env["DRILL_LOAD_PLAN"] = worker_plan(load).to_json()
    env["PYTHONUNBUFFERED"] = "1"
    if worker_id:
        env["DRILL_WORKER_ID"] = worker_id
    command = locust_worker_command(worker_plan(load), host, port)
    if log is None:
        return subprocess.run(command, env=env, stdin=subprocess.DEVNULL, check=False).returncode
    with open(log, "ab") as out:
        return subprocess.run(command, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                              check=False).returncode
