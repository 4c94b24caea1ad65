"""harness.faults.network: params and escalation logic (pure / MockTransport), then real faults
through a real toxiproxy-server in front of a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from conftest import free_port, network_spec

from harness.errors import FaultError
from harness.faults.base import Fault
from harness.faults.network import (
    NETWORK_FAULT_TYPES,
    disabled_proxies,
    network_fault,
    stray_toxics,
    undo_network,
)
from harness.rundir.undo import ProxyDisabledUndo, ToxicUndo, parse_undo
from harness.toxiproxy import ToxiproxyClient

MOCK_URL = "http://127.0.0.1:8474"
BIG_BODY_BYTES = 30_000


# -- params and describe (no server) ------------------------------------------------------------


def offline_client() -> ToxiproxyClient:
    def never(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"unexpected call {request.method} {request.url}")

    return ToxiproxyClient(MOCK_URL, transport=httpx.MockTransport(never))


def test_fault_types_are_the_network_family() -> None:
    assert NETWORK_FAULT_TYPES == {"latency", "jitter", "bandwidth", "blackhole", "reset", "down"}


@pytest.mark.parametrize(
    "type, params, expected",
    [
        ("latency", {"latency_ms": 500}, {"latency_ms": 500, "jitter_ms": 0, "direction": "downstream", "toxicity": 1.0}),
        ("jitter", {"jitter_ms": 80, "direction": "upstream"}, {"jitter_ms": 80, "latency_ms": 0, "direction": "upstream", "toxicity": 1.0}),
        ("bandwidth", {"rate_kbps": 64, "toxicity": 0.5}, {"rate_kbps": 64, "direction": "downstream", "toxicity": 0.5}),
        ("blackhole", {}, {"timeout_ms": 0, "direction": "downstream", "toxicity": 1.0}),
        ("reset", {"timeout_ms": 100}, {"timeout_ms": 100, "direction": "downstream", "toxicity": 1.0}),
        ("down", {}, {}),
    ],
)
def test_describe_fills_defaults_and_names_the_undo(type: str, params: dict[str, Any], expected: dict[str, Any]) -> None:
    fault = network_fault(network_spec("f1", type, "hosted", params), offline_client())
    assert isinstance(fault, Fault)
    described = fault.describe()
    assert described["targets"] == ["toxiproxy:hosted"]
    assert described["params"] == expected
    assert described["undo"].document() == {
        "kind": "proxy_disabled" if type == "down" else "toxic",
        "toxiproxy_url": MOCK_URL,
        "proxy": "hosted",
        "toxic": None if type == "down" else "drill-f1",
    }
    json.dumps({**described, "undo": described["undo"].document()})  # journaled as-is


@pytest.mark.parametrize(
    "type, params, toxic",
    [
        ("latency", {"latency_ms": 500, "toxicity": 0.25},
         {"type": "latency", "attributes": {"latency": 500, "jitter": 0}, "stream": "downstream", "toxicity": 0.25}),
        ("jitter", {"jitter_ms": 80, "direction": "upstream"},
         {"type": "latency", "attributes": {"latency": 0, "jitter": 80}, "stream": "upstream", "toxicity": 1.0}),
        ("bandwidth", {"rate_kbps": 64},
         {"type": "bandwidth", "attributes": {"rate": 64}, "stream": "downstream", "toxicity": 1.0}),
        ("blackhole", {"timeout_ms": 5},
         {"type": "timeout", "attributes": {"timeout": 5}, "stream": "downstream", "toxicity": 1.0}),
        ("reset", {},
         {"type": "reset_peer", "attributes": {"timeout": 0}, "stream": "downstream", "toxicity": 1.0}),
    ],
)
def test_each_spec_becomes_its_toxiproxy_toxic(type: str, params: dict[str, Any], toxic: dict[str, Any]) -> None:
    """The spec's typed attributes reach Toxiproxy under the README's toxic and attribute names
    (the parameter rules themselves are tested with the models: test_scenario_fault_specs.py)."""
    sent: list[dict[str, Any]] = []

    def toxiproxy(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, json={"hosted": {"name": "hosted", "listen": "127.0.0.1:1",
                                                        "upstream": "127.0.0.1:2", "enabled": True, "toxics": []}})
        sent.append(json.loads(request.content))
        return httpx.Response(200, json=sent[-1])

    client = ToxiproxyClient(MOCK_URL, transport=httpx.MockTransport(toxiproxy))
    fault = network_fault(network_spec("f1", type, "hosted", params), client)
    fault.apply()
    assert sent == [{**toxic, "name": "drill-f1"}]


# -- revert escalation (MockTransport: removal failures cannot be provoked on a real server) -----


class Script:
    """Answers by (method, path) from per-route queues; records every call."""

    def __init__(self, routes: dict[tuple[str, str], list[httpx.Response | Exception]]) -> None:
        self.routes = routes
        self.calls: list[tuple[str, str]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        key = (request.method, request.url.path)
        self.calls.append(key)
        answer = self.routes[key].pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def error(status: int, message: str) -> httpx.Response:
    return httpx.Response(status, text=json.dumps({"error": message, "status": status}))


def timeout() -> httpx.ReadTimeout:
    return httpx.ReadTimeout("timed out")


DELETE_TOXIC = ("DELETE", "/proxies/hosted/toxics/drill-slow")
PATCH_PROXY = ("PATCH", "/proxies/hosted")
RESET = ("POST", "/reset")
TOXIC_UNDO = ToxicUndo(toxiproxy_url=MOCK_URL, proxy="hosted", toxic="drill-slow")
DOWN_UNDO = ProxyDisabledUndo(toxiproxy_url=MOCK_URL, proxy="hosted")


def scripted(routes: dict[tuple[str, str], list[httpx.Response | Exception]]) -> tuple[Script, ToxiproxyClient]:
    script = Script(routes)
    return script, ToxiproxyClient(MOCK_URL, timeout_s=0.5, transport=httpx.MockTransport(script))


def test_revert_retries_once_after_a_failed_removal() -> None:
    script, client = scripted({DELETE_TOXIC: [timeout(), httpx.Response(204)]})
    undo_network(TOXIC_UNDO, client)
    assert script.calls == [DELETE_TOXIC, DELETE_TOXIC]


def test_revert_falls_back_to_reset_when_removal_fails_twice() -> None:
    script, client = scripted({DELETE_TOXIC: [error(500, "boom"), timeout()], RESET: [httpx.Response(204)]})
    undo_network(TOXIC_UNDO, client)
    assert script.calls == [DELETE_TOXIC, DELETE_TOXIC, RESET]


def test_revert_of_a_missing_toxic_is_done_at_once() -> None:
    script, client = scripted({DELETE_TOXIC: [error(404, "toxic not found")]})
    undo_network(TOXIC_UNDO, client)
    assert script.calls == [DELETE_TOXIC]


def test_down_revert_escalates_to_reset_then_a_last_re_enable() -> None:
    enabled = httpx.Response(200, json={"name": "hosted", "listen": "", "upstream": "", "enabled": True, "toxics": []})
    script, client = scripted({
        PATCH_PROXY: [error(500, "bind: address in use"), timeout(), enabled],
        RESET: [timeout()],
    })
    undo_network(DOWN_UNDO, client)
    assert script.calls == [PATCH_PROXY, PATCH_PROXY, RESET, PATCH_PROXY]


def test_down_revert_of_a_deleted_proxy_is_done() -> None:
    script, client = scripted({PATCH_PROXY: [error(404, "proxy not found")]})
    undo_network(DOWN_UNDO, client)
    assert script.calls == [PATCH_PROXY]


def test_revert_raises_only_when_every_escalation_failed() -> None:
    script, client = scripted({DELETE_TOXIC: [error(500, "boom"), error(500, "boom")], RESET: [timeout()]})
    with pytest.raises(FaultError) as caught:
        undo_network(TOXIC_UNDO, client)
    message = str(caught.value)
    assert "could not revert toxic 'drill-slow' on proxy 'hosted'" in message
    assert "drill recover --force" in message
    assert "POST /reset" in message and "boom" in message
    assert script.calls == [DELETE_TOXIC, DELETE_TOXIC, RESET]


def test_undo_record_of_unknown_kind_is_refused() -> None:
    """A record this version does not know reads as UnknownUndo and is refused, named whole."""
    from harness.faults import undo_fault

    undo = parse_undo({"kind": "teleport", "proxy": "hosted"})
    with pytest.raises(FaultError, match='do not know how to revert a fault recorded as .*"teleport"'):
        undo_fault(undo)


# -- real toxiproxy-server, real upstream --------------------------------------------------------


class _Upstream(BaseHTTPRequestHandler):
    """``GET /`` -> ``ok``; ``GET /big`` -> BIG_BODY_BYTES bytes. Keeps connections open, like
    a real server behind a pooled client, so a blackhole is not undone by the upstream's close."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        body = b"x" * BIG_BODY_BYTES if self.path == "/big" else b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def upstream() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _Upstream)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def client(toxiproxy_url: str) -> Iterator[ToxiproxyClient]:
    with ToxiproxyClient(toxiproxy_url) as c:
        yield c


