"""The mitmproxy addon that injects provider faults at the HTTP and streaming layer.

It runs *inside* ``mitmdump`` (its own virtualenv, ``.venv-mitm``: mitmproxy pins h11 and
cryptography versions drill's own environment cannot share), so it imports only the standard
library and mitmproxy. The harness drives it like Toxiproxy, over HTTP on the proxy's own
listeners, through a reserved path::

    GET    /__drill/health                  {"ok": true, "proxies": {...}}
    GET    /__drill/faults                  [{"id", "type", "proxy", "params", "hits"[, "cut_short"]}, ...]
    POST   /__drill/faults                  {"id", "type", "proxy", "params"} -> 201
    POST   /__drill/faults/<id>             {"params"} -> 200, the fault's params updated (a schedule step)
    DELETE /__drill/faults/<id>             204 (also when it was not there: reverts are idempotent)
    DELETE /__drill/faults                  204, every fault removed
    GET    /__drill/counts                  {"counts": {proxy: calls since start}, "at": epoch s} (cheap: live stop)
    GET    /__drill/calls[?since=EPOCH_S]   {"calls": [{"proxy", "at", "status", "fault"}, ...], "counts": {...}}
    GET    /__drill/refused                 {"refused": [{"destination", "at"}, ...]} (forward mode)

Every API call that arrives on a route is counted (``counts``, per proxy, since the proxy
started) and kept in a bounded log (``calls``: the send instant, epoch s, and the status it got;
``fault`` names the fault that answered it, else null) so a drill can count upstream calls per
phase from the proxy's own record (docs/cost.md). Control calls and untouched health checks are
not counted.

Proxies are mitmproxy reverse-mode listeners (``--mode reverse:http://UPSTREAM@PORT``); their names
come from the ``drill_proxies`` option (a JSON object ``{"name": port}``), and a fault applies to
the flows that arrived on its proxy's port.

**Forward mode** (an unmodified gateway, docs/http-faults.md): one regular-mode listener
(``--mode regular@127.0.0.1:PORT``) that a gateway reaches through ``HTTPS_PROXY``. The
``drill_forward`` option (JSON ``{"listen_port": P, "hosts": {"HOST:PORT": {"route", "upstream"}}}``)
maps each declared destination to a named route and its 127.0.0.1 upstream: the addon rewrites
the flow's destination in the ``request`` hook, before mitmproxy opens any server connection
(mitmdump runs with ``connection_strategy=lazy`` and ``upstream_cert=false``, so nothing connects
earlier). A destination not declared is refused with a 502 naming it, at CONNECT or for a
plain proxied request, and never contacted (``GET /__drill/refused`` lists the refusals); inside
an accepted tunnel mitmproxy takes the destination from the CONNECT, whatever a request's Host
header says, so it is always the declared one. Flows of a forward route are counted, logged and
faulted under the route's name exactly as those of a reverse route. The control API answers on
the forward listener only for direct (not proxied) requests to the listener's own address.

Faults act on API calls only: ``GET /health`` passes through untouched (a provider's rate limit
is on its API, not on its status probe).

Fault types and how each is made (see docs/architecture.md for why mitmproxy):

- ``http_error`` {status, share, retry_after_s, body}: answered by the proxy in the ``request``
  hook, the upstream is never called.
- ``first_token_delay`` {delay_ms}: the response headers (and so the first event) are held in the
  async ``responseheaders`` hook; events that arrive meanwhile follow at once.
- ``stream_cut`` {after_events | after_ms}: the stream is ended after N events (or N ms) without
  its ``[DONE]``; the client sees a clean end of body and a missing terminator.
- ``stream_stall`` {after_events, stall_ms}: after N events, further chunks are held and released
  with the first upstream chunk at least ``stall_ms`` later. mitmproxy 11's stream hook is
  synchronous (a sleep in it would stall every flow of the proxy) and nothing can be sent on a
  streamed response after the upstream's end (``send_response`` sends only trailers then;
  mitmproxy issue #8103), so a stall holds its full length only while the upstream is still
  sending: if the upstream ends first, the held events go at its end and the stall is *cut
  short*, counted in the fault's ``cut_short`` (listed with its ``hits``, the stalls begun).
- ``malformed`` {share}: the body is cut in half and ends in bytes that are not JSON.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from mitmproxy import ctx, http
from mitmproxy.addonmanager import Loader

CONTROL_PREFIX = "/__drill/"
# A provider's rate limit or outage is on its API, not on a status probe: health checks pass
# through untouched by every fault (the gateway's view of "up" stays the provider's own).
UNTOUCHED = (("GET", "/health"),)
FAULT_TYPES = ("http_error", "first_token_delay", "stream_cut", "stream_stall", "malformed")
EVENT_END = b"\n\n"  # an SSE event ends with a blank line
MAX_CALLS_KEPT = 200_000  # about 20 MB: a 45 s drill at a few hundred calls a second fits many times
MAX_REFUSED_KEPT = 10_000
LOOPBACK = ("127.0.0.1", "localhost")

_DEFAULT_BODIES = {
    429: {"error": {"type": "rate_limit_error", "message": "Rate limit reached (injected by drill)"}},
    529: {"error": {"type": "overloaded_error", "message": "Overloaded (injected by drill)"}},
}


class ActiveFault:
    # Plain classes, not dataclasses: mitmproxy loads this file as a script, outside sys.modules,
    # where @dataclass cannot resolve the module's annotations.
    def __init__(self, fault_id: str, kind: str, proxy: str, params: dict[str, Any]) -> None:
        self.id, self.type, self.proxy, self.params = fault_id, kind, proxy, params
        self.hits = 0
        self.cut_short = 0  # stream_stall: stalls released early because the upstream ended first
        self.rng = random.Random(fault_id)  # the same share of flows on every run

    def picks(self) -> bool:
        """Whether this flow is one of the ``share`` the fault acts on."""
        share = float(self.params.get("share", 1.0))
        return share >= 1.0 or self.rng.random() < share

    def public(self) -> dict[str, Any]:
        record = {"id": self.id, "type": self.type, "proxy": self.proxy, "params": self.params, "hits": self.hits}
        if self.type == "stream_stall":
            record["cut_short"] = self.cut_short
        return record


def _json(status: int, payload: Any) -> http.Response:
    body = b"" if payload is None else json.dumps(payload).encode()
    return http.Response.make(status, body, {"Content-Type": "application/json"})


class ForwardHost:
    """One declared destination of the forward listener: the route it is, and where it really goes."""

    def __init__(self, route: str, upstream: str) -> None:
        scheme, _, rest = upstream.partition("://")
        host, _, port = rest.rstrip("/").rpartition(":")
        if scheme not in ("http", "https") or host not in LOOPBACK or not port.isdigit():
            # The network rule, checked again where the connection is made: only 127.0.0.1.
            raise ValueError(f"forward upstream {upstream!r} is not an http(s)://127.0.0.1:PORT URL")
        self.route, self.scheme, self.host, self.port = route, scheme, "127.0.0.1", int(port)


class DrillFaults:
    """Holds the active faults and applies them to the flows of their proxy."""

    def __init__(self) -> None:
        self.faults: dict[str, ActiveFault] = {}
        self.ports: dict[int, str] = {}
        self.forward_port: int | None = None
        self.hosts: dict[str, ForwardHost] = {}
        self.calls: deque[dict[str, Any]] = deque(maxlen=MAX_CALLS_KEPT)
        self.refused: deque[dict[str, Any]] = deque(maxlen=MAX_REFUSED_KEPT)
        self.counts: dict[str, int] = {}

    def load(self, loader: Loader) -> None:
        loader.add_option("drill_proxies", str, "{}", "JSON object: proxy name -> listen port")
        loader.add_option("drill_forward", str, "{}",
                          'JSON object: {"listen_port": P, "hosts": {"HOST:PORT": {"route", "upstream"}}}')

    def configure(self, updated: set[str]) -> None:
        if "drill_proxies" in updated:
            names = json.loads(ctx.options.drill_proxies or "{}")
            self.ports = {int(port): name for name, port in names.items()}
        if "drill_forward" in updated:
            forward = json.loads(ctx.options.drill_forward or "{}")
            self.forward_port = int(forward["listen_port"]) if forward.get("listen_port") else None
            self.hosts = {str(key).lower(): ForwardHost(str(entry["route"]), str(entry["upstream"]))
                          for key, entry in dict(forward.get("hosts") or {}).items()}

    def route_names(self) -> dict[str, int]:
        """Every route the proxy serves, with the port its flows arrive on."""
        names = {n: p for p, n in self.ports.items()}
        if self.forward_port is not None:
            names.update({h.route: self.forward_port for h in self.hosts.values()})
        return names

    # --- control API --------------------------------------------------------------------------
    def _control(self, flow: http.HTTPFlow) -> None:
        path = flow.request.path.split("?", 1)[0][len(CONTROL_PREFIX):].rstrip("/")
        method = flow.request.method
        if path == "health" and method == "GET":
            flow.response = _json(200, {"ok": True, "proxies": self.route_names()})
        elif path == "faults" and method == "GET":
            flow.response = _json(200, [f.public() for f in self.faults.values()])
        elif path == "counts" and method == "GET":
            flow.response = _json(200, {"counts": dict(self.counts), "at": time.time()})
        elif path == "calls" and method == "GET":
            try:
                since = float(flow.request.query.get("since", "0"))
            except ValueError:
                since = 0.0
            calls = [c for c in self.calls if c["at"] >= since]
            flow.response = _json(200, {"calls": calls, "counts": dict(self.counts)})
        elif path == "refused" and method == "GET":
            flow.response = _json(200, {"refused": list(self.refused)})
        elif path == "faults" and method == "POST":
            flow.response = self._add(flow.request.get_content() or b"")
        elif path == "faults" and method == "DELETE":
            self.faults.clear()
            flow.response = _json(204, None)
        elif path.startswith("faults/") and method == "POST":
            flow.response = self._update(path[len("faults/"):], flow.request.get_content() or b"")
        elif path.startswith("faults/") and method == "DELETE":
            self.faults.pop(path[len("faults/"):], None)
            flow.response = _json(204, None)
        else:
            flow.response = _json(404, {"error": f"no such control route: {method} /__drill/{path}"})

    def _add(self, raw: bytes) -> http.Response:
        try:
            spec = json.loads(raw)
            fault_id, kind, proxy = str(spec["id"]), str(spec["type"]), str(spec["proxy"])
            params = dict(spec.get("params") or {})
        except (ValueError, KeyError, TypeError) as exc:
            return _json(400, {"error": f"a fault needs id, type, proxy and params: {exc}"})
        if kind not in FAULT_TYPES:
            return _json(400, {"error": f"unknown fault type {kind!r}; known: {', '.join(FAULT_TYPES)}"})
        if proxy not in self.route_names():
            return _json(404, {"error": f"no proxy named {proxy!r}; known: {', '.join(sorted(self.route_names()))}"})
        if fault_id in self.faults:
            return _json(409, {"error": f"fault {fault_id!r} is already active"})
        self.faults[fault_id] = ActiveFault(fault_id, kind, proxy, params)
        return _json(201, self.faults[fault_id].public())

    def _update(self, fault_id: str, raw: bytes) -> http.Response:
        fault = self.faults.get(fault_id)
        if fault is None:
            return _json(404, {"error": f"no active fault {fault_id!r}"})
        try:
            params = dict(json.loads(raw)["params"])
        except (ValueError, KeyError, TypeError) as exc:
            return _json(400, {"error": f"an update needs params: {exc}"})
        fault.params = {**fault.params, **params}
        return _json(200, fault.public())

    # --- traffic ------------------------------------------------------------------------------
    def _listen_port(self, flow: http.HTTPFlow) -> int | None:
        port = flow.client_conn.sockname[1] if flow.client_conn.sockname else None
        return port if isinstance(port, int) else None

    def _proxy(self, flow: http.HTTPFlow) -> str | None:
        route = flow.metadata.get("drill_route")
        if isinstance(route, str):
            return route
        port = self._listen_port(flow)
        return self.ports.get(port) if port is not None else None

    # --- forward mode -------------------------------------------------------------------------
    def _on_forward(self, flow: http.HTTPFlow) -> bool:
        return self.forward_port is not None and self._listen_port(flow) == self.forward_port

    def _is_own_control(self, flow: http.HTTPFlow) -> bool:
        """A direct request to the forward listener's own address (what the harness sends)."""
        return (not flow.client_conn.tls and flow.request.host in LOOPBACK
                and flow.request.port == self.forward_port and flow.request.path.startswith(CONTROL_PREFIX))

    def _refuse(self, flow: http.HTTPFlow, destination: str) -> None:
        declared = ", ".join(sorted(self.hosts)) or "none"
        self.refused.append({"destination": destination, "at": round(time.time(), 6)})
        flow.response = _json(502, {"error": {
            "type": "drill_forward_refused",
            "message": f"drill's forward proxy refuses {destination}: it is not declared in the stack's "
                       f"http_fault_proxy.forward.hosts (declared: {declared}); nothing was contacted",
        }})
        flow.metadata["drill_answered"] = True

    def http_connect(self, flow: http.HTTPFlow) -> None:
        """A CONNECT: accepted (mitmproxy answers 200 without connecting: lazy) only for a declared
        destination; any other is refused here, before a tunnel exists. The requests of an
        accepted tunnel carry the CONNECT's destination (mitmproxy's transparent handling inside
        a tunnel), and :meth:`_map_forward` maps it again."""
        if not self._on_forward(flow):
            return
        destination = f"{flow.request.host}:{flow.request.port}".lower()
        if destination not in self.hosts:
            self._refuse(flow, destination)

    def _map_forward(self, flow: http.HTTPFlow) -> bool:
        """Point a forward flow at its declared upstream (True), or refuse it (False)."""
        destination = f"{flow.request.host}:{flow.request.port}".lower()
        target = self.hosts.get(destination)
        if target is None:
            self._refuse(flow, destination)
            return False
        host_header = flow.request.host_header
        flow.request.scheme, flow.request.host, flow.request.port = target.scheme, target.host, target.port
        flow.request.host_header = host_header  # the provider sees the name the gateway called
        flow.metadata["drill_route"] = target.route
        return True

    def _count(self, flow: http.HTTPFlow) -> None:
        """One upstream call on its route: counted now, its status filled in when answered."""
        proxy = self._proxy(flow) or "?"
        self.counts[proxy] = self.counts.get(proxy, 0) + 1
        call: dict[str, Any] = {"proxy": proxy, "at": round(time.time(), 6), "status": None, "fault": None}
        flow.metadata["drill_call"] = call
        self.calls.append(call)

    def _active(self, flow: http.HTTPFlow, kind: str) -> ActiveFault | None:
        proxy = self._proxy(flow)
        for fault in self.faults.values():
            if fault.type == kind and fault.proxy == proxy:
                return fault
        return None

    def request(self, flow: http.HTTPFlow) -> None:
        forward = self._on_forward(flow)
        if flow.request.path.startswith(CONTROL_PREFIX) and (not forward or self._is_own_control(flow)):
            flow.metadata["drill_answered"] = True  # no other fault touches a control call
            self._control(flow)
            return
        if forward and not self._map_forward(flow):
            return
        if (flow.request.method, flow.request.path.split("?", 1)[0]) in UNTOUCHED:
            flow.metadata["drill_untouched"] = True
            return
        self._count(flow)
        fault = self._active(flow, "http_error")
        if fault is not None and fault.picks():
            fault.hits += 1
            status = int(fault.params.get("status", 503))
            body = fault.params.get("body") or _DEFAULT_BODIES.get(
                status, {"error": {"type": "api_error", "message": f"HTTP {status} (injected by drill)"}}
            )
            flow.response = _json(status, body)
            if fault.params.get("retry_after_s") is not None:
                flow.response.headers["Retry-After"] = str(int(round(float(fault.params["retry_after_s"]))))
            flow.response.headers["X-Drill-Fault"] = fault.id
            flow.metadata["drill_answered"] = True
            flow.metadata["drill_call"].update(status=status, fault=fault.id)

    async def responseheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response is None or flow.metadata.get("drill_answered"):
            return
        if "drill_call" in flow.metadata:
            flow.metadata["drill_call"]["status"] = flow.response.status_code
        if flow.metadata.get("drill_untouched"):
            flow.response.stream = True
            return
        malformed = self._active(flow, "malformed")
        if malformed is not None and malformed.picks():
            malformed.hits += 1
            flow.metadata["drill_malformed"] = malformed.id
            flow.response.stream = False  # buffered: the `response` hook rewrites the whole body
            return
        delay = self._active(flow, "first_token_delay")
        if delay is not None:
            delay.hits += 1
            await asyncio.sleep(float(delay.params.get("delay_ms", 0)) / 1000.0)
        flow.response.stream = self._stream_for(flow)

    def response(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None and "drill_malformed" in flow.metadata:
            body = flow.response.get_content() or b'{"choices": []}'
            flow.response.content = body[: max(1, len(body) // 2)] + b"\x00<drill: malformed"

    def _stream_for(self, flow: http.HTTPFlow) -> Callable[[bytes], Iterable[bytes] | bytes] | bool:
        cut = self._active(flow, "stream_cut")
        stall = self._active(flow, "stream_stall")
        if cut is None and stall is None:
            return True
        state = _StreamState(started=time.monotonic())

        def stream(data: bytes) -> Iterable[bytes] | bytes:
            # Never hand mitmproxy b"" for "nothing now": an empty chunk ends a chunked body.
            if state.ended:
                return []
            if cut is not None:
                kept = state.cut(data, cut.params)
                if kept is not None:
                    # Send what precedes the cut, then an empty chunk: the body ends there, without
                    # the stream's own terminator, and the connection is closed.
                    cut.hits += 1
                    flow.kill()
                    return [kept, b""] if kept else b""
            else:
                state.events += data.count(EVENT_END)
            if stall is not None:
                return state.stall(data, stall)
            return data

        return stream


class _StreamState:
    """One streamed response's progress: events seen, and what a stall holds back."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.events = 0
        self.ended = False
        self.stall_from: float | None = None
        self.held = b""

    def cut(self, data: bytes, params: dict[str, Any]) -> bytes | None:
        """The bytes to send before the cut when this chunk reaches it, else None (count and go on)."""
        after_ms = params.get("after_ms")
        if after_ms is not None and (time.monotonic() - self.started) * 1000.0 >= float(after_ms):
            self.ended = True
            return b""
        after_events = params.get("after_events")
        if after_events is None:
            self.events += data.count(EVENT_END)
            return None
        kept_to = 0
        while self.events < int(after_events):
            end = data.find(EVENT_END, kept_to)
            if end < 0:
                return None  # the whole chunk goes out; the cut is further on
            self.events += 1
            kept_to = end + len(EVENT_END)
        self.ended = True
        return data[:kept_to]

    def stall(self, data: bytes, fault: ActiveFault) -> Iterable[bytes] | bytes:
        if self.events <= int(fault.params.get("after_events", 0)) and self.stall_from is None:
            return data
        if self.stall_from is None:
            fault.hits += 1
            self.stall_from = time.monotonic()
        held_for_ms = (time.monotonic() - self.stall_from) * 1000.0
        if held_for_ms < float(fault.params.get("stall_ms", 0)):
            if data:
                self.held += data
                return []
            if self.held:
                # The upstream ended inside the stall (b"" is mitmproxy's end of the stream): the
                # held events must go now, nothing can follow the response hook of a streamed body.
                fault.cut_short += 1
        out, self.held = self.held + data, b""
        return out


addons = [DrillFaults()]
