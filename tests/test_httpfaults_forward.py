"""The HTTP fault proxy's forward mode with TLS interception (docs/http-faults.md, "Forward proxy
with TLS (unmodified gateway)"): a process that only knows a provider's ``https://`` URL reaches
a local stand-in through ``HTTPS_PROXY``, trusting mitmproxy's CA made for the run, and its calls
are faulted and counted as those of a named route.

Schema, command line and ``drill init --provider`` tests are pure. Tests that start mitmdump or a
stack need the heavy lock: ``heavy .venv/bin/pytest tests/test_httpfaults_forward.py -k NAME``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pandas as pd
import pytest

from harness.engine import run_drill
from harness.errors import ScenarioError
from harness.httpfaults.proxy import (
    HttpForward,
    find_mitmdump,
    forward_client_env,
    mitmdump_argv,
    running_http_fault_proxy,
)
from harness.init import parse_provider, plan_forward, write_forward
from harness.rundir import read_cost_records
from harness.rundir.events import FaultReverted
from harness.runtime.ports import port_in_use
from harness.runtime.stackfile import load_stack
from harness.scenario import load_scenario
from harness.testing import REPO, VENV_BIN, free_port, require, require_mitmdump, toxiproxy_binary
from harness.testing.drills import (
    fault_window,
    http_fault_hit,
    kill_9_when,
    litellm_load,
    objective,
    rebased,
    recover_all,
    shortened,
    stack_status,
    verdict_text,
)

DRILL = str(VENV_BIN / "drill")
FORWARD_STACK = REPO / "targets" / "gateways" / "litellm-stack.forward.yaml"
FORWARD_SCENARIO = REPO / "scenarios" / "gateways" / "litellm-rate-limited-forward.local.yaml"
LITELLM = REPO / ".venv-litellm" / "bin" / "litellm"
CHAT = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}


# --- the stack file's forward section --------------------------------------------------------------


def test_the_shipped_forward_stack_declares_a_forward_listener_and_its_client() -> None:
    spec = load_stack(FORWARD_STACK)
    assert spec.http_fault_proxy is not None and spec.http_fault_proxy.routes == []
    forward = spec.http_fault_proxy.forward
    assert forward is not None and forward.clients == ["gateway"]
    assert {k: (h.route, h.upstream) for k, h in forward.hosts.items()} == {
        "api.hosted.example:443": ("hosted-model", "https://127.0.0.1:19001")}
    # The control API answers on the forward listener (the stack has no reverse route).
    assert spec.http_fault_proxy.url == "http://127.0.0.1:19100"
    assert ("http forward proxy", 19100) in spec.declared_ports()
    # The gateway's config names the provider by its https:// URL only, never drill's proxy.
    config = next(p for p in spec.processes if p.name == "gateway").env["LITELLM_CONFIG"]
    assert "api_base: https://api.hosted.example/v1" in config and "19100" not in config


STACK_HEAD = """\
kind: Stack
name: forward-check
http_fault_proxy:
"""
GOOD_FORWARD = """\
  forward:
    listen: 127.0.0.1:19100
    clients: [gw]
    hosts:
      "api.x.example:443": {route: x, upstream: "https://127.0.0.1:19001"}
"""
PROCESSES = """\
processes:
  - {name: gw, argv: [python, -c, "1"]}
