"""The harness locustfile: runs inside the Locust child process started by ``LoadRunner``.

It reads two environment variables:

- ``DRILL_LOAD_PLAN``: the plan as JSON (``LoadPlan.to_json()``).
- ``DRILL_LOCUST_SAMPLES``: the CSV file to write, normally ``RUN_DIR/samples/locust.csv``.

Every request Locust reports through ``events.request`` (ours, or those of a user's own
locustfile loaded alongside with ``-f harness_locustfile,theirs``) becomes one row in the sample
schema of ``harness/load/samples.py``. When the plan names a user locustfile this module defines
no User class, so only the user's classes run.

Deliberately imports nothing from ``harness`` except ``samples.py`` (loaded by path): Locust
monkey-patches the process with gevent, and the package's ``__init__`` may grow heavy imports.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gevent
from locust import FastHttpUser, constant, events, task

PLAN_ENV = "DRILL_LOAD_PLAN"
SAMPLES_ENV = "DRILL_LOCUST_SAMPLES"
FLUSH_INTERVAL_S = 0.2  # the live stop condition reads these files: keep them fresh
WRITE_BUFFER_BYTES = 1 << 16


def _load_samples_module() -> Any:
    path = Path(__file__).with_name("samples.py")
    spec = importlib.util.spec_from_file_location("_drill_samples", path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load the sample schema from {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _read_env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(
            f"{name} is not set: this locustfile is meant to be run by drill's LoadRunner "
            "(harness.load.runner), which sets DRILL_LOAD_PLAN and DRILL_LOCUST_SAMPLES"
        )
    return value


_samples = _load_samples_module()
_plan: dict[str, Any] = json.loads(_read_env(PLAN_ENV))
_samples_path = Path(_read_env(SAMPLES_ENV))
_sample_row = _samples.sample_row
# FastHttpUser raises LocustBadStatusCode, HttpUser (requests) HTTPError, for a non-2xx/3xx status.
_BAD_STATUS_ERRORS = frozenset({"LocustBadStatusCode", "HTTPError"})


def error_text(exception: BaseException | None, status: int) -> str:
    """The sample's ``error`` column for what Locust reported (see samples.py)."""
    if exception is None:
        return ""
    # geventhttpclient reports a timeout (and other retryable errors) as RetriesExceeded with
    # the real cause in .original, even with retries off.
    original = getattr(exception, "original", None)
    if isinstance(original, BaseException):
        exception = original
    name = type(exception).__name__
    if isinstance(exception, (TimeoutError, gevent.Timeout)) or "timeout" in name.lower():
        return "timeout"
    if status and name in _BAD_STATUS_ERRORS:
        # The common failure: say it the same way the prober does.
        return f"HTTP {status}"
    if status:
        # A user's locustfile failed a response itself (catch_response): keep its reason.
        return str(exception).replace("\n", " ")[:200] or name
    return name


def _drop_row(row: list[str]) -> None:
    return None


class _SampleWriter:
    """Buffered CSV writer: rows go to a 64 KiB buffer, flushed every FLUSH_INTERVAL_S by a
    greenlet and at quit. No per-request flush or fsync: the cost per request is one writerow."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "w", newline="", buffering=WRITE_BUFFER_BYTES)  # noqa: SIM115
        self._csv = csv.writer(self._file)
        self._csv.writerow(_samples.COLUMNS)
        self._file.flush()
        self.writerow: Callable[[list[str]], object] = self._csv.writerow
        self._flusher = gevent.spawn(self._flush_forever)

    def _flush_forever(self) -> None:
        while True:
            gevent.sleep(FLUSH_INTERVAL_S)
            self.flush()

    def flush(self) -> None:
        if not self._file.closed:
            self._file.flush()

    def close(self) -> None:
        self._flusher.kill(block=False)
        # A request reported after quit (should not happen) is dropped, not a crash.
        self.writerow = _drop_row
        if not self._file.closed:
            self._file.flush()
            self._file.close()


_writer: _SampleWriter | None = None


@events.init.add_listener
def _open_samples(**_: Any) -> None:
    # Opened at init, not import: Locust imports locustfiles before it validates the command
    # line, and the runner takes the file's existence as "Locust is up".
    global _writer
    _writer = _SampleWriter(_samples_path)


@events.request.add_listener
def _record_request(
    response_time: float,
    response: Any = None,
    exception: BaseException | None = None,
    start_time: float | None = None,
    response_length: int = 0,
    **_: Any,
) -> None:
    if _writer is None:
        return
    if start_time is None:
        # Older Locust or a custom event without start_time: derive it from now - latency.
        start_time = time.time() - response_time / 1000.0
    status = int(getattr(response, "status_code", 0) or 0)
    _writer.writerow(
        _sample_row(
            "locust",
            start_time,
            start_time + response_time / 1000.0,
            status,
            response_length or 0,
            getattr(response, "headers", None) if status else None,
            error_text(exception, status),
        )
    )


@events.quitting.add_listener
def _flush_samples(**_: Any) -> None:
    if _writer is not None:
        _writer.flush()


@events.quit.add_listener
def _close_samples(**_: Any) -> None:
    # `quit` fires after runner.quit() has let in-flight requests finish (--stop-timeout);
    # `quitting` fires before, so closing there would drop those last rows.
    if _writer is not None:
        _writer.close()


if not _plan.get("locustfile"):
    _request = _plan["request"]
    _headers: dict[str, str] = dict(_request.get("headers") or {})
    _body: bytes | None = None
    if _request.get("json") is not None:
        _body = json.dumps(_request["json"]).encode()
        if not any(k.lower() == "content-type" for k in _headers):
            _headers["Content-Type"] = "application/json"
    elif _request.get("body") is not None:
        _body = str(_request["body"]).encode()

    class DrillUser(FastHttpUser):
        """Sends the plan's request in a closed loop with no wait between requests."""

        host = _plan["host"]
        wait_time = constant(0)
        network_timeout = float(_plan["timeout_s"])
        connection_timeout = float(_plan["timeout_s"])
        _method = str(_request.get("method", "GET")).upper()
        _path = str(_request.get("path", "/"))

        @task
        def send(self) -> None:
            self.client.request(self._method, self._path, data=_body, headers=_headers)

