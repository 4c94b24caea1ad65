"""The reference model's answers: a deterministic token sequence per (model, prompt).

Token ``i`` of the answer to ``prompt`` by ``model`` is a short made-up word (four
consonant-vowel syllables and a space) taken from SHA-256 of ``model``, ``prompt`` and ``i``.
A client that knows what it asked can therefore tell which token should come next, which it
already had (a repeat), which it never got (lost at a splice), and which belong to another
answer (another model's, or another prompt's). harness/load/streams.py holds the same function
(it may import nothing from targets); tests/test_answers.py keeps the two equal.

The *prompt* is the messages' contents joined by a newline, without a last ``assistant``
message: that one is a prefill, the answer so far, and the model continues it (the way vLLM's
``continue_final_message`` and Anthropic's prefill do). A prefill of ``n`` tokens of this
answer makes the server send tokens ``n`` onwards: the gateway's mid-stream resume uses it.
"""

from __future__ import annotations

import hashlib
from typing import Any

CONSONANTS = "bdfgklmnprstvzhj"
VOWELS = "aeiou"
SYLLABLES = 4


def answer_token(model: str, prompt: str, index: int) -> str:
    """Token ``index`` (from 0) of the answer to ``prompt`` by ``model``."""
    digest = hashlib.sha256(f"{model}\x1f{prompt}\x1f{index}".encode()).digest()
    word = "".join(
        CONSONANTS[digest[2 * k] % len(CONSONANTS)] + VOWELS[digest[2 * k + 1] % len(VOWELS)]
        for k in range(SYLLABLES)
    )
    return word + " "


def split_prompt(body: dict[str, Any]) -> tuple[str, str]:
    """``(prompt, prefill)`` of a chat request body: the prompt as :func:`answer_token` takes it
    and the content of a last ``assistant`` message ("" without one)."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        return "", ""
    contents = [m for m in messages if isinstance(m, dict)]
    prefill = ""
    if contents and contents[-1].get("role") == "assistant":
        content = contents.pop().get("content")
        prefill = content if isinstance(content, str) else ""
    prompt = "\n".join(m["content"] for m in contents if isinstance(m.get("content"), str))
    return prompt, prefill


def prefill_tokens(prefill: str) -> int:
    """How many tokens of an answer a prefill holds (every token is one word and a space)."""
    return len(prefill.split())
