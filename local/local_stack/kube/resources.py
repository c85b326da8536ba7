"""What the server serves: the resource types (the core ones and those from CRDs), the registry
the other modules look them up in, and the route a request path resolves to."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .schema import CrdSchema

TypeKey = tuple[str, str, str]  # (group, version, plural)


@dataclass
class ResourceType:
    """One served resource: what discovery, validation and tables need to know about it."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    singular: str = ""
    short_names: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    status_subresource: bool = False
    schema: CrdSchema | None = None
    printer_columns: list[dict[str, Any]] = field(default_factory=list)
    has_generation: bool = False
    # Field labels beyond metadata.name and metadata.namespace: a CRD's `selectableFields`, or a core type's.
    selectable_fields: list[str] = field(default_factory=list)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> TypeKey:
        return (self.group, self.version, self.plural)

    @property
    def field_labels(self) -> frozenset[str]:
        """The field labels a field selector may name on this type."""
        return frozenset({"metadata.name", "metadata.namespace", *self.selectable_fields})

    @property
    def qualified(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @classmethod
    def from_crd(cls, crd: dict[str, Any]) -> list[ResourceType]:
        spec = crd["spec"]
        names = spec["names"]
        return [
            cls(
                group=spec["group"],
                version=version["name"],
                plural=names["plural"],
                kind=names["kind"],
                namespaced=spec["scope"] == "Namespaced",
                singular=names.get("singular", names["kind"].lower()),
                short_names=list(names.get("shortNames", [])),
                categories=list(names.get("categories", [])),
                status_subresource="status" in version.get("subresources", {}),
                schema=CrdSchema(version["schema"]["openAPIV3Schema"]),
                printer_columns=list(version.get("additionalPrinterColumns", [])),
                has_generation=True,
                selectable_fields=[f["jsonPath"].lstrip(".") for f in version.get("selectableFields", [])],
            )
            for version in spec["versions"]
            if version.get("served", True)
        ]


# The field labels the apiserver converts for Events (both API groups share the storage).
EVENT_FIELDS = [
    *(f"involvedObject.{part}" for part in ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion")),
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
]
CORE_TYPES = [
    ResourceType(
        "",
        "v1",
        "namespaces",
        "Namespace",
        namespaced=False,
        singular="namespace",
        short_names=["ns"],
        status_subresource=True,
        selectable_fields=["status.phase"],
    ),
    ResourceType("", "v1", "events", "Event", singular="event", short_names=["ev"], selectable_fields=EVENT_FIELDS),
    ResourceType(
        "events.k8s.io", "v1", "events", "Event", singular="event", short_names=["ev"], selectable_fields=EVENT_FIELDS
    ),
]
NAMESPACES: TypeKey = ("", "v1", "namespaces")


class ResourceTypes:
    """The served types by (group, version, plural), in the order they were added."""

    def __init__(self) -> None:
        self._by_key: dict[TypeKey, ResourceType] = {}

    def add(self, rtype: ResourceType) -> None:
        self._by_key[rtype.key] = rtype

    def get(self, key: TypeKey) -> ResourceType | None:
        return self._by_key.get(key)

    def __getitem__(self, key: TypeKey) -> ResourceType:
        return self._by_key[key]

    def __iter__(self) -> Iterator[ResourceType]:
        return iter(self._by_key.values())

    def find(self, plural_or_kind: str) -> ResourceType:
        """By plural, kind or `plural.group`, as the test helpers name types; KeyError if none."""
        for rtype in self:
            if plural_or_kind in (rtype.plural, rtype.kind, rtype.qualified):
                return rtype
        raise KeyError(plural_or_kind)


@dataclass
class Route:
    """What a resource path names: the type, the namespace, the object and the subresource."""

    rtype: ResourceType
    namespace: str | None
    name: str | None
    subresource: str | None
