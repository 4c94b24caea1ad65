"""The report's fault lanes (issue 29): one lane per fault beside the error rate, a schedule's
steps as bars, a flap's off periods pale, and an arrow from the instant a fault followed; drawn
with matplotlib like every chart, and only for runs with a compound timeline or a schedule."""

from __future__ import annotations

from typing import Any

import pytest

from harness.report.charts import fault_lanes, fault_lanes_svg
from harness.report.html import render_report
from harness.testing.runs import epoch, example_results, example_timeline, typed

TITLE = "Fault lanes: each fault&#39;s steps and what it followed, beside the error rate"


def compound() -> dict[str, Any]:
    """The example run with its second fault placed after the first's onset (+29.8 s) on its
    own branch, as a flap of four periods."""
    results = example_results()
    lead, follower = results["faults"][:2]
    onset = epoch(follower["onset_at"])
    follower["after"] = {"fault": lead["name"], "when": "onset", "offset_s": 29.8}
    follower["branch"] = "gpu"
    follower["shape"] = {
        "shape": "flap", "param": "latency_ms", "steps": 4, "failover_magnitude": None, "failover_step": None,
        "stack_reaction_s": None, "stack_magnitude": None, "stack_step": None, "agrees_within_step": None,
        "first_affected_s": None, "first_affected_magnitude": None, "failovers": 0, "failbacks": 0,
        "stack_breaker_opens": None, "time_on_tier_s": {}, "bad_answers": 0, "bad_per_transition": None,
        "timeline": [[onset + 5.0 * i, 800.0 if i % 2 == 0 else 0.0] for i in range(4)],
    }
    return results


def test_lanes_place_each_fault_its_steps_and_what_it_followed() -> None:
    results = typed(compound())
    lead, follower = fault_lanes(results)[:2]
    assert lead.steps == [(lead.onset_s, lead.end_s, 1.0)] and lead.after is None
    assert [level for _, _, level in follower.steps] == [1.0, 0.0, 1.0, 0.0]
    assert follower.steps[1][0] == pytest.approx(follower.onset_s + 5.0)
    assert follower.steps[-1][1] == follower.end_s  # the last step holds to the revert
    assert follower.after == "after provider-down onset + 29.8 s" and follower.after_fault == "provider-down"
    assert follower.after_from_s == pytest.approx(lead.onset_s)
    assert follower.label == "gpu-a-latency\n(branch gpu)"


def test_the_lanes_chart_is_drawn_in_the_report_for_a_compound_run_only() -> None:
    document = compound()
    svg = fault_lanes_svg(typed(document), example_timeline(document))
    assert svg.startswith("<svg") and 'aria-label="Fault lanes beside the error rate"' in svg
    for text in ("provider-down", "gpu-a-latency", "(branch gpu)", "after provider-down onset + 29.8 s",
                 "flap off", "started after", "4 steps, 800 first, peak 800"):
        assert text in svg, text
    page = render_report(typed(document), example_timeline(document))
    assert TITLE in page
    plain = example_results()
    assert TITLE not in render_report(typed(plain), example_timeline(plain))


def test_no_applied_fault_leaves_no_lane_and_says_why() -> None:
    document = compound()
    timeline = example_timeline(document)
    for fault in document["faults"]:
        fault["onset_at"] = None
    with pytest.raises(ValueError, match="no fault took effect"):
        fault_lanes_svg(typed(document), timeline)
    assert "no fault took effect" in render_report(typed(document), timeline)
