"""The load room with real parts: a real aiohttp server on 127.0.0.1, real Locust and the real
prober in child processes, real sample files. Pure logic (plan validation, the tail, error
names) is tested directly."""

from __future__ import annotations

import asyncio
import csv
import math
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from aiohttp import web

from harness.errors import ScenarioError
from harness.load import LoadError, LoadPlan, LoadRunner, RequestSpec, SampleTail
from harness.load.prober import SKIPPED_ERROR, Prober, error_name
from harness.load.samples import COLUMNS
from harness.testing import free_port, wait_http

ROUTING_HEADERS = {"X-Served-By": "gpu-a1", "X-Tier": "gpu", "X-Region": "region-a", "X-Degraded": "true"}
SLOW_REPLY_S = 3.0


def _build_app() -> web.Application:
    async def ok(_: web.Request) -> web.Response:
        return web.json_response({"ok": True}, headers=ROUTING_HEADERS)

    async def unavailable(_: web.Request) -> web.Response:
        return web.Response(status=503, text="no capacity", headers={"X-Served-By": "gateway"})

    async def slow(_: web.Request) -> web.Response:
        await asyncio.sleep(SLOW_REPLY_S)
        return web.Response(text="late")

    async def own(_: web.Request) -> web.Response:
        return web.Response(text="mine", headers={"X-Served-By": "own-route", "X-Tier": "cpu"})

    app = web.Application()
    app.router.add_route("*", "/ok", ok)
    app.router.add_get("/unavailable", unavailable)
    app.router.add_get("/slow", slow)
    app.router.add_get("/own", own)
    return app


@pytest.fixture(scope="module")
def target() -> Iterator[str]:
    """A real aiohttp server on a free loopback port, in a thread with its own event loop."""
    port = free_port()
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(_build_app(), access_log=None)

    async def start() -> None:
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=10)
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/ok")
    try:
        yield url
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == COLUMNS
        return list(reader)


def _assert_gone(pid: int | None) -> None:
    assert pid is not None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def _plan(host: str, path: str, **overrides: object) -> LoadPlan:
    fields: dict[str, object] = {
        "host": host,
        "users": 2,
        "spawn_rate": 10,
        "duration_s": 2.0,
        "request": RequestSpec(method="GET", path=path),
        "timeout_s": 2.0,
        "probe_rate_hz": 20,
    }
    fields.update(overrides)
    return LoadPlan(**fields)  # type: ignore[arg-type]


def _run(plan: LoadPlan, run_dir: Path) -> tuple[LoadRunner, list[dict[str, str]], list[dict[str, str]]]:
    runner = LoadRunner(plan, run_dir)
    with runner:
        outcome = runner.wait()
    assert outcome.killed == ()
    assert not runner.is_running
    return runner, _rows(runner.locust_samples), _rows(runner.probe_samples)


def test_runner_records_locust_and_probe_samples(target: str, tmp_path: Path) -> None:
    plan = _plan(
        target,
        "/ok",
        duration_s=3.0,
        request=RequestSpec(method="POST", path="/ok", json={"model": "chat"}),
    )
    runner, locust_rows, probe_rows = _run(plan, tmp_path)

    assert locust_rows, "Locust recorded no requests"
    assert {r["source"] for r in locust_rows} == {"locust"}
    assert {r["source"] for r in probe_rows} == {"probe"}
    # Open loop at a fixed rate, bounded in count: the prober never exceeds its margin-bounded
    # count, and its schedule has no hole (every intended send one period after the last). How
    # many it sent depends on when it was up against Locust, which a busy machine moves.
    margin_bound = math.ceil(plan.probe_rate_hz * (plan.duration_s + runner.run_time_margin_s))
    assert plan.probe_rate_hz <= len(probe_rows) <= margin_bound
    intended = sorted(float(r["intended"]) for r in probe_rows)
    period = 1.0 / plan.probe_rate_hz
    assert all(abs((b - a) - period) < 1e-3 for a, b in zip(intended, intended[1:], strict=False)), intended
    for row in locust_rows + probe_rows:
        assert (row["status"], row["ok"], row["error"]) == ("200", "1", "")
        assert (row["served_by"], row["tier"], row["region"], row["degraded"]) == (
            "gpu-a1", "gpu", "region-a", "1",
        )  # fmt: skip
        assert float(row["end"]) >= float(row["start"])
        assert int(row["bytes"]) > 0
    # The probe's schedule beside its actual send (Locust users have none): due every 1/rate s,
    # each sent at or after its due instant, on the same wall clock.
    assert {r["intended"] for r in locust_rows} == {""}
    intended = sorted(float(r["intended"]) for r in probe_rows)
    interval_s = 1 / plan.probe_rate_hz
    steps = [(b - a) / interval_s for a, b in zip(intended, intended[1:], strict=False)]
    assert all(abs(step - round(step)) < 1e-3 and round(step) >= 1 for step in steps), steps
    assert all(float(r["start"]) >= float(r["intended"]) - 1e-6 for r in probe_rows)
    _assert_gone(runner.locust_pid)
    _assert_gone(runner.prober_pid)
    assert (tmp_path / "locust_stats.csv").exists()


