"""The console's web server: aiohttp on 127.0.0.1, in a thread with its own event loop.

Two random tokens, as notebook servers do: the facilitator's (the page and every command) and
the observers' (the page, read-only: the server refuses their commands, whatever their page
sends). The page polls ``/api/state``; commands are JSON ``POST``s carrying the token in a
header, so another site cannot forge one through a form. A request whose ``Host`` is not this
server's loopback address is refused (DNS rebinding). Every page asset ships in the package and
the Content-Security-Policy lets the page reach its own origin only.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
import threading
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

from aiohttp import web

from harness.engine.controls import ControlRefused
from harness.gameday.session import ConsoleDay, Role

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "font-src 'none'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
"""The reports' policy (nothing from anywhere else), with the page's own script and calls allowed."""
ASSETS = {"app.js": "text/javascript", "app.css": "text/css"}
HOST = "127.0.0.1"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _asset(name: str) -> bytes:
    return resources.files("harness.gameday").joinpath("assets", name).read_bytes()


class ConsoleServer:
    """Serve a :class:`~harness.gameday.session.GameDay` (or a replay) on ``127.0.0.1:port``
    (0: a free one) until :meth:`stop`."""

    def __init__(self, day: ConsoleDay, port: int = 0) -> None:
        self.day = day
        self.port = port
        self.facilitator_token = secrets.token_urlsafe(24)
        self.observer_token = secrets.token_urlsafe(24)
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    @property
    def facilitator_url(self) -> str:
        return f"http://{HOST}:{self.port}/?token={self.facilitator_token}"

    @property
    def observer_url(self) -> str:
        return f"http://{HOST}:{self.port}/?token={self.observer_token}"

    def role(self, token: str | None) -> Role | None:
        if not token:
            return None
        if hmac.compare_digest(token, self.facilitator_token):
            return "facilitator"
        if hmac.compare_digest(token, self.observer_token):
            return "observer"
        return None

    # --- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        app = self.app()
        self._runner = web.AppRunner(app, access_log=None)

        async def setup() -> None:
            assert self._runner is not None
            await self._runner.setup()
            site = web.TCPSite(self._runner, HOST, self.port)
            await site.start()
            self.port = int(self._runner.addresses[0][1])  # the port the OS chose when asked for 0

        self._loop.run_until_complete(setup())
        self._thread = threading.Thread(target=self._loop.run_forever, name="gameday-console", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._runner is None or self._thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
        self._runner = None

    # --- the app ------------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._guard], client_max_size=64 * 1024)
        app.router.add_get("/", self._page)
        app.router.add_get("/assets/{name}", self._assets)
        app.router.add_get("/api/state", self._state)
        for name in ("start", "inject", "hold", "abort", "entry", "pause", "resume", "speed"):
            app.router.add_post(f"/api/{name}", self._command)
        return app

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.host not in (f"{HOST}:{self.port}", f"localhost:{self.port}"):
            return web.Response(status=421, text="this console answers on its loopback address only")
        response = await handler(request)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Cache-Control"] = "no-store"
        return response

    async def _page(self, request: web.Request) -> web.StreamResponse:
        if self.role(request.query.get("token")) is None:
            return web.Response(status=403, text="open the link drill gameday printed (it carries the access token)")
        return web.Response(body=_asset("index.html"), content_type="text/html", charset="utf-8")

    async def _assets(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in ASSETS:
            raise web.HTTPNotFound()
        return web.Response(body=_asset(name), content_type=ASSETS[name], charset="utf-8")

    async def _state(self, request: web.Request) -> web.StreamResponse:
        role = self.role(request.headers.get("X-Drill-Token"))
        if role is None:
            return web.json_response({"error": "no valid token"}, status=403)
        return web.json_response(self.day.state(role))

    async def _command(self, request: web.Request) -> web.StreamResponse:
        role = self.role(request.headers.get("X-Drill-Token"))
        if role != "facilitator":
            return web.json_response({"error": "only the facilitator's link can do this"}, status=403)
        if request.content_type != "application/json":
            return web.json_response({"error": "send JSON"}, status=415)
        try:
            body: Any = await request.json()
        except ValueError:
            return web.json_response({"error": "the body is not JSON"}, status=400)
        if not isinstance(body, dict):
            return web.json_response({"error": "the body must be a JSON object"}, status=400)
        command = request.path.rsplit("/", 1)[1]
        by = str(body.get("by") or "facilitator")[:60]
        day = self.day
        try:
            # The controls journal and take a lock: kept off the event loop's thread.
            match command:
                case "start":
                    await asyncio.to_thread(day.start, body.get("participants", []))
                case "inject":
                    await asyncio.to_thread(day.inject, body.get("fault"), by)
                case "hold":
                    await asyncio.to_thread(day.hold, body.get("seconds"), by)
                case "abort":
                    await asyncio.to_thread(day.abort, by)
                case "pause":
                    await asyncio.to_thread(day.pause)
                case "resume":
                    await asyncio.to_thread(day.resume)
                case "speed":
                    await asyncio.to_thread(day.set_speed, body.get("speed"))
                case _:
                    await asyncio.to_thread(day.record, body.get("participant"), body.get("kind"), body.get("note"))
        except ControlRefused as exc:
            return web.json_response({"error": str(exc)}, status=409)
        return web.json_response({"ok": True})
