"""Drills for tests: a service of the test's own behind a private Toxiproxy, the shipped drills
moved onto free ports and shortened, and `drill run` as a subprocess awaited through its journal.

Every scenario here puts each port on a free one, so drills of parallel tests (pytest-xdist
workers) and a reference stack left up on the default ports never meet.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from harness.rundir import JOURNAL_FILE
from harness.rundir.events import Event, FaultApplied, FaultRevertIntent
from harness.rundir.journal import read_journal
from harness.testing.parts import (
    REPO,
    free_port,
    require,
    require_mitmdump,
    serve_in_thread,
    toxiproxy_binary,
    toxiproxy_server,
)

SCENARIOS = REPO / "scenarios"
DRILL = [sys.executable, "-m", "harness.cli"]
# How long a subprocess drill may take to reach a journal event, and to exit after a signal.
EVENT_TIMEOUT_S = 90.0
EXIT_TIMEOUT_S = 150.0


# The suite's Locust users send at most this many requests per second each (load.pace_hz). With no
# wait they send as fast as the stack answers (~1,500 requests/s on this machine's reference
# stack), and two drills side by side leave the host saturated: the verdicts come from the 20 Hz
# probe, and a count or a control's verdict holds at 10 per user (docs/pytest.md).
SUITE_PACE_HZ = 10


# The suite's LiteLLM drills are lighter still: their users at 2 requests/s each, their probe at
# 10 Hz. The proxy spends tens of milliseconds of CPU a request: alone, its 429 storm (4/8/4 s)
# took 36.1 s of CPU in 30.3 s (LiteLLM 20.7 s of it) at 10 requests/s a user and a 20 Hz probe,
# 26.1 s in 26.2 s (LiteLLM 14.1 s) at 2 and 10 Hz, December 2026; beside another drill it asked
# for more than the machine had, and was the drill most often run again alone (docs/pytest.md).
# What the LiteLLM tests assert (who served, the gateway's own record, a control's verdict) holds
# on 18 requests/s: the fault phase still holds over 100 answers.
LITELLM_PACE_HZ = 2
LITELLM_PROBE_HZ = 10


def litellm_load(text: str, probe_hz: int = LITELLM_PROBE_HZ) -> str:
    """A shipped LiteLLM drill's text with its users paced at :data:`LITELLM_PACE_HZ` and its
    probe at ``probe_hz`` (20 Hz as shipped). Before :func:`shortened`, which keeps that pace."""
    assert "probe_rate_hz: 20\n" in text, "not a shipped LiteLLM drill's probe"
    return paced(text.replace("probe_rate_hz: 20\n", f"probe_rate_hz: {probe_hz}\n", 1), LITELLM_PACE_HZ)


def paced(text: str, pace_hz: float = SUITE_PACE_HZ) -> str:
    """A scenario's text with its Locust users paced (``load.pace_hz``) unless it sets a pace.

    The drills whose verdict is the reference gateway's latency breaker (the shape drills, the
    flapping slow provider, the PromQL stop condition, the compose shipped drills) keep their
    shipped load: paced, they lost their verdicts 8 times in five whole runs. Why is a guess (the
    breaker's 3 s window holds a fifth of the answers, so a stall of the busy host weighs more),
    and the one run after unpacing them lost the latency ramp too (docs/pytest.md)."""
    if "pace_hz:" in text:
        return text
    return re.sub(r"^(\s+)users: ([1-9]\d*)\n", lambda m: f"{m[0]}{m[1]}pace_hz: {pace_hz}\n", text, count=1,
                  flags=re.MULTILINE)


# --- a user's own service ------------------------------------------------------------------------


def own_service() -> web.Application:
    """A chat endpoint that always answers 200, served by "svc-1" of the hosted tier."""

    async def chat(_: web.Request) -> web.Response:
        return web.json_response({"choices": []}, headers={"X-Served-By": "svc-1", "X-Tier": "hosted"})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    return app


def own_service_scenario(tmp_path: Path, toxiproxy_url: str, upstream: str, listen_port: int, **over: str) -> Path:
    """``own.yaml``: the own service behind proxy ``svc`` on ``listen_port``, 3/3/3 s phases, a
    300 ms latency fault; ``fault``, ``objectives`` and ``stop_when`` replace their defaults.

    The recovery window W is 2 s (``measurement.window``; drill's default is 5 s): the latency
    goes with the fault and the service answers at once, so 2 s of healthy buckets confirm the
    recovery as well as 5 do here, and the recovery phase needs 3 s, not 6. The tests that use
    it check a mechanism (an item, a summary, an abort, a listed trouble), not W."""
    fault = over.get("fault", "{name: slow, type: latency, target: {proxy: svc}, latency_ms: 300, duration: 3s}")
    objectives = over.get("objectives", "{rto_s: 10, p95_ms: 5000}")
    stop_when = over.get("stop_when", "")
    text = f"""\
        apiVersion: drill/v1
        kind: Scenario
        name: own-service
        toxiproxy: {{url: {toxiproxy_url}}}
        proxies:
          - {{name: svc, listen: 127.0.0.1:{listen_port}, upstream: {upstream}}}
        load:
          host: http://127.0.0.1:{listen_port}
          users: 2
          pace_hz: {SUITE_PACE_HZ}
          request: {{method: POST, path: /v1/chat/completions, json: {{model: chat}}}}
          timeout_s: 2
          probe_rate_hz: 20
        phases: {{baseline: 3s, fault: 3s, recovery: 3s}}
        measurement: {{window: 2s}}
        faults:
          - {fault}
        objectives: {objectives}
        {stop_when}
        """
    path = tmp_path / "own.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def short_scenario(tmp_path: Path, workers: int, toxiproxy_url: str, upstream: str) -> Path:
    """A user's own service behind a Toxiproxy proxy (free ports: no clash with a reference stack
    left up), 11 s of phases, ``workers`` Locust workers."""
    listen_port = free_port()
    text = f"""\
        apiVersion: drill/v1
        kind: Scenario
        name: live-{workers}
        toxiproxy: {{url: {toxiproxy_url}}}
        proxies:
          - {{name: svc, listen: 127.0.0.1:{listen_port}, upstream: {upstream}}}
        load:
          host: http://127.0.0.1:{listen_port}
          users: 4
          pace_hz: {SUITE_PACE_HZ}
          request: {{method: POST, path: /v1/chat/completions, json: {{model: chat}}}}
          timeout_s: 2
          probe_rate_hz: 20
          workers: {workers}
        phases: {{baseline: 3s, fault: 4s, recovery: 4s}}
        faults:
          - {{name: provider-slow, type: latency, target: {{proxy: svc}}, latency_ms: 300, duration: 4s}}
        objectives: {{rto_s: 10, p95_ms: 5000}}
        """
    path = tmp_path / f"live-{workers}.yaml"
    path.write_text(textwrap.dedent(text))
    return path


@contextlib.contextmanager
def service_and_toxiproxy() -> Iterator[tuple[str, str]]:
    """(toxiproxy_url, upstream host:port): a private toxiproxy-server and the own service."""
    with toxiproxy_server() as url, serve_in_thread(own_service()) as service:
        yield url, service.removeprefix("http://")


# --- the shipped drills, on free ports -----------------------------------------------------------


def rebased(scenario: Path, tmp_path: Path) -> tuple[Path, dict[int, int]]:
    """Copies of ``scenario`` and its local stack file with every fixed port of the stack moved
    to a free one. Returns (the new scenario path, old port -> new port)."""
    from harness.runtime.stackfile import load_stack

    text = scenario.read_text(encoding="utf-8")
    spec = yaml.safe_load(text)
    stack_path = (scenario.parent / spec["stack"]["file"]).resolve()
    stack = load_stack(stack_path)
    ports = {port for _, port in stack.declared_ports()}
    ports |= {int(p.listen.rsplit(":", 1)[1]) for p in stack.proxies}
    mapping = {port: free_port() for port in sorted(ports)}
    pattern = re.compile(r"\b(" + "|".join(str(p) for p in sorted(ports, reverse=True)) + r")\b")

    def move(source: str) -> str:
        return pattern.sub(lambda m: str(mapping[int(m.group(1))]), source)

    new_stack = tmp_path / stack_path.name
    new_stack.write_text(move(stack_path.read_text(encoding="utf-8")), encoding="utf-8")
    moved = move(text).replace(str(spec["stack"]["file"]), str(new_stack))
    new_scenario = tmp_path / scenario.name
    new_scenario.write_text(moved, encoding="utf-8")
    return new_scenario, mapping


def need_local() -> None:
    require(toxiproxy_binary() is not None, "toxiproxy-server", "run scripts/bootstrap")


SHIPPED_PHASES = "phases: {baseline: 10s, fault: 20s, recovery: 15s}"


SHORT_PHASES = (4, 8, 4)  # baseline, fault, recovery (s)



def shortened(text: str, phases: tuple[int, int, int] = SHORT_PHASES) -> str:
    """A shipped drill with short phases (4 s / 8 s / 4 s unless ``phases`` says otherwise), every
    fault lasting the fault phase, a late-starting one ending with it: for tests whose point
    holds at any length (a control's verdict, a count, a failover seconds in), so the suite stays
    within its time budget. The shipped lengths run in bench/ and by hand."""
    assert SHIPPED_PHASES in text, "not a shipped drill's phases"
    baseline, fault_s, recovery = phases
    text = text.replace(SHIPPED_PHASES, f"phases: {{baseline: {baseline}s, fault: {fault_s}s, recovery: {recovery}s}}")
    text = re.sub(r"duration: (15|20)s", f"duration: {fault_s}s", text)
    text = paced(text)
    # A fault that starts late in the phase ends with it (at: 2s, duration: 8s -> 6s).
    return re.sub(r"(\bat: (\d+)s\n\s+duration: )(\d+)s",
                  lambda m: f"{m[1]}{min(int(m[3]), fault_s - int(m[2]))}s", text)


CAPACITY_PHASES = (6, 10, 8)  # a replacement node lands about 4 s after the loss: inside the fault


def run_local(name: str, tmp_path: Path, *, short: bool = False,
              phases: tuple[int, int, int] = SHORT_PHASES) -> tuple[Any, dict[int, int]]:
    """Run the shipped local drill ``scenarios/<name>`` on free ports (shortened to ``phases``
    when ``short``): (the engine's RunResult, old port -> new port)."""
    from harness.engine import run_drill

    need_local()
    scenario, mapping = rebased(SCENARIOS / name, tmp_path)
    if short:
        scenario.write_text(shortened(scenario.read_text(encoding="utf-8"), phases), encoding="utf-8")
    result = run_drill(scenario, out=tmp_path / "run")
    return result, mapping


def need_proxy() -> None:
    """Toxiproxy and the HTTP fault proxy (mitmdump) are installed, or the test fails (CI) / skips."""
    need_local()
    require_mitmdump()


def run_short(name: str, tmp_path: Path) -> tuple[Any, dict[int, int]]:
    """Run the shipped local provider drill ``scenarios/<name>`` on free ports, shortened (a
    control's verdict or a count holds at any length): (the engine's RunResult, old -> new port)."""
    from harness.engine import run_drill

    need_proxy()
    scenario, mapping = rebased(SCENARIOS / name, tmp_path)
    scenario.write_text(shortened(scenario.read_text(encoding="utf-8")), encoding="utf-8")
    return run_drill(scenario, out=tmp_path / "run"), mapping


def failed_objectives(results: dict[str, Any]) -> set[str]:
    """The names of the objectives results.json says were missed."""
    return {o["name"] for o in results["objectives"] if not o["passed"]}


def failed_beyond_slowness(results: dict[str, Any]) -> set[str]:
    """The missed objectives, less ``rto_s`` when it missed on slow answers alone (no answer was
    an error: ``max_error_rate`` measured 0). For a control whose point is another objective: on
    the suite's busy host a bucket of answers over the latency floor late in a shortened drill
    misses the RTO (whole runs: the retry-storm control, 3 of 6 probes over 500 ms at +8 s; the
    stream-resume control, 3 of 5 at +11.25 s of 11.75 s). How fast is bench/'s business."""
    failed = failed_objectives(results)
    errors = next((o for o in results["objectives"] if o["name"] == "max_error_rate"), None)
    if errors is not None and errors["measured"] == 0:
        failed.discard("rto_s")
    return failed


def fault(results: dict[str, Any], name: str) -> dict[str, Any]:
    """The entry of results.json's ``faults`` named ``name``."""
    found: dict[str, Any] = next(f for f in results["faults"] if f["name"] == name)
    return found


def verdict_text(results: dict[str, Any]) -> str:
    """What results.json says of the verdict, as one line for an assertion's message: the verdict,
    each objective as the report words it (:func:`harness.report.reasons.objective_line`) and the
    abort reason. A text, because pytest shortens a dict or a list in a failed assertion's
    message to a couple of hundred characters, and a first try's failure is only known by that
    line (tests/conftest.py)."""
    from harness.report.reasons import objective_line
    from harness.results.model import ObjectiveResult

    parts = [f"verdict {results.get('verdict')}"]
    parts += [objective_line(ObjectiveResult.model_validate(o)) for o in results.get("objectives", [])]
    if results.get("abort_reason"):
        parts.append(f"aborted: {results['abort_reason']}")
    return "; ".join(parts)


def objective(results: dict[str, Any], name: str) -> dict[str, Any]:
    """The entry of results.json's ``objectives`` named ``name``."""
    found: dict[str, Any] = next(o for o in results["objectives"] if o["name"] == name)
    return found


# --- `drill run` as a subprocess -----------------------------------------------------------------


class DrillEnded(AssertionError):
    """The drill exited before the awaited event."""


def journal_events(run_dir: Path) -> list[dict[str, Any]]:
    """The run's journal records so far (none before the journal exists)."""
    path = run_dir / JOURNAL_FILE
    return [record.document() for record in read_journal(path)] if path.exists() else []


def fault_window(run_dir: Path, until: type[Event] = FaultRevertIntent) -> tuple[float, float]:
    """The first fault's window in the journal's clock: from its ``FaultApplied`` record to the
    first ``until`` record. The default ends it when the revert is asked for: from then on a proxy
    may already pass calls through (a fast answer can end before the revert is journaled)."""
    records = read_journal(run_dir / JOURNAL_FILE)
    applied = next(r for r in records if isinstance(r.event, FaultApplied))
    ended = next(r for r in records if isinstance(r.event, until))
    return applied.ts, ended.ts


def tail(run_dir: Path) -> str:
    """The last 2000 characters of the log :func:`start_drill` wrote beside ``run_dir``."""
    log = run_dir.parent / f"{run_dir.name}.log"
    return log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"


def start_drill(scenario: Path, run_dir: Path, env: dict[str, str] | None = None,
                cwd: Path = REPO) -> subprocess.Popen[bytes]:
    """`drill run SCENARIO --out RUN_DIR` as a child in ``cwd``, its output in ``RUN_DIR.log``."""
    log = open(run_dir.parent / f"{run_dir.name}.log", "wb")  # the child writes it; closed with the process
    return subprocess.Popen(
        [*DRILL, "run", str(scenario), "--out", str(run_dir)],
        cwd=cwd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
    )


def wait_event(
    proc: subprocess.Popen[bytes],
    run_dir: Path,
    event: str,
    where: Callable[[dict[str, Any]], bool] = lambda r: True,
) -> dict[str, Any]:
    """Poll the run's journal until ``event`` appears; fail when the drill exits first or in time."""
    deadline = time.monotonic() + EVENT_TIMEOUT_S
    while time.monotonic() < deadline:
        for record in journal_events(run_dir):
            if record.get("event") == event and where(record):
                return record
        if proc.poll() is not None:
            raise DrillEnded(f"drill exited ({proc.returncode}) before {event}; log: {tail(run_dir)}")
        time.sleep(0.02)
    proc.terminate()  # never leave a drill running behind a failed test: SIGTERM rolls it back
    proc.wait(timeout=EXIT_TIMEOUT_S)
    raise AssertionError(f"no {event} in the journal within {EVENT_TIMEOUT_S:g}s; log: {tail(run_dir)}")


def children_of(pid: int) -> list[int]:
    """Pids whose parent is ``pid`` (the load generators of a drill), from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def signal_after(proc: subprocess.Popen[Any], delay_s: float, sig: int) -> tuple[int, list[int]]:
    """Send ``sig`` to the drill after ``delay_s`` (the random moment; nothing to await), and
    return its exit code and the load children it had (after kill -9 they are `drill recover`'s
    to stop)."""
    try:
        time.sleep(delay_s)
        orphans = children_of(proc.pid)
        proc.send_signal(sig)
        return proc.wait(timeout=EXIT_TIMEOUT_S), orphans
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# --- kill -9 mid-fault, then `drill recover --all` ------------------------------------------------


def kill_9_when(scenario: Path, run_dir: Path, ready: Callable[[], bool], what: str, *,
                cwd: Path, timeout_s: float = 180.0) -> None:
    """:func:`start_drill` in ``cwd``, killed with SIGKILL as soon as ``ready()`` holds: fails
    when the drill exits first or when ``what`` (e.g. "the HTTP fault became active") has not
    happened within ``timeout_s``."""
    drill = start_drill(scenario, run_dir, cwd=cwd)
    try:
        deadline = time.monotonic() + timeout_s
        while not ready():
            assert drill.poll() is None, tail(run_dir)
            assert time.monotonic() < deadline, f"not seen within {timeout_s:g} s: {what}"
            time.sleep(0.1)
        drill.send_signal(signal.SIGKILL)
        assert drill.wait(timeout=30) == -signal.SIGKILL
    finally:
        if drill.poll() is None:
            drill.kill()
            drill.wait()


def http_fault_hit(control_url: str) -> Callable[[], bool]:
    """For :func:`kill_9_when`: true once a fault on the HTTP fault proxy whose control API is at
    ``control_url`` has acted on a call (false while the stack is still starting)."""
    from harness.errors import FaultError
    from harness.httpfaults.client import HttpFaultClient

    def hit() -> bool:
        try:
            with HttpFaultClient(control_url, timeout_s=1.0) as proxy:
                return any(f.hits > 0 for f in proxy.faults())
        except FaultError:
            return False

    return hit


def recover_all(cwd: Path) -> str:
    """`drill recover --all --reports-dir CWD` run in ``cwd``; asserts exit 0; its output."""
    recovered = subprocess.run([*DRILL, "recover", "--all", "--reports-dir", str(cwd)], cwd=cwd,
                               capture_output=True, text=True, timeout=120)
    assert recovered.returncode == 0, recovered.stdout + recovered.stderr
    return recovered.stdout


def stack_status(stack_file: Path, cwd: Path) -> dict[str, Any]:
    """`drill stack status --file STACK_FILE --json` run in ``cwd`` (exit 0 asserted), parsed."""
    done = subprocess.run([*DRILL, "stack", "status", "--file", str(stack_file), "--json"], cwd=cwd,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))
