"""The tokens of an input, estimated before anything is paid (docs/estimate.md); pricing.py prices them.

Tokens are approximated, not counted: counting them exactly is an online call per request. Gemini's
documented rule of thumb is about 4 characters per token for text; a media part (inline data or a file)
counts 258 tokens, the size of one image. Output is bounded by `generationConfig.maxOutputTokens` where a
request sets it (thinking tokens included), and not counted where it does not, which the method says.
"""

from __future__ import annotations

from typing import Any

CHARS_PER_TOKEN = 4
MEDIA_PART_TOKENS = 258
_MEDIA_KEYS = ("inlineData", "inline_data", "fileData", "file_data")


def _parts(request: dict[str, Any]) -> list[Any]:
    system = request.get("systemInstruction") or request.get("system_instruction")
    holders = [system, *(request.get("contents") or [])] if isinstance(request.get("contents"), list) else [system]
    return [part for holder in holders if isinstance(holder, dict) for part in holder.get("parts") or []]


def request_tokens(request: dict[str, Any]) -> tuple[int, int | None]:
    """(estimated input tokens, the request's output bound or None)."""
    chars, media = 0, 0
    for part in _parts(request):
        if not isinstance(part, dict):
            continue
        text = part.get("text")
        if isinstance(text, str):
            chars += len(text)
        elif any(key in part for key in _MEDIA_KEYS):
            media += 1
    config = request.get("generationConfig") or request.get("generation_config") or {}
    bound = config.get("maxOutputTokens", config.get("max_output_tokens")) if isinstance(config, dict) else None
    bound = bound if isinstance(bound, int) and not isinstance(bound, bool) and bound >= 0 else None
    return -(-chars // CHARS_PER_TOKEN) + media * MEDIA_PART_TOKENS, bound


class Tally:
    """Sums the estimate over the requests of an input."""

    def __init__(self) -> None:
        self.input_tokens = 0
        self.output_bound = 0
        self.requests = 0
        self.unbounded = 0

    def add(self, request: dict[str, Any]) -> None:
        tokens, bound = request_tokens(request)
        self.input_tokens += tokens
        self.requests += 1
        if bound is None:
            self.unbounded += 1
        else:
            self.output_bound += bound

    def method(self) -> str:
        output = (
            "output: generationConfig.maxOutputTokens of each request (an upper bound)"
            if not self.unbounded
            else f"output: maxOutputTokens where set; not counted for {self.unbounded} of {self.requests} "
            "requests that set none"
        )
        return (
            f"input: text characters / {CHARS_PER_TOKEN}, {MEDIA_PART_TOKENS} tokens per media part; {output}; "
            "batch price"
        )
