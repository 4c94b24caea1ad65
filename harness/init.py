"""``drill init``: a first, working scenario for the user's own service.

From a few answers — the service's URL and request, the dependency to break and its address, the
fault, the objectives — it writes two files and prints the plan:

    NAME.yaml         the scenario (``drill validate`` passes on it)
    NAME.stack.yaml   a local stack holding only Toxiproxy and one proxy in front of the
                      dependency, started and stopped by ``drill run``

    proxy plan:  provider  127.0.0.1:19000 -> 127.0.0.1:9000
    the one change to your service's config:
                 call provider at 127.0.0.1:19000 instead of 127.0.0.1:9000

With ``--provider NAME=https://api.provider.example`` instead of ``--dependency``, the stack is
drill's HTTP fault proxy as an HTTPS forward proxy (docs/http-faults.md, "Forward proxy with TLS"):
the service keeps calling the provider's real URL, drill maps that name to a local stand-in
(``--upstream http(s)://127.0.0.1:PORT``), and the fault is a 429 storm on the provider's route.
Nothing in the service's config changes; its process gets ``HTTPS_PROXY`` and ``SSL_CERT_FILE``
(mitmproxy's CA, made now in ``NAME.ca/`` beside the stack file, kept across runs)::

    forward plan:  api.provider.example:443 -> route provider -> http://127.0.0.1:9000
    set on your service's process (its config stays as it is):
                 HTTPS_PROXY=http://127.0.0.1:19100
                 SSL_CERT_FILE=/abs/NAME.ca/mitmproxy-ca-cert.pem

Nothing here talks to the network: the plan is pure (:func:`plan_scenario`), the rendering is
text (:func:`scenario_text`, :func:`stack_text`) and :func:`write_scenario` only writes files,
then loads the scenario back with the real loader so a bad answer fails here, with the
loader's own message, not at ``drill run``.
"""

from __future__ import annotations

import json
import re
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import click
import yaml
from rich.console import Console
from rich.markup import escape

from harness.errors import ScenarioError

__all__ = [
    "FAULT_CHOICES",
    "Dependency",
    "ForwardPlan",
    "InitPlan",
    "Provider",
    "forward_stack_text",
    "parse_provider",
    "plan_forward",
    "parse_dependency",
    "plan_scenario",
    "scenario_text",
    "stack_text",
    "init_command",
    "write_forward",
    "write_scenario",
]

# The network faults a proxy in front of one dependency can inject, and the parameter each needs.
FAULT_CHOICES: dict[str, str | None] = {
    "latency": "latency_ms",
    "down": None,
    "reset": None,
    "blackhole": None,
    "bandwidth": "rate_kbps",
    "jitter": "jitter_ms",
}
DEFAULT_MAGNITUDE = {"latency_ms": 2000, "rate_kbps": 8, "jitter_ms": 1000}
DEFAULT_TOXIPROXY_PORT = 8575  # not the reference stacks' 8474 / 28474: all three can run at once
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


@dataclass(frozen=True)
class Dependency:
    """The dependency to break: its name (the proxy's name) and the address the service calls."""

    name: str
    host: str
    port: int

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class InitPlan:
    """Every answer ``drill init`` needs, checked; rendering and writing read only this."""

    name: str
    host: str  # the service's base URL, scheme://host:port
    method: str
    path: str
    body: str | None
    dependency: Dependency
    listen_port: int
    toxiproxy_port: int
    fault_type: str
    magnitude: int | None
    baseline_s: float
    fault_s: float
    recovery_s: float
    users: int
    rto_s: float | None
    max_error_rate: float | None
    p95_ms: str | None

    @property
    def listen(self) -> str:
        return f"127.0.0.1:{self.listen_port}"

    def proxy_plan(self) -> str:
        return f"{self.dependency.name}  {self.listen} -> {self.dependency.address}"

    def the_change(self) -> str:
        return f"call {self.dependency.name} at {self.listen} instead of {self.dependency.address}"


def parse_dependency(value: str) -> Dependency:
    """``NAME=HOST:PORT`` (e.g. ``provider=127.0.0.1:9000``); ScenarioError naming the flag otherwise."""
    name, sep, address = value.partition("=")
    host, colon, port = address.rpartition(":")
    if not sep or not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ScenarioError(f"--dependency {value}: write it as NAME=HOST:PORT, e.g. provider=127.0.0.1:9000")
    if not _NAME.match(name):
        raise ScenarioError(f"--dependency {value}: the name {name} must be lowercase letters, digits, '-' "
                            "or '_' (it names the Toxiproxy proxy)")
    return Dependency(name, host, int(port))