def test_paced_users_send_at_most_their_pace(target: str, tmp_path: Path) -> None:
    """load.pace_hz: Locust's constant_throughput gives each user one request per 1/pace_hz slot,
    so the count is bounded by users x pace x the time Locust ran (its margin included), where
    the target here answers far faster than that (an unpaced user sends thousands)."""
    plan = _plan(target, "/ok", users=2, pace_hz=5.0, duration_s=2.0)
    runner, locust_rows, _ = _run(plan, tmp_path)
    bound = math.ceil(plan.users * 5.0 * (plan.duration_s + runner.run_time_margin_s)) + plan.users
    assert 0 < len(locust_rows) <= bound, (len(locust_rows), bound)
    assert all(r["ok"] == "1" for r in locust_rows)


def test_503_answers_are_recorded_as_failures(target: str, tmp_path: Path) -> None:
    _, locust_rows, probe_rows = _run(_plan(target, "/unavailable", users=1), tmp_path)
    assert locust_rows and probe_rows
    for row in locust_rows + probe_rows:
        assert (row["status"], row["ok"], row["error"], row["served_by"]) == ("503", "0", "HTTP 503", "gateway")


def test_timeouts_are_recorded_as_timeout(target: str, tmp_path: Path) -> None:
    plan = _plan(target, "/slow", users=1, timeout_s=0.5, probe_rate_hz=10)
    _, locust_rows, probe_rows = _run(plan, tmp_path)
    assert locust_rows and probe_rows
    for row in locust_rows + probe_rows:
        assert (row["status"], row["ok"], row["error"]) == ("0", "0", "timeout")


def test_refused_connections_name_the_os_error(tmp_path: Path) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    _, locust_rows, probe_rows = _run(_plan(nobody, "/x", users=1, probe_rate_hz=10), tmp_path)
    assert locust_rows and probe_rows
    assert {r["error"] for r in locust_rows + probe_rows} == {"ConnectionRefusedError"}
    assert {r["status"] for r in locust_rows + probe_rows} == {"0"}


def test_user_locustfile_requests_land_in_locust_csv(target: str, tmp_path: Path) -> None:
    locustfile = tmp_path / "locustfile.py"
    locustfile.write_text(
        "from locust import HttpUser, constant, task\n\n"
        "class Theirs(HttpUser):\n"
        "    wait_time = constant(0.01)\n\n"
        "    @task\n"
        "    def call(self):\n"
        "        self.client.get('/own')\n"
    )
    plan = _plan(target, "/ok", locustfile=locustfile, probe_rate_hz=5)
    _, locust_rows, probe_rows = _run(plan, tmp_path / "run")
    assert locust_rows
    # Only the user's class ran (ours defines none then), and our listener recorded it.
    assert {(r["served_by"], r["tier"], r["ok"]) for r in locust_rows} == {("own-route", "cpu", "1")}
    # The prober still sends the plan's request.
    assert {r["served_by"] for r in probe_rows} == {"gpu-a1"}


def test_stop_ends_a_long_run_early_with_complete_files(target: str, tmp_path: Path) -> None:
    runner = LoadRunner(_plan(target, "/ok", duration_s=120.0), tmp_path)
    with runner:
        tail = SampleTail(runner.probe_samples)
        seen = 0
        deadline = time.monotonic() + 30
        while seen < 10 and time.monotonic() < deadline:  # the tail shows rows while the run is live
            assert runner.is_running
            seen += len(tail.read_new())
            time.sleep(0.05)
        assert seen >= 10
        outcome = runner.stop()
    assert outcome.killed == ()
    assert (outcome.locust_returncode, outcome.prober_returncode) == (0, 0)
    assert not runner.is_running
    for path in (runner.locust_samples, runner.probe_samples):
        text = path.read_text()
        assert text.endswith("\n"), f"{path} ends in a partial row"
        assert len(_rows(path)) > 0
    _assert_gone(runner.locust_pid)
    _assert_gone(runner.prober_pid)