@pytest.fixture
def proxy_url(client: ToxiproxyClient, upstream: str) -> str:
    """Base URL of a proxy named ``svc`` in front of the upstream."""
    listen = f"127.0.0.1:{free_port()}"
    client.create_proxy("svc", listen, upstream)
    return f"http://{listen}"


def fetch(url: str, timeout_s: float = 5.0) -> httpx.Response:
    """One request on a fresh connection (so a toxic meets it from the first byte)."""
    with httpx.Client(timeout=timeout_s, trust_env=False) as http:
        return http.get(url)


def timed_fetch(url: str) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = fetch(url)
    return response, time.monotonic() - started


def assert_healthy(url: str) -> None:
    response = fetch(url)
    assert response.status_code == 200


@pytest.mark.toxiproxy
def test_latency_adds_at_least_latency_ms(client: ToxiproxyClient, proxy_url: str) -> None:
    assert_healthy(proxy_url)
    fault = network_fault(network_spec("slow", "latency", "svc", {"latency_ms": 400}), client)
    t_before = time.time()
    onset = fault.apply()
    t_after = time.time()
    assert t_before <= onset.at <= t_after
    assert onset.source == "toxiproxy-api" and 0 <= onset.uncertainty_s <= (t_after - t_before) / 2 + 1e-6
    assert [(t.name, t.type, t.attributes["latency"]) for t in client.toxics("svc")] == [("drill-slow", "latency", 400)]

    response, elapsed_s = timed_fetch(proxy_url)
    assert response.text == "ok"
    assert elapsed_s >= 0.4  # a semantic lower bound: the toxic held the answer back

    reverted_at = fault.revert()
    assert reverted_at >= onset.at
    assert client.toxics("svc") == []
    assert fault.revert() >= reverted_at  # idempotent
    assert_healthy(proxy_url)


