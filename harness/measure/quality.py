"""Answer quality on canary queries: recall@k of an embedding against a document index.

Pure (numpy, pandas): the index (unit vectors of the documents, built once with the primary
model), a query's embedding as an answer returned it, and the documents known to be relevant to
the query. A fallback serving the same model keeps recall; one serving another model answers
vectors from another space, and recall falls to chance while every request succeeds.

The probe scores each answer as it arrives (harness/load/canaries.py) and records one row per
scored answer (``samples/quality.csv``: :data:`QUALITY_COLUMNS`); harness/measure/quality_phases.py
summarises them per window and judges ``min_quality``. This module needs numpy alone: the
embeddings virtualenv's bench loads it by path (bench/embeddings_cost.py).
"""

from __future__ import annotations

import numpy as np

QUALITY_COLUMNS = ["start", "canary", "served_by", "tier", "k", "recall", "nearest"]


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
