"""Enforce a CRD the way kube-apiserver does: prune or refuse unknown fields, default, validate the
openAPIV3Schema (with jsonschema) and evaluate the `x-kubernetes-validations` CEL rules (with
cel-python), `oldSelf` transition rules included. Errors come back as apiserver-style causes, so a
manifest a real cluster would refuse is refused here with the same field path and a similar message.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from typing import Any

import celpy
import jsonschema
import re2

_MISSING = object()
# A constant regex of a CEL `matches` call: an optional raw-string prefix, then a single-quoted literal.
_CEL_MATCHES = re.compile(r"\.matches\((r?)'((?:[^'\\]|\\.)*)'\)")


def _cel_string(raw: str, text: str) -> str:
    """The value of a single-quoted CEL string literal (escapes resolved unless it is a raw string)."""
    return text if raw else re.sub(r"\\(.)", r"\1", text)


@dataclass(frozen=True)
class Cause:
    """One entry of a Status `details.causes`: the field, a reason and a message naming the field."""

    field: str
    reason: str
    message: str

    def render(self) -> str:
        return f"{self.field}: {self.message}"


def _join(path: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def _path_of(parts: Any) -> str:
    path = ""
    for part in parts:
        path = _join(path, part)
    return path


def _quote(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, dict):
        return '"object"'
    if isinstance(value, list):
        return '"array"'
    return json.dumps(value)


_JSON_TYPES = {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer", float: "number"}


def _whole(value: Any, schema: dict[str, Any]) -> Any:
    """Go decodes 3.0 as a float, the `integer` type accepts it and it is stored (and read back) as 3."""
    if schema.get("type") == "integer" and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# What a real API server (1.37) adds when schema errors kept the CRD's CEL rules from running.
RULES_NOT_CHECKED = Cause(
    "<nil>",
    "FieldValueInvalid",
    "Invalid value: null: some validation rules were not checked because the object was invalid; "
    "correct the existing errors to complete validation",
)


# Schema errors after which the apiserver does not run CEL rules (apiextensions' hasBlockingErr);
# after the others (a minimum, a pattern, a minLength) the rules run and their errors are added.
BLOCKING_REASONS = {
    "FieldValueNotSupported",
    "FieldValueRequired",
    "FieldValueTooLong",
    "FieldValueTooMany",
    "FieldValueTypeInvalid",
}


def _schema_error_order(error: jsonschema.ValidationError) -> tuple[list[Any], int]:
    """By path; at one path the type error comes first, as kube-openapi's validators run."""
    return list(error.absolute_path), 0 if error.validator == "type" else 1


def _causes_from_schema_error(error: jsonschema.ValidationError) -> list[Cause]:
    cause = _cause_from_schema_error(error)
    if error.validator == "type" and error.validator_value == "integer" and isinstance(error.instance, float):
        # kube-openapi's format check also refuses a fractional number where an integer is expected
        return [
            cause,
            Cause(
                "<nil>",
                "FieldValueInvalid",
                f'Invalid value: "": Checked value must be of type integer (default format) in {cause.field}',
            ),
        ]
    return [cause]


def _cause_from_schema_error(error: jsonschema.ValidationError) -> Cause:
    field = _path_of(error.absolute_path)
    value = error.instance
    kind = error.validator
    limit = error.validator_value
    if kind == "required":
        missing = error.message.split("'")[1]
        return Cause(_join(field, missing), "FieldValueRequired", "Required value")
    if kind == "enum":
        supported = ", ".join(json.dumps(v) for v in limit)
        return Cause(
            field, "FieldValueNotSupported", f"Unsupported value: {_quote(value)}: supported values: {supported}"
        )
    if kind == "type":
        actual = _JSON_TYPES.get(type(value), "null")
        return Cause(
            field,
            "FieldValueTypeInvalid",
            f'Invalid value: "{actual}": {field} in body must be of type {limit}: "{actual}"',
        )
    if kind == "pattern":
        return Cause(
            field, "FieldValueInvalid", f"Invalid value: {_quote(value)}: {field} in body should match '{limit}'"
        )
    if kind == "maxLength":
        return Cause(field, "FieldValueTooLong", f"Too long: may not be more than {limit} bytes")
    if kind == "minLength":
        return Cause(
            field,
            "FieldValueInvalid",
            f"Invalid value: {_quote(value)}: {field} in body should be at least {limit} chars long",
        )
    if kind in ("maxItems", "maxProperties"):
        return Cause(field, "FieldValueTooMany", f"Too many: {len(value)}: must have at most {limit} items")
    if kind in ("minItems", "minProperties"):
        return Cause(
            field,
            "FieldValueInvalid",
            f"Invalid value: {len(value)}: {field} in body should have at least {limit} items",
        )
    if kind == "minimum":
        return Cause(
            field,
            "FieldValueInvalid",
            f"Invalid value: {value}: {field} in body should be greater than or equal to {limit}",
        )
    if kind == "maximum":
        return Cause(
            field,
            "FieldValueInvalid",
            f"Invalid value: {value}: {field} in body should be less than or equal to {limit}",
        )
    return Cause(field, "FieldValueInvalid", f"Invalid value: {_quote(value)}: {error.message}")