@pytest.mark.toxiproxy
def test_bandwidth_limits_the_rate(client: ToxiproxyClient, proxy_url: str) -> None:
    fault = network_fault(network_spec("thin", "bandwidth", "svc", {"rate_kbps": 20}), client)
    fault.apply()
    try:
        response, elapsed_s = timed_fetch(proxy_url + "/big")
        assert len(response.content) == BIG_BODY_BYTES
        assert elapsed_s >= 1.0  # 30 KB at 20 KB/s needs ~1.5 s
    finally:
        fault.revert()
    assert client.toxics("svc") == []


@pytest.mark.toxiproxy
def test_down_refuses_connections_and_revert_restores(client: ToxiproxyClient, proxy_url: str) -> None:
    assert_healthy(proxy_url)
    fault = network_fault(network_spec("cut", "down", "svc", {}), client)
    fault.apply()
    assert [p.name for p in disabled_proxies(client)] == ["svc"]
    with pytest.raises(httpx.ConnectError):
        fetch(proxy_url)

    fault.revert()
    fault.revert()
    assert disabled_proxies(client) == []
    assert_healthy(proxy_url)


@pytest.mark.toxiproxy
@pytest.mark.parametrize("direction", ["downstream", "upstream"])
def test_blackhole_makes_requests_time_out(client: ToxiproxyClient, proxy_url: str, direction: str) -> None:
    fault = network_fault(network_spec("void", "blackhole", "svc", {"direction": direction}), client)
    fault.apply()
    with pytest.raises(httpx.ReadTimeout):
        fetch(proxy_url, timeout_s=0.5)
    fault.revert()
    fault.revert()
    assert_healthy(proxy_url)


