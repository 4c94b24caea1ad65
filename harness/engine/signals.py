"""SIGINT and SIGTERM during a drill: obeyed (as AbortedError) while it runs, explained while it
rolls back — a signal must never cut the rollback short."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from harness.engine.result import Say
from harness.errors import AbortedError

_Handler = Callable[[int, FrameType | None], Any] | int | None


class Signals:
    """Install with :meth:`install` (main thread only), set :attr:`rolling_back` once the
    rollback starts, :meth:`restore` at the end."""

    def __init__(self, say: Say) -> None:
        self.say = say
        self.previous: dict[signal.Signals, _Handler] = {}
        self.rolling_back = False
        self.received: str | None = None

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.rolling_back:
            self.say(
                f"[yellow]{name} received while the drill cleans up (faults are being removed, then "
                "results written): please wait. If the harness is killed now, run `drill recover "
                "--all` to finish the cleanup."
            )
            return
        self.received = name
        raise AbortedError(f"interrupted by {name}", reason=f"signal:{name}")

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            self.previous[sig] = signal.signal(sig, self._handler)

    def restore(self) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        self.previous.clear()