"""


@pytest.mark.parametrize(("section", "line", "said"), [
    (GOOD_FORWARD.replace("https://127.0.0.1:19001", "https://upstream.example:443"), 8,
     "http_fault_proxy.forward.hosts.api.x.example:443.upstream: 'https://upstream.example:443' must be an "
     "http(s)://127.0.0.1:PORT URL"),
    (GOOD_FORWARD.replace("https://127.0.0.1:19001", "https://127.0.0.1:19001/v1"), 8, "without a path"),
    (GOOD_FORWARD.replace('"api.x.example:443"', '"api.x.example"'), 7,
     "http_fault_proxy.forward.hosts: 'api.x.example' must be a lowercase HOST:PORT"),
    # Checked against the processes, so on the whole file (the message names the field).
    (GOOD_FORWARD.replace("clients: [gw]", "clients: [gateway]"), 1,
     "http_fault_proxy.forward.clients names unknown processes ['gateway']"),
    (GOOD_FORWARD.replace("listen: 127.0.0.1:19100", "listen: 0.0.0.0:19100"), 5,
     "http_fault_proxy.forward.listen: '0.0.0.0:19100': the local runtime only listens on 127.0.0.1"),
    (GOOD_FORWARD + "  routes:\n    - {name: x, listen: 127.0.0.1:19101, upstream: http://127.0.0.1:19001}\n", 3,
     "route names must be unique (over routes and forward.hosts): x repeated"),
    ("  binary: /usr/bin/mitmdump\n", 3,
     "give at least one route (routes: [...]) or a forward listener (forward: {...})"),
], ids=["upstream-beyond-loopback", "upstream-with-path", "host-without-port", "unknown-client",
        "listen-beyond-loopback", "route-twice", "nothing-to-serve"])
def test_a_bad_forward_section_names_the_file_line_and_field(tmp_path: Path, section: str, line: int,
                                                             said: str) -> None:
    path = tmp_path / "stack.yaml"
    path.write_text(STACK_HEAD + section + PROCESSES)
    with pytest.raises(ScenarioError) as caught:
        load_stack(path)
    assert f"stack.yaml:{line} " in str(caught.value) and said in str(caught.value), str(caught.value)


def test_a_client_may_not_set_the_proxy_variables_itself(tmp_path: Path) -> None:
    path = tmp_path / "stack.yaml"
    path.write_text(STACK_HEAD + GOOD_FORWARD + PROCESSES.replace(
        '"1"]}', '"1"], env: {https_proxy: "http://127.0.0.1:1"}}'))
    with pytest.raises(ScenarioError, match="process gw: env https_proxy is set by http_fault_proxy.forward"):
        load_stack(path)


def forward_to(upstream: str, confdir: Path, port: int = 19100) -> HttpForward:
    return HttpForward(listen_port=port, hosts={"api.hosted.example:443": ("hosted-model", upstream)},
                       confdir=confdir)


def test_the_command_line_never_lets_mitmproxy_connect_before_the_addon_maps_the_destination(tmp_path: Path) -> None:
    argv = mitmdump_argv("mitmdump", [], forward_to("https://127.0.0.1:19001", tmp_path))
    settings = [argv[i + 1] for i, a in enumerate(argv) if a == "--set"]
    assert "connection_strategy=lazy" in settings and "upstream_cert=false" in settings
    assert f"confdir={tmp_path}" in settings and "ssl_insecure=true" in settings
    assert ["--mode", "regular@127.0.0.1:19100"] == argv[argv.index("regular@127.0.0.1:19100") - 1:][:2]
    forward = json.loads(next(s for s in settings if s.startswith("drill_forward="))[len("drill_forward="):])
    assert forward == {"listen_port": 19100, "hosts": {"api.hosted.example:443": {
        "route": "hosted-model", "upstream": "https://127.0.0.1:19001"}}}
    # A plain-HTTP stand-in needs no upstream TLS at all: certificate checks stay on.
    plain = mitmdump_argv("mitmdump", [], forward_to("http://127.0.0.1:19001", tmp_path))
    assert "ssl_insecure=true" not in plain


def test_a_client_gets_the_proxy_and_only_mitmproxys_ca(tmp_path: Path) -> None:
    env = forward_client_env(forward_to("https://127.0.0.1:19001", tmp_path / "ca"))
    ca = str((tmp_path / "ca" / "mitmproxy-ca-cert.pem").resolve())
    assert env["HTTPS_PROXY"] == env["https_proxy"] == "http://127.0.0.1:19100"
    assert env["SSL_CERT_FILE"] == env["REQUESTS_CA_BUNDLE"] == env["NODE_EXTRA_CA_CERTS"] == ca
    assert env["NO_PROXY"] == "127.0.0.1,localhost"


# --- drill init --provider -----------------------------------------------------------------------


def test_provider_flag_is_name_and_the_providers_url() -> None:
    provider = parse_provider("openai=https://api.openai.com/v1")
    assert (provider.name, provider.destination) == ("openai", "api.openai.com:443")
    assert parse_provider("p=http://API.example:8080").destination == "api.example:8080"
    for bad in ("openai", "openai=api.openai.com", "Open AI=https://api.openai.com", "p=ftp://x.example",
                "p=https://x.example:99999", "p=https://127.0.0.1:9000"):
        with pytest.raises(ScenarioError, match="--provider"):
            parse_provider(bad)


def test_init_writes_a_forward_stack_and_a_429_storm_that_load(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="--provider needs --upstream"):
        plan_forward(url="http://127.0.0.1:4000/v1/chat/completions", provider="openai=https://api.openai.com",
                     upstream=None)
    with pytest.raises(ScenarioError, match="--upstream https://api.openai.com: the provider's local stand-in"):
        plan_forward(url="http://127.0.0.1:4000/v1/chat/completions", provider="openai=https://api.openai.com",
                     upstream="https://api.openai.com")
    plan = plan_forward(url="http://127.0.0.1:4000/v1/chat/completions", provider="openai=https://api.openai.com",
                        upstream="http://127.0.0.1:9000", body='{"model": "chat"}', listen_port=free_port())
    scenario, stack, ca = write_forward(plan, tmp_path / "mine.yaml", make_ca=False)
    spec = load_stack(stack)
    assert spec.http_fault_proxy is not None and spec.http_fault_proxy.forward is not None
    forward = spec.http_fault_proxy.forward
    assert forward.ca_dir == "mine.ca" and ca == (tmp_path / "mine.ca" / "mitmproxy-ca-cert.pem").resolve()
    assert {k: (h.route, h.upstream) for k, h in forward.hosts.items()} == {
        "api.openai.com:443": ("openai", "http://127.0.0.1:9000")}
    fault = load_scenario(scenario).spec.faults[0]
    assert fault.type == "http_error" and fault.target.route == "openai"
    assert plan.forward_plan() == "api.openai.com:443 -> route openai -> http://127.0.0.1:9000"


@pytest.mark.parametrize(("flags", "said"), [
    (["--provider", "openai=api.openai.com", "--upstream", "http://127.0.0.1:9000"], "--provider openai=api.openai.com"),
    (["--provider", "openai=https://api.openai.com"], "--provider needs --upstream"),
    (["--provider", "openai=https://api.openai.com", "--upstream", "http://upstream.example:80"], "--upstream http://upstream.example:80"),
    (["--provider", "openai=https://api.openai.com", "--upstream", "http://127.0.0.1:9000", "--fault", "down"],
     "--fault does not go with --provider"),
], ids=["not-a-url", "no-upstream", "upstream-beyond-loopback", "network-fault"])
def test_bad_provider_answers_exit_2_with_one_message_and_write_nothing(tmp_path: Path, flags: list[str],
                                                                       said: str) -> None:
    done = subprocess.run([DRILL, "init", "--url", "http://127.0.0.1:4000/v1/chat/completions", *flags],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, cwd=tmp_path, timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    assert said in done.stdout + done.stderr, done.stdout + done.stderr
    assert list(tmp_path.iterdir()) == []


def test_init_makes_the_ca_and_prints_exactly_what_to_set(tmp_path: Path) -> None:
    require_mitmdump()
    port = free_port()
    done = subprocess.run([DRILL, "init", "--url", "http://127.0.0.1:4000/v1/chat/completions", "--body",
                           '{"model": "chat"}', "--provider", "openai=https://api.openai.com", "--upstream",
                           "http://127.0.0.1:9000", "--listen-port", str(port), "--out", "drill.yaml"],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    ca = tmp_path / "drill.ca" / "mitmproxy-ca-cert.pem"
    assert ca.read_text().startswith("-----BEGIN CERTIFICATE-----")
    lines = done.stdout.splitlines()
    assert f"  HTTPS_PROXY=http://127.0.0.1:{port}" in lines
    assert f"  SSL_CERT_FILE={ca.resolve()}" in lines and "  NO_PROXY=127.0.0.1,localhost" in lines
    assert "forward plan:  api.openai.com:443 -> route openai -> http://127.0.0.1:9000" in lines


# --- mitmdump for real ---------------------------------------------------------------------------


@contextmanager
def tls_model_server(tmp_path: Path) -> Iterator[int]:
    """The reference model server, HTTPS only, with a certificate it makes at start."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO), "HOST": "127.0.0.1", "PORT": str(port), "TIER": "hosted",
           "NODE_ID": "hosted-model", "TLS_CERT_NAMES": "api.hosted.example,127.0.0.1",
           "DRILL_STACK_LOG_DIR": str(tmp_path)}
    with open(tmp_path / "model.log", "wb") as log:
        popen = subprocess.Popen([sys.executable, "-m", "targets.model_server"], env=env, stdout=log,
                                 stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while not port_in_use(port):
            assert popen.poll() is None and time.monotonic() < deadline, (tmp_path / "model.log").read_text()
            time.sleep(0.05)
        yield port
    finally:
        os.killpg(popen.pid, signal.SIGKILL)
        popen.wait(timeout=10)


class Listener:
    """A TCP listener that only counts the connections it is offered (the "never contacted" check)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = int(self.sock.getsockname()[1])
        self.accepted = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self.sock.close()


@pytest.mark.slow
def test_a_client_knowing_only_the_https_url_is_mapped_faulted_and_counted_on_its_route(tmp_path: Path) -> None:
    require_mitmdump()
    with tls_model_server(tmp_path) as provider_port:
        forward = HttpForward(listen_port=free_port(), hosts={
            "api.hosted.example:443": ("hosted-model", f"https://127.0.0.1:{provider_port}")}, confdir=tmp_path / "ca")
        with running_http_fault_proxy([], tmp_path / "mitm.log", forward) as control:
            assert control.health() == {"hosted-model": forward.listen_port}
            # verify= mitmproxy's CA alone: the certificate api.hosted.example presents is the proxy's.
            with httpx.Client(proxy=forward.url, verify=ssl.create_default_context(cafile=forward.ca_cert), timeout=10) as client:
                ok = client.post("https://api.hosted.example/v1/chat/completions", json=CHAT)
                assert ok.status_code == 200 and ok.headers["X-Served-By"] == "hosted-model", ok.text
                control.add("storm", "http_error", "hosted-model", {"status": 429, "retry_after_s": 2})
                storm = [client.post("https://api.hosted.example/v1/chat/completions", json=CHAT) for _ in range(3)]
                assert [(r.status_code, r.headers.get("Retry-After")) for r in storm] == [(429, "2")] * 3
                control.remove("storm")
                assert client.post("https://api.hosted.example/v1/chat/completions", json=CHAT).status_code == 200
                # A client that does not trust mitmproxy's CA refuses the interception.
                with httpx.Client(proxy=forward.url, timeout=10) as untrusting, pytest.raises(httpx.ConnectError):
                    untrusting.post("https://api.hosted.example/v1/chat/completions", json=CHAT)
            recorded = control.calls()
            assert recorded.counts == {"hosted-model": 5}
            assert [(c["proxy"], c["status"], c["fault"]) for c in recorded.calls] == [
                ("hosted-model", 200, None)] + [("hosted-model", 429, "storm")] * 3 + [("hosted-model", 200, None)]


@pytest.mark.slow
def test_an_undeclared_destination_is_refused_and_never_contacted(tmp_path: Path) -> None:
    require_mitmdump()
    listener = Listener()
    try:
        with tls_model_server(tmp_path) as provider_port:
            forward = HttpForward(listen_port=free_port(), hosts={
                "api.hosted.example:443": ("hosted-model", f"https://127.0.0.1:{provider_port}")},
                confdir=tmp_path / "ca")
            with running_http_fault_proxy([], tmp_path / "mitm.log", forward) as control:
                undeclared = f"127.0.0.1:{listener.port}"
                with httpx.Client(proxy=forward.url, verify=ssl.create_default_context(cafile=forward.ca_cert), timeout=10) as client:
                    # A CONNECT to an undeclared destination: refused before any tunnel exists.
                    with pytest.raises(httpx.ProxyError, match="502"):
                        client.get(f"https://{undeclared}/v1/models")
                    with pytest.raises(httpx.ProxyError, match="502"):
                        client.get("https://api.elsewhere.example/v1/models")
                    # A plain request through the proxy: refused with a 502 that says so.
                    plain = client.get(f"http://{undeclared}/v1/models")
                    assert plain.status_code == 502 and "refuses" in plain.json()["error"]["message"]
                    # Inside a declared tunnel the destination is the CONNECT's, whatever Host says:
                    # the stand-in answers (404: it has no such path), the listener sees nothing.
                    swapped = client.get("https://api.hosted.example/v1/models", headers={"Host": undeclared})
                    assert swapped.status_code == 404, swapped.text
                    # The declared one still goes through: the proxy handled every request above.
                    ok = client.post("https://api.hosted.example/v1/chat/completions", json=CHAT)
                    assert ok.status_code == 200
                refused = json.loads(httpx.get(f"{forward.url}/__drill/refused", trust_env=False).text)["refused"]
                assert [r["destination"] for r in refused] == [undeclared, "api.elsewhere.example:443", undeclared]
                assert control.calls().counts == {"hosted-model": 2}  # refusals are no upstream calls
        assert listener.accepted == 0
    finally:
        listener.close()


# --- an unmodified LiteLLM, drilled ------------------------------------------------------------------


def need_litellm() -> None:
    require(toxiproxy_binary() is not None, "toxiproxy-server", "run scripts/bootstrap")
    require_mitmdump()
    require(LITELLM.is_file(), "the LiteLLM proxy", "run scripts/litellm-setup")


def samples(run_dir: Path) -> pd.DataFrame:
    return pd.concat([pd.read_csv(p, keep_default_na=False) for p in sorted((run_dir / "samples").glob("*.csv"))])


@pytest.mark.slow
def test_litellm_knowing_only_the_https_url_falls_back_in_a_429_storm_counted_at_the_proxy(tmp_path: Path) -> None:
    """Short phases (4/8/4 s): the fallback serving the storm, and the proxy counting the 429s it
    answered on route hosted-model, hold at any length."""
    need_litellm()
    scenario, _ = rebased(FORWARD_SCENARIO, tmp_path)
    # Lighter, as the suite's other LiteLLM drills (harness.testing.drills.LITELLM_PACE_HZ).
    scenario.write_text(shortened(litellm_load(scenario.read_text(encoding="utf-8"))), encoding="utf-8")
    result = run_drill(scenario, out=tmp_path / "run")
    r = result.results.document()
    # The verdict's other objectives judge LiteLLM, not the path: on a busy machine it answered
    # errors and missed rto_s through either path (docs/gateways.md); this test is about the path.
    assert objective(r, "failover_to")["passed"] is True, verdict_text(r)
    assert r["cleanup"]["ok"] is True
    run_dir = result.run_dir
    rows = samples(run_dir)
    ok = rows[rows["ok"] == 1]
    start, end = fault_window(run_dir, until=FaultReverted)
    # Before the storm the hosted provider served, over TLS through the forward proxy.
    assert set(ok[ok["end"] < start]["tier"]) == {"hosted"}, set(ok[ok["end"] < start]["tier"])
    # Every good answer in the storm came from the fallback. How many there are is LiteLLM's
    # throughput on the machine of the day (14 in one busy whole run, 100+ alone): a handful is
    # the evidence this test needs.
    during = ok[(ok["start"] > start + 1.0) & (ok["end"] < end)]
    assert len(during) >= 5 and set(during["tier"]) == {"gpu"}, during["tier"].value_counts()
    # The gateway's own record: 429s from the hosted deployment during the storm.
    calls = [json.loads(line) for line in (run_dir / "stack-logs" / "litellm" / "calls.jsonl").read_text().splitlines()]
    inside = [c for c in calls if c["start"] is not None and start + 0.5 < c["start"] < end - 0.5]
    assert {(c["model_id"], c["status"]) for c in inside if c["event"] == "failure"} == {("hosted-model", 429)}
    # The proxy's own log of the route's calls (kept in the run for the cost figures, as for a
    # reverse route): the storm's 429s counted under hosted-model, though the gateway's config
    # never named the proxy.
    records = read_cost_records(run_dir)
    assert records is not None and records["proxy"]["ok"] is True, records
    storm = [c for c in records["proxy"]["calls"] if start <= c["at"] <= end]
    assert {c["proxy"] for c in records["proxy"]["calls"]} == {"hosted-model"}
    assert sum(1 for c in storm if c["status"] == 429 and c["fault"] == "drill-provider-429-storm") > 0
    # The CA the gateway trusted was made for this run, in its folder; its key is gone with the
    # proxy (no run folder or evidence pack carries it).
    ca_dir = run_dir / "stack-logs" / "http-fault-proxy-ca"
    assert (ca_dir / "mitmproxy-ca-cert.pem").is_file()
    assert not (ca_dir / "mitmproxy-ca.pem").exists() and not (ca_dir / "mitmproxy-ca.p12").exists()


@pytest.mark.slow
def test_kill_9_mid_fault_on_the_forward_stack_then_recover_all_leaves_nothing(tmp_path: Path) -> None:
    """kill -9 of the drill while the 429 storm is active through the forward proxy; `drill
    recover --all`: no fault, no proxy, no gateway process of the run left."""
    need_litellm()
    scenario, mapping = rebased(FORWARD_SCENARIO, tmp_path)
    text = scenario.read_text(encoding="utf-8").replace(
        "phases: {baseline: 10s, fault: 20s, recovery: 15s}", "phases: {baseline: 3s, fault: 60s, recovery: 2s}")
    text = litellm_load(text.replace("duration: 20s", "duration: 60s"))
    scenario.write_text(text, encoding="utf-8")
    stack_file = tmp_path / FORWARD_STACK.name
    run_dir = tmp_path / "run"
    kill_9_when(scenario, run_dir, http_fault_hit(f"http://127.0.0.1:{mapping[19100]}"),
                "the HTTP fault became active", cwd=tmp_path)
    config = str(run_dir / "stack-logs" / "litellm" / "config.yaml")
    assert _running(config), "the LiteLLM proxy of the killed drill should still be running before recover"
    assert "reverted" in recover_all(tmp_path)
    after = stack_status(stack_file, tmp_path)
    assert after["http_faults"] == [] and after["active_faults"] == []
    assert _running(config) == [] and _running(str(run_dir / "stack-logs" / "http-fault-proxy-ca")) == []
    assert not any(port_in_use(port) for port in mapping.values())


def _running(pattern: str) -> list[str]:
    """Pids of live (not zombie) processes whose command line holds ``pattern``."""
    pids = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout.split()
    states = {pid: subprocess.run(["ps", "-o", "stat=", "-p", pid], capture_output=True, text=True).stdout.strip()
              for pid in pids}
    return [pid for pid, state in states.items() if state and not state.startswith("Z")]


def test_find_mitmdump_is_what_the_forward_proxy_runs() -> None:
    require_mitmdump()
    assert Path(find_mitmdump()).name == "mitmdump"
