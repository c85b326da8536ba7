"""Shared fixtures. `operator/` is the source root; the project is installed editable by `make test`."""

from __future__ import annotations

import copy
import pathlib
from typing import Any

import pytest
import yaml

REPO = pathlib.Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"


def example_manifests() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document and document.get("kind") == "BatchInferenceJob":
                found.append((path.name, document))
    return found


@pytest.fixture
def gcs_manifest() -> dict[str, Any]:
    """A fresh copy of the GCS example, for tests that mutate it."""
    return copy.deepcopy(next(doc for name, doc in example_manifests() if name == "gcs-job.yaml"))
