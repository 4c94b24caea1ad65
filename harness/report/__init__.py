"""The report room: renders a run's typed results (harness/results/model.py ``RunResults``) as the
self-contained report.html, junit.xml, terminal lines and the history page. It computes nothing:
every figure comes from harness/measure/ through the results.

Charts (matplotlib) are drawn only when a report is written; importing this package does not
import matplotlib.
"""

from harness.report.html import render_report, write_report
from harness.report.junit import build_junit, write_junit

__all__ = [
    "build_junit",
    "render_report",
    "write_junit",
    "write_report",
]
