"""Safety soak: random signals at random moments across every fault family, on both runtimes.

    flock /tmp/drill-integration.lock .venv/bin/python bench/safety_soak.py [--trials N] \
        [--runtime local|compose|both] [--seed S]

Each trial runs the real CLI (`python -m harness.cli run SCENARIO --out DIR`, DIR outside any
reports folder) and, once the journal shows the first `fault.applied`, waits a random moment of
the fault phase and sends SIGTERM, SIGINT or SIGKILL. After SIGKILL it runs `drill recover --all`
(with no --reports-dir pointing at DIR: the run is found through drill's register alone), which
must exit 0. Then it looks at the stack itself for anything left: toxics or disabled proxies on
Toxiproxy, paused or stopped containers, hook faults (harness.safety.strays), the run's fault ledger,
and a run still registered.

* local: the user's own HTTP service (aiohttp, in this process) behind a real toxiproxy-server;
  families latency, jitter, bandwidth, blackhole, reset, down (two faults per drill, staggered).
* compose: the reference stack (compose/staging.yaml) under its own project on free ports;
  families endpoint_kill (kill, stop, pause), gpu_node_loss (kill), region_quota_denial (the
  cloud-api hook) and a latency toxic.

A trial whose drill ends before any fault is applied (preflight refused an overloaded stack) is
not a trial: it must still exit 3 and leave nothing; it is counted under `not_reached` and
retried. One line per trial, then the counts; the last line is `trials=<n> left=<k>`, and
`left=0` is the only passing figure.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from conftest import free_port, serve_in_thread, toxiproxy_binary, wait_http  # noqa: E402
from test_engine import own_service  # noqa: E402

from harness.rundir import JOURNAL_FILE  # noqa: E402
from harness.rundir.events import FaultApplied, JournalEvent, PhaseEnd  # noqa: E402
from harness.rundir.journal import applied_faults, read_journal  # noqa: E402
from harness.safety.strays import active_faults  # noqa: E402
from harness.toxiproxy import ToxiproxyClient  # noqa: E402

DRILL = [sys.executable, "-m", "harness.cli"]
SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGKILL)
EVENT_TIMEOUT_S = 120.0
EXIT_TIMEOUT_S = 180.0

LOCAL_FAULTS = {
    "latency": "type: latency, latency_ms: 80",
    "jitter": "type: jitter, jitter_ms: 40",
    "bandwidth": "type: bandwidth, rate_kbps: 8",
    "blackhole": "type: blackhole",
    "reset": "type: reset",
    "down": "type: down",
}
COMPOSE_FAULTS = {
    "endpoint_kill:kill": "{name: f, type: endpoint_kill, target: {service: hosted-model}, mode: kill}",
    "endpoint_kill:stop": "{name: f, type: endpoint_kill, target: {service: hosted-model}, mode: stop}",
    "endpoint_kill:pause": "{name: f, type: endpoint_kill, target: {service: hosted-model}, mode: pause}",
    "gpu_node_loss:kill": ("{name: f, type: gpu_node_loss, mode: kill, count: 1, "
                           "target: {labels: {drill.gpu: 'true', drill.region: region-a, drill.pool: gpu}}}"),
    "region_quota_denial": ("{name: f, type: region_quota_denial, target: {hook: 'http://127.0.0.1:%(cloud)d/fault'}, "
                            "region: region-a, mode: quota_exceeded, instance_type: gpu.h100}"),
    "latency": "{name: f, type: latency, target: {proxy: gpu-a1}, latency_ms: 100}",
}


def journal_events(run_dir: Path) -> list[JournalEvent]:
    path = run_dir / JOURNAL_FILE
    return [record.event for record in read_journal(path, lenient=True)] if path.exists() else []


def run_trial(scenario: Path, run_dir: Path, sig: signal.Signals, delay_s: float,
              env: dict[str, str]) -> tuple[str, list[str]]:
    """One drill hit by ``sig`` ``delay_s`` after its first fault; returns (outcome, problems).
    outcome: the exit code as text, or "not_reached" when no fault was ever applied."""
    log = open(run_dir.parent / f"{run_dir.name}.log", "wb")
    proc = subprocess.Popen([*DRILL, "run", str(scenario), "--out", str(run_dir)], cwd=REPO,
                            stdout=log, stderr=subprocess.STDOUT, env=env)
    problems: list[str] = []
    try:
        deadline = time.monotonic() + EVENT_TIMEOUT_S
        while not any(isinstance(e, FaultApplied) for e in journal_events(run_dir)):
            if proc.poll() is not None:
                code = proc.returncode
                if code != 3:
                    problems.append(f"ended {code} before any fault (expected 3)")
                return "not_reached", problems
            if time.monotonic() > deadline:
                proc.terminate()
                proc.wait(timeout=EXIT_TIMEOUT_S)
                return "not_reached", [f"no fault.applied within {EVENT_TIMEOUT_S:g}s"]
            time.sleep(0.02)
        time.sleep(delay_s)  # the random moment: nothing to await
        proc.send_signal(sig)
        code = proc.wait(timeout=EXIT_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    if sig == signal.SIGKILL:
        if code != -signal.SIGKILL:
            problems.append(f"exit {code}, expected -9")
        recover = subprocess.run([*DRILL, "recover", "--all", "--reports-dir", str(run_dir.parent / "no-reports")],
                                 cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
        if recover.returncode != 0:
            problems.append(f"recover --all exit {recover.returncode}: {(recover.stdout + recover.stderr)[-600:]}")
    elif code != 3 and not (code in (0, 1) and _ended_before_signal(run_dir)):
        problems.append(f"exit {code}, expected 3")
    if applied_faults(run_dir / JOURNAL_FILE):
        problems.append("the run's ledger still shows faults applied")
    return str(code), problems


def _ended_before_signal(run_dir: Path) -> bool:
    """A signal that lands after the drill finished its phases is a normal end (0 or 1)."""
    return any(isinstance(e, PhaseEnd) for e in journal_events(run_dir))


def still_registered(env: dict[str, str]) -> list[str]:
    from harness.rundir.state import registered_runs

    old = os.environ.get("DRILL_STATE_DIR")
    os.environ["DRILL_STATE_DIR"] = env["DRILL_STATE_DIR"]
    try:
        return [e["run_dir"] for e in registered_runs()]
    finally:
        if old is None:
            os.environ.pop("DRILL_STATE_DIR", None)
        else:
            os.environ["DRILL_STATE_DIR"] = old


# --- local --------------------------------------------------------------------------------------


class LocalBed:
    """A toxiproxy-server and the user's own service, with two proxies in front of it."""

    def __init__(self, work: Path) -> None:
        self.work = work
        binary = toxiproxy_binary()
        if binary is None:
            raise SystemExit("toxiproxy-server not found: run scripts/bootstrap")
        port = free_port()
        self.toxiproxy = subprocess.Popen([binary, "-host", "127.0.0.1", "-port", str(port)],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.url = f"http://127.0.0.1:{port}"
        wait_http(self.url + "/version")
        self._service = serve_in_thread(own_service())
        self.upstream = self._service.__enter__().removeprefix("http://")
        self.ports = {"svc-a": free_port(), "svc-b": free_port()}
        self.client = ToxiproxyClient(self.url)
        for name, listen in self.ports.items():
            self.client.create_proxy(name, f"127.0.0.1:{listen}", self.upstream)

    def scenario(self, path: Path, family: str) -> Path:
        spec = LOCAL_FAULTS[family]
        path.write_text(
            "apiVersion: drill/v1\nkind: Scenario\nname: soak-local\n"
            f"toxiproxy: {{url: {self.url}}}\n"
            f"load:\n  host: http://127.0.0.1:{self.ports['svc-a']}\n  users: 2\n"
            "  request: {method: POST, path: /v1/chat/completions, json: {model: chat}}\n"
            "  timeout_s: 2\n  probe_rate_hz: 20\n"
            "phases: {baseline: 1s, fault: 5s, recovery: 1s}\nfaults:\n"
            f"  - {{name: a, target: {{proxy: svc-a}}, {spec}}}\n"
            f"  - {{name: b, target: {{proxy: svc-b}}, at: 0.7s, {spec}}}\n", encoding="utf-8")
        return path

    def left(self) -> list[str]:
        found = []
        for proxy in self.client.proxies().values():
            if proxy.toxics:
                found.append(f"toxics on {proxy.name}")
            if not proxy.enabled:
                found.append(f"{proxy.name} disabled")
        return found + [f"{f.kind} {f.target}" for f in active_faults(self.url, None)]

    def close(self) -> None:
        self.client.close()
        self._service.__exit__(None, None, None)
        self.toxiproxy.terminate()
        self.toxiproxy.wait(timeout=10)


# --- compose ------------------------------------------------------------------------------------


class ComposeBed:
    """The reference stack under its own project on free ports."""

    def __init__(self, work: Path) -> None:
        from test_docker_staging import PORT_VARIABLES, STAGING_FILE

        from harness.runtime.compose import ComposeRuntime

        self.ports = {service: free_port() for service in PORT_VARIABLES}
        self.env = {PORT_VARIABLES[s]: str(p) for s, p in self.ports.items()}
        os.environ.update(self.env)
        self.runtime = ComposeRuntime(STAGING_FILE, f"drill-soak-{uuid.uuid4().hex[:8]}", work / "compose-logs")
        self.runtime.up(wait_s=240)

    def scenario(self, path: Path, family: str) -> Path:
        fault = COMPOSE_FAULTS[family] % {"cloud": self.ports["cloud-api"]}
        path.write_text(textwrap.dedent(f"""\
            apiVersion: drill/v1
            kind: Scenario
            name: soak-compose
            stack: {{runtime: compose, file: {self.runtime.file}, project: {self.runtime.project}}}
            load:
              host: http://127.0.0.1:{self.ports['gateway']}
              users: 2
              request: {{method: POST, path: /v1/chat/completions, json: {{model: chat, messages: [{{role: user, content: hi}}]}}}}
              timeout_s: 5
              probe_rate_hz: 20
            phases: {{baseline: 1s, fault: 6s, recovery: 1s}}
            faults:
              - {fault}
            """), encoding="utf-8")
        return path

    def left(self) -> list[str]:
        found = [f"not running: {name}" for name in self.runtime.not_running()]
        hooks = [f"http://127.0.0.1:{self.ports['cloud-api']}/fault"]
        return found + [f"{f.kind} {f.target}" for f in active_faults(None, self.runtime, hooks)]

    def settle(self) -> None:
        """Wait until every member is healthy again (a restarted container takes a moment)."""
        self.runtime.wait_healthy([s.service for s in self.runtime.status()], 240)

    def close(self) -> None:
        self.runtime.down()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=20, help="trials in all (split across runtimes)")
    parser.add_argument("--runtime", choices=("local", "compose", "both"), default="both")
    parser.add_argument("--seed", type=int, default=int(time.time()))
    args = parser.parse_args()
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="drill-soak-"))
    state = work / "state"
    env = {**os.environ, "DRILL_STATE_DIR": str(state)}
    os.environ["DRILL_STATE_DIR"] = str(state)
    runtimes = ["local", "compose"] if args.runtime == "both" else [args.runtime]
    counts: Counter[str] = Counter()
    left_total = 0
    trials = 0
    not_reached = 0
    beds: dict[str, Any] = {}
    started = time.monotonic()
    print(f"seed={args.seed} work={work}", flush=True)
    try:
        for runtime in runtimes:
            share = args.trials // len(runtimes) + (1 if runtimes.index(runtime) < args.trials % len(runtimes) else 0)
            bed = beds[runtime] = LocalBed(work) if runtime == "local" else ComposeBed(work)
            env_rt = {**env, **getattr(bed, "env", {})}
            families = list(LOCAL_FAULTS if runtime == "local" else COMPOSE_FAULTS)
            done = attempts = 0
            while done < share and attempts < 3 * share:
                attempts += 1
                family = families[done % len(families)]
                # Every family meets every signal within 3 rounds of families; the moment is random.
                sig = SIGNALS[(done + done // len(families)) % len(SIGNALS)]
                delay_s = rng.uniform(0.0, 4.5)
                run_dir = work / runtime / f"run-{attempts:03d}"
                run_dir.parent.mkdir(parents=True, exist_ok=True)
                scenario = bed.scenario(work / runtime / f"s-{attempts:03d}.yaml", family)
                outcome, problems = run_trial(scenario, run_dir, sig, delay_s, env_rt)
                if runtime == "compose":
                    try:
                        bed.settle()
                    except Exception as exc:  # a member that never came back is a fault left
                        problems.append(f"stack not healthy again: {exc}")
                problems += bed.left()
                problems += [f"still registered: {d}" for d in still_registered(env_rt) if d == str(run_dir.resolve())]
                if outcome == "not_reached" and not problems:
                    not_reached += 1
                    print(f"{runtime:7} {family:22} not reached (drill ended before any fault; clean)", flush=True)
                    continue
                trials += 1
                done += 1
                counts[f"{runtime} {sig.name}"] += 1
                left_total += 1 if problems else 0
                print(f"{runtime:7} {family:22} {sig.name:7} +{delay_s:.1f}s exit={outcome:4} "
                      f"{'LEFT: ' + '; '.join(problems) if problems else 'clean'}", flush=True)
    finally:
        for bed in beds.values():
            bed.close()
    print(json.dumps({"by_signal": dict(counts), "not_reached": not_reached,
                      "seconds": round(time.monotonic() - started)}), flush=True)
    print(f"trials={trials} left={left_total}", flush=True)


if __name__ == "__main__":
    main()
