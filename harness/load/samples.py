"""Sample files: one CSV row per request, written by the load generators, read by measure.

Files live in ``RUN_DIR/samples/``: ``locust.csv`` (Locust users) and ``probe.csv`` (the
fixed-rate open-loop prober). Both share :data:`COLUMNS`:

- ``source``      ``locust`` | ``probe``
- ``start``/``end`` epoch seconds (``time.time()``), 6 decimals
- ``status``      HTTP status, 0 when no response arrived
- ``ok``          1 when a response arrived with a 2xx status, else 0
- ``latency_ms``  end - start in milliseconds, 3 decimals
- ``bytes``       response body length
- ``served_by``, ``tier``, ``region``  from ``X-Served-By``, ``X-Tier``, ``X-Region`` ("" if absent);
  with a scenario's ``load.attribution`` (:func:`configure_attribution`) ``served_by`` is the
  declared header's value and ``tier`` what its ``tiers`` map that value to
- ``degraded``    1 when ``X-Degraded`` is true-ish, else 0
- ``error``       short error text ("" when none), e.g. ``timeout``, ``ConnectionRefused``, ``HTTP 503``,
  ``stream cut after 3 tokens``, ``stream error after 3 tokens: upstream_stream_broken``
- ``stream``      1 when the request asked for a stream (``"stream": true`` in its JSON body), else 0
- ``ttft_ms``     send -> first token, ms, 3 decimals; "" when no token arrived or not a stream
- ``tokens``      tokens received (0 when not a stream)
- ``max_gap_ms``  longest gap between consecutive tokens, ms; "" with fewer than 2 tokens
- ``stream_completed`` 1 when ``data: [DONE]`` arrived on a 2xx answer, else 0
- ``cut_after_tokens`` for a stream whose 2xx answer ended without ``[DONE]`` (clean end, reset,
  the gateway's error event, timeout mid-stream): the tokens it delivered (may be 0); -1 otherwise

- ``intended``    probe rows: the instant the probe was due by the schedule (epoch seconds, the
  same wall clock as ``start``, 6 decimals), so ``start - intended`` is its schedule lag; ""
  on Locust rows (closed-loop users have no schedule). Files written before it lack the column
  and read as "" (harness/rundir/frames.py).
- ``splices``     times a stream's answer went on from another source mid-stream (the chunk ``id``
  changed, or a token did not follow the one before in the expected answer); 0 when none
- ``splice_tokens_before`` tokens received before the first splice; -1 without a splice
- ``splice_gap_ms`` the longest arrival gap across a splice, ms; "" without a splice
- ``tokens_lost``, ``tokens_repeated``, ``foreign_tokens`` the answer checked token by token
  against the reference answer to the request's model and prompt (harness/load/streams.py):
  tokens skipped, tokens received twice, tokens of another answer; -1 when not checked.
  These six (:data:`SPLICE_COLUMNS`) come last; files written before them read with
  :data:`NO_SPLICE_COLUMNS`.

A stream's ``ok`` is 1 only when it completed, and its ``end``/``latency_ms`` are when the stream
ended (harness/load/streams.py reads the stream). Rows of requests that did not ask for a stream
carry the defaults :data:`NON_STREAM_COLUMNS`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

COLUMNS = [
    "source",
    "start",
    "end",
    "status",
    "ok",
    "latency_ms",
    "bytes",
    "served_by",
    "tier",
    "region",
    "degraded",
    "error",
    "stream",
    "ttft_ms",
    "tokens",
    "max_gap_ms",
    "stream_completed",
    "cut_after_tokens",
    "intended",
    "splices",
    "splice_tokens_before",
    "splice_gap_ms",
    "tokens_lost",
    "tokens_repeated",
    "foreign_tokens",
]
STREAM_COLUMNS = COLUMNS[-13:-7]
NON_STREAM_COLUMNS = ("0", "", "0", "", "0", "-1")
"""The stream columns of a request that did not ask for a stream."""
SPLICE_COLUMNS = COLUMNS[-6:]
NO_SPLICE_COLUMNS = ("0", "-1", "", "-1", "-1", "-1")
"""The splice columns of a request that did not stream (or whose answer was not checked)."""

# The run-directory layout is harness/rundir's; these copies exist because the locustfile loads
# this module by path in Locust's child process, where it must import nothing from harness.
# tests/test_measure_imports.py keeps them (and COLUMNS) equal to rundir's and measure's.
SAMPLES_DIR = "samples"
LOCUST_FILE = "locust.csv"
PROBE_FILE = "probe.csv"


def sample_files(run_dir: Path) -> list[Path]:
    """The sample files present in a run directory."""
    d = Path(run_dir) / SAMPLES_DIR
    return [p for p in (d / LOCUST_FILE, d / PROBE_FILE) if p.exists()]


# --- writer / reader helpers (shared by the locustfile, the prober and the tail) ---------------

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FLOAT_COLUMNS = ("start", "end", "latency_ms")
INT_COLUMNS = ("status", "ok", "bytes", "degraded")
# Stream and splice columns read back (the "" of an absent ttft/gap/splice gap becomes NaN); a file written before they
# existed has none of them, and typed_row fills the non-stream defaults.
STREAM_FLOAT_COLUMNS = ("ttft_ms", "max_gap_ms", "splice_gap_ms")
STREAM_INT_COLUMNS = ("stream", "tokens", "stream_completed", "cut_after_tokens", "splices", "splice_tokens_before",
                      "tokens_lost", "tokens_repeated", "foreign_tokens")
STREAM_DEFAULTS = {**dict(zip(STREAM_COLUMNS, NON_STREAM_COLUMNS, strict=True)),
                   **dict(zip(SPLICE_COLUMNS, NO_SPLICE_COLUMNS, strict=True))}


# load.attribution ({"header": NAME, "tiers": {VALUE: TIER}}) of this process's plan: the header
# name and the (key, tier) pairs, longest key first. None: the X-Served-By/X-Tier headers.
_attribution: tuple[str, tuple[tuple[str, str], ...]] | None = None


def configure_attribution(spec: object) -> None:
    """Use ``spec`` (the plan's ``attribution``: a mapping with ``header`` and ``tiers``, or None)
    for every later :func:`sample_row` of this process."""
    global _attribution
    if not isinstance(spec, dict) or not spec.get("header"):
        _attribution = None
        return
    tiers = spec.get("tiers") or {}
    pairs = sorted(((str(k), str(v)) for k, v in tiers.items()), key=lambda kv: -len(kv[0]))
    _attribution = (str(spec["header"]), tuple(pairs))


def attributed_tier(value: str) -> str:
    """The tier the configured attribution maps a header value to ("" when none matches)."""
    if _attribution is None or not value:
        return ""
    for key, tier in _attribution[1]:
        if value == key or ("://" in key and value.startswith(key.rstrip("/") + "/")):
            return tier
    return ""


def sample_row(
    source: str,
    start_s: float,
    end_s: float,
    status: int,
    body_bytes: int,
    headers: object | None,
    error: str,
    stream_columns: Sequence[str] = NON_STREAM_COLUMNS,
    intended_s: float | None = None,
    splice_columns: Sequence[str] = NO_SPLICE_COLUMNS,
) -> list[str]:
    """One CSV row in :data:`COLUMNS` order.

    ``headers`` is any mapping-like object with a case-insensitive ``get`` (Locust's, httpx's and
    requests' header objects all qualify), or None when no response arrived. ``ok`` is 1 only for
    a 2xx status with no ``error`` (a user's locustfile may fail a 2xx response on its body).
    ``stream_columns``: the :data:`STREAM_COLUMNS` values, from ``StreamTally.columns`` for a
    stream; a cut stream's ``error`` (``StreamTally.error_text``) makes it not ok.
    ``intended_s``: when the request was due by a schedule (the prober's); None for Locust.
    ``splice_columns``: the :data:`SPLICE_COLUMNS` values, from ``StreamTally.splice_columns``.
    """
    get = getattr(headers, "get", None)
    if get is None:
        served_by = tier = region = ""
        degraded = 0
    else:
        served_by = get("X-Served-By") or ""
        tier = get("X-Tier") or ""
        region = get("X-Region") or ""
        if _attribution is not None:
            served_by = (get(_attribution[0]) or "").strip()
            tier = attributed_tier(served_by)
        degraded = 1 if (get("X-Degraded") or "").strip().lower() in TRUE_WORDS else 0
    ok = 1 if 200 <= status < 300 and not error else 0
    return [
        source,
        f"{start_s:.6f}",
        f"{end_s:.6f}",
        str(status),
        str(ok),
        f"{(end_s - start_s) * 1000.0:.3f}",
        str(body_bytes),
        served_by,
        tier,
        region,
        str(degraded),
        error,
        *stream_columns,
        "" if intended_s is None else f"{intended_s:.6f}",
        *splice_columns,
    ]


def typed_row(raw: dict[str, str]) -> dict[str, object]:
    """A row read back from a sample file, with numbers as float/int (see :data:`FLOAT_COLUMNS`,
    :data:`INT_COLUMNS` and the stream columns: an absent ``ttft_ms``/``max_gap_ms``/``intended`` is NaN);
    text columns stay str."""
    row: dict[str, object] = dict(raw)
    for name in FLOAT_COLUMNS:
        row[name] = float(raw[name])
    for name in INT_COLUMNS:
        row[name] = int(raw[name])
    for name in STREAM_FLOAT_COLUMNS:
        text = raw.get(name, "")
        row[name] = float(text) if text else math.nan
    for name in STREAM_INT_COLUMNS:
        row[name] = int(raw.get(name) or STREAM_DEFAULTS[name])
    intended = raw.get("intended", "")
    row["intended"] = float(intended) if intended else math.nan
    return row


# --- the write path: a full disk or an I/O error ends the file cleanly ----------------------------

EXIT_WRITE_ERROR = 74
"""A load generator's exit code when it could not write its samples (sysexits' EX_IOERR): the
engine learns of a full disk from it without reading anything from that disk."""


class GuardedFile:
    """A sample file's text stream whose first failed ``write`` or ``flush`` (ENOSPC, EIO, ...)
    is reported once to ``on_error(exc, last_flushed_s)`` and ends the file: every later row is
    dropped, so the file ends with the rows on disk so far (and perhaps one torn line, which the
    readers skip). ``last_flushed_s`` is the wall-clock instant of the last flush that succeeded:
    every row handed over before it is on disk. ``csv.writer`` writes into it like any file."""

    def __init__(self, raw: IO[str], on_error: Callable[[OSError, float], None]) -> None:
        self._raw = raw
        self._on_error = on_error
        self.failed: OSError | None = None
        self.last_flushed_s = time.time()

    def write(self, text: str) -> int:
        if self.failed is None:
            try:
                return int(self._raw.write(text))
            except OSError as exc:
                self._fail(exc)
        return len(text)

    def flush(self) -> None:
        if self.failed is None:
            try:
                self._raw.flush()
            except OSError as exc:
                self._fail(exc)
            else:
                self.last_flushed_s = time.time()

    @property
    def closed(self) -> bool:
        return self._raw.closed

    def close(self) -> None:
        """Flush (unless failed) and close; a failure on the way is reported, never raised."""
        self.flush()
        try:
            self._raw.close()
        except OSError as exc:
            if self.failed is None:
                self._fail(exc)

    def _fail(self, exc: OSError) -> None:
        self.failed = exc
        self._on_error(exc, self.last_flushed_s)


def write_error_detail(path: Path, exc: OSError, last_flushed_s: float) -> str:
    """The ``write_error`` trouble's words: which file, why, and where its data ends."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(last_flushed_s)) + f".{int(last_flushed_s % 1 * 1000):03d}Z"
    reason = exc.strerror or type(exc).__name__
    return (f"{SAMPLES_DIR}/{Path(path).name}: write failed ({reason}); its samples end at {stamp}, "
            f"rows after it are missing")
