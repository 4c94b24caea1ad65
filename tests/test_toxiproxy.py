"""harness.toxiproxy: request shapes and error mapping (MockTransport), then the real server."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable

import httpx
import pytest

from harness.errors import EXIT_ABORTED, FaultError
from harness.testing import free_port
from harness.toxiproxy import Proxy, Toxic, ToxiproxyClient, ToxiproxyError

URL = "http://127.0.0.1:8474"

PROXY_JSON = {
    "name": "hosted",
    "listen": "127.0.0.1:26001",
    "upstream": "127.0.0.1:9001",
    "enabled": True,
    "Logger": {},
    "toxics": [
        {
            "attributes": {"latency": 100, "jitter": 0},
            "name": "drill-slow",
            "type": "latency",
            "stream": "downstream",
            "toxicity": 1,
        }
    ],
}


def mock_client(handler: Callable[[httpx.Request], httpx.Response], **kwargs: float) -> ToxiproxyClient:
    return ToxiproxyClient(URL, transport=httpx.MockTransport(handler), **kwargs)


def api_error(status: int, message: str) -> httpx.Response:
    # Toxiproxy writes its JSON errors with a text/plain content type.
    body = json.dumps({"error": message, "status": status}) + "\n"
    return httpx.Response(status, text=body, headers={"Content-Type": "text/plain; charset=utf-8"})


class Recorder:
    """A MockTransport handler that records requests and answers from a list."""

    def __init__(self, *responses: httpx.Response) -> None:
        self.requests: list[httpx.Request] = []
        self._responses = list(responses)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self._responses.pop(0)


# -- request shapes ------------------------------------------------------------------------------


def test_create_proxy_sends_fields_and_user_agent() -> None:
    rec = Recorder(httpx.Response(201, json={**PROXY_JSON, "toxics": []}))
    with mock_client(rec) as client:
        proxy = client.create_proxy("hosted", "127.0.0.1:26001", "127.0.0.1:9001")
    request = rec.requests[0]
    assert (request.method, request.url.path) == ("POST", "/proxies")
    assert json.loads(request.content) == {
        "name": "hosted",
        "listen": "127.0.0.1:26001",
        "upstream": "127.0.0.1:9001",
        "enabled": True,
    }
    assert request.headers["User-Agent"].startswith("drill/")
    assert proxy == Proxy("hosted", "127.0.0.1:26001", "127.0.0.1:9001", True, [])


def test_every_call_carries_the_timeout() -> None:
    rec = Recorder(httpx.Response(200, json={}))
    with mock_client(rec, timeout_s=1.5) as client:
        client.proxies()
    assert rec.requests[0].extensions["timeout"] == {
        "connect": 1.5,
        "read": 1.5,
        "write": 1.5,
        "pool": 1.5,
    }


def test_add_toxic_sends_name_type_stream_toxicity_attributes() -> None:
    answer = {"attributes": {"latency": 250, "jitter": 10}, "name": "drill-slow", "type": "latency",
              "stream": "upstream", "toxicity": 0.5}
    rec = Recorder(httpx.Response(200, json=answer))
    with mock_client(rec) as client:
        toxic = client.add_toxic(
            "hosted", "latency", {"latency": 250, "jitter": 10},
            name="drill-slow", stream="upstream", toxicity=0.5,
        )
    request = rec.requests[0]
    assert (request.method, request.url.path) == ("POST", "/proxies/hosted/toxics")
    assert json.loads(request.content) == {
        "name": "drill-slow",
        "type": "latency",
        "stream": "upstream",
        "toxicity": 0.5,
        "attributes": {"latency": 250, "jitter": 10},
    }
    assert toxic == Toxic("drill-slow", "latency", "upstream", 0.5, {"latency": 250, "jitter": 10})


def test_add_toxic_without_name_lets_the_server_name_it() -> None:
    rec = Recorder(httpx.Response(200, json={"name": "timeout_downstream", "type": "timeout",
                                             "stream": "downstream", "toxicity": 1,
                                             "attributes": {"timeout": 0}}))
    with mock_client(rec) as client:
        toxic = client.add_toxic("hosted", "timeout", {"timeout": 0})
    assert "name" not in json.loads(rec.requests[0].content)
    assert toxic.name == "timeout_downstream"


def test_names_are_escaped_as_one_path_segment() -> None:
    rec = Recorder(httpx.Response(204))
    with mock_client(rec) as client:
        client.remove_toxic("my proxy", "drill-a b")
    assert rec.requests[0].url.raw_path == b"/proxies/my%20proxy/toxics/drill-a%20b"


def test_set_enabled_patches_and_falls_back_to_post_on_old_servers() -> None:
    rec = Recorder(api_error(405, "method not allowed"), httpx.Response(200, json={**PROXY_JSON, "enabled": False}))
    with mock_client(rec) as client:
        proxy = client.set_enabled("hosted", False)
    assert [r.method for r in rec.requests] == ["PATCH", "POST"]
    assert all(json.loads(r.content) == {"enabled": False} for r in rec.requests)
    assert proxy.enabled is False


def test_proxies_parse_toxics() -> None:
    rec = Recorder(httpx.Response(200, json={"hosted": PROXY_JSON}))
    with mock_client(rec) as client:
        proxies = client.proxies()
    assert list(proxies) == ["hosted"]
    assert proxies["hosted"].toxics == [
        Toxic("drill-slow", "latency", "downstream", 1.0, {"latency": 100, "jitter": 0})
    ]


def test_reset_posts_reset() -> None:
    rec = Recorder(httpx.Response(204))
    with mock_client(rec) as client:
        client.reset()
    assert (rec.requests[0].method, rec.requests[0].url.path) == ("POST", "/reset")


@pytest.mark.parametrize(
    "response, expected",
    [
        (httpx.Response(200, text='{"version": "2.12.0"}\n'), "2.12.0"),
        (httpx.Response(200, text="2.1.4"), "2.1.4"),
    ],
)
def test_version_reads_json_and_plain_text(response: httpx.Response, expected: str) -> None:
    with mock_client(Recorder(response)) as client:
        assert client.version() == expected


# -- error mapping -------------------------------------------------------------------------------


def test_api_error_carries_server_message_status_and_proxy() -> None:
    with mock_client(Recorder(api_error(409, "proxy already exists"))) as client:
        with pytest.raises(ToxiproxyError) as caught:
            client.create_proxy("hosted", "127.0.0.1:26001", "127.0.0.1:9001")
    error = caught.value
    assert str(error) == "toxiproxy at http://127.0.0.1:8474: proxy 'hosted': proxy already exists (HTTP 409)"
    assert isinstance(error, FaultError) and error.exit_code == EXIT_ABORTED
    assert (error.status_code, error.proxy, error.target) == (409, "hosted", "toxiproxy:hosted")
    assert not error.unreachable


def test_toxic_error_names_the_toxic() -> None:
    with mock_client(Recorder(api_error(404, "toxic not found"))) as client:
        with pytest.raises(ToxiproxyError, match=r"proxy 'hosted' toxic 'drill-x': toxic not found \(HTTP 404\)"):
            client.remove_toxic("hosted", "drill-x", missing_ok=False)


def test_missing_ok_swallows_only_404() -> None:
    rec = Recorder(api_error(404, "toxic not found"), api_error(404, "proxy not found"),
                   api_error(500, "boom"))
    with mock_client(rec) as client:
        client.remove_toxic("hosted", "drill-x")
        client.delete_proxy("hosted")
        with pytest.raises(ToxiproxyError, match="boom"):
            client.remove_toxic("hosted", "drill-x")


def test_get_proxy_returns_none_when_missing() -> None:
    with mock_client(Recorder(api_error(404, "proxy not found"))) as client:
        assert client.get_proxy("nope") is None


def test_connection_refused_says_unreachable_and_what_to_check() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    with mock_client(refuse) as client:
        with pytest.raises(ToxiproxyError) as caught:
            client.add_toxic("hosted", "latency", {"latency": 1}, name="drill-x")
    message = str(caught.value)
    assert "unreachable at http://127.0.0.1:8474" in message
    assert "toxiproxy-server is running" in message
    assert caught.value.unreachable and caught.value.proxy == "hosted"


def test_timeout_says_it_did_not_answer() -> None:
    def hang(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    with mock_client(hang, timeout_s=0.25) as client:
        with pytest.raises(ToxiproxyError, match=r"did not answer GET /proxies within 0.25 s"):
            client.proxies()


def test_non_json_answer_is_a_clear_error() -> None:
    with mock_client(Recorder(httpx.Response(200, text="<html>nginx</html>"))) as client:
        with pytest.raises(ToxiproxyError, match="not JSON.*really a Toxiproxy API port"):
            client.proxies()


def test_a_url_without_scheme_is_refused() -> None:
    with pytest.raises(ToxiproxyError, match="http://HOST:PORT"):
        ToxiproxyClient("127.0.0.1:8474")


# -- the real server ------------------------------------------------------------------------------


@pytest.mark.toxiproxy
def test_real_server_proxy_and_toxic_lifecycle(toxiproxy_url: str) -> None:
    listen = f"127.0.0.1:{free_port()}"
    upstream = f"127.0.0.1:{free_port()}"
    with ToxiproxyClient(toxiproxy_url) as client:
        assert client.version()
        created = client.create_proxy("svc", listen, upstream)
        assert (created.name, created.listen, created.upstream, created.enabled) == ("svc", listen, upstream, True)
        assert list(client.proxies()) == ["svc"]

        with pytest.raises(ToxiproxyError) as caught:
            client.create_proxy("svc", f"127.0.0.1:{free_port()}", upstream)
        assert str(caught.value) == f"toxiproxy at {toxiproxy_url}: proxy 'svc': proxy already exists (HTTP 409)"

        toxic = client.add_toxic("svc", "latency", {"latency": 50}, name="drill-slow", stream="upstream", toxicity=0.5)
        assert (toxic.name, toxic.type, toxic.stream, toxic.toxicity) == ("drill-slow", "latency", "upstream", 0.5)
        assert toxic.attributes["latency"] == 50
        assert [t.name for t in client.toxics("svc")] == ["drill-slow"]

        with pytest.raises(ToxiproxyError, match="invalid toxic type"):
            client.add_toxic("svc", "no-such-toxic", {}, name="drill-bad")

        assert client.set_enabled("svc", False).enabled is False
        disabled = client.get_proxy("svc")
        assert disabled is not None and not disabled.enabled

        client.reset()
        after_reset = client.get_proxy("svc")
        assert after_reset is not None and after_reset.enabled and after_reset.toxics == []

        client.remove_toxic("svc", "drill-slow")  # already gone: fine by default
        with pytest.raises(ToxiproxyError) as missing:
            client.remove_toxic("svc", "drill-slow", missing_ok=False)
        assert missing.value.status_code == 404 and "toxic not found" in str(missing.value)

        client.delete_proxy("svc")
        client.delete_proxy("svc")
        assert client.get_proxy("svc") is None
        with pytest.raises(ToxiproxyError, match=r"proxy 'svc': proxy not found \(HTTP 404\)"):
            client.toxics("svc")


def test_real_refused_connection_is_unreachable() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with ToxiproxyClient(url, timeout_s=2.0) as client:
        with pytest.raises(ToxiproxyError, match=f"unreachable at {url}") as caught:
            client.proxies()
    assert caught.value.unreachable


def test_real_silent_server_times_out() -> None:
    # A listening socket that never accepts: connect succeeds (backlog), the answer never comes.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        with ToxiproxyClient(url, timeout_s=0.3) as client:
            with pytest.raises(ToxiproxyError, match=f"Toxiproxy at {url} did not answer GET /proxies within 0.3 s"):
                client.proxies()