def _child_schema(schema: dict[str, Any], key: str) -> tuple[dict[str, Any] | None, bool]:
    """The schema of an object's field `key`, and whether it is a map's entry (additionalProperties)."""
    declared = (schema.get("properties") or {}).get(key)
    if declared is None and isinstance(schema.get("additionalProperties"), dict):
        return schema["additionalProperties"], True
    return declared, False


def _check_list_sets(value: Any, schema: dict[str, Any], path: str, causes: list[Cause]) -> None:
    """`x-kubernetes-list-type: set`: an item equal to an earlier one is a `Duplicate value`, named by its
    index; checked after the schema and before the CEL rules, as the apiserver does."""
    if isinstance(value, list):
        if schema.get("x-kubernetes-list-type") == "set":
            for index, item in enumerate(value):
                if item in value[:index]:
                    causes.append(Cause(_join(path, index), "FieldValueDuplicate", f"Duplicate value: {_quote(item)}"))
        if isinstance(schema.get("items"), dict):
            for index, item in enumerate(value):
                _check_list_sets(item, schema["items"], _join(path, index), causes)
    elif isinstance(value, dict):
        for key, child in value.items():
            child_schema, _ = _child_schema(schema, key)
            if child_schema is not None:
                _check_list_sets(child, child_schema, _join(path, key), causes)