def test_a_broken_user_locustfile_raises_load_error(target: str, tmp_path: Path) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('user locustfile is broken')\n")
    runner = LoadRunner(_plan(target, "/ok", locustfile=broken), tmp_path / "run")
    with pytest.raises(LoadError, match="user locustfile is broken"):
        with runner:
            pass
    assert not runner.is_running


def test_prober_records_skipped_launches_instead_of_queueing(target: str, tmp_path: Path) -> None:
    plan = _plan(target, "/slow", users=0, duration_s=1.0, timeout_s=0.5, probe_rate_hz=20)
    out_path = tmp_path / "probe.csv"
    with open(out_path, "w", newline="") as out:
        prober = Prober(plan, out, in_flight_limit=3)
        asyncio.run(prober.run())
    rows = _rows(out_path)
    assert prober.skipped > 0 and prober.launched + prober.skipped == plan.probe_count
    assert sum(r["error"] == SKIPPED_ERROR for r in rows) == prober.skipped
    assert sum(r["error"] == "timeout" for r in rows) == prober.launched
    assert all(r["intended"] for r in rows)  # skipped probes keep their due instant


def test_prober_without_intended_bookkeeping_leaves_the_column_empty(target: str, tmp_path: Path) -> None:
    plan = _plan(target, "/ok", users=0, duration_s=0.5, probe_rate_hz=20)
    out_path = tmp_path / "probe.csv"
    with open(out_path, "w", newline="") as out:
        asyncio.run(Prober(plan, out, record_intended=False).run())
    rows = _rows(out_path)
    assert rows and {r["intended"] for r in rows} == {""}


def test_sample_tail_returns_only_complete_new_rows(tmp_path: Path) -> None:
    path = tmp_path / "probe.csv"
    tail = SampleTail(path)
    assert tail.read_new() == []  # not created yet
    header = ",".join(COLUMNS) + "\r\n"
    row = "probe,1.000000,1.250000,200,1,250.000,12,gpu-a1,gpu,region-a,0,,0,,0,,0,-1,,0,-1,,-1,-1,-1\r\n"
    path.write_text(header + row + row[:20])
    first = tail.read_new()
    assert len(first) == 1
    assert first[0]["status"] == 200 and first[0]["latency_ms"] == 250.0 and first[0]["tier"] == "gpu"
    assert tail.read_new() == []  # the partial line is held back
    with open(path, "a") as f:
        f.write(row[20:] + row.replace("200,1", "503,0"))
    second = tail.read_new()
    assert [r["status"] for r in second] == [200, 503]
    assert tail.rows_read == 3


def test_plan_rejects_bad_fields_and_round_trips() -> None:
    with pytest.raises(ScenarioError) as caught:
        LoadPlan(host="127.0.0.1:8080", users=-1, spawn_rate=1, duration_s=0)
    problems = "\n".join(caught.value.problems)
    assert "load.host" in problems and "load.users" in problems and "load.duration_s" in problems
    plan = LoadPlan(
        host="http://127.0.0.1:8080",
        users=4,
        spawn_rate=2,
        duration_s=10,
        request=RequestSpec(method="post", path="/v1/chat/completions", json={"m": 1}, headers={"A": "b"}),
        probe_request=RequestSpec(path="/healthz"),
        pace_hz=2.5,
    )
    assert LoadPlan.from_json(plan.to_json()) == plan
    assert plan.effective_probe_request.path == "/healthz"
    assert plan.probe_count == 200


def test_error_name_finds_the_os_error_under_httpx_wrappers() -> None:
    try:
        try:
            raise ConnectionResetError("peer reset")
        except ConnectionResetError as inner:
            raise httpx.ReadError("read failed") from inner
    except httpx.ReadError as outer:
        assert error_name(outer) == "ConnectionResetError"
    assert error_name(httpx.ReadTimeout("slow")) == "timeout"
    assert error_name(httpx.RemoteProtocolError("bad")) == "RemoteProtocolError"


def test_relative_run_dir_writes_samples_where_asked(tmp_path: Path, target: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The children run with cwd=run_dir: a relative run dir must not nest a second copy of itself."""
    monkeypatch.chdir(tmp_path)
    plan = LoadPlan(host=target, users=1, spawn_rate=1, duration_s=2.0, request=RequestSpec(path="/ok"), probe_rate_hz=10)
    with LoadRunner(plan, Path("reports/run")) as runner:
        runner.wait()
    assert (tmp_path / "reports/run/samples/locust.csv").stat().st_size > 0
    assert (tmp_path / "reports/run/samples/probe.csv").stat().st_size > 0
    assert not (tmp_path / "reports/run/reports").exists()
