"""Every page drill writes (report.html, the tabletop sheet, the trends page, the campaign index)
escapes text a user wrote and carries a strict Content-Security-Policy that allows no network
source. Pure file work on the real latency run's files (tests/data/latency-run)."""

from __future__ import annotations

import re
import zipfile
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path

from harness.evidence.pack import build_pack
from harness.report.history import write_history
from harness.report.html import write_report
from harness.results import RunResults, compute_results, write_results

SCRIPT = "<script>alert(1)</script>"
ONERROR = '<img src=x onerror="alert(2)">'
CSP = re.compile(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)">')


def hostile_run(tmp_path: Path, latency_run: Callable[..., Path]) -> Path:
    (tmp_path / "reports" / "latency").mkdir(parents=True)
    run_dir = latency_run(tmp_path / "reports" / "latency", "hostile")
    computed, timeline = compute_results(run_dir)
    results = computed.document()
    results["scenario"]["name"] = f"latency {SCRIPT}"
    results["scenario"]["description"] = f"The provider {ONERROR} slows down."
    results["faults"][0]["name"] = f"slow{ONERROR}"
    write_results(run_dir, RunResults.from_document(results))
    write_report(run_dir, RunResults.from_document(results), timeline)
    return run_dir


class Elements(HTMLParser):
    """Every element and attribute name a browser would build from the page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.attributes: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attributes.update(name for name, _ in attrs)


def assert_safe(page: str, where: str) -> None:
    parsed = Elements()
    parsed.feed(page)
    assert not parsed.tags & {"script", "img", "iframe", "object", "embed", "link"}, (where, parsed.tags)
    assert not [a for a in parsed.attributes if a.startswith("on")], where
    assert SCRIPT not in page, where
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page, where
    assert "&lt;img src=x onerror=" in page, where
    policy = CSP.search(page)
    assert policy, f"{where}: no Content-Security-Policy meta tag"
    directives = dict(d.strip().split(" ", 1) for d in policy.group(1).split(";") if d.strip())
    assert directives["default-src"] == "'none'" and directives["script-src"] == "'none'", where
    assert not re.search(r"https?:|\*|'self'", policy.group(1)), f"{where}: a network source is allowed"
    assert page.index("Content-Security-Policy") < page.index("<style"), f"{where}: CSP must come first"


def test_user_text_is_escaped_and_csp_strict_in_every_page(tmp_path: Path, latency_run: Callable[..., Path]) -> None:
    run_dir = hostile_run(tmp_path, latency_run)
    assert_safe((run_dir / "report.html").read_text(encoding="utf-8"), "report.html")
    pack = build_pack(run_dir, tmp_path / "p.zip", approver=SCRIPT, participants=[ONERROR]).path
    with zipfile.ZipFile(pack) as zf:
        assert_safe(zf.read("tabletop.html").decode("utf-8"), "tabletop.html")
    _, page, _ = write_history(tmp_path / "reports", tmp_path / "trends.html")
    assert_safe(page.read_text(encoding="utf-8"), "trends.html")


def test_campaign_index_has_the_csp(tmp_path: Path) -> None:
    from harness.campaign import CampaignResult, CampaignRun, render_index

    result = CampaignResult("q", tmp_path, [CampaignRun(SCRIPT, 1, "failed", None, ONERROR)], "a", "b")
    page = render_index(result)
    assert CSP.search(page) and "<script>" not in page and "<img" not in page
