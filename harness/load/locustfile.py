"""The harness locustfile: runs inside the Locust child process started by ``LoadRunner``.

It reads two environment variables:

- ``DRILL_LOAD_PLAN``: the plan as JSON (``LoadPlan.to_json()``).
- ``DRILL_LOCUST_SAMPLES``: the CSV file to write, normally ``RUN_DIR/samples/locust.csv``.
- ``DRILL_LOCUST_WORKERS`` (master only): the JSON file for each worker's clock offset.
- ``DRILL_WORKER_ID`` (worker only): the name this worker's samples carry (default host-pid).

Distributed (Locust's own ``--master``/``--worker`` mode): a worker writes no file. It measures
its clock against the master once it is connected (a ping-pong over Locust's custom messages:
offset = (t_send + t_recv) / 2 - t_master on the worker's clock, uncertainty = rtt / 2, best of
:data:`PING_COUNT`), puts every sample on the master's clock, and ships its rows to the master
every :data:`FLUSH_INTERVAL_S` (and the rest with its final stats report at quit). The master
writes all of them into its one sample file with a ``worker`` column, so the run has one
timeline whatever machine a request came from.

Every request Locust reports through ``events.request`` (ours, or those of a user's own
locustfile loaded alongside with ``-f harness_locustfile,theirs``) becomes one row in the sample
schema of ``harness/load/samples.py``. When the plan names a user locustfile this module defines
no User class, so only the user's classes run.

When the plan's request JSON has ``"stream": true`` the user is a ``DrillStreamUser`` (Locust's
``HttpUser``) that reads each answer as it arrives (``streams.py``, as the prober does) and reports
it to Locust once the stream ended: a success only when ``data: [DONE]`` arrived, a failure
``stream cut after N tokens`` otherwise, with the whole stream as its response time. Its row
carries the stream columns; requests of a user's own locustfile are recorded as not streamed.

Deliberately imports nothing from ``harness`` except ``samples.py`` and ``streams.py`` (loaded by
path): Locust monkey-patches the process with gevent, and the package's ``__init__`` may grow
heavy imports. Two exceptions, imported only when they act: a failed sample write (a full disk)
and a stretch of CPU above Locust's own warning bound are recorded through
``harness.load.watchdog`` into ``health.jsonl`` (standard library only).
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import gevent
import gevent.queue
from locust import FastHttpUser, HttpUser, constant, constant_throughput, events, task
from locust.clients import HttpSession
from locust.env import Environment
from locust.event import EventHook
from locust.rpc.protocol import Message
from locust.runners import MasterRunner, WorkerRunner

if TYPE_CHECKING:  # for the type checker only: at run time streams.py is loaded by path below
    from harness.load.streams import ExpectedAnswer, StreamTally
    from harness.load.watchdog import Stretch

PLAN_ENV = "DRILL_LOAD_PLAN"
SAMPLES_ENV = "DRILL_LOCUST_SAMPLES"
WORKERS_ENV = "DRILL_LOCUST_WORKERS"
WORKER_ID_ENV = "DRILL_WORKER_ID"
PING_COUNT = 5
PONG_TIMEOUT_S = 5.0
FLUSH_INTERVAL_S = 0.2  # the live stop condition reads these files: keep them fresh
WRITE_BUFFER_BYTES = 1 << 16


def _load_sibling(file_name: str, module_name: str) -> Any:
    """A module of this folder loaded by path, so that nothing of the harness package is imported."""
    path = Path(__file__).with_name(file_name)
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_Listener = TypeVar("_Listener", bound=Callable[..., None])


def _on(hook: EventHook) -> Callable[[_Listener], _Listener]:
    """``@_on(events.request)``: Locust's ``add_listener`` as a typed decorator."""

    def register(listener: _Listener) -> _Listener:
        hook.add_listener(listener)  # type: ignore[no-untyped-call]  # Locust leaves it unannotated
        return listener

    return register


def _read_env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(
            f"{name} is not set: this locustfile is meant to be run by drill's LoadRunner "
            "(harness.load.runner), which sets DRILL_LOAD_PLAN and DRILL_LOCUST_SAMPLES"
        )
    return value


