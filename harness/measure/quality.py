"""Answer quality on canary queries: recall@k of an embedding against a document index, and the
similarity of a chat answer to the primary's answer to the same prompt.

Pure (numpy, pandas): the index (unit vectors of the documents, built once with the primary
model), a query's embedding as an answer returned it, and the documents known to be relevant to
the query. A fallback serving the same model keeps recall; one serving another model answers
vectors from another space, and recall falls to chance while every request succeeds. For chat,
the similarity of an answer's words to the primary's answer (difflib's ratio over the word
sequences, 1 = the same answer): a fallback serving another model answers something else.

The probe scores each answer as it arrives (harness/load/canaries.py) and records one row per
scored answer (``samples/quality.csv``: :data:`QUALITY_COLUMNS`); harness/measure/quality_phases.py
summarises them per window and judges ``min_quality``. This module needs numpy alone: the
embeddings virtualenv's bench loads it by path (bench/embeddings_cost.py).
"""

from __future__ import annotations

import difflib

import numpy as np

QUALITY_COLUMNS = ["start", "canary", "served_by", "tier", "k", "score", "nearest"]
"""``score``: the answer's recall@k (retrieval canaries) or its similarity to the primary's
answer (chat canaries), 0..1; ``k`` 0 and ``nearest`` empty for chat."""
RETRIEVAL, CHAT = "retrieval", "chat"


def metric_name(kind: str, k: int | None) -> str:
    """What a score of canaries of ``kind`` is: ``recall@5`` or ``similarity``."""
    return "similarity" if kind == CHAT else (f"recall@{k}" if k else "recall@k")


def similarity(answer: str, reference: str) -> float:
    """How alike two answers are, 0..1: difflib's ratio over their word sequences (1 = the same
    words in the same order)."""
    return difflib.SequenceMatcher(None, answer.split(), reference.split(), autojunk=False).ratio()


def nearest_documents(query: np.ndarray, index: np.ndarray, k: int) -> tuple[int, ...]:
    """The ``k`` rows of ``index`` nearest to ``query`` by cosine, best first (ties broken by
    row order)."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    unit_query = query / max(float(np.linalg.norm(query)), 1e-12)
    norms = np.maximum(np.linalg.norm(index, axis=1), 1e-12)
    scores = (index @ unit_query) / norms
    return tuple(int(i) for i in np.argsort(-scores, kind="stable")[:k])


def recall_of(nearest: tuple[int, ...], relevant: tuple[int, ...] | list[int]) -> float:
    """The share of ``relevant`` documents among ``nearest``. ``relevant`` must not be empty."""
    if not relevant:
        raise ValueError("recall@k needs at least one relevant document")
    return len(set(nearest) & set(relevant)) / len(set(relevant))


def recall_at_k(query: np.ndarray, index: np.ndarray, relevant: list[int], k: int) -> float:
    """The share of ``relevant`` documents among the ``k`` rows of ``index`` nearest to ``query``
    by cosine (ties broken by row order). ``relevant`` must not be empty."""
    if not relevant:
        raise ValueError("recall@k needs at least one relevant document")
    return recall_of(nearest_documents(query, index, k), relevant)
