"""Machine slots for a parallel test run: at most N tests that use the CPU run at once, whatever
the number of pytest-xdist workers.

drill's suite is mostly real-time drills: each keeps most of a core busy while its phases run,
and a latency verdict flips when two cores are shared by more than two of them. Tests that wait
on something else (a Kubernetes control plane's own timings) leave the cores idle most of the
time. With one worker more than slots, those run beside the slot holders instead of in a slot
(docs/pytest.md, "What runs side by side").

A slot is an exclusive ``flock`` on one of N files in a directory the run shares: the kernel
releases it when the holder dies, so a crashed worker never keeps one.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

POLL_S = 0.1


@contextmanager
def machine_slot(directory: Path, slots: int) -> Iterator[int]:
    """Hold one of ``slots`` slot files in ``directory`` (waiting until one is free); yields its
    number."""
    directory.mkdir(parents=True, exist_ok=True)
    while True:
        for number in range(slots):
            fd = os.open(directory / f"slot-{number}.lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            try:
                yield number
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)
            return
        time.sleep(POLL_S)
