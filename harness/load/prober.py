"""The fixed-rate open-loop probe stream, run as a child process by ``LoadRunner``:

    python -m harness.load.prober --plan JSON --out RUN_DIR/samples/probe.csv

Probe *i* is launched at ``t0 + i / probe_rate_hz`` (t0 = when the prober started), whether or
not earlier probes have answered: a slow or dead target cannot slow the stream down, so every
bucket of time holds its share of probes (5 per 250 ms at 20 Hz). The schedule is computed from
t0, so it does not drift. The stream is bounded: at most ``ceil(rate * duration_s)`` probes,
and the process exits by ``duration_s + timeout_s + EXIT_GRACE_S`` at the latest.

Each row carries the probe's intended send instant (``intended``: wall-clock t0 + i / rate, the
schedule) beside the actual one (``start``), so a probe sent late — the prober's loop or the whole
host stalled — shows its schedule lag instead of hiding in a burst (HdrHistogram's
``recordValueWithExpectedInterval`` and k6's ``dropped_iterations`` are the models; measure's
health step reads them).

Each probe has its own total deadline of ``timeout_s``. Rows (source ``probe``) are written when
the probe ends, so the file is ordered by end time, not start time:

- timeout: status 0, ok 0, error ``timeout``
- no connection / reset: status 0, ok 0, error = the OS error class (``ConnectionRefusedError``)
- non-2xx answer: the status, ok 0, error ``HTTP <status>``
- a stream (the request's JSON has ``"stream": true``): read as it arrives
  (harness/load/streams.py); ok 1 only when ``data: [DONE]`` arrived; a 2xx stream that ended
  without it (clean end, reset, the gateway's error event, or the probe's deadline mid-stream) is
  status 2xx, ok 0, error ``stream cut after N tokens`` (``stream error after N tokens: TYPE`` for
  the error event), ``cut_after_tokens`` N; ``end`` is when the stream ended
- a launch skipped because ``max_in_flight`` probes were already waiting: status 0, ok 0,
  error ``skipped: too many probes in flight`` (start = end = the launch instant, ``intended``
  its due instant)

With ``load.canaries`` (harness/load/canaries.py), the prober first indexes the canary file's
documents through the probe's endpoint (``samples/quality-index.json``), then sends canary
``i % n`` as probe ``i``'s ``input`` and writes one row per scored 2xx answer to
``samples/quality.csv`` (its recall@k against the index; with chat canaries, the prompts are
asked once first and each answer's similarity to that first, primary's answer is its score).

SIGTERM or SIGINT stops launching, abandons probes still in flight (they are not recorded: they
have no outcome), flushes the file and exits 0. A failed write (a full disk, an I/O error) ends
the file where it is, is recorded as a ``write_error`` trouble in ``health.jsonl`` (best effort),
stops the stream and exits ``EXIT_WRITE_ERROR`` (74), which tells the engine without a disk.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import math
import signal
import sys
import time
from pathlib import Path
from typing import IO, cast

import httpx

from harness.load.canaries import QUALITY_COLUMNS, QUALITY_FILE, QUALITY_INDEX_FILE, CanaryProbe, answer_model
from harness.load.plan import LoadPlan
from harness.load.samples import (
    COLUMNS,
    EXIT_WRITE_ERROR,
    NON_STREAM_COLUMNS,
    GuardedFile,
    configure_attribution,
    sample_row,
)
from harness.load.streams import INVALID_PREFIX, StreamTally, check_body, expected_answer, wants_stream
from harness.load.watchdog import report_write_error, say

FLUSH_INTERVAL_S = 0.2  # the live stop condition reads these files: keep them fresh
EXIT_GRACE_S = 5.0
SKIPPED_ERROR = "skipped: too many probes in flight"
SERVED_BY, TIER = COLUMNS.index("served_by"), COLUMNS.index("tier")
INDEX_ATTEMPTS = 5  # the canary documents' index: tries, a second apart, before the schedule starts


def max_in_flight(plan: LoadPlan) -> int:
    """How many probes may wait for an answer at once: a full timeout's worth plus headroom."""
    return math.ceil(plan.probe_rate_hz * plan.timeout_s) + 10