_samples = _load_sibling("samples.py", "_drill_samples")
_streams = _load_sibling("streams.py", "_drill_streams")
_plan: dict[str, Any] = json.loads(_read_env(PLAN_ENV))
_sample_row = _samples.sample_row
_samples.configure_attribution(_plan.get("attribution"))  # load.attribution: tiers from a gateway's header
_StreamTally: type[StreamTally] = _streams.StreamTally
# The request's context carries the stream's tally from the user to the request listener.
STREAM_CONTEXT_KEY = "drill_stream"
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

    def __init__(self, path: Path, extra_columns: list[str] | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        raw = open(path, "w", newline="", buffering=WRITE_BUFFER_BYTES)  # noqa: SIM115
        self._file = _samples.GuardedFile(raw, self._write_failed)
        self._csv = csv.writer(self._file)
        self._csv.writerow([*_samples.COLUMNS, *(extra_columns or [])])
        self._file.flush()
        self.writerow: Callable[[list[str]], object] = self._csv.writerow
        self._flusher = gevent.spawn(self._flush_forever)

    def _flush_forever(self) -> None:
        while True:
            gevent.sleep(FLUSH_INTERVAL_S)
            self.flush()

    def _write_failed(self, exc: OSError, last_flushed_s: float) -> None:
        """A full disk or an I/O error: the file ends here. Say so (stderr, ``health.jsonl``, best
        effort) and exit EXIT_WRITE_ERROR at once, which tells the engine without a disk: a drill
        must not go on and be judged on samples that are no longer written."""
        from harness.load.watchdog import report_write_error

        try:
            report_write_error(self.path, exc, last_flushed_s)
        finally:
            os._exit(_samples.EXIT_WRITE_ERROR)

    def flush(self) -> None:
        if not self._file.closed:
            self._file.flush()

    def close(self) -> None:
        self._flusher.kill(block=False)
        # A request reported after quit (should not happen) is dropped, not a crash.
        self.writerow = _drop_row
        if not self._file.closed:
            self._file.close()


class _WorkerShipper:
    """A worker's sample "writer": keeps rows in memory and ships them to the master.

    Rows recorded before the clock is measured are on the worker's own clock; they are held
    apart and shifted once the offset is known, so every row shipped is on the master's clock.
    """

    def __init__(self, runner: WorkerRunner, worker_id: str) -> None:
        self.runner = runner
        self.worker_id = worker_id
        self.rows: list[list[str]] = []
        self.unmeasured: list[list[str]] = []
        self.clock: dict[str, Any] | None = None
        self.writerow: Callable[[list[str]], object] = self.unmeasured.append
        self._pongs: gevent.queue.Queue[dict[str, Any]] = gevent.queue.Queue()
        runner.register_message("drill_pong", self._on_pong)
        self._clock_greenlet = gevent.spawn(self._measure_clock)
        self._flusher = gevent.spawn(self._ship_forever)

    def _on_pong(self, environment: Environment, msg: Message, **_: Any) -> None:
        self._pongs.put(msg.data)

    def _measure_clock(self) -> None:
        best: dict[str, Any] | None = None
        for _ in range(PING_COUNT):
            t_send = time.time()
            self.runner.send_message("drill_ping", {"worker": self.worker_id, "t_send": t_send})
            try:
                pong = self._pongs.get(timeout=PONG_TIMEOUT_S)
            except gevent.queue.Empty:
                break
            t_recv = time.time()
            rtt_s = t_recv - t_send
            if best is None or rtt_s < best["rtt_s"]:
                best = {
                    "offset_s": (t_send + t_recv) / 2.0 - float(pong["t_master"]),
                    "uncertainty_s": rtt_s / 2.0,
                    "rtt_s": rtt_s,
                }
        if best is None:
            # No answer: the rows stay on the worker's clock, and the record says so.
            best = {"offset_s": 0.0, "uncertainty_s": PONG_TIMEOUT_S, "rtt_s": None}
        self.clock = best | {"worker": self.worker_id, "host": socket.gethostname(),
                             "pings": PING_COUNT, "measured": best["rtt_s"] is not None}
        self._apply_clock(float(best["offset_s"]))
        self.runner.send_message("drill_clock", self.clock)

    def _apply_clock(self, offset_s: float) -> None:
        global _clock_shift_s
        _clock_shift_s = offset_s
        for row in self.unmeasured:
            start, end = float(row[1]) - offset_s, float(row[2]) - offset_s
            row[1], row[2] = f"{start:.6f}", f"{end:.6f}"
        self.rows.extend(self.unmeasured)
        self.unmeasured.clear()
        self.writerow = self.rows.append

    def drain(self) -> list[list[str]]:
        rows, self.rows = self.rows, []
        self.writerow = self.rows.append if self.clock is not None else self.unmeasured.append
        return rows

    def _ship_forever(self) -> None:
        while True:
            gevent.sleep(FLUSH_INTERVAL_S)
            self.ship()

    def ship(self) -> None:
        if self.clock is None or not self.rows:
            return
        self.runner.send_message("drill_samples", {"worker": self.worker_id, "rows": self.drain()})

    def flush(self) -> None:
        self.ship()

    def close(self) -> None:
        self._flusher.kill(block=False)
        self._clock_greenlet.kill(block=False)


class _MasterCollector:
    """The master's side: answers pings, records each worker's clock, and writes every worker's
    rows (already on the master's clock) into the one sample file with a ``worker`` column."""

    def __init__(self, runner: MasterRunner, path: Path, workers_path: Path | None) -> None:
        self.runner = runner
        self.writer = _SampleWriter(path, extra_columns=["worker"])
        self.workers_path = workers_path
        self.workers: dict[str, dict[str, Any]] = {}
        self.writerow: Callable[[list[str]], object] = _drop_row  # the master runs no users
        runner.register_message("drill_ping", self._on_ping)
        runner.register_message("drill_clock", self._on_clock)
        runner.register_message("drill_samples", self._on_samples)
        _on(events.worker_report)(self._on_report)

    def _on_ping(self, environment: Environment, msg: Message, **_: Any) -> None:
        self.runner.send_message("drill_pong", {"t_master": time.time()}, client_id=msg.node_id)

    def _on_clock(self, environment: Environment, msg: Message, **_: Any) -> None:
        clock = dict(msg.data)
        self.workers.setdefault(str(clock["worker"]), {"rows": 0}).update(clock)
        self.save_workers()

    def _on_samples(self, environment: Environment, msg: Message, **_: Any) -> None:
        self.write(msg.data)

    def _on_report(self, client_id: str, data: dict[str, Any], **_: Any) -> None:
        if data.get("drill_samples"):
            self.write(data["drill_samples"])

    def write(self, batch: dict[str, Any]) -> None:
        worker = str(batch["worker"])
        rows = batch["rows"]
        writerow = self.writer.writerow
        for row in rows:
            writerow([*row, worker])
        self.workers.setdefault(worker, {"rows": 0})["rows"] += len(rows)

    def save_workers(self) -> None:
        if self.workers_path is not None:
            tmp = self.workers_path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"schema": "drill.locust-workers/v1", "workers": self.workers}, indent=1))
            tmp.replace(self.workers_path)

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
        self.save_workers()


