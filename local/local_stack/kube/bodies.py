"""Request bodies in the media types a real apiserver accepts: JSON, YAML, and Kubernetes' protobuf
envelope for the core types kubectl sends that way (`kubectl create namespace` posts protobuf).

The protobuf decoder reads the wire format without generated classes: the `k8s\\0` envelope
(runtime.Unknown: typeMeta, raw), then the fields of a Namespace that a create carries (metadata's
name, generateName, labels, annotations, finalizers; spec.finalizers). Other protobuf bodies are
refused with a 415 naming what is accepted.
"""

from __future__ import annotations

from typing import Any

import yaml

from .errors import api_error

PROTOBUF = "application/vnd.kubernetes.protobuf"
YAML_TYPES = ("application/yaml", "application/x-yaml")
_MAGIC = b"k8s\x00"


def decode_body(content_type: str, raw: bytes, parsed_json: Any) -> Any:
    """The body as JSON values; a 415 for a media type the server does not speak, a 400 for bad bytes."""
    if "json" in content_type:
        if parsed_json is None and raw.strip():
            raise api_error(400, "BadRequest", "the body of the request was not valid JSON")
        return parsed_json
    if content_type in YAML_TYPES:
        try:
            return yaml.safe_load(raw.decode())
        except (yaml.YAMLError, UnicodeDecodeError) as error:
            raise api_error(400, "BadRequest", f"the body of the request was not valid YAML: {error}") from None
    if content_type == PROTOBUF:
        return _decode_protobuf(raw)
    raise api_error(
        415,
        "UnsupportedMediaType",
        f"the body of the request was in an unknown format ({content_type or 'none'}) - accepted media types "
        "include: application/json, application/yaml, application/vnd.kubernetes.protobuf",
    )


# ---------------------------------------------------------------- protobuf wire format


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if at >= len(data):
            raise ValueError("truncated varint")
        byte = data[at]
        value |= (byte & 0x7F) << shift
        at += 1
        if byte < 0x80:
            return value, at
        shift += 7


def _fields(data: bytes) -> list[tuple[int, Any]]:
    """(field number, value) pairs: ints for varints, bytes for length-delimited, fixed sizes skipped."""
    found, at = [], 0
    while at < len(data):
        key, at = _varint(data, at)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, at = _varint(data, at)
        elif wire == 2:
            size, at = _varint(data, at)
            value, at = data[at : at + size], at + size
            if at > len(data):
                raise ValueError("truncated field")
        elif wire in (1, 5):
            value, at = None, at + (8 if wire == 1 else 4)
        else:
            raise ValueError(f"unsupported wire type {wire}")
        found.append((number, value))
    return found


def _text(value: bytes) -> str:
    return value.decode()


def _string_map(entries: list[bytes]) -> dict[str, str]:
    result = {}
    for entry in entries:
        parts = dict(_fields(entry))
        result[_text(parts.get(1, b""))] = _text(parts.get(2, b""))
    return result


def _object_meta(data: bytes) -> dict[str, Any]:
    fields = _fields(data)
    meta: dict[str, Any] = {}
    for number, key in ((1, "name"), (2, "generateName"), (3, "namespace")):
        values = [v for n, v in fields if n == number]
        if values:
            meta[key] = _text(values[-1])
    for number, key in ((11, "labels"), (12, "annotations")):
        entries = [v for n, v in fields if n == number]
        if entries:
            meta[key] = _string_map(entries)
    finalizers = [_text(v) for n, v in fields if n == 14]
    if finalizers:
        meta["finalizers"] = finalizers
    return meta


def _decode_protobuf(raw: bytes) -> dict[str, Any]:
    if not raw.startswith(_MAGIC):
        raise api_error(400, "BadRequest", "the protobuf body does not start with the Kubernetes envelope")
    try:
        envelope = dict(_fields(raw[len(_MAGIC) :]))
        type_meta = dict(_fields(envelope.get(1, b"")))
        api_version, kind = _text(type_meta.get(1, b"")), _text(type_meta.get(2, b""))
        if (api_version, kind) != ("v1", "Namespace"):
            raise api_error(
                415,
                "UnsupportedMediaType",
                f"this server decodes protobuf only for v1 Namespace, not {api_version} {kind}; send JSON or YAML",
            )
        body = _fields(envelope.get(2, b""))
        obj: dict[str, Any] = {"apiVersion": "v1", "kind": "Namespace", "metadata": {}}
        for number, value in body:
            if number == 1:
                obj["metadata"] = _object_meta(value)
            elif number == 2:
                finalizers = [_text(v) for n, v in _fields(value) if n == 1]
                if finalizers:
                    obj["spec"] = {"finalizers": finalizers}
        return obj
    except (ValueError, UnicodeDecodeError) as error:
        raise api_error(400, "BadRequest", f"the protobuf body could not be decoded: {error}") from None
