"""Counts and articles in messages: "1 request", "2 requests", "an array", so no message reads "1 requests"."""

from __future__ import annotations

# Irregular plurals of the nouns our messages count.
_PLURALS = {"try": "tries", "entry": "entries", "query": "queries"}


def plural(count: int, noun: str, many: str | None = None) -> str:
    """`count` and the noun, singular for exactly one: plural(1, "request") == "1 request"."""
    if count == 1:
        return f"{count} {noun}"
    return f"{count} {many or _PLURALS.get(noun) or noun + 's'}"


def article(word: str) -> str:
    """The word with "a" or "an" before it, by its first letter: article("array") == "an array"."""
    vowel = bool(word) and word[0].lower() in "aeiou"
    return f"{'an' if vowel else 'a'} {word}"