@pytest.mark.toxiproxy
def test_reset_fails_requests_with_a_connection_error(client: ToxiproxyClient, proxy_url: str) -> None:
    fault = network_fault(network_spec("rst", "reset", "svc", {}), client)
    fault.apply()
    with pytest.raises(httpx.TransportError) as caught:
        fetch(proxy_url)
    assert not isinstance(caught.value, httpx.TimeoutException)
    fault.revert()
    fault.revert()
    assert_healthy(proxy_url)


@pytest.mark.toxiproxy
def test_apply_to_a_missing_proxy_lists_the_existing_ones(client: ToxiproxyClient, proxy_url: str) -> None:
    fault = network_fault(network_spec("slow", "latency", "hosted", {"latency_ms": 100}), client)
    with pytest.raises(FaultError, match=r"proxy 'hosted' does not exist \(existing proxies: svc\)") as caught:
        fault.apply()
    assert caught.value.target == "toxiproxy:hosted"
    fault.revert()  # safe after a failed apply


@pytest.mark.toxiproxy
def test_apply_refuses_over_a_leftover_toxic(client: ToxiproxyClient, proxy_url: str) -> None:
    network_fault(network_spec("slow", "latency", "svc", {"latency_ms": 100}), client).apply()
    again = network_fault(network_spec("slow", "latency", "svc", {"latency_ms": 100}), client)
    with pytest.raises(FaultError, match="toxic 'drill-slow' is already on proxy 'svc'.*drill recover --force"):
        again.apply()


@pytest.mark.toxiproxy
@pytest.mark.parametrize("type, params", [("latency", {"latency_ms": 300}), ("down", {})])
def test_undo_record_alone_reverts_after_a_crash(
    client: ToxiproxyClient, proxy_url: str, type: str, params: dict[str, Any]
) -> None:
    fault = network_fault(network_spec("crashed", type, "svc", params), client)
    undo = parse_undo(json.loads(json.dumps(fault.describe()["undo"].document())))  # as read back from the journal
    assert isinstance(undo, ToxicUndo | ProxyDisabledUndo)
    fault.apply()
    assert stray_toxics(client) or disabled_proxies(client)

    with ToxiproxyClient(undo.toxiproxy_url) as fresh:  # a new process: no scenario, no fault object
        undo_network(undo, fresh)
        undo_network(undo, fresh)
        assert stray_toxics(fresh) == [] and disabled_proxies(fresh) == []
    assert_healthy(proxy_url)


@pytest.mark.toxiproxy
def test_stray_toxics_finds_only_drill_leftovers(client: ToxiproxyClient, proxy_url: str, upstream: str) -> None:
    client.create_proxy("other", f"127.0.0.1:{free_port()}", upstream)
    client.add_toxic("other", "latency", {"latency": 10}, name="someone-elses")
    network_fault(network_spec("left", "jitter", "svc", {"jitter_ms": 50}), client).apply()
    network_fault(network_spec("left-too", "blackhole", "other", {"direction": "upstream"}), client).apply()

    strays = sorted((proxy, toxic.name, toxic.stream) for proxy, toxic in stray_toxics(client))
    assert strays == [("other", "drill-left-too", "upstream"), ("svc", "drill-left", "downstream")]


def test_revert_with_toxiproxy_gone_raises_fault_error() -> None:
    dead = ToxiproxyClient(f"http://127.0.0.1:{free_port()}", timeout_s=1.0)
    fault = network_fault(network_spec("slow", "latency", "svc", {"latency_ms": 100}), dead)
    with pytest.raises(FaultError, match="could not revert toxic 'drill-slow'.*unreachable at"):
        fault.revert()
