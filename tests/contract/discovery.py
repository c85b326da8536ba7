"""Google's machine-readable contract for Vertex AI, and a validator of JSON bodies against it.

The discovery documents ship inside `google-api-python-client` (pinned as a test dependency); they
are what Google's own generated clients are built from. `Contract.check` walks a JSON value along a
schema and returns every difference: fields the schema does not have, wrong JSON types, int64 not
written as a string, times that are not RFC 3339, enum values the schema does not list, and, for a
request, output-only fields. `check_error` holds an error answer to the google.rpc.Status envelope.
"""

from __future__ import annotations

import functools
import json
import pathlib
import re
from typing import Any

import googleapiclient

DOCUMENTS = pathlib.Path(googleapiclient.__file__).parent / "discovery_cache" / "documents"
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{3}|\.\d{6}|\.\d{9})?Z$")
INT64 = re.compile(r"^-?\d+$")
DURATION = re.compile(r"^-?\d+(\.\d{1,9})?s$")
# HTTP status -> the canonical codes Google maps to it (google.rpc.Code, AIP-193).
STATUS_FOR_HTTP = {
    400: {"INVALID_ARGUMENT", "FAILED_PRECONDITION", "OUT_OF_RANGE"},
    401: {"UNAUTHENTICATED"},
    403: {"PERMISSION_DENIED"},
    404: {"NOT_FOUND"},
    409: {"ABORTED", "ALREADY_EXISTS"},
    429: {"RESOURCE_EXHAUSTED"},
    499: {"CANCELLED"},
    500: {"INTERNAL", "UNKNOWN", "DATA_LOSS"},
    501: {"UNIMPLEMENTED"},
    503: {"UNAVAILABLE"},
    504: {"DEADLINE_EXCEEDED"},
}
JOB = "GoogleCloudAiplatformV1BatchPredictionJob"
# method -> the schema of its successful answer (`{V}`: the version's prefix, V1 or V1beta1)
RESPONSES = {
    "create": "GoogleCloudAiplatform{V}BatchPredictionJob",
    "get": "GoogleCloudAiplatform{V}BatchPredictionJob",
    "list": "GoogleCloudAiplatform{V}ListBatchPredictionJobsResponse",
    "cancel": "GoogleProtobufEmpty",
    "delete": "GoogleLongrunningOperation",
    "get_operation": "GoogleLongrunningOperation",
}
# Fields a BatchPredictionJob always carries in Vertex's answers, whatever its state.
ALWAYS = ("name", "displayName", "model", "inputConfig", "outputConfig", "state", "createTime", "updateTime")


@functools.cache
def document(version: str = "v1") -> dict[str, Any]:
    return json.loads((DOCUMENTS / f"aiplatform.{version}.json").read_text())


class Contract:
    def __init__(self, version: str = "v1") -> None:
        self.version = version
        self.doc = document(version)
        self.schemas: dict[str, Any] = self.doc["schemas"]
        self.job = f"GoogleCloudAiplatform{version.capitalize()}BatchPredictionJob"

    def response(self, method: str) -> str:
        return RESPONSES[method].format(V=self.version.capitalize())

    def method(self, *path: str) -> dict[str, Any]:
        """A method of the discovery document, e.g. `method("projects", "locations", "batchPredictionJobs", "list")`."""
        node: dict[str, Any] = self.doc
        for resource in path[:-1]:
            node = node["resources"][resource]
        return node["methods"][path[-1]]

    def check(self, value: Any, schema: dict[str, Any] | str, where: str = "$", request: bool = False) -> list[str]:
        """Every way `value` breaks `schema` (a schema or a schema's name); [] when it keeps it."""
        if isinstance(schema, str):
            schema = {"$ref": schema}
        if "$ref" in schema:
            schema = self.schemas[schema["$ref"]]
        kind = schema.get("type")
        problems: list[str] = []
        if kind == "any":
            return problems
        if kind == "object":
            if not isinstance(value, dict):
                return [f"{where}: expected an object, found {value!r:.80}"]
            properties = schema.get("properties")
            extra = schema.get("additionalProperties")
            for key, item in value.items():
                if properties is not None and key in properties:
                    field = properties[key]
                    if request and field.get("readOnly"):
                        problems.append(f"{where}.{key}: output-only field in a request")
                    problems += self.check(item, field, f"{where}.{key}", request)
                elif extra is not None:
                    problems += self.check(item, extra, f"{where}.{key}", request)
                elif properties is not None:
                    problems.append(f"{where}.{key}: unknown field")
            return problems
        if kind == "array":
            if not isinstance(value, list):
                return [f"{where}: expected an array, found {value!r:.80}"]
            for index, item in enumerate(value):
                problems += self.check(item, schema.get("items", {"type": "any"}), f"{where}[{index}]", request)
            return problems
        return _scalar(value, schema, where)


