"""Request bodies read as Google's front end reads proto3 JSON, for the messages the emulator accepts.

Google's API front end parses a JSON body into the method's request message before the service sees
it: a field the message does not have is refused (`Unknown name "x" at 'batch_prediction_job':
Cannot find field.`), and so is a value of the wrong JSON type (`Invalid value at
'batch_prediction_job.display_name' (TYPE_STRING), 123`), each as 400 INVALID_ARGUMENT with a
`google.rpc.BadRequest` detail naming the field. Both the JSON name (`displayName`) and the proto name
(`display_name`) of a field are accepted; `null` means unset. What comes out is the message in
canonical JSON names, so the rest of the emulator reads one spelling.

The messages below are `BatchPredictionJob` and its parts as the v1 discovery document describes
them (the contract tests check this table against it). Output-only fields are parsed and dropped, as
the front end ignores them in a create body.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .catalogue import JOB_STATES
from .errors import ApiError

_TYPES = {"string": "TYPE_STRING", "bool": "TYPE_BOOL", "int64": "TYPE_INT64", "double": "TYPE_DOUBLE"}


@dataclass(frozen=True)
class Field:
    kind: str  # string | bool | int64 | double | message | map | any | enum
    message: str = ""  # the message of a `message` field (or its elements)
    repeated: bool = False
    output_only: bool = False
    enum: tuple[str, ...] = ()


def _s(**flags: Any) -> Field:
    return Field("string", **flags)


def _m(message: str, **flags: Any) -> Field:
    return Field("message", message, **flags)


# message name -> its fields by JSON name
MESSAGES: dict[str, dict[str, Field]] = {
    "BatchPredictionJob": {
        "name": _s(output_only=True),
        "displayName": _s(),
        "model": _s(),
        "modelVersionId": _s(output_only=True),
        "unmanagedContainerModel": Field("any"),
        "inputConfig": _m("BatchPredictionJob.InputConfig"),
        "instanceConfig": Field("any"),
        "modelParameters": Field("any"),
        "outputConfig": _m("BatchPredictionJob.OutputConfig"),
        "dedicatedResources": Field("any"),
        "serviceAccount": _s(),
        "manualBatchTuningParameters": Field("any"),
        "generateExplanation": Field("bool"),
        "explanationSpec": Field("any"),
        "outputInfo": _m("BatchPredictionJob.OutputInfo", output_only=True),
        "state": Field("enum", output_only=True, enum=JOB_STATES),
        "error": Field("any", output_only=True),
        "partialFailures": Field("any", repeated=True, output_only=True),
        "resourcesConsumed": Field("any", output_only=True),
        "completionStats": Field("any", output_only=True),
        "createTime": _s(output_only=True),
        "startTime": _s(output_only=True),
        "endTime": _s(output_only=True),
        "updateTime": _s(output_only=True),
        "labels": Field("map"),
        "encryptionSpec": Field("any"),
        "disableContainerLogging": Field("bool"),
        "satisfiesPzs": Field("bool", output_only=True),
        "satisfiesPzi": Field("bool", output_only=True),
    },
    "BatchPredictionJob.InputConfig": {
        "gcsSource": _m("GcsSource"),
        "bigquerySource": _m("BigQuerySource"),
        "vertexMultimodalDatasetSource": _m("VertexMultimodalDatasetSource"),
        "instancesFormat": _s(),
    },
    "BatchPredictionJob.OutputConfig": {
        "gcsDestination": _m("GcsDestination"),
        "bigqueryDestination": _m("BigQueryDestination"),
        "vertexMultimodalDatasetDestination": _m("VertexMultimodalDatasetDestination"),
        "predictionsFormat": _s(),
    },
    "BatchPredictionJob.OutputInfo": {
        "gcsOutputDirectory": _s(output_only=True),
        "bigqueryOutputDataset": _s(output_only=True),
        "vertexMultimodalDatasetName": _s(output_only=True),
        "bigqueryOutputTable": _s(output_only=True),
    },
    "CancelBatchPredictionJobRequest": {},
    "GcsSource": {"uris": _s(repeated=True)},
    "BigQuerySource": {"inputUri": _s()},
    "VertexMultimodalDatasetSource": {"datasetName": _s()},
    "GcsDestination": {"outputUriPrefix": _s()},
    "BigQueryDestination": {"outputUri": _s()},
    "VertexMultimodalDatasetDestination": {"bigqueryDestination": _m("BigQueryDestination"), "displayName": _s()},
}


# v1beta1's BatchPredictionJob has these fields besides v1's (model monitoring, a serving endpoint).
V1BETA1_JOB_FIELDS: dict[str, Field] = {
    "endpoint": _s(),
    "modelMonitoringConfig": Field("any"),
    "modelMonitoringStatsAnomalies": Field("any", repeated=True),
    "modelMonitoringStatus": Field("any", output_only=True),
}


def messages(version: str) -> dict[str, dict[str, Field]]:
    """The message table of an API version."""
    if version != "v1beta1":
        return MESSAGES
    return {**MESSAGES, "BatchPredictionJob": {**MESSAGES["BatchPredictionJob"], **V1BETA1_JOB_FIELDS}}


def snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def invalid(path: str, description: str, message: str | None = None) -> ApiError:
    """400 INVALID_ARGUMENT with a `google.rpc.BadRequest` detail naming the field, as the front end answers."""
    error = ApiError(400, message or description)
    error.details = [
        {
            "@type": "type.googleapis.com/google.rpc.BadRequest",
            "fieldViolations": [{"field": path, "description": description}],
        }
    ]
    return error


def parse(body: Any, message: str, path: str, version: str = "v1") -> dict[str, Any]:
    """`body` as the message `message` (at `path`, e.g. `batch_prediction_job`) of API `version`:
    canonical JSON names, output-only fields dropped, unset (null) fields omitted."""
    if not isinstance(body, dict):
        url = f"type.googleapis.com/google.cloud.aiplatform.{version}.{message}"
        raise invalid(path, f"Invalid value at '{path}' ({url})")
    fields = messages(version)[message]
    parsed: dict[str, Any] = {}
    for key, value in body.items():
        name = key if key in fields else camel(key)
        if name not in fields or (key != name and snake(name) != key):
            at = f" at '{path}'" if path else ""
            text = f'Invalid JSON payload received. Unknown name "{key}"{at}: Cannot find field.'
            raise invalid(path, text, text)
        if name in parsed:
            raise invalid(path, f'Invalid JSON payload received. Duplicate field "{key}".')
        field = fields[name]
        where = f"{path}.{snake(name)}" if path else snake(name)
        if value is None:
            continue
        if field.repeated:
            if not isinstance(value, list):
                raise _wrong(where, field, value)
            checked = [_value(item, field, f"{where}[{i}]", version) for i, item in enumerate(value)]
        else:
            checked = _value(value, field, where, version)
        if not field.output_only:
            parsed[name] = checked
    return parsed


def _value(value: Any, field: Field, where: str, version: str) -> Any:
    kind = field.kind
    if kind == "message":
        return parse(value, field.message, where, version)
    if kind == "map":
        if not isinstance(value, dict):
            raise _wrong(where, field, value)
        for key, item in value.items():
            if not isinstance(item, str):
                raise _wrong(f"{where}[{key}]", Field("string"), item)
        return dict(value)
    ok = {
        "string": isinstance(value, str),
        "enum": isinstance(value, str) and value in field.enum,
        "bool": isinstance(value, bool),
        "any": True,
    }.get(kind, False)
    if not ok:
        raise _wrong(where, field, value)
    return value


def _wrong(where: str, field: Field, value: Any) -> ApiError:
    shown = value if not isinstance(value, str) else f'"{value}"'
    kind = _TYPES.get(field.kind, "TYPE_ENUM" if field.kind == "enum" else "TYPE_MESSAGE")
    text = f"Invalid value at '{where}' ({kind}), {str(shown).replace(chr(10), ' ')[:100]}"
    return invalid(where, text, text)
