"""The report renders each fault's incidents and the verdict line says when users were affected
(results.json ``faults[].incidents``, ``impact.incidents``; docs/method.md "Incidents"). The
report only lays the figures out: every number below is in the document it is given."""

from __future__ import annotations

import html as html_lib
from typing import Any

from harness.report import render_report
from harness.report.junit import build_junit
from harness.report.reasons import incident_lines, verdict_line
from harness.report.story import impact_rows
from harness.report.terminal import objectives_text
from harness.scenario.model import Objectives
from harness.testing.runs import example_results, typed

LATE = {"start_s": 13.76, "end_s": 14.01, "length_s": 0.25, "requests": 7, "bad": 5, "failed": 0, "slow": 5,
        "worst_latency_ms": 912.4, "unhealthy_buckets": 1,
        "cause": "breaker half-open: a re-probe of the failing tier (hosted: cool-down of 5s over), "
                 "stack's record at +13.70 s"}
EARLY = {"start_s": 0.02, "end_s": 1.2, "length_s": 1.18, "requests": 25, "bad": 24, "failed": 24, "slow": 0,
         "worst_latency_ms": 20.0, "unhealthy_buckets": 5, "cause": None}


def with_incidents(*incidents: dict[str, Any], still_open: bool = False) -> dict[str, Any]:
    document = example_results()
    document["faults"][0]["incidents"] = list(incidents)
    document["impact"] = {
        "requests": 100, "failed": 24, "slow": 5, "affected_s": 1.5, "unhealthy_buckets": 6,
        "judged_buckets": 160, "bucket_s": 0.25,
        "incidents": {"incidents": len(incidents), "impact_s": round(sum(i["length_s"] for i in incidents), 6),
                      "first_affected_s": incidents[0]["start_s"] if incidents else None,
                      "last_affected_s": incidents[-1]["end_s"] if incidents else None, "open": still_open},
    }
    return document


def test_the_verdict_line_says_when_users_were_first_and_last_affected_and_for_how_long() -> None:
    results = typed(with_incidents(EARLY, LATE))
    line = verdict_line(results)
    assert line.startswith(str(results.verdict).upper())
    assert line.endswith("users affected 1.43 s in all: first at +0.02 s, last at +14.01 s (2 incidents)")
    none = verdict_line(typed(with_incidents()))
    assert none.endswith("no users affected (no incident on the evidence rule)")


def test_a_verdict_line_of_results_written_before_incidents_says_nothing_of_them() -> None:
    assert "users affected" not in verdict_line(typed(example_results()))


def test_each_incident_is_a_line_in_the_terminal_and_a_row_in_the_report() -> None:
    results = typed(with_incidents(EARLY, LATE))
    lines = incident_lines(results.faults[0])
    assert lines[0] == "incident 1: +0.02 s to +1.20 s (1.18 s), 24 of 25 requests bad (24 failed), worst 20 ms"
    assert lines[1].startswith("incident 2: +13.76 s to +14.01 s (0.25 s), 5 of 7 requests bad (5 slow), worst 912")
    assert lines[1].endswith("cause: " + LATE["cause"])
    page = html_lib.unescape(render_report(results, None, []))
    assert 'id="incidents"' in page
    for text in ("+13.76 s", "+14.01 s", "5 / 7", "5 slow", "24 failed", LATE["cause"],
                 "From the first onset: users affected 1.43 s in all"):
        assert text in page, text


def test_an_open_incident_says_so() -> None:
    still = dict(LATE, end_s=None, length_s=6.24)
    results = typed(with_incidents(still, still_open=True))
    assert "users affected at least 6.24 s in all: first at +13.76 s, still affected at the end of the data" in (
        verdict_line(results))
    assert "+13.76 s to still open" in incident_lines(results.faults[0])[0]
    assert "still open" in html_lib.unescape(render_report(results, None, []))


def test_junit_carries_the_incident_count_per_fault_and_the_impact() -> None:
    tree = build_junit(typed(with_incidents(EARLY, LATE)))
    props = {p.get("name"): p.get("value") for p in tree.getroot().iter("property")}
    fault = example_results()["faults"][0]["name"]
    assert props[f"incidents[{fault}]"] == "2" and props["impact_s"] == "1.430"
    assert "impact_s" not in {p.get("name") for p in build_junit(typed(example_results())).getroot().iter("property")}


def test_the_plan_names_max_impact_beside_rto() -> None:
    assert objectives_text(Objectives(rto_s=20, max_impact_s=2)) == "rto_s ≤ 20.0 s, max_impact_s ≤ 2.00 s"


def test_the_impact_table_adds_the_incidents_summed() -> None:
    results = typed(with_incidents(EARLY, LATE))
    assert results.impact is not None
    label, value = impact_rows(results.impact, 500.0)[-1]
    assert label == "incidents (2 incidents, first at +0.02 s, last at +14.01 s), their lengths summed"
    assert value == "1.43 s"
