"""The embedded ``local`` runtime: the supervisor of a stack of processes on 127.0.0.1.

``LocalRuntime(load_stack(path), log_dir)`` (the stack file: :mod:`harness.runtime.stackfile`)
starts Toxiproxy first, then the proxies, then the HTTP fault proxy (``mitmdump``, one reverse
listener per route, its log in ``log_dir/http-fault-proxy.log``), then the processes in
dependency order (``start_after``), each in its own process group with its output in
``log_dir/<name>.log``, and waits for every health URL. ``stop()`` terminates every group
(SIGTERM, then SIGKILL after ``stop_grace_s``) and checks the ports are free again. Nothing is
left behind: an ``atexit`` hook stops every runtime still running, and a state file in
``log_dir`` lets another ``LocalRuntime`` on the same ``log_dir`` (``drill stack status|down``)
see and stop the processes.

Every process's default working directory is the stack file's folder. The repository root is
put on PYTHONPATH so ``python -m targets.<program>`` works from anywhere.
Every process also gets ``DRILL_STACK_LOG_DIR`` (the log folder), where it may keep files of the
run (the third-party gateway launchers of targets/gateways/ keep their config and record there).
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx

from harness.errors import FaultError, StackError
from harness.httpfaults.client import HttpFaultClient, HttpFaultProxyError
from harness.httpfaults.proxy import HttpForward, HttpRoute, find_mitmdump, forward_client_env, mitmdump_argv
from harness.rundir import LOCAL_STACK_STATE_FILE
from harness.runtime.base import Fingerprint, JsonValue, RuntimeKind, Target
from harness.runtime.ports import port_in_use, refuse_busy_ports
from harness.runtime.prometheus import ScrapeTarget, discard_data, start_prometheus
from harness.runtime.stackfile import (
    HTTP_FAULT_PROXY,
    HttpFaultProxySpec,
    LocalStackSpec,
    ProcessSpec,
    ToxiproxySpec,
    split_listen,
    start_waves,
)
from harness.toxiproxy import ToxiproxyClient, ToxiproxyError

__all__ = ["LocalRuntime", "ProcessStatus"]

REPO_ROOT = Path(__file__).resolve().parents[2]
STATE_FILE = LOCAL_STACK_STATE_FILE
LOG_TAIL_LINES = 30
HTTP_FAULT_PROXY_READY_S = 20.0  # mitmdump imports a lot of Python before it listens


@dataclass
class ProcessStatus:
    name: str
    running: bool
    pid: int | None
    healthy: bool
    port: int | None
    labels: dict[str, str]

    def as_dict(self) -> dict[str, Any]:
        return {
            "running": self.running,
            "pid": self.pid,
            "healthy": self.healthy,
            "port": self.port,
            "labels": self.labels,
        }


@dataclass
class _Child:
    """A started process: its Popen (None when only known from the state file) and log."""

    name: str
    argv: list[str]
    pid: int
    popen: subprocess.Popen[bytes] | None
    log_path: Path
    log_file: IO[bytes] | None

    def alive(self) -> bool:
        if self.popen is not None:
            return self.popen.poll() is None
        return _pid_matches(self.pid, self.argv)


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="surrogateescape") for part in raw.rstrip(b"\0").split(b"\0")] if raw else []


def _cmdline_once_set(pid: int, wait_s: float = 1.0) -> list[str]:
    """The command line of a process that has just exec'd, once /proc shows it ([] if it never
    does within ``wait_s``, e.g. the process already exited)."""
    deadline = time.monotonic() + wait_s
    while True:
        shown = _cmdline(pid)
        if shown or time.monotonic() >= deadline:
            return shown
        time.sleep(0.002)


def _pid_matches(pid: int, argv: list[str]) -> bool:
    """The pid is alive and still runs ``argv`` (so a reused pid is never signalled)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return raw.rstrip(b"\0").split(b"\0") == [a.encode(errors="surrogateescape") for a in argv]


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


_LIVE: set[LocalRuntime] = set()


def _stop_all_at_exit() -> None:
    for runtime in list(_LIVE):
        try:
            runtime.stop()
        except Exception:  # noqa: BLE001 - at exit, stop every runtime even if one fails
            pass


atexit.register(_stop_all_at_exit)


