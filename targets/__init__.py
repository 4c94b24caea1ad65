"""The reference AI serving platform drills run against.

Four programs, each run as ``python -m targets.<program>`` and configured only through
environment variables (every variable is listed in ``targets/README.md``):

- ``targets.gateway``       OpenAI-style front door; routes hosted -> gpu pool -> cpu (degraded)
- ``targets.model_server``  one model node (hosted, gpu or cpu) with fault hooks
- ``targets.cloud_api``     a GPU control plane with regions, quotas and capacity
- ``targets.autoscaler``    keeps the gateway's GPU pool at its target size

They depend only on aiohttp and the standard library so the same code runs in the ``local``
runtime (processes on 127.0.0.1) and in the compose stack's images.
"""

PROGRAMS = ("gateway", "model_server", "cloud_api", "autoscaler")

__all__ = ["PROGRAMS"]