def error_name(exc: BaseException) -> str:
    """The sample's ``error`` text for a probe that got no response."""
    if isinstance(exc, (httpx.TimeoutException, TimeoutError)):
        return "timeout"
    # httpx wraps the OS error (ConnectError <- ConnectionRefusedError); name the root cause so
    # probe and Locust rows say the same thing for the same failure.
    seen: BaseException | None = exc
    deepest_os_error: BaseException | None = None
    for _ in range(10):
        if seen is None:
            break
        if isinstance(seen, OSError):
            deepest_os_error = seen
        seen = seen.__cause__ or seen.__context__
    return type(deepest_os_error or exc).__name__


class Prober:
    """Drives the probe stream for one plan into one CSV file. Use :meth:`run`."""

    def __init__(
        self, plan: LoadPlan, out: IO[str], in_flight_limit: int | None = None, *, record_intended: bool = True,
        quality_out: IO[str] | None = None, index_path: Path | None = None,
    ) -> None:
        """``in_flight_limit`` defaults to :func:`max_in_flight` of the plan. ``record_intended``
        False leaves the ``intended`` column empty (bench/load_overhead.py: its cost, off).
        ``quality_out``/``index_path``: where scored answers and the canary index go (with
        ``plan.canaries``)."""
        if plan.probe_rate_hz <= 0:
            raise ValueError("probe_rate_hz is 0: the prober is disabled for this plan")
        self.plan = plan
        self._out = out
        self._csv = csv.writer(out)
        request = plan.effective_probe_request
        self._method = request.method
        self._url = plan.url(request)
        self._body, self._headers = request.encoded_body()
        self._stream = wants_stream(request.json)
        self._expected = expected_answer(request.json) if self._stream else None  # tokens checked against it
        self._schema = request.answer_schema  # 2xx answers checked against it (None: not checked)
        self._canary = CanaryProbe(plan.canaries, request.json) if plan.canaries is not None else None
        self._quality_out = quality_out
        self._quality_csv = csv.writer(quality_out) if quality_out is not None else None
        self._index_path = index_path
        # A skipped launch asked for a stream too (stream 1), though nothing arrived.
        self._unsent_stream_columns = StreamTally(0.0).columns(0) if self._stream else NON_STREAM_COLUMNS
        self._limit = in_flight_limit if in_flight_limit is not None else max_in_flight(plan)
        self._in_flight: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()
        self._record_intended = record_intended
        self.launched = 0
        self.skipped = 0

    def request_stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """Launch the whole schedule (or until stopped), then wait up to ``timeout_s`` for the
        last probes."""
        plan = self.plan
        self._csv.writerow(COLUMNS)
        self._out.flush()
        limit = self._limit
        interval_s = 1.0 / plan.probe_rate_hz
        limits = httpx.Limits(max_connections=limit, max_keepalive_connections=limit)
        if self._quality_csv is not None:
            self._quality_csv.writerow(QUALITY_COLUMNS)
        flusher = asyncio.create_task(self._flush_forever())
        # trust_env=False: no proxy from the environment may sit between the probes and the stack.
        async with httpx.AsyncClient(timeout=plan.timeout_s, limits=limits, trust_env=False) as client:
            if self._canary is not None:
                await self._build_index(client)
            # The schedule runs on the monotonic clock (it cannot step); ``intended`` is written
            # on the wall clock ``start`` uses, anchored at the same instant.
            t0 = time.monotonic()
            wall_t0 = time.time()
            for i in range(plan.probe_count):
                due = t0 + i * interval_s
                intended_s = wall_t0 + i * interval_s if self._record_intended else None
                delay_s = due - time.monotonic()
                if delay_s > 0:
                    try:
                        await asyncio.wait_for(self._stopping.wait(), timeout=delay_s)
                    except TimeoutError:
                        pass
                if self._stopping.is_set():
                    break
                if len(self._in_flight) >= limit:
                    now = time.time()
                    self._csv.writerow(
                        sample_row("probe", now, now, 0, 0, None, SKIPPED_ERROR, self._unsent_stream_columns,
                                   intended_s)
                    )
                    self.skipped += 1
                    continue
                probe = asyncio.create_task(self._probe(client, intended_s, i))
                self._in_flight.add(probe)
                probe.add_done_callback(self._in_flight.discard)
                self.launched += 1
            if self._in_flight and not self._stopping.is_set():
                await self._drain(asyncio.create_task(self._stopping.wait()))
            for probe in list(self._in_flight):
                probe.cancel()
        flusher.cancel()
        self._out.flush()
        if self._quality_out is not None:
            self._quality_out.flush()

    async def _build_index(self, client: httpx.AsyncClient) -> None:
        """Embed the canary documents once, through the probe's endpoint, before the schedule
        starts (the stack is healthy: its primary builds the index); recorded in the index file."""
        assert self._canary is not None
        record: dict[str, object] = {"built_at": time.time(), "url": self._url, "kind": self._canary.canaries.kind,
                                     "k": self._canary.canaries.k, "documents": len(self._canary.canaries.documents)}
        problem = "not tried"
        for attempt in range(INDEX_ATTEMPTS):
            if attempt:
                await asyncio.sleep(1.0)
            answers: list[bytes] = []
            problem = ""
            try:
                for body in self._canary.index_bodies():
                    response = await client.request(self._method, self._url, content=body, headers=self._headers)
                    record.update(status=response.status_code, served_by=response.headers.get("X-Served-By", ""),
                                  tier=response.headers.get("X-Tier", ""), model=answer_model(response.content))
                    if not 200 <= response.status_code < 300:
                        problem = f"HTTP {response.status_code}"
                        break
                    answers.append(response.content)
            except httpx.HTTPError as exc:
                problem = error_name(exc)
            if not problem:
                problem = self._canary.set_index(answers) or ""
            if not problem:
                break
        if self._canary.index is not None:
            record.update(problem=None, dimensions=int(self._canary.index.shape[1]),
                          vectors=[[round(float(x), 6) for x in row] for row in self._canary.index])
        elif self._canary.references is not None:
            record.update(problem=None, references=list(self._canary.references))
        else:
            record.update(problem=f"{problem} after {INDEX_ATTEMPTS} tries")
            say(f"prober: the canary index could not be built: {record['problem']}; answers stay unscored")
        if self._index_path is not None:
            self._index_path.write_text(json.dumps(record) + "\n", encoding="utf-8")

    async def _drain(self, stop_waiter: asyncio.Task[bool]) -> None:
        """Wait for the probes in flight to end (each ends by its own timeout) unless stopped."""
        deadline = time.monotonic() + self.plan.timeout_s + 1.0
        while self._in_flight and not self._stopping.is_set():
            remaining_s = deadline - time.monotonic()
            if remaining_s <= 0:
                break
            await asyncio.wait(
                [*self._in_flight, stop_waiter],
                timeout=remaining_s,
                return_when=asyncio.FIRST_COMPLETED,
            )
        stop_waiter.cancel()

    async def _probe(self, client: httpx.AsyncClient, intended_s: float | None, number: int = 0) -> None:
        if self._stream:
            await self._probe_stream(client, intended_s)
            return
        canary, body = self._canary.body(number) if self._canary is not None else (0, self._body)
        start_s = time.time()
        try:
            async with asyncio.timeout(self.plan.timeout_s):
                response = await client.request(
                    self._method, self._url, content=body, headers=self._headers
                )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure is an observation, not a crash
            self._csv.writerow(sample_row("probe", start_s, time.time(), 0, 0, None, error_name(exc),
                                          NON_STREAM_COLUMNS, intended_s))
            return
        end_s = time.time()
        status = response.status_code
        error = "" if 200 <= status < 300 else f"HTTP {status}"
        if not error and self._schema is not None:
            invalid = check_body(self._schema, response.content)
            error = "" if invalid is None else INVALID_PREFIX + invalid
        row = sample_row("probe", start_s, end_s, status, len(response.content), response.headers, error,
                         NON_STREAM_COLUMNS, intended_s)
        self._csv.writerow(row)
        if not error and self._canary is not None and self._quality_csv is not None:
            score = self._canary.score(canary, response.content)
            if score is not None:  # served_by and tier as the probe row says them
                self._quality_csv.writerow(score.row(start_s, row[SERVED_BY], row[TIER], self._canary.canaries.k))

    async def _probe_stream(self, client: httpx.AsyncClient, intended_s: float | None) -> None:
        """One streamed probe: the tally follows the body as it arrives; the total deadline, a
        reset or a clean end without [DONE] ends it, and what arrived until then is recorded."""
        start_s = time.time()
        tally = StreamTally(start_s, self._expected, check_chunks=self._schema is not None)
        status = 0
        headers: httpx.Headers | None = None
        body_bytes = 0
        failure: Exception | None = None
        try:
            async with asyncio.timeout(self.plan.timeout_s):
                async with client.stream(
                    self._method, self._url, content=self._body, headers=self._headers
                ) as response:
                    status, headers = response.status_code, response.headers
                    if 200 <= status < 300:
                        async for chunk in response.aiter_bytes():
                            tally.feed_chunk(time.time(), chunk)
                    else:
                        body_bytes = len(await response.aread())
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a timeout or reset mid-stream is a cut stream
            failure = exc
        end_s = time.time()
        tally.end(end_s)
        if status == 0:
            error = error_name(failure) if failure is not None else "no response"
        elif 200 <= status < 300:
            error, body_bytes = tally.error_text(status), tally.body_bytes
        else:
            error = f"HTTP {status}"
        self._csv.writerow(
            sample_row("probe", start_s, end_s, status, body_bytes, headers, error, tally.columns(status),
                       intended_s, tally.splice_columns())
        )

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_INTERVAL_S)
            self._out.flush()
            if self._quality_out is not None:
                self._quality_out.flush()