class LocalRuntime:
    """Starts, watches and stops a :class:`LocalStackSpec`. Use as a context manager or call
    :meth:`start` / :meth:`stop`; every failure to start is a :class:`StackError` carrying the
    tail of the failing process's log."""

    kind: RuntimeKind = "local"

    def __init__(self, spec: LocalStackSpec, log_dir: Path, base_dir: Path | None = None) -> None:
        self.spec = spec
        self.log_dir = Path(log_dir)
        self.base_dir = Path(base_dir) if base_dir is not None else spec.base_dir
        self._children: dict[str, _Child] = {}
        self._toxiproxy: _Child | None = None
        self._created_proxies: list[str] = []
        self._started = False
        self._specs = {p.name: p for p in spec.processes}

    def __enter__(self) -> LocalRuntime:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def toxiproxy_url(self) -> str | None:
        return None if self.spec.toxiproxy is None else self.spec.toxiproxy.url

    # -- start ------------------------------------------------------------------------------

    def start(self) -> dict[str, str]:
        """Start everything and wait until healthy; returns endpoints (name -> base URL).

        Raises StackError, with nothing left running, when a port is busy, a process exits or a
        health URL does not answer in time."""
        if self._started:
            return self.endpoints()
        self._refuse_busy_ports()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._started = True
        _LIVE.add(self)
        try:
            if self.spec.toxiproxy is not None:
                self._start_toxiproxy(self.spec.toxiproxy)
            self._create_proxies()
            if self.spec.http_fault_proxy is not None:
                self._start_http_fault_proxy(self.spec.http_fault_proxy)
            for wave in start_waves(self.spec.processes):
                for process in wave:
                    self._spawn(process)
                self._write_state()
                self._wait_healthy([p.name for p in wave])
            if self.spec.prometheus is not None:  # issue 15; a child like the others: stopped with them
                self._children["prometheus"] = start_prometheus(
                    self.spec.prometheus, self._scrape_targets(), self.log_dir / "prometheus", self._popen)
                self._write_state()
        except BaseException:
            try:
                self.stop()
            except StackError:
                pass  # the start failure is the error to report; stop() did what it could
            raise
        return self.endpoints()

    @property
    def prometheus_url(self) -> str | None:
        return None if self.spec.prometheus is None else self.spec.prometheus.url

    @property
    def http_fault_proxy_url(self) -> str | None:
        """The HTTP fault proxy's control API (its first route's listener), from the stack file."""
        return None if self.spec.http_fault_proxy is None else self.spec.http_fault_proxy.url

    def _scrape_targets(self) -> list[ScrapeTarget]:
        assert self.spec.prometheus is not None
        wanted = self.spec.prometheus.scrape
        return [ScrapeTarget(p.name, p.port, {k: v for k, v in p.labels.items() if k in ("tier", "region")})
                for p in self.spec.processes
                if p.port is not None and (wanted is None or p.name in wanted)]

    def endpoints(self) -> dict[str, str]:
        endpoints: dict[str, str] = {}
        if self.toxiproxy_url is not None:
            endpoints["toxiproxy"] = self.toxiproxy_url
        if self.spec.http_fault_proxy is not None:
            for route in self.spec.http_fault_proxy.routes:
                endpoints[f"http route {route.name}"] = f"http://{route.listen}"
            forward = self.spec.http_fault_proxy.forward
            if forward is not None:
                endpoints["http forward proxy"] = f"http://{forward.listen}"
        for process in self.spec.processes:
            if process.port is not None:
                endpoints[process.name] = f"http://127.0.0.1:{process.port}"
        return endpoints

    def _refuse_busy_ports(self) -> None:
        refuse_busy_ports(self.spec.declared_ports(), f"stack {self.spec.name!r}", self.spec.source)

    def _toxiproxy_binary(self, spec: ToxiproxySpec) -> str:
        if spec.binary:
            candidate = Path(spec.binary)
            return str(candidate if candidate.is_absolute() else self.base_dir / candidate)
        beside_python = Path(sys.executable).parent / "toxiproxy-server"
        if beside_python.exists():
            return str(beside_python)
        found = shutil.which("toxiproxy-server")
        if found is None:
            raise StackError(
                "toxiproxy-server not found next to the Python interpreter or on PATH: "
                "run scripts/bootstrap, or set toxiproxy.binary in the stack file"
            )
        return found

    def _start_toxiproxy(self, spec: ToxiproxySpec) -> None:
        if not spec.start:
            return
        host, port = split_listen(spec.listen)
        argv = [self._toxiproxy_binary(spec), "-host", host, "-port", str(port)]
        self._toxiproxy = self._popen("toxiproxy", argv, dict(os.environ), self.base_dir)
        self._write_state()
        deadline = time.monotonic() + 15.0
        while True:
            if not self._toxiproxy.alive():
                raise StackError(
                    f"toxiproxy-server exited at start; last lines of {self._toxiproxy.log_path}:\n"
                    f"{_tail(self._toxiproxy.log_path)}"
                )
            if _http_ok(spec.url + "/version"):
                return
            if time.monotonic() > deadline:
                raise StackError(f"toxiproxy-server did not answer on {spec.url} within 15 s")
            time.sleep(0.05)

    def _mitmdump_binary(self, spec: HttpFaultProxySpec) -> str:
        if spec.binary:
            candidate = Path(spec.binary)
            return str(candidate if candidate.is_absolute() else self.base_dir / candidate)
        try:
            return find_mitmdump()
        except FaultError as exc:
            raise StackError(f"stack {self.spec.name!r} has an http_fault_proxy: {exc}") from exc

    def _forward(self) -> HttpForward | None:
        """The forward listener of the HTTP fault proxy, with where its CA lives: the stack file's
        ``ca_dir`` (relative to it), else ``http-fault-proxy-ca/`` in this stack's log folder (a
        new CA per run, trusted only by the processes the runtime gives it to)."""
        spec = self.spec.http_fault_proxy
        if spec is None or spec.forward is None:
            return None
        forward = spec.forward
        if forward.ca_dir is not None:
            confdir = Path(forward.ca_dir) if Path(forward.ca_dir).is_absolute() else self.base_dir / forward.ca_dir
        else:
            confdir = self.log_dir / f"{HTTP_FAULT_PROXY}-ca"
        hosts = {key: (entry.route, entry.upstream.rstrip("/")) for key, entry in forward.hosts.items()}
        return HttpForward(listen_port=forward.port, hosts=hosts, confdir=confdir.resolve())

    def _discard_run_ca_key(self) -> None:
        """A run's own CA (no ``ca_dir``) signs nothing once its proxy is gone: its private key
        (in ``mitmproxy-ca.pem`` and ``mitmproxy-ca.p12``) is removed, so no run folder or evidence
        pack carries it; the certificate stays with the run."""
        forward = self._forward()
        spec = self.spec.http_fault_proxy
        if forward is None or spec is None or spec.forward is None or spec.forward.ca_dir is not None:
            return
        for name in ("mitmproxy-ca.pem", "mitmproxy-ca.p12"):
            (forward.confdir / name).unlink(missing_ok=True)

    def _forward_clients(self) -> list[str]:
        spec = self.spec.http_fault_proxy
        return [] if spec is None or spec.forward is None else spec.forward.clients

    def _start_http_fault_proxy(self, spec: HttpFaultProxySpec) -> None:
        """mitmdump in reverse mode, one listener per route (and the forward listener), as a child
        like the others; ready when its control API answers (and its CA is written, for a
        forward listener)."""
        routes = [HttpRoute(r.name, r.port, r.upstream) for r in spec.routes]
        forward = self._forward()
        if forward is not None:
            forward.confdir.mkdir(parents=True, exist_ok=True)
        child = self._popen(HTTP_FAULT_PROXY, mitmdump_argv(self._mitmdump_binary(spec), routes, forward),
                            dict(os.environ), self.base_dir)
        self._children[HTTP_FAULT_PROXY] = child
        self._write_state()
        deadline = time.monotonic() + HTTP_FAULT_PROXY_READY_S
        with HttpFaultClient(spec.url, timeout_s=1.0) as client:
            while True:
                if not child.alive():
                    raise StackError(
                        f"the HTTP fault proxy (mitmdump) exited at start; last lines of {child.log_path}:\n"
                        f"{_tail(child.log_path)}"
                    )
                try:
                    served = client.health()
                except (HttpFaultProxyError, ValueError):  # not listening yet / not JSON yet
                    served = {}
                if served and (forward is None or forward.ca_cert.is_file()):
                    return
                if time.monotonic() > deadline:
                    raise StackError(
                        f"the HTTP fault proxy did not answer on {spec.url} within {HTTP_FAULT_PROXY_READY_S:g} s; "
                        f"last lines of {child.log_path}:\n{_tail(child.log_path)}"
                    )
                time.sleep(0.1)

    def _http_fault_proxy_healthy(self) -> bool:
        spec = self.spec.http_fault_proxy
        if spec is None:
            return False
        try:
            with HttpFaultClient(spec.url, timeout_s=1.0) as client:
                return bool(client.health())
        except (HttpFaultProxyError, ValueError):
            return False

    def _create_proxies(self) -> None:
        if not self.spec.proxies or self.toxiproxy_url is None:
            return
        with ToxiproxyClient(self.toxiproxy_url) as client:
            for proxy in self.spec.proxies:
                try:
                    client.create_proxy(proxy.name, proxy.listen, proxy.upstream)
                except ToxiproxyError as exc:
                    raise StackError(f"stack {self.spec.name!r}: could not create proxy {proxy.name}: {exc}") from exc
                self._created_proxies.append(proxy.name)

    def _process_env(self, process: ProcessSpec) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
        env["PYTHONUNBUFFERED"] = "1"
        # Where a process may keep files of the run (the gateway launchers write their generated
        # config and the gateway's own record there: targets/gateways/, docs/gateways.md).
        env["DRILL_STACK_LOG_DIR"] = str(self.log_dir.resolve())
        forward = self._forward()
        if forward is not None and process.name in self._forward_clients():
            # Its HTTPS goes to the forward proxy and trusts mitmproxy's CA, and only that.
            env.update(forward_client_env(forward))
        env.update(process.env)
        return env

    def _argv(self, process: ProcessSpec) -> list[str]:
        argv = list(process.argv)
        if argv[0] == "python":
            argv[0] = sys.executable
        elif "/" in argv[0] and not Path(argv[0]).is_absolute():
            # Absolute, symlinks kept: a virtualenv's python is a symlink to the system one, and
            # resolving it would start that one, outside the virtualenv.
            argv[0] = os.path.abspath(self.base_dir / argv[0])
        return argv

    def _cwd(self, process: ProcessSpec) -> Path:
        if process.cwd is None:
            return self.base_dir
        cwd = Path(process.cwd)
        return cwd if cwd.is_absolute() else self.base_dir / cwd

    def _popen(self, name: str, argv: list[str], env: dict[str, str], cwd: Path) -> _Child:
        log_path = self.log_dir / f"{name}.log"
        log_file = log_path.open("ab")
        log_file.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')} starting: {' '.join(argv)}\n".encode())
        log_file.flush()
        try:
            popen = subprocess.Popen(
                argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: signals reach its children too
            )
        except OSError as exc:
            log_file.close()
            raise StackError(f"could not start {name} ({argv[0]}): {exc}") from exc
        # The command line /proc shows is what a later command matches the pid against (the state
        # file): for a script (mitmdump) it starts with the interpreter of its shebang, not argv[0].
        # Popen returns once the exec has closed its pipe, but the kernel sets the new command line
        # a moment later: on a busy machine /proc showed it empty, argv was recorded instead, and a
        # later command took the live mitmdump for gone. So wait (bounded) until /proc shows it.
        shown = _cmdline_once_set(popen.pid) or argv
        return _Child(name=name, argv=shown, pid=popen.pid, popen=popen, log_path=log_path, log_file=log_file)

    def _spawn(self, process: ProcessSpec) -> None:
        self._children[process.name] = self._popen(
            process.name, self._argv(process), self._process_env(process), self._cwd(process)
        )

    def _is_healthy(self, name: str) -> bool:
        process = self._specs[name]
        if process.health is not None:
            return _http_ok(process.health)
        if process.port is not None:
            return port_in_use(process.port)
        return True

    def _wait_healthy(self, names: list[str]) -> None:
        pending = {name: time.monotonic() + self._specs[name].health_timeout_s for name in names}
        while pending:
            for name, deadline in list(pending.items()):
                child = self._children[name]
                if not child.alive():
                    code = child.popen.returncode if child.popen is not None else "?"
                    raise StackError(
                        f"process {name} exited with code {code} before it was healthy; last lines of "
                        f"{child.log_path}:\n{_tail(child.log_path)}"
                    )
                if self._is_healthy(name):
                    del pending[name]
                elif time.monotonic() > deadline:
                    target = self._specs[name].health or f"port {self._specs[name].port}"
                    raise StackError(
                        f"process {name} was not healthy ({target}) within "
                        f"{self._specs[name].health_timeout_s:g} s; last lines of {child.log_path}:\n"
                        f"{_tail(child.log_path)}"
                    )
            if pending:
                time.sleep(0.05)

    # -- state file: lets `drill stack status|down` see a stack another command started --------

    def _state_path(self) -> Path:
        return self.log_dir / STATE_FILE

    def _write_state(self) -> None:
        children = list(self._children.values()) + ([self._toxiproxy] if self._toxiproxy else [])
        state = {
            "stack": self.spec.name,
            "supervisor_pid": os.getpid(),
            "processes": {c.name: {"pid": c.pid, "argv": c.argv} for c in children},
        }
        tmp = self._state_path().with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=1))
        tmp.replace(self._state_path())

    def _adopt_from_state(self) -> None:
        """Know the processes a previous LocalRuntime on this log_dir started (and left running)."""
        try:
            state = json.loads(self._state_path().read_text())
        except (OSError, ValueError):
            return
        for name, entry in state.get("processes", {}).items():
            child = _Child(
                name=name, argv=list(entry["argv"]), pid=int(entry["pid"]), popen=None,
                log_path=self.log_dir / f"{name}.log", log_file=None,
            )
            if not child.alive():
                continue
            if name == "toxiproxy":
                self._toxiproxy = child
            else:
                self._children[name] = child

    # -- stop -------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop every process group (SIGTERM, SIGKILL after ``stop_grace_s``), then check every
        declared port is free. Idempotent; also stops a stack an earlier command left running on
        the same log_dir. Raises StackError naming ports still in use."""
        if not self._started:
            self._adopt_from_state()
        self._terminate(list(self._children.values()))
        self._discard_run_ca_key()
        if self.spec.prometheus is not None:  # issue 15
            discard_data(self.log_dir / "prometheus")
        if self._toxiproxy is not None:
            self._terminate([self._toxiproxy])
        elif self._created_proxies and self.toxiproxy_url is not None:
            self._delete_proxies()
        self._children.clear()
        self._toxiproxy = None
        self._created_proxies = []
        self._started = False
        _LIVE.discard(self)
        try:
            self._state_path().unlink()
        except OSError:
            pass
        self._verify_ports_free()

    def _delete_proxies(self) -> None:
        try:
            with ToxiproxyClient(self.toxiproxy_url or "") as client:
                for name in self._created_proxies:
                    client.delete_proxy(name)
        except ToxiproxyError:
            pass  # the ports check below reports a proxy still listening

    def _terminate(self, children: list[_Child]) -> None:
        for child in children:
            if child.alive():
                _signal_group(child.pid, signal.SIGCONT)  # a paused group cannot act on SIGTERM
                _signal_group(child.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.spec.stop_grace_s
        while any(c.alive() for c in children) and time.monotonic() < deadline:
            time.sleep(0.05)
        for child in children:
            # Also reaches children the leader left behind in its group.
            _signal_group(child.pid, signal.SIGKILL)
            if child.popen is not None:
                try:
                    child.popen.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    pass
            else:
                _wait_gone(child, 10.0)
            if child.log_file is not None:
                child.log_file.close()
                child.log_file = None

    def _verify_ports_free(self, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            busy = [(owner, port) for owner, port in self.spec.declared_ports() if port_in_use(port)]
            if not busy:
                return
            if time.monotonic() > deadline:
                listing = ", ".join(f"{port} ({owner})" for owner, port in busy)
                raise StackError(
                    f"stack {self.spec.name!r} stopped but ports are still in use: {listing}. "
                    "Something outside this stack holds them: find it with `ss -ltnp`."
                )
            time.sleep(0.05)

    # -- inspect and act --------------------------------------------------------------------

    def status(self) -> dict[str, dict[str, Any]]:
        """Per process (and ``toxiproxy``): running, pid, healthy, port, labels."""
        if not self._started:
            self._adopt_from_state()
        report: dict[str, dict[str, Any]] = {}
        if self.spec.toxiproxy is not None:
            running = self._toxiproxy is not None and self._toxiproxy.alive()
            port = split_listen(self.spec.toxiproxy.listen)[1]
            report["toxiproxy"] = ProcessStatus(
                name="toxiproxy",
                running=running,
                pid=self._toxiproxy.pid if running and self._toxiproxy else None,
                healthy=_http_ok(self.spec.toxiproxy.url + "/version"),
                port=port,
                labels={},
            ).as_dict()
        if self.spec.http_fault_proxy is not None:
            child = self._children.get(HTTP_FAULT_PROXY)
            running = child is not None and child.alive()
            report[HTTP_FAULT_PROXY] = ProcessStatus(
                name=HTTP_FAULT_PROXY,
                running=running,
                pid=child.pid if running and child else None,
                healthy=running and self._http_fault_proxy_healthy(),
                port=self.spec.http_fault_proxy.port,
                labels={},
            ).as_dict()
        for process in self.spec.processes:
            child = self._children.get(process.name)
            running = child is not None and child.alive()
            report[process.name] = ProcessStatus(
                name=process.name,
                running=running,
                pid=child.pid if running and child else None,
                healthy=running and self._is_healthy(process.name),
                port=process.port,
                labels=dict(process.labels),
            ).as_dict()
        return report

    def unhealthy(self) -> list[str]:
        """Names of processes (and toxiproxy) that are not running and healthy."""
        return [name for name, entry in self.status().items() if not (entry["running"] and entry["healthy"])]

    def not_running(self) -> list[str]:
        """Names of processes (and toxiproxy, the HTTP fault proxy) that are not running: whether
        each child is alive, as :meth:`status` says, without its health calls. The drill's drive
        loop asks this once a second, on the thread that applies schedule steps and reverts faults;
        an HTTP call per member took ~200 ms there on a quiet machine and seconds on a busy one
        (bench/drive_loop_checks.py)."""
        if not self._started:
            self._adopt_from_state()
        down: list[str] = []
        if self.spec.toxiproxy is not None and not (self._toxiproxy is not None and self._toxiproxy.alive()):
            down.append("toxiproxy")
        names = [HTTP_FAULT_PROXY] if self.spec.http_fault_proxy is not None else []
        for name in names + [process.name for process in self.spec.processes]:
            child = self._children.get(name)
            if child is None or not child.alive():
                down.append(name)
        return down

    def process_groups(self) -> dict[str, int]:
        """name -> process group id of everything running (journaled for crash recovery)."""
        groups = {name: child.pid for name, child in self._children.items() if child.alive()}
        if self._toxiproxy is not None and self._toxiproxy.alive():
            groups["toxiproxy"] = self._toxiproxy.pid
        return groups

    def fingerprint(self) -> Fingerprint:
        info: dict[str, JsonValue] = {"runtime": "local", "stack": self.spec.name, "python": sys.version.split()[0]}
        if self.spec.source is not None:
            info["stack_file"] = str(self.spec.source)
        info["processes"] = {p.name: " ".join(p.argv) for p in self.spec.processes}
        return Fingerprint(info)

    def find(self, service: str | None = None, labels: Mapping[str, str] | None = None) -> list[Target]:
        """Processes whose name (or ``service`` label) is ``service`` and whose labels include
        every given label, in stack-file order. ``service=None`` selects by labels alone."""
        wanted = labels or {}
        if not self._started:
            self._adopt_from_state()
        found: list[Target] = []
        for process in self.spec.processes:
            if service is not None and service not in (process.name, process.labels.get("service")):
                continue
            if all(process.labels.get(key) == value for key, value in wanted.items()):
                found.append(self._target(process))
        return found

    def members(self) -> list[Target]:
        """Toxiproxy (when the stack starts one), the HTTP fault proxy (when it has one) and every
        process."""
        found = self.find()
        if self.spec.http_fault_proxy is not None:
            proxy = self._children.get(HTTP_FAULT_PROXY)
            proxy = proxy if proxy is not None and proxy.alive() else None
            state = "stopped" if proxy is None else _process_state(proxy.pid)
            found.insert(0, Target(
                kind="process", name=HTTP_FAULT_PROXY, service=HTTP_FAULT_PROXY, scope=self.spec.name,
                uid=str(proxy.pid) if proxy else "", state=state,
                healthy=state == "running" and self._http_fault_proxy_healthy(),
                address=self.spec.http_fault_proxy.url, pid=proxy.pid if proxy else None,
            ))
        if self.spec.toxiproxy is not None and self.spec.toxiproxy.start:
            child = self._toxiproxy if self._toxiproxy is not None and self._toxiproxy.alive() else None
            state = "stopped" if child is None else _process_state(child.pid)
            found.insert(0, Target(
                kind="process", name="toxiproxy", service="toxiproxy", scope=self.spec.name,
                uid=str(child.pid) if child else "", state=state,
                healthy=child is not None and _http_ok(self.spec.toxiproxy.url + "/version"),
                address=self.spec.toxiproxy.url, pid=child.pid if child else None,
            ))
        return found

    def _target(self, process: ProcessSpec) -> Target:
        child = self._children.get(process.name)
        alive = child is not None and child.alive()
        state = _process_state(child.pid) if child is not None and alive else "stopped"
        return Target(
            kind="process", name=process.name, service=process.labels.get("service", process.name),
            scope=self.spec.name, uid=str(child.pid) if child and alive else "", state=state,
            healthy=state == "running" and self._is_healthy(process.name), labels=dict(process.labels),
            address=f"http://127.0.0.1:{process.port}" if process.port is not None else None,
            pid=child.pid if child and alive else None,
        )

    def down(self) -> None:
        """``drill stack down``: the same as :meth:`stop` (a local stack is nobody else's)."""
        self.stop()

    def _child(self, name: str) -> _Child:
        if name not in self._specs:
            known = ", ".join(self._specs) or "none"
            raise StackError(f"stack {self.spec.name!r} has no process {name!r} (known: {known})")
        child = self._children.get(name)
        if child is None:
            raise StackError(f"process {name} is not started: start the stack first")
        return child

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to the process group of ``name``. For SIGKILL/SIGTERM, wait until it is
        gone (SIGKILL after ``stop_grace_s``); other signals (SIGSTOP, SIGCONT) return at once."""
        child = self._child(name)
        _signal_group(child.pid, sig)
        if sig in (signal.SIGKILL, signal.SIGTERM):
            deadline = time.monotonic() + self.spec.stop_grace_s
            while child.alive() and time.monotonic() < deadline:
                time.sleep(0.02)
            self._terminate([child])

    def restart(self, name: str) -> None:
        """Stop ``name`` if it still runs, start it again and wait until it is healthy."""
        child = self._child(name)
        self._terminate([child])  # stops it if it runs; reaps it and closes its log either way
        process = self._specs[name]
        if process.port is not None:
            deadline = time.monotonic() + 10.0
            while port_in_use(process.port) and time.monotonic() < deadline:
                time.sleep(0.05)
        self._spawn(process)
        self._write_state()
        self._wait_healthy([name])


def _process_state(pid: int) -> str:
    """``running``, or ``paused`` when the process is stopped by SIGSTOP (state T in /proc)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "stopped"
    # The command name is in parentheses and may hold spaces: the state follows the last ')'.
    letter = stat.rsplit(")", 1)[1].split()[0]
    return "paused" if letter == "T" else "exited" if letter in ("Z", "X") else "running"


def _wait_gone(child: _Child, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while child.alive() and time.monotonic() < deadline:
        time.sleep(0.05)


# One client for every health check: ``httpx.get`` builds a client, and with it a TLS context
# that loads the CA bundle (~20 ms of CPU), per call; status is polled every second for every
# process of the stack. No keep-alive, so each check still opens its own connection (a restarted
# or paused process is seen as it is, never through a pooled socket).
_HEALTH_HTTP = httpx.Client(timeout=1.0, trust_env=False, limits=httpx.Limits(max_keepalive_connections=0))


def _http_ok(url: str) -> bool:
    try:
        response = _HEALTH_HTTP.get(url)
    except httpx.HTTPError:
        return False
    return 200 <= response.status_code < 300