_writer: _SampleWriter | _WorkerShipper | _MasterCollector | None = None
_clock_shift_s = 0.0
RUN_DIR_ENV = "DRILL_RUN_DIR"
CPU_BOUND_ENV = "DRILL_LOCUST_CPU_BOUND_PERCENT"
# Locust's own warning bound (locust.runners.CPU_WARNING_THRESHOLD); the environment may lower it
# (the suite does, so a spinning user is seen above it even on a machine busy with other tests).
CPU_BOUND_PERCENT = float(os.environ.get(CPU_BOUND_ENV) or 90.0)
CPU_CHECK_S = 1.0


def _watch_cpu(run_dir: Path) -> None:
    """This Locust process's CPU, once a second (psutil, as Locust's own 10 s monitor). A stretch
    above :data:`CPU_BOUND_PERCENT` is one ``worker_cpu`` trouble, written when it ends (or at
    quit); its magnitude is the longest the event loop woke late meanwhile (the 1 s sleep's
    overshoot): how late this process's requests may have been sent and stamped."""
    import psutil  # type: ignore[import-untyped]  # a Locust dependency, without stubs

    from harness.load.watchdog import Above

    process = psutil.Process()
    process.cpu_percent(None)
    above = Above(CPU_BOUND_PERCENT, CPU_CHECK_S)
    try:
        while True:
            before = time.monotonic()
            gevent.sleep(CPU_CHECK_S)
            lag_s = max(0.0, time.monotonic() - before - CPU_CHECK_S)
            ended = above.add(time.time(), process.cpu_percent(None), lag_s)
            if ended is not None:
                _cpu_trouble(run_dir, ended)
    finally:  # killed at quit: a stretch still open is written too
        ended = above.close()
        if ended is not None:
            _cpu_trouble(run_dir, ended)


