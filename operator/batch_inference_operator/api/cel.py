"""Builders for the CRD's CEL rules (`x-kubernetes-validations`), attached to the models' JSON schema.

`crd.py` copies them into the CRD unchanged; the pydantic validators enforce the same rules in the
operator, so a manifest is judged alike on the cluster and in the operator.
"""

from __future__ import annotations

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
