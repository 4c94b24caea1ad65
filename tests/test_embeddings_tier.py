"""The embeddings tier's real model (issue 27): all-MiniLM-L6-v2 from PyPI, run in numpy by
targets/minilm.py inside its own virtualenv (scripts/embeddings-setup), served by
targets/embeddings_server.py. The canary queries find their relevant documents through a node
serving the model, and lose them through a misconfigured node serving another embedding space,
while every request of both succeeds. Skipped when the embeddings virtualenv is absent."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from harness.measure.quality import recall_at_k
from harness.testing import free_port, require, wait_http

REPO = Path(__file__).resolve().parents[1]
CANARIES = json.loads((REPO / "targets" / "data" / "embeddings-canaries.json").read_text(encoding="utf-8"))
EMBEDDINGS_VENV = Path(os.environ.get("DRILL_EMBEDDINGS_VENV", str(REPO / ".venv-embeddings")))
PYTHON = EMBEDDINGS_VENV / "bin" / "python"
K = 3


def test_recall_at_k_counts_the_relevant_documents_among_the_nearest() -> None:
    index = np.array([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7], [-1.0, 0.0]])
    assert recall_at_k(np.array([1.0, 0.1]), index, [0, 2], k=2) == 1.0
    assert recall_at_k(np.array([1.0, 0.1]), index, [1, 3], k=2) == 0.0
    assert recall_at_k(np.array([0.0, 2.0]), index, [1, 3], k=1) == 0.5
    with pytest.raises(ValueError):
        recall_at_k(np.array([1.0, 0.0]), index, [], k=1)


@pytest.fixture
def embeddings_node(tmp_path: Path) -> Iterator[object]:
    require(PYTHON.exists(), f"the embeddings virtualenv ({EMBEDDINGS_VENV})", "run scripts/embeddings-setup")
    started: list[subprocess.Popen[bytes]] = []

    def start(space: str) -> str:
        port = free_port()
        env = {**os.environ, "PYTHONPATH": str(REPO), "HOST": "127.0.0.1", "PORT": str(port), "NODE_ID": space,
               "EMBEDDING_SPACE": space, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
        with (tmp_path / f"{space}.log").open("wb") as log:
            started.append(subprocess.Popen([str(PYTHON), "-m", "targets.embeddings_server"], env=env, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True))
        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/health", timeout_s=60)
        return url

    yield start
    for popen in started:
        if popen.poll() is None:
            os.killpg(popen.pid, signal.SIGKILL)
        popen.wait(timeout=10)


def _embed(url: str, texts: list[str]) -> np.ndarray:
    reply = httpx.post(url + "/v1/embeddings", json={"model": "all-MiniLM-L6-v2", "input": texts}, timeout=60)
    assert reply.status_code == 200, reply.text
    return np.array([item["embedding"] for item in reply.json()["data"]])


def test_canaries_keep_their_recall_on_the_model_and_lose_it_on_another_space(embeddings_node: object) -> None:
    start = embeddings_node
    assert callable(start)
    primary, wrong = start("minilm"), start("other")
    index = _embed(primary, CANARIES["documents"])
    assert index.shape == (len(CANARIES["documents"]), 384)
    queries = [c["query"] for c in CANARIES["canaries"]]
    good = [recall_at_k(q, index, c["relevant"], K) for q, c in zip(_embed(primary, queries), CANARIES["canaries"],
                                                                  strict=True)]
    bad = [recall_at_k(q, index, c["relevant"], K) for q, c in zip(_embed(wrong, queries), CANARIES["canaries"],
                                                                 strict=True)]
    assert min(good) == 1.0, good  # every canary finds both its documents in the top 3
    assert np.mean(bad) <= 0.5, bad  # every request succeeded; relevance collapsed


def test_a_429_storm_on_the_hosted_node_says_retry_after(embeddings_node: object) -> None:
    start = embeddings_node
    assert callable(start)
    url = start("minilm")
    assert httpx.post(url + "/fault", json={"mode": "error", "status": 429, "duration_s": 30}).status_code == 200
    reply = httpx.post(url + "/v1/embeddings", json={"input": "hi"})
    assert reply.status_code == 429 and reply.headers["retry-after"] == "1"
    assert httpx.get(url + "/health").status_code == 200  # a rate-limited provider is up
    httpx.delete(url + "/fault")
    assert httpx.post(url + "/v1/embeddings", json={"input": "hi"}, timeout=60).status_code == 200


def test_the_gateway_routes_embeddings_and_falls_back_on_a_429_storm(embeddings_node: object, tmp_path: Path) -> None:
    """The reference gateway's /v1/embeddings over upstreams whose api is embeddings: the hosted
    node answers until it is throttled, then the fallback (here another model's space) answers
    every query with 200: the gateway cannot tell vectors of another model from the right ones."""
    import sys

    start = embeddings_node
    assert callable(start)
    hosted, fallback = start("minilm"), start("other")
    port = free_port()
    upstreams = [{"name": "hosted", "url": hosted, "tier": "hosted", "region": "external", "api": "embeddings"},
                 {"name": "fallback", "url": fallback, "tier": "gpu", "region": "region-a", "api": "embeddings"}]
    env = {**os.environ, "PYTHONPATH": str(REPO), "HOST": "127.0.0.1", "PORT": str(port),
           "UPSTREAMS": json.dumps(upstreams), "UPSTREAM_TIMEOUT_MS": "5000"}
    with (tmp_path / "gateway.log").open("wb") as log:
        gateway = subprocess.Popen([sys.executable, "-m", "targets.gateway"], env=env, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/health", timeout_s=30)
        body = {"model": "all-MiniLM-L6-v2", "input": "how do I reset my password"}
        before = httpx.post(url + "/v1/embeddings", json=body, timeout=30)
        assert before.status_code == 200 and before.headers["x-tier"] == "hosted"
        assert httpx.post(hosted + "/fault", json={"mode": "error", "status": 429, "duration_s": 30}).status_code == 200
        during = httpx.post(url + "/v1/embeddings", json=body, timeout=30)
        assert during.status_code == 200 and during.headers["x-tier"] == "gpu"
        assert during.json()["data"][0]["embedding"] != before.json()["data"][0]["embedding"]  # another space
        events = httpx.get(url + "/admin/events").json()
        assert any(e["event"] == "rate_limited" and e["tier"] == "hosted" for e in events)
        # No chat upstream: the chat route has nothing to serve it.
        assert httpx.post(url + "/v1/chat/completions", json={"model": "chat", "messages": []}).status_code == 503
    finally:
        os.killpg(gateway.pid, signal.SIGKILL)
        gateway.wait(timeout=10)
