"""Server-side tables (`Accept: ...;as=Table`), which `kubectl get` asks for: the columns are the
CRD's additionalPrinterColumns (name and age for types without any; Events have the apiserver's own
printer), the cells read from each object by their JSON paths, dates shown as kubectl's short ages."""

from __future__ import annotations

import datetime
import re
from typing import Any

from .resources import ResourceType


def wants_table(accept: str) -> bool:
    return "as=Table" in accept


def _age(timestamp: str | None) -> str:
    """kubectl's short human duration: 42s, 5m, 3h, 2d."""
    if not timestamp:
        return "<unknown>"
    then = datetime.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    seconds = int((datetime.datetime.now(datetime.UTC) - then).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size * (2 if unit != "m" else 1):
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


# A JSONPath step with a filter on a list, as printer columns use it: `conditions[?(@.type=="Ready")]`.
_FILTER = re.compile(r'^(?P<field>[^\[]+)\[\?\(@\.(?P<key>[A-Za-z0-9_]+)==["\'](?P<value>[^"\']*)["\']\)\]$')


def _json_path(obj: dict[str, Any], path: str) -> Any:
    """The value at a printer column's path: dotted fields, and a filter step on a list (the first match)."""
    node: Any = obj
    for part in re.split(r"\.(?![^\[]*\])", path.strip(".")):
        match = _FILTER.match(part)
        node = node.get(match["field"] if match else part) if isinstance(node, dict) else None
        if match:
            items = node if isinstance(node, list) else []
            found = [i for i in items if isinstance(i, dict) and str(i.get(match["key"])) == match["value"]]
            node = found[0] if found else None
    return node


def _column(name: str, priority: int = 0, fmt: str = "") -> dict[str, Any]:
    return {"name": name, "type": "string", "format": fmt, "priority": priority, "description": name}


# The apiserver's own printer for Events: it always sends the wide cells; kubectl hides priority 1.
EVENT_COLUMNS = [
    _column("Last Seen"),
    _column("Type"),
    _column("Reason"),
    _column("Object"),
    _column("Subobject", 1),
    _column("Source", 1),
    _column("Message"),
    _column("First Seen", 1),
    _column("Count", 1),
    _column("Name", 1, "name"),
]


def _event_cells(obj: dict[str, Any]) -> list[Any]:
    """Core v1 and events.k8s.io/v1 Events alike (the latter name the fields differently)."""
    involved = obj.get("involvedObject") or obj.get("regarding") or {}
    source = obj.get("source") or obj.get("deprecatedSource") or {}
    first = obj.get("firstTimestamp") or obj.get("deprecatedFirstTimestamp") or obj.get("eventTime")
    last = obj.get("lastTimestamp") or obj.get("deprecatedLastTimestamp") or first
    count = obj.get("count") or obj.get("deprecatedCount") or 1
    if obj.get("series"):
        last, count = obj["series"].get("lastObservedTime", last), obj["series"].get("count", count)
    kind = str(involved.get("kind", "")).lower()
    target = f"{kind}/{involved['name']}" if involved.get("name") else kind
    component, host = source.get("component", ""), source.get("host", "")
    if not component and obj.get("reportingController"):
        component, host = obj["reportingController"], obj.get("reportingInstance", "")
    return [
        _age(last),
        obj.get("type", ""),
        obj.get("reason", ""),
        target,
        involved.get("fieldPath", ""),
        ", ".join(part for part in (component, host) if part),
        str(obj.get("message") or obj.get("note") or "").strip(),
        _age(first),
        int(count),
        obj["metadata"]["name"],
    ]


def _table_columns(rtype: ResourceType) -> list[dict[str, Any]]:
    if rtype.plural == "events":
        return EVENT_COLUMNS
    name = {
        "name": "Name",
        "type": "string",
        "format": "name",
        "priority": 0,
        "description": "Name must be unique within a namespace.",
    }
    if rtype.printer_columns:
        return [name] + [
            {
                "name": c["name"],
                "type": "string" if c["type"] == "date" else c["type"],
                "format": c.get("format", ""),
                "priority": c.get("priority", 0),
                "description": c.get("description", ""),
            }
            for c in rtype.printer_columns
        ]
    return [name, {"name": "Age", "type": "string", "format": "", "priority": 0, "description": "Age"}]


def _table_cells(rtype: ResourceType, obj: dict[str, Any]) -> list[Any]:
    if rtype.plural == "events":
        return _event_cells(obj)
    cells: list[Any] = [obj["metadata"]["name"]]
    if not rtype.printer_columns:
        return [*cells, _age(obj["metadata"].get("creationTimestamp"))]
    for column in rtype.printer_columns:
        value = _json_path(obj, column["jsonPath"])
        if column["type"] == "date":
            value = _age(value) if value else "<unknown>"
        cells.append(value)
    return cells


def as_table(
    rtype: ResourceType,
    objs: list[dict[str, Any]],
    params: dict[str, str],
    accept: str,
    resource_version: int,
    with_columns: bool = True,
) -> dict[str, Any]:
    """A meta.k8s.io Table of the objects; each row carries the object as `includeObject` asks."""
    include = params.get("includeObject", "Metadata")
    rows = []
    for obj in objs:
        if include == "Object":
            shown: Any = obj
        elif include == "None":
            shown = None
        else:
            shown = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]}
        rows.append({"cells": _table_cells(rtype, obj), "object": shown})
    version = "v1beta1" if "v=v1beta1" in accept and "v=v1;" not in accept else "v1"
    return {
        "kind": "Table",
        "apiVersion": f"meta.k8s.io/{version}",
        "metadata": {"resourceVersion": str(resource_version)},
        "columnDefinitions": _table_columns(rtype) if with_columns else [],
        "rows": rows,
    }
