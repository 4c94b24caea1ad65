"""health.jsonl: what the watchdog and the engine append is what measure is handed."""

from __future__ import annotations

from pathlib import Path

from harness.rundir.health import append_trouble, health_path, read_health


def test_records_read_back_in_order_and_a_torn_line_is_skipped(tmp_path: Path) -> None:
    assert read_health(tmp_path) == []
    append_trouble(tmp_path, "host_stall", 100.0, 100.71, 0.71, "host stalled 0.71 s")
    append_trouble(tmp_path, "write_error", 105.0, 105.0, 0.0, "samples/probe.csv: No space left on device", True)
    with health_path(tmp_path).open("a", encoding="utf-8") as f:
        f.write('{"kind": "clock_st')
    troubles = read_health(tmp_path)
    assert [t.kind for t in troubles] == ["host_stall", "write_error"]
    assert troubles[0].magnitude_s == 0.71 and not troubles[0].partial
    assert troubles[1].partial
