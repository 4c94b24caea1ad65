"""Instants as results.json writes them. The same text as ``harness.journal.utc_iso`` (a test
keeps the two equal): measure imports nothing from the rest of harness."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_iso(ts: float) -> str:
    """Epoch seconds -> ISO 8601 UTC with microseconds, e.g. ``2026-11-23T17:52:16.123456Z``."""
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
