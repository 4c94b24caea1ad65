"""Answer quality on canary queries: recall@k of an embedding against a document index.

Pure (numpy): the index (unit vectors of the documents, built once with the primary model), a
query's embedding as an answer returned it, and the documents known to be relevant to the query.
A fallback serving the same model keeps recall; one serving another model answers vectors from
another space, and recall falls to chance while every request succeeds.
"""

from __future__ import annotations

import numpy as np


def recall_at_k(query: np.ndarray, index: np.ndarray, relevant: list[int], k: int) -> float:
    """The share of ``relevant`` documents among the ``k`` rows of ``index`` nearest to ``query``
    by cosine (ties broken by row order). ``relevant`` must not be empty."""
    if not relevant:
        raise ValueError("recall@k needs at least one relevant document")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    unit_query = query / max(float(np.linalg.norm(query)), 1e-12)
    norms = np.maximum(np.linalg.norm(index, axis=1), 1e-12)
    scores = (index @ unit_query) / norms
    nearest = np.argsort(-scores, kind="stable")[:k]
    return len(set(nearest.tolist()) & set(relevant)) / len(relevant)
