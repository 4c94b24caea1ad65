"""A Prometheus server for the ``local`` runtime: Debian's ``prometheus`` binary, run by the stack.

A stack file asks for one with a ``prometheus:`` block::

    prometheus: {listen: 127.0.0.1:18099, scrape_interval: 1s}

The runtime starts it after every process is healthy, with its configuration and its TSDB in
the stack's log folder (a drill's run directory, ``stack-logs/prometheus/``), scraping every
process that has a ``port`` at ``/metrics`` (or the ones ``scrape`` names), and stops it with the
stack. It listens on 127.0.0.1 only. ``scripts/prometheus-setup`` installs the binary.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

import httpx
import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from harness.errors import StackError
from harness.scenario.units import Duration

__all__ = ["PrometheusSpec", "ScrapeTarget", "discard_data", "prometheus_binary", "scrape_config", "start_prometheus"]

READY_TIMEOUT_S = 30.0
# A drill lasts minutes; a day keeps every run's data with room to spare and bounds the disk use
# of a stack left up with `drill stack up`.
RETENTION = "1d"


class PrometheusSpec(BaseModel):
    """The stack file's ``prometheus:`` block."""

    model_config = ConfigDict(extra="forbid")

    listen: str = "127.0.0.1:9090"
    # Short, so that stop_when PromQL conditions react within a second or two (docs/metrics.md).
    scrape_interval: Duration = Field(default=1.0, ge=0.1, le=60)
    scrape: list[str] | None = None  # process names; default: every process with a port
    binary: str | None = None  # default: `prometheus` on PATH

    @field_validator("listen")
    @classmethod
    def _loopback(cls, value: str) -> str:
        host, _, port = value.rpartition(":")
        if host not in ("127.0.0.1", "localhost") or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{value!r} must be 127.0.0.1:PORT (the local runtime only listens on loopback)")
        return value

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])

    @property
    def url(self) -> str:
        return f"http://{self.listen}"


@dataclass(frozen=True)
class ScrapeTarget:
    """One process to scrape: its name (the ``service`` label) and its 127.0.0.1 port."""

    service: str
    port: int
    labels: dict[str, str]


class ChildLike(Protocol):
    def alive(self) -> bool: ...


Child = TypeVar("Child", bound=ChildLike)


def prometheus_binary(spec: PrometheusSpec) -> str:
    if spec.binary:
        return spec.binary
    found = shutil.which("prometheus")
    if found is None:
        raise StackError(
            "the stack asks for Prometheus (prometheus: in the stack file) but no `prometheus` binary "
            "is on PATH: run scripts/prometheus-setup (Debian's prometheus package)"
        )
    return found


def scrape_config(targets: Sequence[ScrapeTarget], scrape_interval_s: float) -> dict[str, object]:
    """prometheus.yml: one job, one static target per process, labelled with its service name."""
    interval = f"{max(int(round(scrape_interval_s * 1000)), 100)}ms"
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval,
                   # a scrape may take at most the interval (Prometheus refuses a longer timeout)
                   "scrape_timeout": interval},
        "scrape_configs": [{
            "job_name": "drill-stack",
            "metrics_path": "/metrics",
            "static_configs": [
                {"targets": [f"127.0.0.1:{t.port}"], "labels": {"service": t.service, **t.labels}}
                for t in targets
            ],
        }],
    }


def start_prometheus(
    spec: PrometheusSpec,
    targets: Sequence[ScrapeTarget],
    work_dir: Path,
    popen: Callable[[str, list[str], dict[str, str], Path], Child],
) -> Child:
    """Write the configuration, start the server through ``popen`` (the runtime's process
    starter: own process group, log file) and wait until it is ready. StackError otherwise."""
    discard_data(work_dir)  # a stack started again on the same folder starts with no old series
    work_dir.mkdir(parents=True, exist_ok=True)
    config_path = work_dir / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(scrape_config(targets, spec.scrape_interval), sort_keys=False),
                           encoding="utf-8")
    argv = [
        prometheus_binary(spec),
        f"--config.file={config_path}",
        f"--storage.tsdb.path={work_dir / 'data'}",
        f"--storage.tsdb.retention.time={RETENTION}",
        f"--web.listen-address={spec.listen}",
    ]
    child = popen("prometheus", argv, dict(os.environ), work_dir)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        if not child.alive():
            raise StackError(f"prometheus exited at start; see its log in {work_dir.parent / 'prometheus.log'}")
        try:
            if httpx.get(spec.url + "/-/ready", timeout=1.0, trust_env=False).status_code == 200:
                return child
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise StackError(f"prometheus did not become ready on {spec.url} within {READY_TIMEOUT_S:g} s")
        time.sleep(0.1)


def discard_data(work_dir: Path) -> None:
    """Delete the TSDB once the server is stopped: what a drill keeps of it is in the run's
    metrics.json, and megabytes of chunks and WAL would otherwise ride along in every report's
    file list and every evidence pack."""
    shutil.rmtree(work_dir / "data", ignore_errors=True)