def _free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def choose_listen_port(dependency: Dependency, taken: set[int]) -> int:
    """The dependency's port + 10000 when that is a valid free port (easy to recognise in a
    config diff), else one the OS hands out."""
    return preferred_port(dependency.port + 10000, taken)


def preferred_port(candidate: int, taken: set[int]) -> int:
    """``candidate`` when it is a valid free port not in ``taken``, else one the OS hands out."""
    if candidate < 65536 and candidate not in taken and _free(candidate):
        return candidate
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def plan_scenario(
    *,
    url: str,
    dependency: str,
    name: str | None = None,
    method: str | None = None,
    path: str | None = None,
    body: str | None = None,
    fault_type: str = "latency",
    magnitude: int | None = None,
    listen_port: int | None = None,
    toxiproxy_port: int = DEFAULT_TOXIPROXY_PORT,
    baseline_s: float = 20.0,
    fault_s: float = 60.0,
    recovery_s: float = 30.0,
    users: int = 5,
    rto_s: float | None = 30.0,
    max_error_rate: float | None = 0.1,
    p95_ms: str | None = None,
) -> InitPlan:
    """Check the answers and turn them into a plan; ScenarioError (exit 2) names the flag at fault."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ScenarioError(f"--url {url}: expected the service's URL, e.g. http://127.0.0.1:8000/v1/chat/completions")
    host = f"{parts.scheme}://{parts.netloc}"
    request_path = path or parts.path or "/"
    if parts.query and not path:
        request_path += f"?{parts.query}"
    dep = parse_dependency(dependency)
    if fault_type not in FAULT_CHOICES:
        raise ScenarioError(f"--fault {fault_type}: choose one of {', '.join(FAULT_CHOICES)}")
    parameter = FAULT_CHOICES[fault_type]
    if parameter is not None and magnitude is None:
        magnitude = DEFAULT_MAGNITUDE[parameter]
    if listen_port is None:
        listen_port = choose_listen_port(dep, {toxiproxy_port})
    if listen_port == toxiproxy_port:
        raise ScenarioError(f"--listen-port {listen_port} is also the Toxiproxy port; choose another")
    scenario_name = name or f"{dep.name}-{fault_type}"
    if not _NAME.match(scenario_name):
        raise ScenarioError(f"--name {scenario_name}: lowercase letters, digits, '-' or '_'")
    if body is not None and method is None:
        method = "POST"
    return InitPlan(
        name=scenario_name, host=host, method=(method or "GET").upper(), path=request_path, body=body,
        dependency=dep, listen_port=listen_port, toxiproxy_port=toxiproxy_port, fault_type=fault_type,
        magnitude=magnitude if parameter is not None else None, baseline_s=baseline_s, fault_s=fault_s,
        recovery_s=recovery_s, users=users, rto_s=rto_s, max_error_rate=max_error_rate, p95_ms=p95_ms,
    )


def _flow(value: object) -> str:
    """One YAML flow value (``{a: 1}``, ``http://x``), as PyYAML writes it."""
    return yaml.safe_dump(value, default_flow_style=True, width=10_000, sort_keys=False).strip().removesuffix("\n...")


def _seconds(value: float) -> str:
    return f"{value:g}s"


def scenario_text(plan: InitPlan, stack_file: str, scenario_file: str = "THIS_FILE") -> str:
    """The scenario YAML, commented for the person who will edit it."""
    request: dict[str, object] = {"method": plan.method, "path": plan.path}
    if plan.body is not None:
        try:
            request["json"] = json.loads(plan.body)
        except ValueError:
            request["body"] = plan.body
    fault: dict[str, object] = {"name": f"{plan.dependency.name}-{plan.fault_type}", "type": plan.fault_type,
                                "target": {"proxy": plan.dependency.name}}
    parameter = FAULT_CHOICES[plan.fault_type]
    if parameter is not None:
        fault[parameter] = plan.magnitude
    fault["duration"] = _seconds(plan.fault_s)
    phases = {"baseline": _seconds(plan.baseline_s), "fault": _seconds(plan.fault_s),
              "recovery": _seconds(plan.recovery_s)}
    objectives: dict[str, object] = {}
    if plan.rto_s is not None:
        objectives["rto_s"] = plan.rto_s
    if plan.max_error_rate is not None:
        objectives["max_error_rate"] = plan.max_error_rate
    if plan.p95_ms is not None:
        objectives["p95_ms"] = plan.p95_ms
    lines = [
        f"# Written by `drill init`: {plan.fault_type} on {plan.dependency.name}, the dependency your service",
        f"# calls at {plan.dependency.address}. Before running it, point the service at the proxy:",
        f"#   {plan.the_change()}",
        f"# {stack_file} starts Toxiproxy (127.0.0.1:{plan.toxiproxy_port}) and that proxy for the drill.",
        f"# Check it: drill validate {scenario_file}; run it: drill run {scenario_file}",
        "apiVersion: drill/v1",
        "kind: Scenario",
        f"name: {plan.name}",
        f"description: {_flow(f'{plan.dependency.name} misbehaves ({plan.fault_type}); the service must cope.')}",
        f"stack: {_flow({'runtime': 'local', 'file': stack_file})}",
        "load:",
        f"  host: {_flow(plan.host)}",
        f"  users: {plan.users}",
        f"  request: {_flow(request)}",
        "  timeout_s: 5",
        "  probe_rate_hz: 20",
        f"phases: {_flow(phases)}",
        "faults:",
        f"  - {_flow(fault)}",
    ]
    if objectives:
        lines.append(f"objectives: {_flow(objectives)}")
    return "\n".join(lines) + "\n"


def stack_text(plan: InitPlan, stack_file: str = "THIS_FILE") -> str:
    """The local stack: Toxiproxy and the one proxy, nothing else (your service runs as it does)."""
    proxy = {"name": plan.dependency.name, "listen": plan.listen, "upstream": plan.dependency.address}
    return "\n".join([
        "# Written by `drill init`: Toxiproxy and one proxy in front of the dependency to break.",
        f"# `drill run` starts and stops it; `drill stack up --file {stack_file}` runs it by hand.",
        "apiVersion: drill/v1",
        "kind: Stack",
        f"name: {plan.name}-proxy",
        f"toxiproxy: {_flow({'listen': f'127.0.0.1:{plan.toxiproxy_port}'})}",
        "proxies:",
        f"  - {_flow(proxy)}",
    ]) + "\n"


def write_scenario(plan: InitPlan, out: Path, *, force: bool = False) -> tuple[Path, Path]:
    """Write ``out`` (the scenario) and ``out``'s ``.stack.yaml`` sibling, then load the scenario
    back with the real loader. Refuses to overwrite unless ``force`` (ScenarioError, nothing written)."""
    out = Path(out)
    stack = _stack_path(out)
    _write_checked(out, stack, stack_text(plan, stack.name), scenario_text(plan, stack.name, out.name), force)
    return out, stack


def _stack_path(out: Path) -> Path:
    return out.with_name(f"{out.name.removesuffix('.yaml').removesuffix('.yml')}.stack.yaml")


def _write_checked(out: Path, stack: Path, stack_yaml: str, scenario_yaml: str, force: bool) -> None:
    """Write the scenario and its stack, then load both back with the real loaders. Refuses to
    overwrite unless ``force``; an answer the model refuses (e.g. a URL beyond loopback) leaves
    nothing half-written (ScenarioError)."""
    from harness.runtime.stackfile import load_stack
    from harness.scenario import load_scenario

    existing = [str(p) for p in (out, stack) if p.exists()]
    if existing and not force:
        raise ScenarioError(f"{', '.join(existing)} already exist(s); choose another --out or pass --force")
    out.parent.mkdir(parents=True, exist_ok=True)
    stack.write_text(stack_yaml, encoding="utf-8")
    out.write_text(scenario_yaml, encoding="utf-8")
    try:
        load_stack(stack)
        load_scenario(out)
    except ScenarioError:
        out.unlink(missing_ok=True)
        stack.unlink(missing_ok=True)
        raise


# --- the forward path: an unmodified service that calls a provider's https:// URL ----------------

DEFAULT_FORWARD_PORT = 19100
STORM = {"status": 429, "retry_after_s": 5}  # the provider's rate limit, as providers answer it


@dataclass(frozen=True)
class Provider:
    """A provider as the service calls it: the route name faults use, its URL, and the ``host:port``
    the forward proxy sees in the service's CONNECT."""

    name: str
    url: str
    host: str
    port: int

    @property
    def destination(self) -> str:
        return f"{self.host}:{self.port}"


def parse_provider(value: str) -> Provider:
    """``NAME=https://HOST[:PORT][/path]``; ScenarioError naming the flag otherwise."""
    name, sep, url = value.partition("=")
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if not sep or parts.scheme not in ("https", "http") or not parts.hostname or port == -1:
        raise ScenarioError(f"--provider {value}: write it as NAME=https://HOST (the provider's URL your service "
                            "calls), e.g. openai=https://api.openai.com")
    if not _NAME.match(name):
        raise ScenarioError(f"--provider {value}: the name {name} must be lowercase letters, digits, '-' or '_' "
                            "(it names the route faults target)")
    host = parts.hostname.lower()
    if host in ("127.0.0.1", "localhost"):
        raise ScenarioError(f"--provider {value}: that is a local address; the forward proxy stands in front of a "
                            "provider's public name. For a local dependency use --dependency NAME=HOST:PORT")
    return Provider(name, url, host, port or (443 if parts.scheme == "https" else 80))


def _local_upstream(value: str) -> str:
    parts = urlsplit(value)
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme not in ("http", "https") or parts.hostname not in ("127.0.0.1", "localhost") or port is None \
            or parts.path not in ("", "/"):
        raise ScenarioError(f"--upstream {value}: the provider's local stand-in, an http(s)://127.0.0.1:PORT URL "
                            "(drill never connects to the provider itself)")
    return f"{parts.scheme}://127.0.0.1:{port}"


@dataclass(frozen=True)
class ForwardPlan:
    """Every answer of ``drill init --provider``, checked."""

    name: str
    host: str  # the service's base URL
    method: str
    path: str
    body: str | None
    provider: Provider
    upstream: str
    listen_port: int
    baseline_s: float
    fault_s: float
    recovery_s: float
    users: int
    rto_s: float | None
    max_error_rate: float | None
    p95_ms: str | None

    @property
    def proxy_url(self) -> str:
        return f"http://127.0.0.1:{self.listen_port}"

    def forward_plan(self) -> str:
        return f"{self.provider.destination} -> route {self.provider.name} -> {self.upstream}"


def plan_forward(
    *, url: str, provider: str, upstream: str | None, name: str | None = None, method: str | None = None,
    path: str | None = None, body: str | None = None, listen_port: int | None = None, baseline_s: float = 20.0,
    fault_s: float = 60.0, recovery_s: float = 30.0, users: int = 5, rto_s: float | None = 30.0,
    max_error_rate: float | None = 0.1, p95_ms: str | None = None,
) -> ForwardPlan:
    """Check the answers of the forward path; ScenarioError (exit 2) names the flag at fault."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ScenarioError(f"--url {url}: expected the service's URL, e.g. http://127.0.0.1:4000/v1/chat/completions")
    prov = parse_provider(provider)
    if upstream is None:
        raise ScenarioError("--provider needs --upstream: the provider's local stand-in, e.g. "
                            "--upstream http://127.0.0.1:9000 (drill never connects to the provider itself)")
    local = _local_upstream(upstream)
    scenario_name = name or f"{prov.name}-rate-limited"
    if not _NAME.match(scenario_name):
        raise ScenarioError(f"--name {scenario_name}: lowercase letters, digits, '-' or '_'")
    if body is not None and method is None:
        method = "POST"
    request_path = path or parts.path or "/"
    if parts.query and not path:
        request_path += f"?{parts.query}"
    return ForwardPlan(
        name=scenario_name, host=f"{parts.scheme}://{parts.netloc}", method=(method or "GET").upper(),
        path=request_path, body=body, provider=prov, upstream=local,
        listen_port=listen_port or preferred_port(DEFAULT_FORWARD_PORT, set()),
        baseline_s=baseline_s, fault_s=fault_s, recovery_s=recovery_s, users=users, rto_s=rto_s,
        max_error_rate=max_error_rate, p95_ms=p95_ms,
    )


def _ca_dir(stack_file: str) -> str:
    return f"{stack_file.removesuffix('.yaml').removesuffix('.stack')}.ca"


def forward_stack_text(plan: ForwardPlan, stack_file: str = "THIS_FILE") -> str:
    """The local stack: only the HTTP fault proxy's forward listener (your service runs as it does)."""
    host = {"route": plan.provider.name, "upstream": plan.upstream}
    return "\n".join([
        "# Written by `drill init --provider`: drill's HTTP fault proxy as an HTTPS forward proxy in front",
        f"# of {plan.provider.url}, mapped to its local stand-in {plan.upstream}; nothing else is contacted.",
        f"# `drill run` starts and stops it; `drill stack up --file {stack_file}` runs it by hand.",
        "apiVersion: drill/v1",
        "kind: Stack",
        f"name: {plan.name}-proxy",
        "http_fault_proxy:",
        "  forward:",
        f"    listen: 127.0.0.1:{plan.listen_port}",
        "    # mitmproxy's CA, kept here across runs: your service's SSL_CERT_FILE points into it.",
        f"    ca_dir: {_ca_dir(stack_file)}",
        "    hosts:",
        f"      {_flow(plan.provider.destination)}: {_flow(host)}",
    ]) + "\n"


def forward_scenario_text(plan: ForwardPlan, stack_file: str, scenario_file: str = "THIS_FILE") -> str:
    """The scenario: a 429 storm on the provider's route, load on the service."""
    request: dict[str, object] = {"method": plan.method, "path": plan.path}
    if plan.body is not None:
        try:
            request["json"] = json.loads(plan.body)
        except ValueError:
            request["body"] = plan.body
    fault = {"name": f"{plan.provider.name}-429-storm", "type": "http_error", "target": {"route": plan.provider.name},
             **STORM, "duration": _seconds(plan.fault_s)}
    phases = {"baseline": _seconds(plan.baseline_s), "fault": _seconds(plan.fault_s),
              "recovery": _seconds(plan.recovery_s)}
    objectives: dict[str, object] = {}
    if plan.rto_s is not None:
        objectives["rto_s"] = plan.rto_s
    if plan.max_error_rate is not None:
        objectives["max_error_rate"] = plan.max_error_rate
    if plan.p95_ms is not None:
        objectives["p95_ms"] = plan.p95_ms
    lines = [
        f"# Written by `drill init --provider`: a 429 storm on {plan.provider.name} ({plan.provider.url}), which",
        "# your service keeps calling by its own URL. Before running it, start your service with",
        f"#   HTTPS_PROXY={plan.proxy_url}  SSL_CERT_FILE=<{_ca_dir(stack_file)}/mitmproxy-ca-cert.pem>",
        f"# Check it: drill validate {scenario_file}; run it: drill run {scenario_file}",
        "apiVersion: drill/v1",
        "kind: Scenario",
        f"name: {plan.name}",
        f"description: {_flow(f'{plan.provider.name} rate-limits every call (429); the service must cope.')}",
        f"stack: {_flow({'runtime': 'local', 'file': stack_file})}",
        "load:",
        f"  host: {_flow(plan.host)}",
        f"  users: {plan.users}",
        f"  request: {_flow(request)}",
        "  timeout_s: 5",
        "  probe_rate_hz: 20",
        f"phases: {_flow(phases)}",
        "faults:",
        f"  - {_flow(fault)}",
    ]
    if objectives:
        lines.append(f"objectives: {_flow(objectives)}")
    return "\n".join(lines) + "\n"


def write_forward(plan: ForwardPlan, out: Path, *, force: bool = False,
                  make_ca: bool = True) -> tuple[Path, Path, Path]:
    """Write the scenario and its ``.stack.yaml``, load both back, then make mitmproxy's CA in the
    stack's ``ca_dir`` (so the service can trust it before the first drill). Returns (scenario,
    stack, the CA certificate file)."""
    from harness.httpfaults.proxy import CA_CERT_FILE
    from harness.httpfaults.proxy import make_ca as create_ca

    out = Path(out)
    stack = _stack_path(out)
    _write_checked(out, stack, forward_stack_text(plan, stack.name),
                   forward_scenario_text(plan, stack.name, out.name), force)
    ca_dir = (stack.parent / _ca_dir(stack.name)).resolve()
    if make_ca:
        create_ca(ca_dir)
    return out, stack, ca_dir / CA_CERT_FILE


# --- the command ---------------------------------------------------------------------------------


def _ask(value: str | None, flag: str, question: str, default: str | None = None) -> str:
    """The flag's value; when it is missing, ask on a terminal, else refuse (exit 2) naming the flag."""
    if value is not None:
        return value
    if sys.stdin.isatty():
        return str(click.prompt(question, default=default))
    if default is not None:
        return default
    raise click.UsageError(f"missing {flag} (run on a terminal to be asked, or pass it)")


def _duration_s(text: str, flag: str) -> float:
    from harness.scenario.units import parse_duration

    try:
        return float(parse_duration(text))
    except (ValueError, TypeError):
        raise click.BadParameter(f"{text} is not a duration like 20s, 2m or 500ms", param_hint=flag) from None


@click.command("init")
@click.option("--url", help="Your service's URL, e.g. http://127.0.0.1:8000/v1/chat/completions.")
@click.option("--method", type=click.Choice(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"], case_sensitive=False),
              help="Request method (default GET, or POST when --body is given).")
@click.option("--path", "request_path", help="Request path (default: the path of --url).")
@click.option("--body", help="Request body; JSON is sent as JSON.")
@click.option("--dependency", help="The dependency to break, NAME=HOST:PORT (where your service calls it now).")
@click.option("--provider", help="Instead of --dependency: a provider your service calls by its https:// URL, "
              "NAME=https://HOST, drilled through drill's HTTPS forward proxy without changing the service's "
              "config (a 429 storm on it).")
@click.option("--upstream", help="With --provider: the provider's local stand-in, http(s)://127.0.0.1:PORT "
              "(drill never connects to the provider itself).")
@click.option("--fault", "fault_type", type=click.Choice(list(FAULT_CHOICES)),
              help="What goes wrong (default latency).")
@click.option("--latency-ms", type=click.IntRange(0), help="latency: added delay (default 2000).")
@click.option("--rate-kbps", type=click.IntRange(0), help="bandwidth: the limit (default 8).")
@click.option("--jitter-ms", type=click.IntRange(0), help="jitter: the spread (default 1000).")
@click.option("--rto-s", type=click.FloatRange(min=0, min_open=True), default=30.0, show_default=True,
              help="Objective: recovered within this many seconds of the fault.")
@click.option("--max-error-rate", type=click.FloatRange(0, 1), default=0.1, show_default=True,
              help="Objective: errors over the fault phase at most this share.")
@click.option("--p95", "p95_ms", help="Objective: p95 latency bound, in ms or like '2x baseline'.")
@click.option("--baseline", default="20s", show_default=True, help="Baseline phase.")
@click.option("--fault-duration", default="60s", show_default=True, help="Fault phase (the fault lasts all of it).")
@click.option("--recovery", default="30s", show_default=True, help="Recovery phase.")
@click.option("--users", type=click.IntRange(0, 10_000), default=5, show_default=True, help="Locust users.")
@click.option("--listen-port", type=click.IntRange(1, 65535),
              help="Where the proxy listens (default: the dependency's port + 10000 when free; "
                   f"with --provider {DEFAULT_FORWARD_PORT} when free).")
@click.option("--toxiproxy-port", type=click.IntRange(1, 65535), default=DEFAULT_TOXIPROXY_PORT, show_default=True,
              help="Toxiproxy's API port, on 127.0.0.1.")
@click.option("--name", help="Scenario name (default DEPENDENCY-FAULT).")
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Scenario file to write (default NAME.yaml); the stack goes beside it as NAME.stack.yaml.")
@click.option("--force", is_flag=True, help="Replace existing files.")
def init_command(
    url: str | None, method: str | None, request_path: str | None, body: str | None, dependency: str | None,
    provider: str | None, upstream: str | None, fault_type: str | None, latency_ms: int | None,
    rate_kbps: int | None, jitter_ms: int | None,
    rto_s: float, max_error_rate: float, p95_ms: str | None, baseline: str, fault_duration: str, recovery: str,
    users: int, listen_port: int | None, toxiproxy_port: int, name: str | None, out_path: Path | None,
    force: bool,
) -> None:
    """Write a working scenario for your own service: a proxy in front of one dependency, a fault
    on it, load on your service and objectives. Prints the proxy plan and the one change to make
    in your service's config. Asks for what is missing when run on a terminal.

    \b
    Example:
      drill init --url http://127.0.0.1:8000/v1/chat/completions --body '{"model": "chat"}' \\
                 --dependency provider=127.0.0.1:9000 --fault latency --latency-ms 2000 --rto-s 15
      drill init --url http://127.0.0.1:4000/v1/chat/completions --body '{"model": "chat"}' \\
                 --provider openai=https://api.openai.com --upstream http://127.0.0.1:9000
    """
    url = _ask(url, "--url", "Your service's URL (e.g. http://127.0.0.1:8000/v1/chat/completions)")
    if provider is not None or upstream is not None:
        if dependency is not None or fault_type is not None:
            raise ScenarioError(f"{'--dependency' if dependency is not None else '--fault'} does not go with "
                                "--provider: the provider path drills a 429 storm on the provider's route "
                                "through the forward proxy; use one or the other")
        if provider is None:
            raise ScenarioError("--upstream goes with --provider NAME=https://HOST")
        _init_forward(url, provider, upstream, method, request_path, body, rto_s, max_error_rate, p95_ms,
                      baseline, fault_duration, recovery, users, listen_port, name, out_path, force)
        return
    dependency = _ask(dependency, "--dependency",
                      "The dependency to break, NAME=HOST:PORT (e.g. provider=127.0.0.1:9000)")
    fault_type = _ask(fault_type, "--fault", f"Fault ({', '.join(FAULT_CHOICES)})", default="latency")
    magnitude = {"latency": latency_ms, "bandwidth": rate_kbps, "jitter": jitter_ms}.get(fault_type)
    plan = plan_scenario(
        url=url, dependency=dependency, name=name, method=method, path=request_path, body=body,
        fault_type=fault_type, magnitude=magnitude, listen_port=listen_port, toxiproxy_port=toxiproxy_port,
        baseline_s=_duration_s(baseline, "--baseline"), fault_s=_duration_s(fault_duration, "--fault-duration"),
        recovery_s=_duration_s(recovery, "--recovery"), users=users, rto_s=rto_s, max_error_rate=max_error_rate,
        p95_ms=p95_ms,
    )
    scenario, stack = write_scenario(plan, out_path or Path(f"{plan.name}.yaml"), force=force)
    say = Console(highlight=False, soft_wrap=True).print
    say(f"wrote {escape(str(scenario))} (the scenario) and {escape(str(stack))} "
        f"(Toxiproxy on 127.0.0.1:{plan.toxiproxy_port} and one proxy, started by the drill)")
    say(f"proxy plan:  {escape(plan.proxy_plan())}")
    say("[bold]the one change to your service's config:[/bold]")
    say(f"  {escape(plan.the_change())}")
    say(f"then: drill validate {escape(str(scenario))} && drill run {escape(str(scenario))}")


def _init_forward(url: str, provider: str, upstream: str | None, method: str | None, request_path: str | None,
                  body: str | None, rto_s: float, max_error_rate: float, p95_ms: str | None, baseline: str,
                  fault_duration: str, recovery: str, users: int, listen_port: int | None, name: str | None,
                  out_path: Path | None, force: bool) -> None:
    plan = plan_forward(
        url=url, provider=provider, upstream=upstream, name=name, method=method, path=request_path, body=body,
        listen_port=listen_port, baseline_s=_duration_s(baseline, "--baseline"),
        fault_s=_duration_s(fault_duration, "--fault-duration"), recovery_s=_duration_s(recovery, "--recovery"),
        users=users, rto_s=rto_s, max_error_rate=max_error_rate, p95_ms=p95_ms,
    )
    scenario, stack, ca_cert = write_forward(plan, out_path or Path(f"{plan.name}.yaml"), force=force)
    say = Console(highlight=False, soft_wrap=True).print
    say(f"wrote {escape(str(scenario))} (the scenario) and {escape(str(stack))} (drill's HTTPS forward proxy on "
        f"127.0.0.1:{plan.listen_port}, started by the drill; its CA in {escape(str(ca_cert.parent))})")
    say(f"forward plan:  {escape(plan.forward_plan())}")
    say("[bold]set on your service's process, then restart it (its config stays as it is):[/bold]")
    for key, value in (("HTTPS_PROXY", plan.proxy_url), ("SSL_CERT_FILE", str(ca_cert)),
                       ("NO_PROXY", "127.0.0.1,localhost")):
        say(f"  {key}={escape(value)}")
    say("  (requests-based clients read REQUESTS_CA_BUNDLE, Node reads NODE_EXTRA_CA_CERTS: the same file)")
    say(f"then: drill validate {escape(str(scenario))} && drill run {escape(str(scenario))}")
