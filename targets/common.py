"""Helpers every target program shares: reading the environment, serving an app, JSON replies.

A bad environment variable is a startup error that names the variable and the expected form,
so a stack file mistake shows up in the process log instead of as odd behaviour later.
"""

from __future__ import annotations

import json
import os
import ssl
import sys
import time
from typing import Any

from aiohttp import web

JSON_TYPE = "application/json"


class ConfigError(SystemExit):
    """A bad environment variable; exits with status 2 and the message on stderr."""

    def __init__(self, message: str) -> None:
        print(f"configuration error: {message}", file=sys.stderr, flush=True)
        super().__init__(2)


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer (example: {name}={default})") from None


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number (example: {name}={default})") from None


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}={raw!r} is not a boolean (use true or false)")


def env_json(name: str, default: Any) -> Any:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{name} is not valid JSON ({exc.msg} at column {exc.colno})") from None


def env_list(name: str, default: list[str]) -> list[str]:
    """A comma-separated list; blanks are dropped."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return list(default)
    return [item.strip() for item in raw.split(",") if item.strip()]


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=json.dumps(payload).encode(), status=status, content_type=JSON_TYPE, headers=headers
    )


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    """An error body shaped like the OpenAI and cloud APIs: ``{"error": {"code", "message"}}``."""
    return json_response({"error": {"code": code, "message": message}}, status=status, headers=headers)


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object; raises 400 with a readable message otherwise."""
    if not request.can_read_body:
        return {}
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise web.HTTPBadRequest(
            text=json.dumps({"error": {"code": "BadRequest", "message": "body is not valid JSON"}}),
            content_type=JSON_TYPE,
        ) from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(
            text=json.dumps({"error": {"code": "BadRequest", "message": "body must be a JSON object"}}),
            content_type=JSON_TYPE,
        )
    return body


def now_s() -> float:
    """Wall-clock epoch seconds, the time base every event log and journal uses."""
    return time.time()


def serve(app: web.Application, host: str, port: int, ssl_context: ssl.SSLContext | None = None) -> None:
    """Serve until SIGTERM/SIGINT (aiohttp shuts down cleanly on both), without access logs:
    the hot path must stay lean. With ``ssl_context``, HTTPS only."""
    web.run_app(app, host=host, port=port, access_log=None, print=None, handle_signals=True,
                ssl_context=ssl_context)