class CrdSchema:
    """One version's openAPIV3Schema with compiled CEL programs."""

    def __init__(self, openapi_schema: dict[str, Any]) -> None:
        self.schema = openapi_schema
        self._validator = jsonschema.Draft7Validator(self._for_jsonschema(openapi_schema))
        self._cel = celpy.Environment()
        self._programs: dict[str, Any] = {}
        self._has_rules = "x-kubernetes-validations" in json.dumps(openapi_schema)
        problems = self._definition_problems(openapi_schema, "openAPIV3Schema")
        if problems:
            raise ValueError("the CRD is invalid: " + "; ".join(problems))

    def _definition_problems(self, node: dict[str, Any], path: str) -> list[str]:
        """What the apiserver refuses when the CRD is created: a `pattern` or a constant regex of a CEL
        rule that Go's RE2 does not compile (say a repeat over 1000), a rule that does not compile."""
        problems = []
        regexes = [("pattern", node["pattern"])] if "pattern" in node else []
        for index, entry in enumerate(node.get("x-kubernetes-validations", [])):
            where = f"x-kubernetes-validations[{index}].rule"
            try:
                self._program(entry["rule"])
            except Exception as error:  # celpy's compile errors share no base class
                problems.append(f"{path}.{where}: compilation failed: {error}")
            regexes += [(where, _cel_string(raw, text)) for raw, text in _CEL_MATCHES.findall(entry["rule"])]
        for where, regex in regexes:
            try:
                re2.compile(regex)
            except re2.error as error:
                problems.append(f"{path}.{where}: must be a valid regular expression, but isn't: {regex!r}: {error}")
        for name, child in (node.get("properties") or {}).items():
            problems += self._definition_problems(child, f"{path}.properties[{name}]")
        for key in ("items", "additionalProperties"):
            if isinstance(node.get(key), dict):
                problems += self._definition_problems(node[key], f"{path}.{key}")
        return problems

    @classmethod
    def from_crd(cls, crd: dict[str, Any], version: str | None = None) -> CrdSchema:
        versions = crd["spec"]["versions"]
        chosen = next(v for v in versions if version is None or v["name"] == version)
        return cls(chosen["schema"]["openAPIV3Schema"])

    @staticmethod
    def _for_jsonschema(node: dict[str, Any]) -> dict[str, Any]:
        """Strip Kubernetes extensions; keep only keywords jsonschema reads the same way."""
        result: dict[str, Any] = {}
        for key, value in node.items():
            if key.startswith("x-kubernetes") or key in ("default", "nullable"):
                continue
            if key == "properties":
                value = {name: CrdSchema._for_jsonschema(child) for name, child in value.items()}
            elif key in ("items", "additionalProperties") and isinstance(value, dict):
                value = CrdSchema._for_jsonschema(value)
            result[key] = value
        return result

    # ------------------------------------------------------------ pruning and defaulting

    def unknown_fields(self, obj: Any) -> list[str]:
        """Paths of fields the schema does not declare, as `strict` field validation reports them."""
        found: list[str] = []
        self._walk_unknown(obj, self.schema, "", found, prune=False)
        return found

    def prune(self, obj: Any) -> Any:
        obj = copy.deepcopy(obj)
        self._walk_unknown(obj, self.schema, "", [], prune=True)
        return obj

    def _walk_unknown(self, value: Any, schema: dict[str, Any], path: str, found: list[str], prune: bool) -> None:
        if schema.get("x-kubernetes-preserve-unknown-fields") and "properties" not in schema:
            return
        if isinstance(value, dict) and schema.get("type") == "object":
            if path == "metadata":
                return
            properties = schema.get("properties")
            additional = schema.get("additionalProperties")
            for key in list(value):
                if properties is not None and key in properties:
                    self._walk_unknown(value[key], properties[key], _join(path, key), found, prune)
                elif isinstance(additional, dict):
                    self._walk_unknown(value[key], additional, _join(path, key), found, prune)
                elif properties is not None or additional is False:
                    found.append(_join(path, key))
                    if prune:
                        del value[key]
        elif isinstance(value, list) and "items" in schema:
            for index, item in enumerate(value):
                self._walk_unknown(item, schema["items"], _join(path, index), found, prune)

    def apply_defaults(self, obj: Any) -> Any:
        obj = copy.deepcopy(obj)
        self._default(obj, self.schema)
        return obj

    def _default(self, value: Any, schema: dict[str, Any]) -> None:
        """Defaults, as the apiserver applies them: a null of a non-nullable field is dropped first (then
        defaulted, if it has a default), and a whole number sent as 1.0 for an integer is stored as 1."""
        if isinstance(value, dict):
            for key, child in (schema.get("properties") or {}).items():
                if key in value and value[key] is None and not child.get("nullable"):
                    del value[key]
                if key not in value and "default" in child:
                    value[key] = copy.deepcopy(child["default"])
                if key in value:
                    value[key] = _whole(value[key], child)
                    self._default(value[key], child)
        elif isinstance(value, list) and "items" in schema:
            for item in value:
                self._default(item, schema["items"])

    # ------------------------------------------------------------ validation

    def validate(self, obj: dict[str, Any], old: dict[str, Any] | None = None) -> list[Cause]:
        """Schema errors first; CEL rules run unless a schema error blocks them, as in the apiserver."""
        causes = [
            cause
            for e in sorted(self._validator.iter_errors(obj), key=_schema_error_order)
            for cause in _causes_from_schema_error(e)
        ]
        _check_list_sets(obj, self.schema, "", causes)
        if any(cause.reason in BLOCKING_REASONS for cause in causes):
            if self._has_rules:
                causes.append(RULES_NOT_CHECKED)
            return causes
        self._check_rules(obj, old if old is not None else _MISSING, self.schema, "", causes)
        return causes

    def _program(self, rule: str) -> Any:
        if rule not in self._programs:
            self._programs[rule] = self._cel.program(self._cel.compile(rule))
        return self._programs[rule]

    def _check_rules(self, value: Any, old: Any, schema: dict[str, Any], path: str, causes: list[Cause]) -> None:
        for rule in schema.get("x-kubernetes-validations", []):
            uses_old = "oldSelf" in rule["rule"]
            if uses_old and old is _MISSING:
                continue  # transition rules run on updates only, where the old value exists
            activation = {"self": celpy.json_to_cel(value)}
            if uses_old:
                activation["oldSelf"] = celpy.json_to_cel(old)
            try:
                passed = bool(self._program(rule["rule"]).evaluate(activation))
                failure = rule.get("message") or f"failed rule: {rule['rule']}"
            except Exception as error:  # a CEL evaluation error rejects the object, as in the apiserver
                passed, failure = False, f"rule evaluation error: {error}"
            if not passed:
                field = path + rule.get("fieldPath", "")
                reason = rule.get("reason", "FieldValueInvalid")
                # a real API server shows a scalar's value and omits an object's or a list's
                shown = "" if isinstance(value, dict | list) else f"{_quote(value)}: "
                causes.append(Cause(field, reason, f"Invalid value: {shown}{failure}"))
        if isinstance(value, dict):
            for key, child in value.items():
                child_schema, map_entry = _child_schema(schema, key)
                # CEL names a map's entry by its key in brackets
                child_path = f"{path}[{key}]" if map_entry else _join(path, key)
                if child_schema is not None:
                    child_old = old.get(key, _MISSING) if isinstance(old, dict) else _MISSING
                    self._check_rules(child, child_old, child_schema, child_path, causes)
        elif isinstance(value, list) and "items" in schema:
            for index, item in enumerate(value):
                # list items are not correlated with old ones (not a map-list), so no transition rules
                self._check_rules(item, _MISSING, schema["items"], _join(path, index), causes)

    def admit(
        self, obj: dict[str, Any], old: dict[str, Any] | None = None, *, strict: bool = True
    ) -> tuple[dict[str, Any], list[str], list[Cause]]:
        """The apiserver's write path: unknown fields, pruning, defaulting, validation.

        Returns the object as it would be stored, the unknown field paths, and the causes of refusal.
        """
        unknown = self.unknown_fields(obj)
        if unknown and strict:
            return obj, unknown, []
        stored = self.apply_defaults(self.prune(obj))
        return stored, unknown, self.validate(stored, old)