def _scalar(value: Any, schema: dict[str, Any], where: str) -> list[str]:
    kind, fmt = schema.get("type"), schema.get("format")
    if kind == "string":
        if not isinstance(value, str):
            return [f"{where}: expected a string ({fmt or 'string'}), found {value!r:.80}"]
        if fmt in ("int64", "uint64") and not INT64.match(value):
            return [f"{where}: {value!r} is not an int64 written as a decimal string"]
        if fmt == "google-datetime" and not RFC3339.match(value):
            return [f"{where}: {value!r} is not an RFC 3339 time in UTC (Z, 0/3/6/9 fractional digits)"]
        if fmt == "google-duration" and not DURATION.match(value):
            return [f"{where}: {value!r} is not a duration"]
        if "enum" in schema and value not in schema["enum"]:
            return [f"{where}: {value!r} is not one of the enum's values"]
        return []
    if kind == "integer":
        ok = isinstance(value, int) and not isinstance(value, bool)
        return [] if ok else [f"{where}: expected an integer, found {value!r:.80}"]
    if kind == "number":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return [] if ok else [f"{where}: expected a number, found {value!r:.80}"]
    if kind == "boolean":
        return [] if isinstance(value, bool) else [f"{where}: expected a boolean, found {value!r:.80}"]
    return [f"{where}: schema type {kind!r} unknown to the validator"]


def check_error(http_status: int, body: Any) -> list[str]:
    """An error answer: exactly `{"error": {code, message, status[, details]}}`, code = the HTTP status,
    status one of the canonical codes for it, each detail an object naming its `@type`."""
    if not isinstance(body, dict) or set(body) != {"error"} or not isinstance(body["error"], dict):
        return [f"error body is not {{'error': {{...}}}}: {body!r:.200}"]
    error = body["error"]
    problems = [f"error.{key}: unknown field" for key in error if key not in ("code", "message", "status", "details")]
    if error.get("code") != http_status:
        problems.append(f"error.code {error.get('code')!r} differs from the HTTP status {http_status}")
    if error.get("status") not in STATUS_FOR_HTTP.get(http_status, set()):
        problems.append(f"error.status {error.get('status')!r} is not a canonical code for HTTP {http_status}")
    if not isinstance(error.get("message"), str) or not error["message"]:
        problems.append("error.message is missing or empty")
    for index, detail in enumerate(error.get("details", [])):
        if not isinstance(detail, dict) or not isinstance(detail.get("@type"), str):
            problems.append(f"error.details[{index}] has no @type")
    return problems


@functools.cache
def contract_for(version: str) -> Contract:
    return Contract(version)


def check_exchange(exchange: dict[str, Any]) -> list[str]:
    """One recorded API call, by the discovery document of its path's version: its answer by the
    method's schema (or the error envelope), and a successful create's body as a request (no unknown
    and no output-only fields)."""
    method, status, answer = exchange["method"], exchange["status"], exchange["response"]
    label = f"{exchange['httpMethod']} {exchange['path']} -> {status}"
    if status != 200:
        return [f"{label}: {problem}" for problem in check_error(status, answer)]
    version = exchange["path"].split("/")[1]
    contract = contract_for("v1" if version == "ui" else version)
    schema = contract.response(method)
    jobs = [answer] if schema == contract.job else (answer or {}).get("batchPredictionJobs", [])
    if "enum-encoding=int" in exchange["query"].get("$alt", ""):  # GAPIC asks for enums as numbers
        states = contract.schemas[contract.job]["properties"]["state"]["enum"]
        for job in jobs:
            if isinstance(job.get("state"), int) and 0 <= job["state"] < len(states):
                job["state"] = states[job["state"]]
    problems = contract.check(answer, schema)
    masked = "readMask" in exchange["query"] or "read_mask" in exchange["query"]
    for job in [] if masked else jobs:
        problems += [f"$: {field} missing from a job" for field in ALWAYS if field not in job]
    if method == "create":
        problems += contract.check(exchange["request"], contract.job, "request", request=True)
    return [f"{label}: {problem}" for problem in problems]
