"""harness.measure.shapes on built samples (pure logic): the magnitude in force at failover and
at the stack's own breaker opening, first affected, flaps counted with time on each tier, and the
objectives failover_by and max_flaps."""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.measure.shapes import Step, magnitude_at, shape_figures, shape_objectives

ONSET = 1000.0
RAMP = [Step(i, ONSET + 2.0 * i, 100.0 * i) for i in range(10)]  # 0, 100, ... 900 ms; 2 s a step


def samples(rows: list[tuple[float, str, int]]) -> tuple[pd.DataFrame, np.ndarray]:
    """(start, tier, ok) rows, each answered 0.1 s later."""
    frame = pd.DataFrame({"start": [r[0] for r in rows], "end": [r[0] + 0.1 for r in rows],
                          "tier": [r[1] for r in rows], "ok": [r[2] for r in rows]})
    return frame, frame["ok"].to_numpy() == 1


def test_magnitude_in_force_is_the_last_step_begun() -> None:
    assert magnitude_at(RAMP, ONSET - 1) is None
    assert magnitude_at(RAMP, ONSET) == 0.0
    assert magnitude_at(RAMP, ONSET + 9.99) == 400.0
    assert magnitude_at(RAMP, ONSET + 100) == 900.0


def test_a_ramp_reports_the_magnitude_at_failover_beside_the_stacks_breaker() -> None:
    rows = [(ONSET + t / 10, "hosted", 1) for t in range(0, 110)]  # hosted until 11 s
    rows += [(ONSET + 11.0, "hosted", 0)]  # one bad answer at 11 s (500 ms in force)
    rows += [(ONSET + t / 10, "gpu", 1) for t in range(115, 200)]  # gpu from 11.5 s
    frame, good = samples(rows)
    events = [{"ts": ONSET - 50, "event": "breaker_open", "tier": "hosted"},  # an earlier fault's
              {"ts": ONSET + 11.2, "event": "breaker_open", "tier": "hosted"},
              {"ts": ONSET + 11.2, "event": "breaker_open", "tier": "gpu"}]
    f = shape_figures("ramp", "latency_ms", RAMP, frame, good, "hosted", (ONSET, ONSET + 20.0),
                      ONSET + 11.6, 0.5, events)
    assert (f.failover_magnitude, f.failover_step) == (500.0, 5)
    assert (f.stack_magnitude, f.stack_step, f.stack_reaction_s) == (500.0, 5, 11.2)
    assert f.agrees_within_step is True and f.stack_breaker_opens == 1
    assert (f.first_affected_s, f.first_affected_magnitude) == (11.1, 500.0)
    assert (f.failovers, f.failbacks, f.bad_answers) == (1, 0, 1)
    assert f.time_on_tier_s == {"hosted": 11.0, "gpu": 8.5}  # 11.0-11.5 s: only a bad answer, no tier
    assert f.bad_per_transition == 1.0


def test_a_stack_two_steps_away_disagrees_and_no_log_leaves_it_unknown() -> None:
    frame, good = samples([(ONSET + t / 10, "hosted", 1) for t in range(100)])
    late = shape_figures("ramp", "latency_ms", RAMP, frame, good, "hosted", (ONSET, ONSET + 20.0),
                         ONSET + 4.5, 0.5, [{"ts": ONSET + 9.0, "event": "breaker_open", "tier": "hosted"}])
    assert (late.failover_step, late.stack_step, late.agrees_within_step) == (2, 4, False)
    none = shape_figures("ramp", "latency_ms", RAMP, frame, good, "hosted", (ONSET, ONSET + 20.0), None, 0.5, None)
    assert none.failover_magnitude is None and none.stack_step is None and none.agrees_within_step is None
    assert none.stack_breaker_opens is None and none.first_affected_s is None


def test_a_flap_counts_failovers_failbacks_and_bad_answers_per_transition() -> None:
    flap = [Step(i, ONSET + 2.0 * i, 1.0 if i % 2 == 0 else 0.0) for i in range(5)]
    rows: list[tuple[float, str, int]] = []
    for second in range(10):  # a follower: 1 s on each tier in turn, one bad answer at each move
        tier = "gpu" if second % 2 == 0 else "hosted"
        rows += [(ONSET + second + k / 10, tier, 1) for k in range(1, 10)]
        rows += [(ONSET + second, tier, 0)]
    frame, good = samples(rows)
    f = shape_figures("flap", "share", flap, frame, good, "hosted", (ONSET, ONSET + 10.0), ONSET + 0.2, 1.0, [])
    assert (f.failovers, f.failbacks) == (4, 5)  # gpu, hosted, gpu, ... : 5 failbacks, 4 failovers
    assert f.time_on_tier_s == {"gpu": 5.0, "hosted": 5.0}
    assert f.bad_answers == 10 and f.bad_per_transition == round(10 / 9, 6)
    assert f.stack_breaker_opens == 0


