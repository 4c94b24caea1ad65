"""What must hold before anything is applied: no faults already on the stack, a Toxiproxy for
network faults, and a steady state the probe request can see. Each failure is refused with
nothing applied (bad input exits 2, the rest 3)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from harness.engine.paths import tempfile_dir
from harness.engine.result import Say
from harness.errors import AbortedError, ScenarioError, StackError
from harness.rundir import JOURNAL_FILE
from harness.rundir.events import Preflight
from harness.rundir.journal import Journal, applied_faults
from harness.rundir.state import registered_runs
from harness.runtime import open_stack
from harness.runtime.base import Runtime
from harness.safety.strays import scan
from harness.scenario import LoadedScenario

STEADY_STATE_PROBES = 5


def stack_record(loaded: LoadedScenario, runtime_kind: str, stack_key: str) -> dict[str, Any]:
    """How `drill recover --all` reaches this run's stack again (kept in drill's state dir)."""
    spec = loaded.spec
    stack = spec.stack
    return {
        "key": stack_key,
        "runtime": runtime_kind,
        "file": str(stack.file) if stack.file else None,
        "project": (stack.project or "drill-staging") if runtime_kind == "compose" else None,
        "toxiproxy_url": spec.toxiproxy.url if spec.toxiproxy else None,
        "hooks": [f.target.hook for f in spec.faults if f.target.hook],
    }


def refuse_active_faults(loaded: LoadedScenario, runtime: str | None, key: str) -> None:
    """Refuse (StackError, exit 3, nothing applied) to drill a stack that already has faults on
    it: an unfinished earlier run's, or strays no run knows. Measuring a stack that is already
    broken would blame the new faults for the old ones."""
    spec = loaded.spec
    problems: list[str] = []
    for entry in registered_runs():
        journal = Path(entry["run_dir"]) / JOURNAL_FILE
        if entry["stack"].get("key") != key or not journal.is_file():
            continue
        left = applied_faults(journal, lenient=True)
        if left:
            names = ", ".join(f"{e.name} ({e.type})" for e in left)
            problems.append(f"run {entry['run_dir']} ended without its rollback and may have left: {names}")
    kind = runtime or spec.stack.runtime
    stack = open_stack(spec.stack, Path(tempfile_dir()), kind) if kind == "compose" else None
    url = spec.toxiproxy.url if spec.toxiproxy else (stack.toxiproxy_url if stack is not None else None)
    found = scan(url, stack, [f.target.hook for f in spec.faults if f.target.hook])
    problems += [f"{f.kind} on {f.target}: {f.detail}" for f in found.faults]
    if problems:
        stray_fix = f"drill recover --all --force --runtime {kind}"
        if kind == "compose":
            stray_fix += f" --file {spec.stack.file} --project {spec.stack.project or 'drill-staging'}"
        elif url:
            stray_fix = f"drill recover --all --force --toxiproxy-url {url}"
        raise StackError(
            f"faults are already active on {key}; nothing was applied: " + "; ".join(problems)
            + f". Run `drill recover --all` to revert what a crashed run left (and `{stray_fix}` "
            "for faults no run knows), then run the drill again"
        )


def require_toxiproxy(loaded: LoadedScenario, stack: Runtime) -> None:
    """Input checks that need no stack: network faults need a Toxiproxy somewhere."""
    has_toxiproxy = loaded.spec.toxiproxy is not None or stack.toxiproxy_url
    for i, f in enumerate(loaded.spec.faults):
        if f.target.proxy and not has_toxiproxy:
            raise ScenarioError(
                f"{loaded.path} faults[{i}] ({f.name}): acts on proxy {f.target.proxy!r} "
                "but no Toxiproxy is known: add `toxiproxy: {url: http://127.0.0.1:8474}` "
                "or use a stack file that starts one"
            )


def steady_state(loaded: LoadedScenario, stack: Runtime, journal: Journal, say: Say) -> None:
    """The probe request must succeed (five at once) and no stack member may be unhealthy, else
    AbortedError (exit 3) with nothing applied."""
    load = loaded.spec.load
    request = load.probe_request
    say("preflight: checking steady state")
    def probe(client: httpx.Client) -> str | None:
        try:
            response = client.request(
                request.method, request.path, json=request.json_body, content=request.body, headers=request.headers,
            )
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"
        return f"HTTP {response.status_code}" if response.status_code >= 400 else None

    # Side by side: one after another, five long answers (an LLM's 10 s stream) cost a minute.
    with httpx.Client(base_url=load.host, timeout=load.timeout_s) as client, \
            ThreadPoolExecutor(STEADY_STATE_PROBES) as pool:
        failures = [f for f in pool.map(probe, [client] * STEADY_STATE_PROBES) if f is not None]
    unhealthy = stack.unhealthy()
    journal.write(Preflight(failures=failures, unhealthy=unhealthy))
    if failures or unhealthy:
        detail = "; ".join(failures[:3] + [f"unhealthy: {u}" for u in unhealthy])
        raise AbortedError(
            f"steady state not met before any fault ({request.method} {load.host}{request.path}): "
            f"{detail}. Nothing was applied.",
            reason="preflight",
        )
