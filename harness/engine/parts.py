"""What a running drill holds: the things it opened, which the rollback must release."""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.httpfaults.client import HttpFaultClient
from harness.load.capacity import CapacitySampler
from harness.load.runner import LoadRunner
from harness.load.watchdog import Watchdog
from harness.rundir.journal import Journal
from harness.runtime.base import Runtime
from harness.toxiproxy import ToxiproxyClient


@dataclass
class Parts:
    """Filled in as the drill opens them, in this order; None (or empty) until then.

    ``stack_started`` says the stack is ours to stop: a start that fails stops what it started
    itself. ``proxies_created`` lists a proxy before its create call, so a signal during the call
    still gets it deleted.
    """

    journal: Journal
    stack: Runtime | None = None
    stack_started: bool = False
    toxiproxy: ToxiproxyClient | None = None
    http_faults: HttpFaultClient | None = None  # the HTTP fault proxy the scenario names
    proxies_created: list[str] = field(default_factory=list)
    load: LoadRunner | None = None
    capacity: CapacitySampler | None = None
    watchdog: Watchdog | None = None  # the host-stall watchdog (its own process)
