"""The report room: results.json, junit.xml and the self-contained report.html of a run.

Charts (matplotlib) are drawn only when a report is written; importing this package does not
import matplotlib.
"""

from harness.report.html import render_report, write_report
from harness.report.junit import build_junit, write_junit
from harness.report.results import SCHEMA, atomic_write_text, read_results, write_results

__all__ = [
    "SCHEMA",
    "atomic_write_text",
    "build_junit",
    "read_results",
    "render_report",
    "write_junit",
    "write_report",
    "write_results",
]
