"""At most N real-time drills at once across parallel workers (harness.testing.slots): real flocks."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from harness.testing.slots import drill_slot, every_drill_slot, lower_priority


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


def test_a_drill_alone_waits_for_the_other_holder_then_keeps_every_slot(tmp_path: Path) -> None:
    events: list[str] = []
    next_waited: list[bool] = []

    def alone() -> None:
        with every_drill_slot(tmp_path, 2, "again"):
            events.append("alone")
            other = threading.Thread(target=lambda: drill_slot_then(events))
            other.start()
            other.join(0.6)
            next_waited.append(other.is_alive())  # asserted below: a thread's assert fails nothing
            events.append("alone done")
        other.join(10)

    def drill_slot_then(log: list[str]) -> None:
        with drill_slot(tmp_path, 2, "next"):
            log.append("next")

    with drill_slot(tmp_path, 2, "a"):
        waiting = threading.Thread(target=alone)
        waiting.start()
        waiting.join(0.6)
        assert waiting.is_alive() and events == []  # slot 0 is held: it waits for it
    waiting.join(10)
    assert not waiting.is_alive()
    assert next_waited == [True]  # every slot held: a new drill waited
    assert events == ["alone", "alone done", "next"]
    assert (tmp_path / "slot-0").read_text().endswith(" next\n")  # the first slot free again


def test_a_slot_freed_while_a_drill_waits_for_every_slot_goes_to_that_drill(tmp_path: Path) -> None:
    """A drill waiting to run alone shuts the gate: a drill asking for a slot meanwhile waits even
    for a free one, and runs after it; without the gate it would take the free slot first and the
    drill waiting to run alone would wait for it too."""
    events: list[str] = []

    def alone() -> None:
        with every_drill_slot(tmp_path, 2, "again"):
            events.append("alone")

    def next_drill() -> None:
        with drill_slot(tmp_path, 2, "next"):
            events.append("next")

    with drill_slot(tmp_path, 2, "a") as a:
        waiting_alone = threading.Thread(target=alone)
        waiting_alone.start()
        waiting_alone.join(0.6)
        waiting_next = threading.Thread(target=next_drill)
        waiting_next.start()
        waiting_next.join(0.6)
        assert waiting_alone.is_alive() and waiting_next.is_alive() and events == []  # slot 1 free
        assert a == 0
    waiting_alone.join(10)
    waiting_next.join(10)
    assert events == ["alone", "next"]


def test_slots_must_be_at_least_one(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 1"), drill_slot(tmp_path, 0):
        pass


def test_lower_priority_is_undone_after_the_block() -> None:
    before = os.getpriority(os.PRIO_PROCESS, 0)
    step = 3 if os.geteuid() == 0 else 0
    with lower_priority(step):
        assert os.getpriority(os.PRIO_PROCESS, 0) == min(19, before + step)
    assert os.getpriority(os.PRIO_PROCESS, 0) == before