def _cpu_trouble(run_dir: Path, stretch: Stretch) -> None:
    from harness.load.watchdog import Trouble, record

    who = os.environ.get(WORKER_ID_ENV) or "locust"
    length_s = stretch.end_s - stretch.start_s
    record(run_dir, Trouble("worker_cpu", stretch.start_s, stretch.end_s, stretch.lag_s,
                            f"Locust {who} above {CPU_BOUND_PERCENT:g} % CPU for {length_s:.0f} s "
                            f"(peak {stretch.peak:.0f} %, its loop up to {stretch.lag_s * 1000:.0f} ms late)"))


_cpu_watch: gevent.Greenlet[[Path], None] | None = None


@_on(events.init)
def _open_samples(environment: Environment, **_: Any) -> None:
    # Opened at init, not import: Locust imports locustfiles before it validates the command
    # line, and the runner takes the file's existence as "Locust is up".
    global _writer, _cpu_watch
    runner = environment.runner
    run_dir = os.environ.get(RUN_DIR_ENV)
    if run_dir and not isinstance(runner, MasterRunner):  # the master runs no users
        _cpu_watch = gevent.spawn(_watch_cpu, Path(run_dir))
    if isinstance(runner, WorkerRunner):
        worker_id = os.environ.get(WORKER_ID_ENV) or f"{socket.gethostname()}-{os.getpid()}"
        _writer = _WorkerShipper(runner, worker_id)
        return
    samples_path = Path(_read_env(SAMPLES_ENV))
    if isinstance(runner, MasterRunner):
        workers = os.environ.get(WORKERS_ENV)
        _writer = _MasterCollector(runner, samples_path, Path(workers) if workers else None)
        return
    _writer = _SampleWriter(samples_path)


@_on(events.report_to_master)
def _attach_samples(client_id: str, data: dict[str, Any], **_: Any) -> None:
    # The final stats report at quit carries whatever the shipper has not sent yet.
    if isinstance(_writer, _WorkerShipper) and _writer.clock is not None and _writer.rows:
        data["drill_samples"] = {"worker": _writer.worker_id, "rows": _writer.drain()}


@_on(events.request)
def _record_request(
    response_time: float,
    response: Any = None,
    exception: BaseException | None = None,
    start_time: float | None = None,
    response_length: int = 0,
    context: dict[str, Any] | None = None,
    **_: Any,
) -> None:
    if _writer is None:
        return
    if start_time is None:
        # Older Locust or a custom event without start_time: derive it from now - latency.
        start_time = time.time() - response_time / 1000.0
    status = int(getattr(response, "status_code", 0) or 0)
    start_time -= _clock_shift_s  # 0 unless this is a worker whose clock has been measured
    stream = context.get(STREAM_CONTEXT_KEY) if context else None
    if isinstance(stream, _StreamTally):
        answered = 200 <= status < 300
        error = stream.error_text(status) if answered else error_text(exception, status)
        stream_columns = stream.columns(status)
        splice_columns = stream.splice_columns()
    else:
        error = error_text(exception, status)
        stream_columns = _samples.NON_STREAM_COLUMNS
        splice_columns = _samples.NO_SPLICE_COLUMNS
    _writer.writerow(
        _sample_row(
            "locust",
            start_time,
            start_time + response_time / 1000.0,
            status,
            response_length or 0,
            getattr(response, "headers", None) if status else None,
            error,
            stream_columns,
            None,
            splice_columns,
        )
    )


