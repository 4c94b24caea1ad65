"""The load room: Locust users and the open-loop prober, both recorded per request.

    from harness.load import LoadPlan, RequestSpec, LoadRunner, SampleTail

Nothing here imports locust or gevent; Locust runs in a child process (``runner.py``).
"""

from harness.load.plan import LoadPlan, RequestSpec
from harness.load.runner import LoadError, LoadOutcome, LoadRunner
from harness.load.tail import SampleTail

__all__ = ["LoadError", "LoadOutcome", "LoadPlan", "LoadRunner", "RequestSpec", "SampleTail"]
