"""Namespace tenancy: a Namespace's annotations give its jobs defaults (project, location) and limits (the
Cloud Storage prefixes and BigQuery datasets they may touch).

The Vertex job reads and writes as Google's service agent, not as the namespace, so these limits are
the only guard between teams: they are checked before anything is submitted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ..api import BatchInferenceJobSpec
from ..api.meta import (
    BQ_POLICY_ANNOTATION,
    GCS_POLICY_ANNOTATION,
    LOCATION_ANNOTATION,
    PROJECT_ANNOTATION,
    PROJECT_POLICY_ANNOTATION,
)
from .uris import BigQueryUri, under_prefix
from .watchdog import StallLimits


@dataclass(frozen=True)
class Tenancy:
    """Project and location when the spec names none (the Namespace's annotations, else the operator's),
    and the Namespace's data limits: None allows everything, a tuple allows only what it lists."""

    project: str | None
    location: str | None
    allowed_gcs_prefixes: tuple[str, ...] | None = None
    allowed_bigquery_datasets: tuple[str, ...] | None = None
    allowed_projects: tuple[str, ...] | None = None
    supported_locations: frozenset[str] | None = None  # the operator's list of regions serving Gemini batch
    stall: StallLimits = field(default_factory=StallLimits)  # the operator's limits, for specs that set none


@dataclass(frozen=True)
class NamespaceAnnotations:
    """What one Namespace's annotations say; unset values fall back to the operator's defaults."""

    project: str | None = None
    location: str | None = None
    allowed_gcs_prefixes: tuple[str, ...] | None = None
    allowed_bigquery_datasets: tuple[str, ...] | None = None
    allowed_projects: tuple[str, ...] | None = None

    @classmethod
    def read(cls, annotations: Mapping[str, str]) -> NamespaceAnnotations:
        return cls(
            annotations.get(PROJECT_ANNOTATION),
            annotations.get(LOCATION_ANNOTATION),
            listed(annotations.get(GCS_POLICY_ANNOTATION)),
            listed(annotations.get(BQ_POLICY_ANNOTATION)),
            listed(annotations.get(PROJECT_POLICY_ANNOTATION)),
        )

    def tenancy(
        self,
        default_project: str | None,
        default_location: str | None,
        supported_locations: frozenset[str] | None = None,
        stall: StallLimits | None = None,
    ) -> Tenancy:
        return Tenancy(
            self.project or default_project,
            self.location or default_location,
            self.allowed_gcs_prefixes,
            self.allowed_bigquery_datasets,
            self.allowed_projects,
            supported_locations,
            stall or StallLimits(),
        )


def listed(value: str | None) -> tuple[str, ...] | None:
    """A comma-separated annotation; absent means no restriction, empty means nothing is allowed."""
    return None if value is None else tuple(item.strip() for item in value.split(",") if item.strip())


def location_problem(location: str, tenancy: Tenancy) -> str | None:
    """A location that serves no Gemini batch prediction would never resolve or answer: say so at once."""
    supported = tenancy.supported_locations
    if supported is None or location in supported:
        return None
    return (
        f"location {location!r} does not serve Gemini batch prediction; use one of {', '.join(sorted(supported))} "
        "(the operator's BIJ_LOCATIONS)"
    )


def policy_violations(spec: BatchInferenceJobSpec, tenancy: Tenancy, project: str) -> list[str]:
    """Every input and output outside the namespace's limits, one message each."""
    problems = []
    if tenancy.allowed_projects is not None and project not in tenancy.allowed_projects:
        problems.append(
            f"project {project} is not among the namespace's allowed projects "
            f"({', '.join(tenancy.allowed_projects) or 'none'})"
        )
    gcs = [*(spec.input.gcs.uris if spec.input.gcs else []), *([spec.output.gcs.uri_prefix] if spec.output.gcs else [])]
    if tenancy.allowed_gcs_prefixes is not None:
        for uri in gcs:
            if not any(under_prefix(uri, prefix) for prefix in tenancy.allowed_gcs_prefixes):
                problems.append(
                    f"{uri} is outside the namespace's allowed Cloud Storage prefixes "
                    f"({', '.join(tenancy.allowed_gcs_prefixes) or 'none'})"
                )
    tables = [
        *([spec.input.bigquery.table] if spec.input.bigquery else []),
        *([spec.output.bigquery.uri()] if spec.output.bigquery else []),
    ]
    if tenancy.allowed_bigquery_datasets is not None:
        for uri in tables:
            if BigQueryUri.parse(uri).dataset_uri not in tenancy.allowed_bigquery_datasets:
                problems.append(
                    f"{uri} is outside the namespace's allowed BigQuery datasets "
                    f"({', '.join(tenancy.allowed_bigquery_datasets) or 'none'})"
                )
    return problems
