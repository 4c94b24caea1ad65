"""A gateway's own record served as the stack's event log, the way the reference gateway serves
``/admin/events``: a scenario names it as ``stack.events_url`` and the drill fetches it into the
run's ``stack-events.json`` at the end, so results set the gateway's failover / failback beside
drill's and name a cooldown's end as the cause of the incident it starts (docs/gateways.md).

A process of the gateway stacks (``litellm-stack.yaml``, ``portkey-stack.yaml``): it reads the
record the gateway's launcher keeps in the stack's log folder (``$DRILL_STACK_LOG_DIR``: LiteLLM's
callbacks, Portkey's console log stream) at each request, through the one reader of those files
(``records.py``). Environment: ``HOST`` (127.0.0.1), ``PORT``.

    GET /events?since=EPOCH_S  -> [{"ts", "event", ...}]   (every event when ``since`` is absent)
    GET /health                -> 200
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

from aiohttp import web

from targets.gateways import records
from targets.gateways.common import LOG_DIR_ENV, fail


def events_since(stack_logs: Path, since: float | None) -> list[dict[str, object]]:
    """The record's stack events from ``since`` on ([] while the gateway has logged nothing)."""
    record = records.read_logs(stack_logs)
    if record is None:
        return []
    return [e for e in records.stack_events(record) if since is None or float(e["ts"]) >= since]


def app(stack_logs: Path) -> web.Application:
    async def events(request: web.Request) -> web.Response:
        since: float | None = None
        if "since" in request.query:
            try:
                since = float(request.query["since"])
            except ValueError:
                since = math.nan
            if not math.isfinite(since):
                return web.json_response({"error": "since: expected epoch seconds"}, status=400)
        return web.json_response(events_since(stack_logs, since))

    async def health(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    application = web.Application()
    application.router.add_get("/events", events)
    application.router.add_get("/health", health)
    return application


def main() -> int:
    folder = os.environ.get(LOG_DIR_ENV)
    if not folder:
        return fail(f"{LOG_DIR_ENV} is not set: run me as a process of a local stack (the gateway's record is there)")
    web.run_app(app(Path(folder)), host=os.environ.get("HOST", "127.0.0.1"), port=int(os.environ.get("PORT", "4001")),
                print=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
