"""At most N real-time drills at once across a parallel test run, whatever the number of workers.

A real-time drill's verdict depends on the machine keeping up with its phases: on two cores, two
drills side by side keep their verdicts as in a serial run, three do not (docs/pytest.md has the
runs). More workers than that still pay off, for the tests that are not drills (unit tests, the
command line, reports), so a run may have more workers than drill *slots*: a worker about to run
a drill takes a slot first (an ``flock`` on one of N files in a directory the whole run shares)
and waits while all are taken.

    with drill_slot(Path("/tmp/suite-slots-RUNID"), slots=2, label="tests/test_x.py::test_y"):
        ...  # the drill

A drill that failed beside another runs once more with the machine to itself: its worker takes
every slot (:func:`every_drill_slot`, in order, so two such workers never hold one each). While it
waits, no drill takes a slot that comes free (the run's *gate*): without that, the other worker
took its slot back for its next drill as soon as it let it go, and a second try waited 89 s for two
drills instead of one (a whole run, docs/pytest.md).

The lock is the kernel's: a worker that dies releases its slot with its file descriptor.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

POLL_S = 0.2
GATE = "gate"  # held exclusively by a drill waiting for every slot; new slots are taken under it


@contextmanager
def drill_slot(directory: Path, slots: int, label: str = "") -> Iterator[int]:
    """Hold one of ``slots`` slots under ``directory`` (made if missing) for the block; yields the
    slot's number. Waits, polling every :data:`POLL_S`, while every slot is held or a drill waits
    for every slot (:func:`every_drill_slot`). The holder's ``label`` is written into its slot's
    file, so a stuck run can be read with ``cat``."""
    if slots < 1:
        raise ValueError(f"slots must be at least 1, not {slots}")
    directory.mkdir(parents=True, exist_ok=True)
    while True:
        taken = _take_a_free_slot(directory, slots)
        if taken is not None:
            number, fd = taken
            try:
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()} {label}\n".encode())
                yield number
            finally:
                os.close(fd)  # closing the descriptor releases the lock
            return
        time.sleep(POLL_S)


def _take_a_free_slot(directory: Path, slots: int) -> tuple[int, int] | None:
    """(slot number, its locked descriptor), or None while every slot is held or the gate is shut
    (a shared lock on it for as long as the slots are looked at: many may look at once)."""
    gate = os.open(directory / GATE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(gate, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return None
        for number in range(slots):
            fd = os.open(directory / f"slot-{number}", os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            return number, fd
        return None
    finally:
        os.close(gate)


@contextmanager
def every_drill_slot(directory: Path, slots: int, label: str = "") -> Iterator[None]:
    """Hold all ``slots`` slots under ``directory`` for the block: no other drill runs meanwhile.
    Shuts the gate first (an exclusive lock: no slot is taken anew until the block ends; a second
    caller waits here for the first), then takes the slots in order, each waiting for its holder
    (a blocking ``flock``, woken as soon as the holder lets go): a worker holding a slot must let
    it go before it calls this."""
    if slots < 1:
        raise ValueError(f"slots must be at least 1, not {slots}")
    directory.mkdir(parents=True, exist_ok=True)
    held: list[int] = [os.open(directory / GATE, os.O_RDWR | os.O_CREAT, 0o644)]
    try:
        fcntl.flock(held[0], fcntl.LOCK_EX)
        for number in range(slots):
            fd = os.open(directory / f"slot-{number}", os.O_RDWR | os.O_CREAT, 0o644)
            held.append(fd)
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()} {label} (alone)\n".encode())
        yield
    finally:
        for fd in held:
            os.close(fd)


@contextmanager
def lower_priority(by: int) -> Iterator[None]:
    """This process (and what it starts) ``by`` steps nicer for the block, then as it was. Raising
    a priority back needs root (CAP_SYS_NICE): callers pass 0 without it, and 0 changes nothing."""
    before = os.getpriority(os.PRIO_PROCESS, 0)
    if by > 0:
        os.setpriority(os.PRIO_PROCESS, 0, min(19, before + by))
    try:
        yield
    finally:
        if by > 0:
            os.setpriority(os.PRIO_PROCESS, 0, before)
