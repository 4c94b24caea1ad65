"""One embeddings node: an OpenAI-style ``POST /v1/embeddings`` served by the real all-MiniLM-L6-v2
model (targets/minilm.py), with the model servers' fault hook for errors and 429 storms.

Run in the embeddings virtualenv (scripts/embeddings-setup):
``.venv-embeddings/bin/python -m targets.embeddings_server``.

``EMBEDDING_SPACE`` says whose vectors the node answers with:

- ``minilm`` (default): the model's own unit vectors, the space a document index built with
  all-MiniLM-L6-v2 lives in;
- ``other``: a MISCONFIGURED node serving another model. Its vectors are MiniLM's under a fixed
  random rotation (seed ``OTHER_SPACE_SEED``): as well-formed and as self-consistent as any
  model's, but not in the index's space, the way any other embedding model's vectors are not.
  Every request succeeds; search relevance collapses.

Endpoints: ``POST /v1/embeddings`` (``{"model", "input": str | [str]}``), ``GET /health``,
``GET|POST|DELETE /fault`` (``{"mode": "error", "status": 429|503, "duration_s": N}``; a 429 carries
``Retry-After: RETRY_AFTER_S``). Headers X-Served-By / X-Tier / X-Region / X-Degraded as the
model servers'.
"""

from __future__ import annotations

import asyncio
import json
import time

import numpy as np
from aiohttp import web

from targets.common import JSON_TYPE, env_int, env_str, error_response, json_response, read_json_object, serve
from targets.minilm import HIDDEN, MiniLM

SPACES = ("minilm", "other")
MAX_INPUTS = 64


def rotation(seed: int) -> np.ndarray:
    """A fixed random orthogonal matrix (QR of a Gaussian one): another embedding space."""
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((HIDDEN, HIDDEN)))
    out: np.ndarray = (q * np.sign(np.diag(r))).astype(np.float32)
    return out


class EmbeddingsServer:
    def __init__(self, model: MiniLM) -> None:
        self.model = model
        self.node_id = env_str("NODE_ID", "embeddings-node")
        self.tier = env_str("TIER", "hosted")
        self.space = env_str("EMBEDDING_SPACE", "minilm")
        if self.space not in SPACES:
            raise SystemExit(f"EMBEDDING_SPACE={self.space!r} must be one of {', '.join(SPACES)}")
        self.rotate = rotation(env_int("OTHER_SPACE_SEED", 27)) if self.space == "other" else None
        self.retry_after_s = env_int("RETRY_AFTER_S", 1)
        self.headers = {"X-Served-By": self.node_id, "X-Tier": self.tier,
                        "X-Region": env_str("REGION", "external"), "X-Degraded": env_str("DEGRADED", "false")}
        self.fault_status: int | None = None
        self.fault_until: float | None = None
        self.lock = asyncio.Lock()  # one forward pass at a time: the model is CPU-bound

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/embeddings", self.embeddings)
        app.router.add_get("/health", self.health)
        app.router.add_get("/fault", self.get_fault)
        app.router.add_post("/fault", self.set_fault)
        app.router.add_delete("/fault", self.clear_fault)
        return app

    def _fault(self) -> int | None:
        if self.fault_until is not None and time.monotonic() >= self.fault_until:
            self.fault_status = self.fault_until = None
        return self.fault_status

    def _fault_response(self) -> web.Response | None:
        status = self._fault()
        if status is None:
            return None
        headers = dict(self.headers)
        if status == 429:
            headers["Retry-After"] = str(self.retry_after_s)
        kind = "rate_limit_error" if status == 429 else "injected_error"
        return error_response(status, kind, f"injected fault on {self.node_id}", headers=headers)

    async def embeddings(self, request: web.Request) -> web.Response:
        raw = await request.read()
        forced = self._fault_response()
        if forced is not None:
            return forced
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            return error_response(400, "invalid_request", "body is not valid JSON", headers=self.headers)
        texts = body.get("input") if isinstance(body, dict) else None
        if isinstance(texts, str):
            texts = [texts]
        if not (isinstance(texts, list) and 0 < len(texts) <= MAX_INPUTS and all(isinstance(t, str) for t in texts)):
            return error_response(400, "invalid_request", f"input must be a string or 1..{MAX_INPUTS} strings",
                                  headers=self.headers)
        async with self.lock:
            vectors = await asyncio.to_thread(self.model.encode, texts)
        if self.rotate is not None:
            vectors = vectors @ self.rotate
        model = body.get("model") if isinstance(body.get("model"), str) else "all-MiniLM-L6-v2"
        answer = {
            "object": "list",
            "model": model,
            "data": [{"object": "embedding", "index": i, "embedding": [round(float(x), 6) for x in v]}
                     for i, v in enumerate(vectors)],
            "usage": {"prompt_tokens": 0, "total_tokens": 0},
        }
        return web.Response(body=json.dumps(answer).encode(), content_type=JSON_TYPE, headers=self.headers)

    async def health(self, request: web.Request) -> web.Response:
        forced = self._fault_response()
        if forced is not None and forced.status != 429:  # a rate-limited provider is up
            return forced
        return json_response({"status": "ok", "node": self.node_id, "space": self.space}, headers=self.headers)

    def _describe(self) -> dict[str, object]:
        status = self._fault()
        remaining = None if self.fault_until is None else max(0.0, self.fault_until - time.monotonic())
        return {"mode": None if status is None else "error", "status": status, "remaining_s": remaining}

    async def get_fault(self, request: web.Request) -> web.Response:
        return json_response(self._describe(), headers=self.headers)

    async def set_fault(self, request: web.Request) -> web.Response:
        body = await read_json_object(request)
        status = body.get("status", 503)
        duration_s = body.get("duration_s")
        if body.get("mode") != "error" or not isinstance(status, int) or not 400 <= status <= 599:
            return error_response(400, "BadRequest", 'body must be {"mode": "error", "status": 400..599}')
        if duration_s is not None and (not isinstance(duration_s, int | float) or duration_s <= 0):
            return error_response(400, "BadRequest", "duration_s must be a positive number of seconds")
        self.fault_status = status
        self.fault_until = None if duration_s is None else time.monotonic() + float(duration_s)
        return json_response(self._describe(), headers=self.headers)

    async def clear_fault(self, request: web.Request) -> web.Response:
        self.fault_status = self.fault_until = None
        return json_response(self._describe(), headers=self.headers)


def main() -> None:
    server = EmbeddingsServer(MiniLM())
    serve(server.app(), env_str("HOST", "0.0.0.0"), env_int("PORT", 8200))


if __name__ == "__main__":
    main()
