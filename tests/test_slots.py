"""At most N real-time drills at once across parallel workers (harness.testing.slots): real flocks."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from harness.testing.slots import drill_slot, lower_priority


def test_a_third_holder_waits_for_a_slot_and_takes_the_one_freed(tmp_path: Path) -> None:
    got: list[int] = []

    def third() -> None:
        with drill_slot(tmp_path, 2, "c") as number:
            got.append(number)

    with drill_slot(tmp_path, 2, "a") as a:
        with drill_slot(tmp_path, 2, "b") as b:
            assert {a, b} == {0, 1}
            assert (tmp_path / f"slot-{b}").read_text().endswith(" b\n")
            waiting = threading.Thread(target=third)
            waiting.start()
            waiting.join(0.6)
            assert waiting.is_alive() and got == []  # both slots held: it waits
        waiting.join(10)
        assert not waiting.is_alive()
    assert got == [b]


def test_slots_must_be_at_least_one(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 1"), drill_slot(tmp_path, 0):
        pass


def test_lower_priority_is_undone_after_the_block() -> None:
    before = os.getpriority(os.PRIO_PROCESS, 0)
    step = 3 if os.geteuid() == 0 else 0
    with lower_priority(step):
        assert os.getpriority(os.PRIO_PROCESS, 0) == min(19, before + step)
    assert os.getpriority(os.PRIO_PROCESS, 0) == before
