"""The autoscaler: keeps the gateway's GPU pool at its target size through the cloud API.

Run: ``python -m targets.autoscaler`` (environment variables in targets/README.md).

Every INTERVAL_MS it reads the gateway's ``GET /admin/pool`` and:
1. removes nodes that have been unhealthy for DEAD_AFTER_S (``DELETE /admin/pool/{node}``) and
   terminates their cloud instance when it has one;
2. while live nodes < target size, provisions an instance (``POST /instances``) trying the
   regions in REGION_ORDER, moving to the next region on 403 QuotaExceeded or 503
   InsufficientCapacity, and registers the standby node it got with the gateway
   (``POST /admin/pool``).

Endpoints: ``GET /health``, ``GET /status`` (loop counters and the recent actions, newest last),
``GET /metrics`` (Prometheus: actions by kind and region, loops, the pool it last saw).
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter

from targets.common import env_float, env_int, env_list, env_str, json_response, now_s, serve
from targets.metrics import GaugeRows, StateCollector, add_metrics_route

DENIAL_STATUSES = (403, 503)


class Autoscaler:
    def __init__(
        self,
        gateway_admin_url: str,
        cloud_api_url: str,
        interval_s: float,
        region_order: list[str],
        instance_type: str,
        dead_after_s: float,
        request_timeout_s: float,
    ) -> None:
        self.gateway_admin_url = gateway_admin_url.rstrip("/")
        self.cloud_api_url = cloud_api_url.rstrip("/")
        self.interval_s = interval_s
        self.region_order = region_order
        self.instance_type = instance_type
        self.dead_after_s = dead_after_s
        self.timeout = aiohttp.ClientTimeout(total=request_timeout_s)
        self.actions: deque[dict[str, Any]] = deque(maxlen=500)
        self.loops = 0
        self.last_loop_at: float | None = None
        self.last_error: str | None = None
        self.last_pool: dict[str, Any] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self.registry = CollectorRegistry()
        self.action_counter = Counter(
            "drill_autoscaler_actions", "Autoscaler actions (removed, provisioned, registered, denied, ...)",
            ["action", "region"], registry=self.registry,
        )
        self.loop_counter = Counter("drill_autoscaler_loops", "Reconcile passes", registry=self.registry)
        self.loop_errors = Counter(
            "drill_autoscaler_loop_errors", "Reconcile passes that failed (gateway or cloud API unreachable)",
            registry=self.registry,
        )
        self.registry.register(StateCollector([
            ("drill_autoscaler_pool_live_nodes", "Healthy GPU nodes in the pool at the last reconcile", [],
             self._live_rows),
        ]))

    def _live_rows(self) -> GaugeRows:
        if self.last_pool is None:
            return []
        return [({}, float(sum(1 for node in self.last_pool.get("nodes", []) if node.get("healthy"))))]

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/health", self.health)
        app.router.add_get("/status", self.status)
        add_metrics_route(app, self.registry)
        app.on_startup.append(self._start)
        app.on_cleanup.append(self._stop)
        return app

    async def _start(self, app: web.Application) -> None:
        self._session = aiohttp.ClientSession(timeout=self.timeout)
        self._task = asyncio.create_task(self._loop())

    async def _stop(self, app: web.Application) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    def _act(self, action: str, detail: str, **extra: Any) -> None:
        self.actions.append({"ts": now_s(), "action": action, "detail": detail, **extra})
        self.action_counter.labels(action, str(extra.get("region") or "none")).inc()

    async def _loop(self) -> None:
        while True:
            try:
                await self.reconcile()
                self.last_error = None
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                # The gateway or cloud API being unreachable is exactly what drills cause: keep going.
                self.last_error = f"{type(exc).__name__}: {exc}"
                self.loop_errors.inc()
            self.loop_counter.inc()
            self.loops += 1
            self.last_loop_at = now_s()
            await asyncio.sleep(self.interval_s)

    async def reconcile(self) -> None:
        """One pass: drop dead nodes, then provision until the pool is back at its target."""
        assert self._session is not None
        async with self._session.get(f"{self.gateway_admin_url}/admin/pool") as reply:
            reply.raise_for_status()
            pool = await reply.json()
        self.last_pool = pool
        now = now_s()
        live = 0
        for node in pool["nodes"]:
            since = node.get("unhealthy_since")
            if not node["healthy"] and since is not None and now - since >= self.dead_after_s:
                await self._remove(node)
            else:
                live += 1
        for _ in range(max(0, int(pool["target_size"]) - live)):
            if not await self._provision():
                break

    async def _remove(self, node: dict[str, Any]) -> None:
        assert self._session is not None
        name = node["name"]
        async with self._session.delete(f"{self.gateway_admin_url}/admin/pool/{name}") as reply:
            await reply.read()
            if reply.status not in (200, 404):
                self._act("remove_failed", f"gateway answered HTTP {reply.status}", node=name)
                return
        self._act("removed", f"unhealthy since {node.get('unhealthy_since')}: {node.get('last_error')}",
                  node=name, region=node.get("region"))
        async with self._session.get(f"{self.cloud_api_url}/instances") as reply:
            instances = await reply.json() if reply.status == 200 else []
        for instance in instances:
            if instance.get("node") == name:
                async with self._session.delete(f"{self.cloud_api_url}/instances/{instance['id']}") as reply:
                    await reply.read()
                self._act("terminated", instance["id"], node=name, region=instance.get("region"))

    async def _provision(self) -> bool:
        """Provision and register one node; False when every region refused."""
        assert self._session is not None
        for region in self.region_order:
            request = {"region": region, "instance_type": self.instance_type}
            async with self._session.post(f"{self.cloud_api_url}/instances", json=request) as reply:
                body = await reply.json(content_type=None)
                status = reply.status
            if status in DENIAL_STATUSES:
                code = body.get("error", {}).get("code", str(status)) if isinstance(body, dict) else str(status)
                self._act("denied", code, region=region)
                continue
            if status != 201:
                self._act("provision_failed", f"cloud API answered HTTP {status}: {body}", region=region)
                return False
            self._act("provisioned", body["id"], node=body["node"], region=region)
            registration = {"name": body["node"], "url": body["url"], "region": region}
            async with self._session.post(f"{self.gateway_admin_url}/admin/pool", json=registration) as reply:
                await reply.read()
                if reply.status not in (200, 201):
                    self._act("register_failed", f"gateway answered HTTP {reply.status}", node=body["node"])
                    return False
            self._act("registered", body["url"], node=body["node"], region=region)
            return True
        self._act("no_capacity", f"every region refused: {', '.join(self.region_order)}")
        return False

    async def health(self, request: web.Request) -> web.Response:
        return json_response({"status": "ok"})

    async def status(self, request: web.Request) -> web.Response:
        return json_response(
            {
                "loops": self.loops,
                "last_loop_at": self.last_loop_at,
                "last_error": self.last_error,
                "region_order": self.region_order,
                "pool": self.last_pool,
                "actions": list(self.actions),
            }
        )


def main() -> None:
    autoscaler = Autoscaler(
        gateway_admin_url=env_str("GATEWAY_ADMIN_URL", "http://127.0.0.1:8080"),
        cloud_api_url=env_str("CLOUD_API_URL", "http://127.0.0.1:8090"),
        interval_s=env_int("INTERVAL_MS", 1000) / 1000.0,
        region_order=env_list("REGION_ORDER", ["region-a", "region-b"]),
        instance_type=env_str("INSTANCE_TYPE", "gpu.h100"),
        dead_after_s=env_float("DEAD_AFTER_S", 3.0),
        request_timeout_s=env_int("REQUEST_TIMEOUT_MS", 3000) / 1000.0,
    )
    serve(autoscaler.app(), env_str("HOST", "0.0.0.0"), env_int("PORT", 8095))


if __name__ == "__main__":
    main()
