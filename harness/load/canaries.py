"""Canary queries for answer quality: the probe asks known questions and scores every answer.

A **retrieval** canary file (JSON, e.g. ``targets/data/embeddings-canaries.json``) holds a small
document set and canary queries, each with the documents known to be relevant to it::

    {"documents": ["...", "..."],
     "canaries": [{"query": "how do I reset my password", "relevant": [0, 1]}, ...]}

A **chat** canary file has no documents, only prompts (``targets/data/chat-canaries.json``)::

    {"canaries": [{"query": "Summarise our refund policy"}, ...]}

With ``load.canaries`` set, the prober (harness/load/prober.py) first indexes the documents once,
through the same endpoint and before any fault (the index is built with the model the stack
serves when healthy: the primary's), then sends canary ``i % n`` as probe ``i``'s ``input`` and
scores each 2xx answer: recall@k of the answer's vector against the index
(:func:`harness.measure.quality.recall_at_k`). A fallback serving the same model keeps recall;
one serving another model answers vectors from another space, every request succeeds and recall
falls to chance. With chat canaries the probe first asks every prompt once (the primary's
answers are the references), sends prompt ``i % n`` as probe ``i``'s only user message and scores
each answer's similarity to the reference (:func:`harness.measure.quality.similarity`): the
output divergence of the tier that answered.

Files in ``RUN_DIR/samples/`` (harness/rundir reads them):

- ``quality-index.json``: who built the index (served_by, tier, status), when, the model named
  in the answer, the kind, k, and the document vectors (or the reference answers, for chat);
- ``quality.csv``: one row per scored answer, :data:`QUALITY_COLUMNS`: ``start`` (the probe's,
  as in probe.csv, so each row joins its request), ``canary`` (its number in the file),
  ``served_by``, ``tier``, ``k`` (0 for chat), ``score`` (recall@k, or the similarity) and
  ``nearest`` (the k nearest documents, best first, space-separated: recall is recomputable from
  them and the file's labels; empty for chat).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.measure.quality import CHAT, QUALITY_COLUMNS, RETRIEVAL, nearest_documents, recall_of, similarity

__all__ = ["QUALITY_COLUMNS", "CanaryProbe", "CanarySet", "read_canaries"]

# Copies of harness/rundir's names (tests/test_quality.py keeps them equal).
QUALITY_FILE = "quality.csv"
QUALITY_INDEX_FILE = "quality-index.json"
MAX_DOCUMENTS = 1000
MAX_CANARIES = 1000
INDEX_BATCH = 64  # the reference embeddings server takes at most 64 inputs per request


@dataclass(frozen=True)
class Canary:
    query: str
    relevant: tuple[int, ...]


@dataclass(frozen=True)
class CanarySet:
    """The documents (none for chat), the canary queries and k (``load.canaries.k``; retrieval)."""

    documents: tuple[str, ...]
    canaries: tuple[Canary, ...]
    k: int

    @property
    def kind(self) -> str:
        """``retrieval`` (documents to find) or ``chat`` (answers to compare)."""
        return RETRIEVAL if self.documents else CHAT

    def to_dict(self) -> dict[str, Any]:
        return {"documents": list(self.documents), "k": self.k,
                "canaries": [{"query": c.query, "relevant": list(c.relevant)} for c in self.canaries]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CanarySet:
        return cls(documents=tuple(str(d) for d in data["documents"]), k=int(data["k"]),
                   canaries=tuple(Canary(str(c["query"]), tuple(int(r) for r in c["relevant"]))
                                  for c in data["canaries"]))


def read_canaries(path: Path, k: int) -> CanarySet:
    """The canary file at ``path``; ValueError saying what is wrong (the scenario loader names
    the scenario's FILE:LINE and field beside it)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read {path}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}:{exc.lineno} is not JSON: {exc.msg}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected an object with canaries (and documents, for retrieval)")
    canaries = data.get("canaries")
    if "documents" not in data:
        return _chat_canaries(path, canaries)
    documents = data.get("documents")
    if not (isinstance(documents, list) and 0 < len(documents) <= MAX_DOCUMENTS
            and all(isinstance(d, str) and d for d in documents)):
        raise ValueError(f"{path}: documents must be a list of 1..{MAX_DOCUMENTS} non-empty strings")
    if not (isinstance(canaries, list) and 0 < len(canaries) <= MAX_CANARIES):
        raise ValueError(f"{path}: canaries must be a list of 1..{MAX_CANARIES} {{query, relevant}} objects")
    found: list[Canary] = []
    for number, item in enumerate(canaries):
        query = item.get("query") if isinstance(item, dict) else None
        relevant = item.get("relevant") if isinstance(item, dict) else None
        if not isinstance(query, str) or not query:
            raise ValueError(f"{path}: canaries[{number}].query must be a non-empty string")
        if not (isinstance(relevant, list) and relevant
                and all(isinstance(r, int) and not isinstance(r, bool) and 0 <= r < len(documents) for r in relevant)):
            raise ValueError(f"{path}: canaries[{number}].relevant must list document numbers 0..{len(documents) - 1}")
        found.append(Canary(query, tuple(sorted(set(relevant)))))
    if k > len(documents):
        raise ValueError(f"k {k} is more than the {len(documents)} documents of {path}")
    return CanarySet(tuple(documents), tuple(found), k)


def _chat_canaries(path: Path, canaries: object) -> CanarySet:
    if not (isinstance(canaries, list) and 0 < len(canaries) <= MAX_CANARIES):
        raise ValueError(f"{path}: canaries must be a list of 1..{MAX_CANARIES} {{query}} objects")
    found = []
    for number, item in enumerate(canaries):
        query = item.get("query") if isinstance(item, dict) else None
        if not isinstance(query, str) or not query:
            raise ValueError(f"{path}: canaries[{number}].query must be a non-empty string")
        found.append(Canary(query, ()))
    return CanarySet((), tuple(found), 0)


def answer_text(body: bytes) -> str | None:
    """The first choice's message content of a chat completion; None when it holds none."""
    try:
        content = json.loads(body)["choices"][0]["message"]["content"]
    except (ValueError, TypeError, KeyError, IndexError):
        return None
    return content if isinstance(content, str) else None


def answer_vectors(body: bytes) -> np.ndarray | None:
    """The vectors of an OpenAI embeddings answer in ``index`` order; None when it holds none."""
    try:
        data = json.loads(body)
        items = sorted(data["data"], key=lambda item: int(item.get("index", 0)))
        vectors = np.array([item["embedding"] for item in items], dtype=np.float64)
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
    return vectors if vectors.ndim == 2 and len(vectors) else None


def answer_model(body: bytes) -> str:
    try:
        model = json.loads(body).get("model")
    except (ValueError, AttributeError):
        return ""
    return model if isinstance(model, str) else ""


@dataclass(frozen=True)
class Score:
    canary: int
    score: float  # recall@k, or the similarity to the reference answer
    nearest: tuple[int, ...]

    def row(self, start_s: float, served_by: str, tier: str, k: int) -> list[str]:
        """A :data:`QUALITY_COLUMNS` row (``start`` formatted as probe.csv's)."""
        return [f"{start_s:.6f}", str(self.canary), served_by, tier, str(k), f"{self.score:.6f}",
                " ".join(str(n) for n in self.nearest)]


class CanaryProbe:
    """What the prober needs: each probe's body and, once the index is built, each answer's score."""

    def __init__(self, canaries: CanarySet, request_json: object) -> None:
        if not isinstance(request_json, dict):
            raise ValueError("load.canaries needs a probe request with a JSON object body (its input is replaced)")
        self.canaries = canaries
        self._template = dict(request_json)
        self.index: np.ndarray | None = None
        self.references: tuple[str, ...] | None = None  # chat: the primary's answers

    @property
    def ready(self) -> bool:
        """The index (or the references) is built: answers can be scored."""
        return self.index is not None or self.references is not None

    def _ask(self, query: str | list[str]) -> bytes:
        if self.canaries.kind == CHAT:
            return json.dumps({**self._template, "messages": [{"role": "user", "content": query}]}).encode()
        return json.dumps({**self._template, "input": query}).encode()

    def body(self, probe_number: int) -> tuple[int, bytes]:
        """(canary number, request body) of probe ``probe_number``: the canaries in turn."""
        number = probe_number % len(self.canaries.canaries)
        return number, self._ask(self.canaries.canaries[number].query)

    def index_bodies(self) -> list[bytes]:
        """The request bodies that embed the documents (in batches of :data:`INDEX_BATCH`), or
        for chat that ask every prompt once (the references)."""
        if self.canaries.kind == CHAT:
            return [self._ask(c.query) for c in self.canaries.canaries]
        docs = self.canaries.documents
        return [self._ask(list(docs[i:i + INDEX_BATCH])) for i in range(0, len(docs), INDEX_BATCH)]

    def set_index(self, answers: Sequence[bytes]) -> str | None:
        """Build the index (or the references) from the answers to :meth:`index_bodies`; why
        not, or None."""
        if self.canaries.kind == CHAT:
            texts = [answer_text(body) for body in answers]
            if len(texts) != len(self.canaries.canaries) or any(t is None for t in texts):
                return "a reference answer held no message content"
            self.references = tuple(t or "" for t in texts)
            return None
        parts = [answer_vectors(body) for body in answers]
        if any(p is None for p in parts):
            return "an index answer held no embeddings"
        index = np.vstack([p for p in parts if p is not None])
        if len(index) != len(self.canaries.documents):
            return f"{len(index)} vectors for {len(self.canaries.documents)} documents"
        self.index = index
        return None

    def score(self, canary: int, body: bytes) -> Score | None:
        """The score of one answer to canary ``canary``; None without an index or a vector (such
        an answer is left unscored). A vector of other dimensions than the index's (another
        model) finds nothing in it: recall 0."""
        if self.canaries.kind == CHAT:
            text = answer_text(body)
            if self.references is None or text is None:
                return None
            return Score(canary, similarity(text, self.references[canary]), ())
        vectors = answer_vectors(body)
        if self.index is None or vectors is None:
            return None
        if vectors.shape[1] != self.index.shape[1]:
            return Score(canary, 0.0, ())
        nearest = nearest_documents(vectors[0], self.index, self.canaries.k)
        relevant = self.canaries.canaries[canary].relevant
        return Score(canary, recall_of(nearest, relevant), nearest)