async def _main(plan: LoadPlan, out_path: Path) -> int:
    out_path.parent.mkdir(parents=True, exist_ok=True)
    stop: list[Prober] = []

    def on_write_error(exc: OSError, last_flushed_s: float) -> None:
        # A full disk or an I/O error: say where the file ends, stop probing, exit EXIT_WRITE_ERROR.
        report_write_error(out_path, exc, last_flushed_s)
        for prober in stop:
            prober.request_stop()

    out = GuardedFile(open(out_path, "w", newline="", buffering=1 << 16), on_write_error)  # noqa: SIM115
    quality = None
    if plan.canaries is not None:
        quality = GuardedFile(open(out_path.parent / QUALITY_FILE, "w", newline=""), on_write_error)  # noqa: SIM115
    try:
        prober = Prober(plan, cast("IO[str]", out), quality_out=cast("IO[str] | None", quality),
                        index_path=out_path.parent / QUALITY_INDEX_FILE)
        stop.append(prober)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, prober.request_stop)
        hard_limit_s = plan.duration_s + plan.timeout_s + EXIT_GRACE_S
        try:
            await asyncio.wait_for(prober.run(), timeout=hard_limit_s)
        except TimeoutError:
            say(f"prober: hard time limit {hard_limit_s:.1f}s reached, exiting")
    finally:
        out.close()
        if quality is not None:
            quality.close()
    say(f"prober: launched={prober.launched} skipped={prober.skipped}")  # prober.log may be on the full disk
    return EXIT_WRITE_ERROR if out.failed is not None else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.load.prober", description=__doc__)
    parser.add_argument("--plan", required=True, help="the LoadPlan as JSON (LoadPlan.to_json())")
    parser.add_argument("--out", required=True, type=Path, help="CSV file to write (probe.csv)")
    args = parser.parse_args(argv)
    plan = LoadPlan.from_json(args.plan)
    configure_attribution(plan.attribution)
    return asyncio.run(_main(plan, args.out))


if __name__ == "__main__":
    sys.exit(main())