def stream_once(
    client: HttpSession, method: str, path: str, body: str | None, headers: dict[str, str], timeout_s: float,
    expected: ExpectedAnswer | None = None,
) -> None:
    """One streamed request through Locust's own client, reported once, when the stream ended:
    Locust's stats count it as a success only when ``[DONE]`` arrived (a cut stream fails with the
    sample's error text), and its response time is the whole stream. ``timeout_s`` bounds the
    connect and each read, and the whole stream from the send on (as the prober's deadline).
    ``expected``: the answer to check the tokens against (``streams.expected_answer``)."""
    tally = _streams.StreamTally(time.time(), expected)
    with client.request(
        method, path, data=body, headers=headers, stream=True, catch_response=True,
        timeout=(timeout_s, timeout_s), context={STREAM_CONTEXT_KEY: tally},
    ) as response:
        # Locust's request_meta is what its request event reports at the end of this block.
        meta = cast("dict[str, Any]", response.request_meta)
        start_s = float(meta["start_time"])
        tally.sent_s = start_s
        status = int(response.status_code or 0)
        if status == 0:
            return  # no answer: Locust reports its connection error or timeout
        if not 200 <= status < 300:
            try:  # read the (small) error body: it frees the connection for the next request
                meta["response_length"] = len(response.content or b"")
            except Exception:  # noqa: BLE001, S110 - the status is the observation; a reset body adds nothing
                pass
            return  # Locust fails it on its status
        try:
            with gevent.Timeout(max(timeout_s - (time.time() - start_s), 0.0), False):
                for chunk in response.iter_content(chunk_size=None):
                    tally.feed_chunk(time.time(), chunk)
        except Exception:  # noqa: BLE001, S110 - a reset mid-stream is a cut stream, recorded below
            pass
        finally:
            response.close()
        end_s = time.time()
        tally.end(end_s)
        meta["response_time"] = (end_s - start_s) * 1000.0
        meta["response_length"] = tally.body_bytes
        error = tally.error_text(status)
        if error:
            response.failure(error)
        else:
            response.success()


@_on(events.quitting)
def _flush_samples(**_: Any) -> None:
    if _writer is not None:
        _writer.flush()


@_on(events.quit)
def _close_samples(**_: Any) -> None:
    # `quit` fires after runner.quit() has let in-flight requests finish (--stop-timeout);
    # `quitting` fires before, so closing there would drop those last rows.
    if _writer is not None:
        _writer.close()
    if _cpu_watch is not None:
        _cpu_watch.kill(block=True, timeout=1.0)


if not _plan.get("locustfile"):
    _request = _plan["request"]
    _headers: dict[str, str] = dict(_request.get("headers") or {})
    _body: str | None = None
    if _request.get("json") is not None:
        _body = json.dumps(_request["json"])
        if not any(k.lower() == "content-type" for k in _headers):
            _headers["Content-Type"] = "application/json"
    elif _request.get("body") is not None:
        _body = str(_request["body"])

    # load.pace_hz: at most that many requests per second per user; unset, no wait at all.
    _wait_time = constant_throughput(float(_plan["pace_hz"])) if _plan.get("pace_hz") else constant(0)

    if _streams.wants_stream(_request.get("json")):
        _expected = _streams.expected_answer(_request.get("json"))

        class DrillStreamUser(HttpUser):
            """Sends the plan's streamed request in a closed loop (paced by ``pace_hz``), reading each
            answer as it arrives. requests, not FastHttpUser: geventhttpclient's iter_content
            reads fixed-size blocks (a token would be seen only once 1 KiB had arrived), while
            requests yields each HTTP chunk as it arrives; a stream's length dwarfs the client's
            own cost per request."""

            host = _plan["host"]
            wait_time = _wait_time
            _method = str(_request.get("method", "GET")).upper()
            _path = str(_request.get("path", "/"))
            _timeout_s = float(_plan["timeout_s"])

            def on_start(self) -> None:
                # No proxy from the environment may sit between the users and the stack.
                self.client.trust_env = False

            @task
            def send(self) -> None:
                stream_once(self.client, self._method, self._path, _body, _headers, self._timeout_s, _expected)

    else:

        class DrillUser(FastHttpUser):
            """Sends the plan's request in a closed loop, paced by ``pace_hz`` or with no wait."""

            host = _plan["host"]
            wait_time = _wait_time
            network_timeout = float(_plan["timeout_s"])
            connection_timeout = float(_plan["timeout_s"])
            _method = str(_request.get("method", "GET")).upper()
            _path = str(_request.get("path", "/"))

            @task
            def send(self) -> None:
                self.client.request(self._method, self._path, data=_body, headers=_headers)
