"""The LiteLLM proxy's own record of every upstream call, read into a drill run.

Loaded by the proxy itself (``litellm_settings.callbacks: litellm_record.handler``, a custom
callback module beside the config: https://docs.litellm.ai/docs/proxy/logging, "Custom Callback
Class"), so it runs in the proxy's environment and imports only litellm and the standard library.
Each deployment call, success or failure, is one JSON line in ``$DRILL_LITELLM_RECORD``:
``{"event": "success"|"failure", "start", "end" (epoch s), "model_group", "model_id",
"api_base", "status", "error"}``. A fallback shows as a failure on the hosted deployment
followed by a success on a fallback deployment within the same client request.
"""

from __future__ import annotations

import json
import os
import threading
from datetime import datetime
from typing import Any

from litellm.integrations.custom_logger import CustomLogger


def _epoch(value: object) -> float | None:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, int | float):
        return float(value)
    return None


class DrillRecord(CustomLogger):  # type: ignore[misc]  # litellm is not in drill's .venv
    def __init__(self) -> None:
        super().__init__()
        self._path = os.environ.get("DRILL_LITELLM_RECORD", "calls.jsonl")
        self._lock = threading.Lock()

    def _write(self, event: str, kwargs: dict[str, Any], start: object, end: object) -> None:
        params = kwargs.get("litellm_params") or {}
        info = params.get("model_info") or (params.get("metadata") or {}).get("model_info") or {}
        exc = kwargs.get("exception")
        row = {
            "event": event,
            "start": _epoch(start),
            "end": _epoch(end),
            "model_group": (params.get("metadata") or {}).get("model_group"),
            "model_id": info.get("id"),
            "api_base": params.get("api_base"),
            # A fallback's success still carries the failed call's exception in kwargs.
            "status": 200 if event == "success" else getattr(exc, "status_code", None),
            "error": "" if event == "success" or exc is None else type(exc).__name__,
        }
        with self._lock, open(self._path, "a", encoding="utf-8") as out:
            out.write(json.dumps(row) + "\n")

    async def async_log_success_event(self, kwargs: dict[str, Any], response_obj: object, start_time: object,
                                      end_time: object) -> None:
        self._write("success", kwargs, start_time, end_time)

    async def async_log_failure_event(self, kwargs: dict[str, Any], response_obj: object, start_time: object,
                                      end_time: object) -> None:
        self._write("failure", kwargs, start_time, end_time)


handler = DrillRecord()
