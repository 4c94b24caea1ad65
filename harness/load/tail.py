"""Follow a sample file while it is being written, for live checks (stop conditions).

    tail = SampleTail(run_dir / "samples" / "probe.csv")
    every second: rows = tail.read_new()   # rows appended since the last call

The writers flush whole buffers, so the file may end in a half-written line; that line is held
back until its newline arrives. A file that does not exist yet reads as no rows.
"""

from __future__ import annotations

import csv
from pathlib import Path

from harness.load.samples import typed_row


class SampleTail:
    """Reads the rows appended to one sample CSV since the previous :meth:`read_new` call."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._offset = 0
        self._header: list[str] | None = None
        self.rows_read = 0

    def read_new(self) -> list[dict[str, object]]:
        """New complete rows as dicts keyed by the file's header, numbers converted
        (see :func:`harness.load.samples.typed_row`)."""
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                chunk = f.read()
        except FileNotFoundError:
            return []
        complete_end = chunk.rfind(b"\n") + 1
        if complete_end == 0:
            return []
        self._offset += complete_end
        lines = chunk[:complete_end].decode("utf-8").splitlines()
        if self._header is None:
            self._header = next(csv.reader([lines[0]]))
            lines = lines[1:]
        rows = [typed_row(dict(zip(self._header, values, strict=True))) for values in csv.reader(lines)]
        self.rows_read += len(rows)
        return rows
