"""A small GPU control plane: regions with instance quotas and capacity, and a denial fault hook.

Run: ``python -m targets.cloud_api`` (environment variables and the full contract in
targets/README.md).

Provisioning hands out a *standby* node (a model server that is already running but not in the
gateway's pool) from the region's configured list, after PROVISION_DELAY_MS. A region refuses
with 403 QuotaExceeded when its active instances reach its quota, and with 503
InsufficientCapacity when it has no free standby node (or reached its capacity). The fault hook
forces either refusal for a region (optionally one instance type) until it is removed.

Endpoints:
    GET    /health
    GET    /regions               quota, capacity, usage and free standby nodes per region
    GET    /instances             every active instance (``?all=true``: terminated ones too, with
                                  ``terminated_at``: the instances' lifetimes, for cost figures)
    POST   /instances             {region, instance_type} -> 201 instance | 400 | 403 | 404 | 503
    DELETE /instances/{id}        terminate; a standby node goes back to its region's free list
    GET    /fault                 {"denials": [...]}
    POST   /fault                 {"mode": "quota_exceeded"|"insufficient_capacity", "region",
                                   "instance_type" (optional: all types)}; idempotent
    DELETE /fault                 remove denials matching the optional body {mode, region,
                                   instance_type}; no body removes all; idempotent
    GET    /metrics               Prometheus metrics (docs/metrics.md): provisioning answers per
                                  region, instances, quota and injected denials per region
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import asdict, dataclass, field
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter

from targets.common import (
    ConfigError,
    env_int,
    env_json,
    env_list,
    env_str,
    error_response,
    json_response,
    now_s,
    read_json_object,
    serve,
)
from targets.metrics import GaugeRows, StateCollector, add_metrics_route

MAX_TERMINATED_KEPT = 10_000
DENIAL_MODES = {"quota_exceeded": (403, "QuotaExceeded"), "insufficient_capacity": (503, "InsufficientCapacity")}


@dataclass
class Instance:
    id: str
    region: str
    instance_type: str
    node: str
    url: str | None
    state: str
    created_at: float
    preexisting: bool = False
    terminated_at: float | None = None


@dataclass
class Region:
    name: str
    quota: int
    capacity: int
    standby: list[dict[str, str]]
    free: list[dict[str, str]] = field(default_factory=list)


def parse_regions(raw: Any) -> dict[str, Region]:
    """REGIONS: {"region-a": {"quota": 3, "capacity": 3, "running": ["gpu-a1"],
    "standby": [{"node": "gpu-a3", "url": "http://127.0.0.1:19013"}]}, ...}"""
    if not isinstance(raw, dict) or not raw:
        raise ConfigError('REGIONS must be a JSON object like {"region-a": {"quota": 3, "standby": [...]}}')
    regions: dict[str, Region] = {}
    for name, spec in raw.items():
        if not isinstance(spec, dict):
            raise ConfigError(f"REGIONS.{name} must be an object with quota, capacity, running, standby")
        standby = spec.get("standby", [])
        if not isinstance(standby, list) or not all(
            isinstance(s, dict) and isinstance(s.get("node"), str) and isinstance(s.get("url"), str) for s in standby
        ):
            raise ConfigError(f"REGIONS.{name}.standby must be a list of {{node, url}}")
        quota = spec.get("quota", 0)
        running = spec.get("running", [])
        capacity = spec.get("capacity", len(running) + len(standby))
        if not isinstance(quota, int) or not isinstance(capacity, int):
            raise ConfigError(f"REGIONS.{name}.quota and .capacity must be integers")
        regions[name] = Region(name=name, quota=quota, capacity=capacity, standby=standby, free=list(standby))
    return regions


class CloudApi:
    def __init__(self, regions: dict[str, Region], instance_types: list[str], provision_delay_ms: int,
                 running: dict[str, list[Any]]) -> None:
        self.regions = regions
        self.instance_types = instance_types
        self.provision_delay_s = provision_delay_ms / 1000.0
        self.instances: dict[str, Instance] = {}
        self.terminated: list[Instance] = []  # the record of lifetimes (?all=true): what a drill cost
        self.denials: list[dict[str, Any]] = []
        self._ids = itertools.count(1)
        self._lock = asyncio.Lock()
        self.registry = CollectorRegistry()
        self.provision_requests = Counter(
            "drill_cloud_api_provision_requests", "POST /instances answers, by region and HTTP status",
            ["region", "code"], registry=self.registry,
        )
        self.registry.register(StateCollector([
            ("drill_cloud_api_instances", "Active instances per region", ["region"], self._instance_rows),
            ("drill_cloud_api_quota", "GPU instance quota per region", ["region"], self._quota_rows),
            ("drill_cloud_api_denials", "Injected denials active per region", ["region"], self._denial_rows),
        ]))
        for region_name, nodes in running.items():
            for node in nodes:
                node_id = node if isinstance(node, str) else str(node.get("node"))
                url = None if isinstance(node, str) else node.get("url")
                self._new_instance(region_name, instance_types[0], node_id, url, preexisting=True)

    def _new_instance(self, region: str, instance_type: str, node: str, url: str | None,
                      preexisting: bool = False) -> Instance:
        instance = Instance(
            id=f"i-{next(self._ids):05d}", region=region, instance_type=instance_type, node=node, url=url,
            state="running", created_at=now_s(), preexisting=preexisting,
        )
        self.instances[instance.id] = instance
        return instance

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/health", self.health)
        app.router.add_get("/regions", self.get_regions)
        app.router.add_get("/instances", self.list_instances)
        app.router.add_post("/instances", self.create_instance)
        app.router.add_delete("/instances/{id}", self.delete_instance)
        app.router.add_get("/fault", self.get_fault)
        app.router.add_post("/fault", self.set_fault)
        app.router.add_delete("/fault", self.clear_fault)
        add_metrics_route(app, self.registry)
        return app

    def _instance_rows(self) -> GaugeRows:
        return [({"region": name}, float(self._active_in(name))) for name in self.regions]

    def _quota_rows(self) -> GaugeRows:
        return [({"region": name}, float(r.quota)) for name, r in self.regions.items()]

    def _denial_rows(self) -> GaugeRows:
        return [({"region": name}, float(sum(1 for d in self.denials if d["region"] == name))) for name in self.regions]

    def _active_in(self, region: str) -> int:
        return sum(1 for i in self.instances.values() if i.region == region)

    def _denial(self, region: str, instance_type: str) -> dict[str, Any] | None:
        for denial in self.denials:
            if denial["region"] == region and denial["instance_type"] in (None, instance_type):
                return denial
        return None

    async def health(self, request: web.Request) -> web.Response:
        return json_response({"status": "ok", "regions": sorted(self.regions)})

    async def get_regions(self, request: web.Request) -> web.Response:
        return json_response(
            {
                name: {
                    "quota": r.quota,
                    "capacity": r.capacity,
                    "active": self._active_in(name),
                    "free_standby": [s["node"] for s in r.free],
                }
                for name, r in self.regions.items()
            }
        )

    async def list_instances(self, request: web.Request) -> web.Response:
        if request.query.get("all") in ("1", "true"):
            return json_response([asdict(i) for i in [*self.terminated, *self.instances.values()]])
        return json_response([asdict(i) for i in self.instances.values()])

    async def create_instance(self, request: web.Request) -> web.Response:
        body = await read_json_object(request)
        response = await self._create_instance(body)
        region_name = body.get("region")
        # Only known regions become label values: a caller cannot grow the series without bound.
        region_label = region_name if isinstance(region_name, str) and region_name in self.regions else "unknown"
        self.provision_requests.labels(region_label, str(response.status)).inc()
        return response

    async def _create_instance(self, body: dict[str, Any]) -> web.Response:
        region_name, instance_type = body.get("region"), body.get("instance_type", self.instance_types[0])
        region = self.regions.get(region_name) if isinstance(region_name, str) else None
        if region is None:
            return error_response(404, "UnknownRegion", f"region {region_name!r} is not one of {sorted(self.regions)}")
        if instance_type not in self.instance_types:
            return error_response(
                400, "InvalidInstanceType", f"instance_type {instance_type!r} is not one of {self.instance_types}"
            )
        async with self._lock:
            denial = self._denial(region.name, instance_type)
            if denial is not None:
                status, code = DENIAL_MODES[denial["mode"]]
                return error_response(
                    status, code, f"{region.name} refuses {instance_type} (injected {denial['mode']})"
                )
            active = self._active_in(region.name)
            if active >= region.quota:
                return error_response(
                    403, "QuotaExceeded", f"{region.name}: {active} of {region.quota} GPU instances already in use"
                )
            if active >= region.capacity or not region.free:
                return error_response(
                    503, "InsufficientCapacity", f"{region.name} has no free {instance_type} capacity right now"
                )
            # Reserve before the delay so two concurrent calls can never get the same node.
            standby = region.free.pop(0)
            instance = self._new_instance(region.name, instance_type, standby["node"], standby["url"])
            instance.state = "pending"
        await asyncio.sleep(self.provision_delay_s)
        instance.state = "running"
        return json_response(asdict(instance), status=201)

    async def delete_instance(self, request: web.Request) -> web.Response:
        instance = self.instances.pop(request.match_info["id"], None)
        if instance is None:
            return error_response(404, "InstanceNotFound", f"no instance {request.match_info['id']}")
        region = self.regions.get(instance.region)
        if region is not None and any(s["node"] == instance.node for s in region.standby):
            region.free.append({"node": instance.node, "url": instance.url or ""})
        instance.state = "terminated"
        instance.terminated_at = now_s()
        self.terminated.append(instance)
        del self.terminated[:-MAX_TERMINATED_KEPT]
        return json_response(asdict(instance))

    async def get_fault(self, request: web.Request) -> web.Response:
        return json_response({"denials": self.denials})

    async def set_fault(self, request: web.Request) -> web.Response:
        body = await read_json_object(request)
        mode, region, instance_type = body.get("mode"), body.get("region"), body.get("instance_type")
        if mode not in DENIAL_MODES:
            return error_response(400, "BadRequest", 'mode must be "quota_exceeded" or "insufficient_capacity"')
        if region not in self.regions:
            return error_response(404, "UnknownRegion", f"region {region!r} is not one of {sorted(self.regions)}")
        if instance_type is not None and instance_type not in self.instance_types:
            return error_response(
                400, "InvalidInstanceType", f"instance_type {instance_type!r} is not one of {self.instance_types}"
            )
        denial = {"mode": mode, "region": region, "instance_type": instance_type}
        if denial not in self.denials:
            self.denials.append({**denial})
        return json_response({"denials": self.denials})

    async def clear_fault(self, request: web.Request) -> web.Response:
        body = await read_json_object(request)
        keys = ("mode", "region", "instance_type")
        wanted = {key: body[key] for key in keys if body.get(key) is not None}
        self.denials = [d for d in self.denials if not all(d[key] == value for key, value in wanted.items())]
        return json_response({"denials": self.denials})


def main() -> None:
    raw_regions = env_json("REGIONS", None)
    regions = parse_regions(raw_regions)
    running = {name: spec.get("running", []) for name, spec in raw_regions.items()}
    instance_types = env_list("INSTANCE_TYPES", ["gpu.h100"])
    api = CloudApi(regions, instance_types, env_int("PROVISION_DELAY_MS", 200), running)
    serve(api.app(), env_str("HOST", "0.0.0.0"), env_int("PORT", 8090))


if __name__ == "__main__":
    main()
