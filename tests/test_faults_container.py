"""The onset window of a container fault (harness.faults.container.onset): pure logic, from the
instants the engine reports. The real engine's instants are checked in tests/test_docker_runtime.py."""

from __future__ import annotations

import pytest

from harness.faults.container import onset

CALL_S = 1_700_000_000.0


def test_a_kill_closes_its_window_at_the_exit_containerd_stamped_not_at_the_later_die_event() -> None:
    stated = onset(CALL_S, CALL_S + 0.090, "die", event_s=CALL_S + 0.041, exited_s=CALL_S + 0.013)
    assert stated.source == "docker-state:finished-at"
    assert stated.at - stated.uncertainty_s == pytest.approx(CALL_S)
    assert stated.at + stated.uncertainty_s == pytest.approx(CALL_S + 0.013)


def test_without_an_exit_time_the_event_closes_the_window_and_without_either_the_calls_return() -> None:
    paused = onset(CALL_S, CALL_S + 0.050, "pause", event_s=CALL_S + 0.030, exited_s=None)
    assert paused.source == "docker-event:pause"
    assert paused.at + paused.uncertainty_s == pytest.approx(CALL_S + 0.030)
    unseen = onset(CALL_S, CALL_S + 0.050, "die", event_s=None, exited_s=None)
    assert unseen.source == "docker-api"
    assert (unseen.at, unseen.uncertainty_s) == pytest.approx((CALL_S + 0.025, 0.025))


def test_an_exit_stamped_before_the_call_is_a_stale_record_and_not_used() -> None:
    """A container's FinishedAt from an earlier exit (or another clock) cannot close the window."""
    stated = onset(CALL_S, CALL_S + 0.090, "die", event_s=CALL_S + 0.041, exited_s=CALL_S - 30.0)
    assert stated.source == "docker-event:die"
    assert stated.at + stated.uncertainty_s == pytest.approx(CALL_S + 0.041)
