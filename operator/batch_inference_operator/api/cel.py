"""Builders for the CRD's CEL rules (`x-kubernetes-validations`), attached to the models' JSON schema.

`crd.py` copies them into the CRD unchanged; the pydantic validators enforce the same rules in the
operator, so a manifest is judged alike on the cluster and in the operator. A string rule is written
once as a `Predicate` that renders itself as CEL and checks a value in Python, with the message users see.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


def rule(text: str, message: str, field_path: str | None = None, reason: str | None = None) -> dict[str, str]:
    """One `x-kubernetes-validations` entry."""
    entry = {"rule": text, "message": message}
    if field_path:
        entry["fieldPath"] = field_path
    if reason:
        entry["reason"] = reason
    return entry


def validations(*rules: dict[str, str]) -> dict[str, Any]:
    """A JSON-schema fragment carrying these rules."""
    return {"x-kubernetes-validations": list(rules)}


def exactly_one(a: str, b: str, where: str) -> dict[str, Any]:
    return validations(
        rule(f"has(self.{a}) != has(self.{b})", f"exactly one of {where}.{a} or {where}.{b} must be set")
    )


def immutable(field: str, optional: bool = False) -> dict[str, str]:
    """The field may not change once set (nor appear or disappear, when optional)."""
    text = f"self.{field} == oldSelf.{field}"
    if optional:
        text = f"has(self.{field}) == has(oldSelf.{field}) && (!has(self.{field}) || {text})"
    return rule(
        text,
        f"spec.{field} is immutable: it defines the Vertex job; create a new BatchInferenceJob instead",
        field_path=f".{field}",
        reason="FieldValueForbidden",
    )


# ---------------------------------------------------------------- string tests: one text, two evaluators


@dataclass(frozen=True)
class Predicate:
    """A condition on a string: `cel(variable)` is its CEL text, `check(value)` its Python verdict."""

    cel: Callable[[str], str]
    check: Callable[[str], bool]

    def __or__(self, other: Predicate) -> Predicate:
        return Predicate(lambda v: f"({self.cel(v)} || {other.cel(v)})", lambda s: self.check(s) or other.check(s))

    def __invert__(self) -> Predicate:
        return Predicate(lambda v: f"!{self.cel(v)}", lambda s: not self.check(s))


def _python_regex(regex: str) -> re.Pattern[str]:
    """RE2's `$` is the end of the text; Python's also matches before a final newline, so use `\\Z`."""
    return re.compile(re.sub(r"(?<!\\)\$", r"\\Z", regex))


def matches(regex: str) -> Predicate:
    """CEL's `matches`: an unanchored RE2 search. Written in the common subset of RE2 and Python `re`."""
    if "'" in regex:
        raise ValueError(f"regex {regex!r} would end its CEL raw string")
    compiled = _python_regex(regex)
    return Predicate(lambda v: f"{v}.matches(r'{regex}')", lambda s: compiled.search(s) is not None)


def _literal(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def starts_with(prefix: str) -> Predicate:
    return Predicate(lambda v: f"{v}.startsWith({_literal(prefix)})", lambda s: s.startswith(prefix))


def contains(text: str) -> Predicate:
    return Predicate(lambda v: f"{v}.contains({_literal(text)})", lambda s: text in s)


@dataclass(frozen=True)
class Check:
    """A value passes when `ok` holds; otherwise users read `message`: what is wrong, what to write."""

    ok: Predicate
    message: str


def string_rules(checks: Sequence[Check]) -> dict[str, Any]:
    """The schema fragment enforcing these checks on a string field."""
    return validations(*(rule(c.ok.cel("self"), c.message) for c in checks))


def key_rules(checks: Sequence[Check]) -> dict[str, Any]:
    """The schema fragment enforcing these checks on every key of a map."""
    return validations(*(rule(f"self.all(k, {c.ok.cel('k')})", c.message) for c in checks))


def failures(checks: Sequence[Check], value: str) -> list[str]:
    """The messages of the checks `value` fails, in order."""
    return [c.message for c in checks if not c.ok.check(value)]
