"""read_samples: the run directory's sample CSVs as one typed, start-sorted frame."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import pytest

from harness.errors import ScenarioError
from harness.load.samples import LOCUST_FILE, PROBE_FILE, SAMPLES_DIR
from harness.measure import SAMPLE_COLUMNS, SAMPLE_DTYPES
from harness.measure.samples import STREAM_COLUMNS
from harness.rundir.frames import read_samples

COLUMNS = SAMPLE_COLUMNS
LEGACY_COLUMNS = [c for c in SAMPLE_COLUMNS if c not in STREAM_COLUMNS]
"""The columns of sample files written before streaming was measured (the first twelve)."""
NOT_STREAMED = ["0", "", "0", "", "0", "-1"]


def row(start: float, status: int = 200, tier: str = "hosted", source: str = "probe") -> list[object]:
    ok = 1 if status == 200 else 0
    return [source, f"{start:.6f}", f"{start + 0.02:.6f}", status, ok, "20.000", 64 if ok else 0,
            f"{tier}-1" if ok else "", tier if ok else "", "", 0, "" if ok else "HTTP 503", *NOT_STREAMED]


def write(path: Path, rows: list[list[object]], header: list[str] = COLUMNS, torn: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
        fh.write(torn)


def test_both_sources_are_concatenated_sorted_and_typed(tmp_path: Path) -> None:
    write(tmp_path / SAMPLES_DIR / LOCUST_FILE, [row(10.5, source="locust"), row(10.1, 503, source="locust")])
    write(tmp_path / SAMPLES_DIR / PROBE_FILE, [row(10.0), row(10.3)])

    samples = read_samples(tmp_path)

    assert list(samples.columns) == COLUMNS
    assert samples["start"].tolist() == [10.0, 10.1, 10.3, 10.5]
    assert samples.dtypes.astype(str).to_dict() == SAMPLE_DTYPES
    failed = samples.iloc[1]
    assert (failed["source"], failed["status"], failed["ok"], failed["tier"]) == ("locust", 503, 0, "")
    assert samples["region"].tolist() == ["", "", "", ""]  # blanks stay "", never NaN


def test_no_sample_files_gives_an_empty_typed_frame(tmp_path: Path) -> None:
    samples = read_samples(tmp_path)

    assert len(samples) == 0
    assert list(samples.columns) == COLUMNS
    assert samples.dtypes.astype(str).to_dict() == SAMPLE_DTYPES


def test_header_only_file_gives_no_rows(tmp_path: Path) -> None:
    write(tmp_path / SAMPLES_DIR / PROBE_FILE, [])

    assert len(read_samples(tmp_path)) == 0


def test_a_torn_last_line_is_dropped(tmp_path: Path) -> None:
    write(tmp_path / SAMPLES_DIR / PROBE_FILE, [row(1.0), row(1.05)], torn="probe,1.100000,1.12")

    samples = read_samples(tmp_path)

    assert samples["start"].tolist() == [1.0, 1.05]
    assert samples.dtypes.astype(str).to_dict() == SAMPLE_DTYPES


def test_a_foreign_csv_is_named_in_the_error(tmp_path: Path) -> None:
    path = tmp_path / SAMPLES_DIR / "notes.csv"
    write(path, [["a", "b"]], header=["when", "what"])

    with pytest.raises(ScenarioError, match="notes.csv: missing sample column"):
        read_samples(tmp_path)


def test_round_trip_of_a_written_frame(tmp_path: Path) -> None:
    from harness.measure.testing import probe_segment

    frame = probe_segment(100.0, 5.0, tier="gpu", degraded=1)
    (tmp_path / SAMPLES_DIR).mkdir()
    frame.to_csv(tmp_path / SAMPLES_DIR / PROBE_FILE, index=False)

    pd.testing.assert_frame_equal(read_samples(tmp_path), frame, check_exact=False)


def stream_row(start: float, *, tokens: int, ttft: str, gap: str, completed: int, cut: int,
               status: int = 200) -> list[object]:
    ok = 1 if completed else 0
    error = "" if ok else (f"stream cut after {tokens} tokens" if cut >= 0 else f"HTTP {status}")
    answered = 200 <= status < 300
    return ["probe", f"{start:.6f}", f"{start + 0.3:.6f}", status, ok, "300.000", 640 if answered else 0,
            "hosted-1" if answered else "", "hosted" if answered else "", "", 0, error,
            1, ttft, tokens, gap, completed, cut]


def test_an_old_file_without_streaming_columns_reads_with_the_defaults(tmp_path: Path) -> None:
    write(tmp_path / SAMPLES_DIR / PROBE_FILE, [r[: len(LEGACY_COLUMNS)] for r in (row(1.0), row(1.05, 503))],
          header=LEGACY_COLUMNS)

    samples = read_samples(tmp_path)

    assert list(samples.columns) == SAMPLE_COLUMNS
    assert samples.dtypes.astype(str).to_dict() == SAMPLE_DTYPES
    assert samples["stream"].tolist() == [0, 0]
    assert samples["ttft_ms"].isna().all() and samples["max_gap_ms"].isna().all()
    assert samples["tokens"].tolist() == [0, 0]
    assert samples["stream_completed"].tolist() == [0, 0]
    assert samples["cut_after_tokens"].tolist() == [-1, -1]


def test_stream_rows_read_with_empty_cells_as_nan(tmp_path: Path) -> None:
    write(tmp_path / SAMPLES_DIR / PROBE_FILE, [
        stream_row(1.0, tokens=12, ttft="41.250", gap="9.500", completed=1, cut=-1),
        stream_row(1.05, tokens=1, ttft="40.000", gap="", completed=0, cut=1),
        stream_row(1.1, tokens=0, ttft="", gap="", completed=0, cut=-1, status=503),
        row(1.15),
    ])

    samples = read_samples(tmp_path)

    assert samples.dtypes.astype(str).to_dict() == SAMPLE_DTYPES
    assert samples["stream"].tolist() == [1, 1, 1, 0]
    assert samples["ttft_ms"].tolist()[:2] == [41.25, 40.0]
    assert samples["ttft_ms"].isna().tolist() == [False, False, True, True]
    assert samples["max_gap_ms"].isna().tolist() == [False, True, True, True]
    assert samples["tokens"].tolist() == [12, 1, 0, 0]
    assert samples["cut_after_tokens"].tolist() == [-1, 1, -1, -1]
    assert samples["error"].tolist()[1] == "stream cut after 1 tokens"


def test_a_torn_stream_row_keeps_nan_and_the_cut_default(tmp_path: Path) -> None:
    """A torn last line forces the lenient reader: NaN stays NaN, a missing cut count is -1."""
    write(tmp_path / SAMPLES_DIR / PROBE_FILE,
          [stream_row(1.0, tokens=3, ttft="40.000", gap="", completed=0, cut=3)], torn="probe,1.100000,1.2")

    samples = read_samples(tmp_path)

    assert len(samples) == 1
    assert samples["max_gap_ms"].isna().all()
    assert samples["cut_after_tokens"].tolist() == [3]
    assert samples.dtypes.astype(str).to_dict() == SAMPLE_DTYPES


def test_a_stream_count_out_of_range_is_named_with_its_line(tmp_path: Path) -> None:
    bad = stream_row(1.05, tokens=1, ttft="40.000", gap="", completed=0, cut=1)
    bad[-1] = -7
    write(tmp_path / SAMPLES_DIR / PROBE_FILE, [row(1.0), bad])

    with pytest.raises(ScenarioError, match=r"probe.csv:3 cut_after_tokens '-7' is out of range"):
        read_samples(tmp_path)


def test_round_trip_of_written_stream_rows(tmp_path: Path) -> None:
    from harness.measure.testing import concat_samples, stream_segment

    frame = concat_samples(stream_segment(100.0, 1.0), stream_segment(101.0, 1.0, cut_after=0),
                           stream_segment(102.0, 1.0, status=503))
    (tmp_path / SAMPLES_DIR).mkdir()
    frame.to_csv(tmp_path / SAMPLES_DIR / PROBE_FILE, index=False)

    pd.testing.assert_frame_equal(read_samples(tmp_path), frame, check_exact=False)