def test_objectives_on_the_threshold_and_the_flaps() -> None:
    frame, good = samples([(ONSET + t / 10, "hosted", 1) for t in range(100)])
    at_500 = shape_figures("ramp", "latency_ms", RAMP, frame, good, "hosted", (ONSET, ONSET + 20.0),
                           ONSET + 10.5, 0.5, None)
    [met] = shape_objectives({"latency_ms": 800}, None, {"slow": at_500})
    assert (met.name, met.target, met.measured, met.passed) == ("failover_by.latency_ms", 800, 500.0, True)
    [missed] = shape_objectives({"latency_ms": 400}, None, {"slow": at_500})
    assert missed.passed is False and missed.measured == 500.0
    never = shape_figures("ramp", "latency_ms", RAMP, frame, good, "hosted", (ONSET, ONSET + 20.0), None, 0.5, None)
    [unmeasured] = shape_objectives({"latency_ms": 800}, None, {"slow": never})
    assert unmeasured.measured is None and not unmeasured.passed and "no failover" in (unmeasured.note or "")
    [wrong] = shape_objectives({"share": 0.3}, None, {"slow": at_500})
    assert not wrong.passed and "no scheduled fault moves share" in (wrong.note or "")
    at_500.failovers = 3
    flaps = shape_objectives(None, 2, {"slow": at_500})
    assert [(o.name, o.measured, o.passed) for o in flaps] == [("max_flaps", 3, False)]
    assert shape_objectives(None, 3, {"slow": at_500})[0].passed
    assert shape_objectives(None, 1, {})[0].measured is None


def test_a_brownout_places_the_breakers_opening_on_the_ramp_and_counts_what_it_cost() -> None:
    """The gateway retries each failed call on the next tier, so the samples fail over at the
    first failed call; the breaker's own opening (its log) is what the brownout is judged on."""
    shares = [Step(i, ONSET + 2.0 * i, 0.05 * (i + 1)) for i in range(10)]  # 0.05 ... 0.5, 2 s each
    rows = [(ONSET + t / 10, "gpu" if t % 7 == 0 else "hosted", 1) for t in range(0, 200)]
    rows += [(ONSET + 1.0, "hosted", 0), (ONSET + 5.5, "hosted", 0), (ONSET + 12.0, "gpu", 0)]
    frame, good = samples(sorted(rows))
    events = [{"ts": ONSET + 0.3, "event": "failover", "tier": "gpu"},  # a retry served by gpu
              {"ts": ONSET + 6.5, "event": "breaker_open", "tier": "hosted"}]
    f = shape_figures("ramp", "share", shares, frame, good, "hosted", (ONSET, ONSET + 20.0), ONSET + 0.4, 0.5, events)
    assert (f.breaker_open_s, f.breaker_open_magnitude, f.breaker_open_step) == (6.5, 0.2, 3)
    assert f.stack_reaction_s == 0.3  # the first reaction in the log, the retry: not the breaker
    assert f.bad_before_breaker == 2 and f.bad_answers == 3
    assert f.timeline[:2] == [(ONSET, 0.05), (ONSET + 2.0, 0.1)] and len(f.timeline) == 10
    [opened, cost] = shape_objectives(None, None, {"brownout": f}, {"share": 0.3}, 25)
    assert (opened.name, opened.measured, opened.passed) == ("breaker_open_by.share", 0.2, True)
    assert (cost.name, cost.measured, cost.passed) == ("max_bad_answers", 3, True)
    [late] = shape_objectives(None, None, {"brownout": f}, {"share": 0.15})
    assert late.passed is False and late.measured == 0.2
    [too_many] = shape_objectives(None, None, {"brownout": f}, None, 2)
    assert too_many.passed is False


def test_the_bad_answers_before_the_breaker_are_some_of_the_windows_bad_answers() -> None:
    """A bad answer sent before the onset and still open at it (a slow baseline answer on a busy
    machine) is none of the window's: counted in neither (a whole run said 1 before the breaker
    of 0 in the window)."""
    shares = [Step(i, ONSET + 2.0 * i, 0.05 * (i + 1)) for i in range(10)]
    rows = [(ONSET + t / 10, "hosted", 1) for t in range(200)] + [(ONSET - 0.2, "hosted", 0)]
    frame, good = samples(sorted(rows))
    frame.loc[frame["start"] == ONSET - 0.2, "end"] = ONSET + 0.4  # open at the onset
    events = [{"ts": ONSET + 6.5, "event": "breaker_open", "tier": "hosted"}]
    f = shape_figures("ramp", "share", shares, frame, good, "hosted", (ONSET, ONSET + 20.0), None, 0.5, events)
    assert (f.bad_answers, f.bad_before_breaker) == (0, 0)


def test_a_breaker_that_never_opens_fails_breaker_open_by_and_no_log_says_so() -> None:
    shares = [Step(i, ONSET + 2.0 * i, 0.05 * (i + 1)) for i in range(10)]
    frame, good = samples([(ONSET + t / 10, "hosted", 1) for t in range(200)])
    shut = shape_figures("ramp", "share", shares, frame, good, "hosted", (ONSET, ONSET + 20.0), None, 0.5,
                         [{"ts": ONSET + 3.0, "event": "failover", "tier": "gpu"}])
    assert shut.stack_breaker_opens == 0 and shut.breaker_open_magnitude is None and shut.bad_before_breaker is None
    [never] = shape_objectives(None, None, {"brownout": shut}, {"share": 0.3})
    assert never.passed is False and never.measured is None and never.note is not None
    assert "never opened" in never.note
    blind = shape_figures("ramp", "share", shares, frame, good, None, (ONSET, ONSET + 20.0), None, 0.5, None)
    [unknown] = shape_objectives(None, None, {"brownout": blind}, {"share": 0.3})
    assert unknown.passed is False and unknown.note is not None and "no breaker log" in unknown.note
    [other] = shape_objectives(None, None, {"brownout": shut}, {"latency_ms": 800})
    assert other.passed is False and other.note == "no scheduled fault moves latency_ms"
