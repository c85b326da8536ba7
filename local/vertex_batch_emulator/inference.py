"""What the emulated model answers, and the token counts it reports. Deterministic by design.

Token rule (documented so tests and users can compute expected usage):
- the *prompt text* is the text of `systemInstruction` parts followed by the text of every `contents`
  part, in order; a non-text part (fileData, inlineData, functionCall, ...) counts as its compact JSON;
- tokens(text) = ceil(len(text) / 4); `promptTokenCount` = tokens(prompt text);
- the answer is `"<model> answer <12 hex of sha256(request)>: <first 64 chars of the last user text>"`
  (as a JSON object `{"id": ..., "answer": ...}` when `responseMimeType` is application/json);
  `candidatesTokenCount` = tokens(answer);
- thinking models (ids starting gemini-2.5 or gemini-3, except -lite) report `thoughtsTokenCount`
  = min(32 + prompt // 8, thinkingBudget) (no thoughts with a budget of 0);
- `totalTokenCount` = prompt + candidates + thoughts; zero counts are omitted, as Vertex does.

Implicit caching: prompts are cut into blocks of 256 tokens (1,024 characters). A request whose
prompt starts with the same blocks as an earlier request of the same project and model gets those
whole blocks counted in `cachedContentTokenCount`, if they reach the threshold (2,048 tokens by
default). The cache remembers the most recent 200,000 prefixes, so memory stays bounded.
"""

from __future__ import annotations

import collections
import hashlib
import math
import threading
from typing import Any

import orjson

CHARS_PER_TOKEN = 4
BLOCK_TOKENS = 256
BLOCK_CHARS = BLOCK_TOKENS * CHARS_PER_TOKEN


def tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def _part_text(part: Any) -> str:
    if isinstance(part, dict) and isinstance(part.get("text"), str):
        return part["text"]
    return orjson.dumps(part).decode()


def prompt_text(request: dict[str, Any]) -> str:
    pieces: list[str] = []
    system = request.get("systemInstruction") or request.get("system_instruction")
    if isinstance(system, dict):
        pieces += [_part_text(p) for p in system.get("parts") or []]
    for content in request.get("contents") or []:
        if isinstance(content, dict):
            pieces += [_part_text(p) for p in content.get("parts") or []]
    return "".join(pieces)


def _last_user_text(request: dict[str, Any]) -> str:
    for content in reversed(request.get("contents") or []):
        if isinstance(content, dict) and content.get("role", "user") == "user":
            texts = [p["text"] for p in content.get("parts") or [] if isinstance(p, dict) and "text" in p]
            if texts:
                return " ".join(texts)
    return ""


def _generation_config(request: dict[str, Any]) -> dict[str, Any]:
    config = request.get("generationConfig") or request.get("generation_config") or {}
    return config if isinstance(config, dict) else {}


def is_thinking_model(model_id: str) -> bool:
    return model_id.startswith(("gemini-2.5", "gemini-3")) and "-lite" not in model_id


def thoughts_tokens(model_id: str, request: dict[str, Any], prompt_tokens: int) -> int:
    if not is_thinking_model(model_id):
        return 0
    config = _generation_config(request)
    thinking = config.get("thinkingConfig") or config.get("thinking_config") or {}
    budget = thinking.get("thinkingBudget", thinking.get("thinking_budget", 8192))
    if not isinstance(budget, int) or budget == 0:
        return 0
    natural = 32 + prompt_tokens // 8
    return natural if budget < 0 else min(natural, budget)


def answer_text(model_id: str, request: dict[str, Any]) -> str:
    digest = hashlib.sha256(orjson.dumps(request, option=orjson.OPT_SORT_KEYS)).hexdigest()[:12]
    summary = _last_user_text(request)[:64]
    config = _generation_config(request)
    if (config.get("responseMimeType") or config.get("response_mime_type")) == "application/json":
        return orjson.dumps({"id": digest, "answer": summary}).decode()
    return f"{model_id} answer {digest}: {summary}"


class ImplicitCache:
    """Prefix cache per (project, model), in whole blocks, bounded in entries (oldest evicted first)."""

    def __init__(self, threshold_tokens: int = 2048, capacity: int = 200_000) -> None:
        self.threshold_tokens = threshold_tokens
        self.capacity = capacity
        self._entries: collections.OrderedDict[tuple[str, str, bytes], None] = collections.OrderedDict()
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def lookup_and_remember(self, project: str, model: str, text: str) -> int:
        """Cached tokens for this prompt; then remember its prefixes for later requests."""
        blocks = len(text) // BLOCK_CHARS
        first_useful = max(1, math.ceil(self.threshold_tokens / BLOCK_TOKENS))
        if blocks < first_useful:
            return 0
        digest = hashlib.blake2b(digest_size=12)
        prefixes: list[bytes] = []
        for index in range(blocks):
            digest.update(text[index * BLOCK_CHARS : (index + 1) * BLOCK_CHARS].encode())
            if index + 1 >= first_useful:
                prefixes.append(digest.copy().digest())
        cached_blocks = 0
        with self._lock:
            for offset in range(len(prefixes) - 1, -1, -1):
                key = (project, model, prefixes[offset])
                if key in self._entries:
                    cached_blocks = first_useful + offset
                    self._entries.move_to_end(key)
                    break
            for prefix in prefixes:
                self._entries[(project, model, prefix)] = None
                self._entries.move_to_end((project, model, prefix))
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)
        return cached_blocks * BLOCK_TOKENS


def generate(model_id: str, project: str, request: dict[str, Any], cache: ImplicitCache) -> dict[str, Any]:
    """The `response` of a successful output row."""
    prompt = prompt_text(request)
    prompt_tokens = tokens(prompt)
    cached = min(cache.lookup_and_remember(project, model_id, prompt), prompt_tokens)
    text = answer_text(model_id, request)
    candidates = tokens(text)
    thoughts = thoughts_tokens(model_id, request, prompt_tokens)
    usage = {
        "promptTokenCount": prompt_tokens,
        "candidatesTokenCount": candidates,
        "cachedContentTokenCount": cached,
        "thoughtsTokenCount": thoughts,
        "totalTokenCount": prompt_tokens + candidates + thoughts,
    }
    return {
        "candidates": [{"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP"}],
        "modelVersion": model_id,
        "usageMetadata": {key: value for key, value in usage.items() if value},
    }
