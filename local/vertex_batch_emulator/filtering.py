"""AIP-160 list filters as `batchPredictionJobs.list` documents them.

Supported, as the v1 discovery document lists them and only those (a camelCase `createTime` is
refused, as an undocumented field): `display_name` with `=`, `!=` and `:` (`*` wildcards);
`model_display_name` with `=`/`!=` (a publisher model's display name is its id); `state` with
`=`/`!=` and a JobState; `create_time` with `= != < <= > >=` and an RFC 3339 value;
`labels.key=value`, `labels.key!=value`, `labels.key:*` (has the key) and `labels.key:value`, keys
with `-` included; `AND`, `OR`, `NOT` (or a leading `-`), parentheses, and juxtaposition as AND.
As AIP-160 specifies, OR binds tighter than AND: `a AND b OR c` means `a AND (b OR c)`.
"""

from __future__ import annotations

import datetime
import fnmatch
import re
from collections.abc import Callable
from typing import Any

from .catalogue import JOB_STATES

Predicate = Callable[[dict[str, Any]], bool]


def _states(predicate: Predicate, states: frozenset[str] | None) -> Predicate:
    predicate.states = states  # type: ignore[attr-defined]
    return predicate


def required_states(predicate: Predicate) -> frozenset[str] | None:
    """The states a job must be in to match, when the filter says (`state="X" OR state="Y" AND ...`):
    a list tests the state first, which skips most finished jobs without evaluating the rest."""
    return getattr(predicate, "states", None)


class FilterError(ValueError):
    """A filter the server cannot parse: answered as 400 INVALID_ARGUMENT."""


_TOKEN = re.compile(
    r'\s*(?:(?P<lparen>\()|(?P<rparen>\))|(?P<op><=|>=|!=|=|<|>|:)|(?P<string>"(?:[^"\\]|\\.)*")'
    r"|(?P<word>[^\s()<>=!:\"]+))"
)


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens, position = [], 0
    text = text.strip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if not match or match.end() == position:
            raise FilterError(f"Invalid filter: unexpected character at position {position}: {text[position:]!r}")
        kind = match.lastgroup or ""
        value = match.group(kind)
        if kind == "string":
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        tokens.append((kind, value))
        position = match.end()
    return tokens


def _parse_time(value: str) -> datetime.datetime:
    try:
        return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise FilterError(f"Invalid filter: {value!r} is not an RFC 3339 timestamp") from None


_COMPARE = {
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


FIELDS = "display_name, model_display_name, state, create_time and labels.<key>"


def _model_display_name(job: dict[str, Any]) -> str:
    """A publisher model's display name is its id (`gemini-2.5-flash`); a tuned model's, its resource id."""
    return str(job.get("model", "")).rsplit("/", 1)[-1].split("@", 1)[0]


def _restriction(field: str, op: str, value: str) -> Predicate:
    if field in ("display_name", "model_display_name"):
        read: Callable[[dict[str, Any]], str] = (
            _model_display_name if field == "model_display_name" else lambda job: job.get("displayName", "")
        )
        if op == ":" and field == "display_name":
            return lambda job: fnmatch.fnmatchcase(read(job), value)
        if op in ("=", "!="):
            return lambda job: (read(job) == value) == (op == "=")
    elif field == "state":
        if value not in JOB_STATES:
            raise FilterError(f"Invalid filter: {value!r} is not a JobState (JOB_STATE_RUNNING, ...)")
        if op in ("=", "!="):
            equal = op == "="
            return _states(lambda job: (job.get("state") == value) == equal, frozenset({value}) if equal else None)
    elif field == "create_time":
        if op in _COMPARE:
            moment = _parse_time(value)
            return lambda job: _COMPARE[op](_parse_time(job["createTime"]), moment)
    elif field.startswith("labels."):
        label = field.removeprefix("labels.")
        if op == ":" and value == "*":
            return lambda job: label in job.get("labels", {})
        if op in ("=", ":"):
            return lambda job: job.get("labels", {}).get(label) == value
        if op == "!=":
            return lambda job: job.get("labels", {}).get(label) != value
    else:
        raise FilterError(f"Invalid filter: unsupported field {field!r}; the fields are {FIELDS}")
    raise FilterError(f"Invalid filter: unsupported restriction {field} {op} {value!r}")


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.position = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise FilterError("Invalid filter: unexpected end")
        self.position += 1
        return token

    def expression(self) -> Predicate:
        """expression := sequence {AND sequence}; juxtaposed terms are ANDed too."""
        parts = [self.disjunction()]
        while (token := self.peek()) is not None and token != ("rparen", ")"):
            if token == ("word", "AND"):
                self.take()
            parts.append(self.disjunction())
        known = [states for part in parts if (states := required_states(part)) is not None]
        both = frozenset.intersection(*known) if known else None
        if len(parts) == 1:
            return parts[0]

        def conjunction(job: dict[str, Any]) -> bool:
            for part in parts:  # noqa: SIM110 (a loop is faster than all() over a generator, per job)
                if not part(job):
                    return False
            return True

        return _states(conjunction, both)

    def disjunction(self) -> Predicate:
        parts = [self.term()]
        while self.peek() == ("word", "OR"):
            self.take()
            parts.append(self.term())
        if len(parts) == 1:
            return parts[0]
        known = [required_states(part) for part in parts]
        either = None if None in known else frozenset().union(*known)  # type: ignore[arg-type]

        def disjunction(job: dict[str, Any]) -> bool:
            for part in parts:  # noqa: SIM110
                if part(job):
                    return True
            return False

        return _states(disjunction, either)

    def term(self) -> Predicate:
        kind, value = self.take()
        if (kind, value) == ("word", "NOT") or (kind == "word" and value == "-"):
            inner = self.term()
            return lambda job: not inner(job)
        if kind == "word" and value.startswith("-") and len(value) > 1:
            self.position -= 1
            self.tokens[self.position] = ("word", value[1:])
            inner = self.term()
            return lambda job: not inner(job)
        if kind == "lparen":
            inner = self.expression()
            if self.take() != ("rparen", ")"):
                raise FilterError("Invalid filter: missing ')'")
            return inner
        if kind != "word":
            raise FilterError(f"Invalid filter: expected a field name, found {value!r}")
        op_kind, op = self.take()
        if op_kind != "op":
            raise FilterError(f"Invalid filter: expected a comparator after {value!r}")
        value_kind, operand = self.take()
        if value_kind not in ("word", "string"):
            raise FilterError(f"Invalid filter: expected a value after {value} {op}")
        return _restriction(value, op, operand)


def compile_filter(text: str | None) -> Predicate:
    """Compile a filter into a predicate over a job's REST representation."""
    if not text or not text.strip():
        return lambda job: True
    parser = _Parser(text)
    predicate = parser.expression()
    if parser.peek() is not None:
        raise FilterError(f"Invalid filter: unexpected {parser.peek()[1]!r}")  # type: ignore[index]
    return predicate
