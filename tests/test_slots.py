"""Machine slots of a parallel suite run (harness.testing.slots): at most N holders at once, a
waiter gets the slot a holder gives back, and a dead holder's slot is free again."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from harness.testing.slots import machine_slot


def test_a_third_holder_waits_until_one_of_two_slots_is_given_back(tmp_path: Path) -> None:
    release = threading.Event()
    held: list[int] = []
    both_held = threading.Barrier(3)

    def hold() -> None:
        with machine_slot(tmp_path, 2) as number:
            held.append(number)
            both_held.wait(timeout=10)
            release.wait(timeout=10)

    holders = [threading.Thread(target=hold) for _ in range(2)]
    for thread in holders:
        thread.start()
    both_held.wait(timeout=10)
    assert sorted(held) == [0, 1]
    got: list[int] = []
    waiter = threading.Thread(target=lambda: got.append(_take(tmp_path)))
    waiter.start()
    waiter.join(timeout=0.5)
    assert waiter.is_alive() and got == []  # both slots held: it waits
    release.set()
    for thread in holders:
        thread.join(timeout=10)
    waiter.join(timeout=10)
    assert got and got[0] in (0, 1)


def _take(directory: Path) -> int:
    with machine_slot(directory, 2) as number:
        return number


def test_a_killed_holders_slot_is_free_again(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from pathlib import Path; from harness.testing.slots import machine_slot\n"
         f"with machine_slot(Path({str(tmp_path)!r}), 1):\n    print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        holder.kill()
        holder.wait(timeout=10)
        assert _take_one(tmp_path) == 0
    finally:
        if holder.poll() is None:
            holder.kill()


def _take_one(directory: Path) -> int:
    with machine_slot(directory, 1) as number:
        return number
