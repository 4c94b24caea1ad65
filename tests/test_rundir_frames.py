"""read_samples: the run directory's sample CSVs as one typed, start-sorted frame."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import pytest

from harness.errors import ScenarioError
from harness.load.samples import COLUMNS, LOCUST_FILE, PROBE_FILE, SAMPLES_DIR
from harness.measure import SAMPLE_DTYPES
from harness.rundir.frames import read_samples


def row(start: float, status: int = 200, tier: str = "hosted", source: str = "probe") -> list[object]:
    ok = 1 if status == 200 else 0
    return [source, f"{start:.6f}", f"{start + 0.02:.6f}", status, ok, "20.000", 64 if ok else 0,
            f"{tier}-1" if ok else "", tier if ok else "", "", 0, "" if ok else "HTTP 503"]


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
