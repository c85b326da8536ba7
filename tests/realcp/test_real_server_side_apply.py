"""Server-side apply by a user's field manager (as Argo CD and Flux can use it) while the operator
writes status, finalizers and its own annotations: no conflicts, no fights, each side owns its fields."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from test_real_operator_flows import phase_of, stored

from conftest import job_manifest, requests_rows, run_kubectl, write_jsonl

pytestmark = pytest.mark.slow

MANAGER = "argocd-controller"


async def server_side_apply(stack: Any, namespace: str, manifest: dict[str, Any]) -> str:
    code, out, err = await run_kubectl(
        stack.kubeconfig,
        "apply",
        "--server-side",
        f"--field-manager={MANAGER}",
        "-n",
        namespace,
        "-f",
        "-",
        stdin=yaml.safe_dump(manifest),
    )
    assert code == 0, f"server-side apply refused (a conflict with the operator's fields?): {err}"
    return out


def owned_fields(obj: dict[str, Any]) -> dict[str, tuple[str, set[str]]]:
    """Field manager -> (operation, top-level paths it owns, e.g. 'f:spec', 'f:status')."""
    owned: dict[str, tuple[str, set[str]]] = {}
    for entry in obj["metadata"]["managedFields"]:
        fields = set(entry.get("fieldsV1", {}))
        if entry.get("subresource"):
            fields = {f"{entry['subresource']}:{f}" for f in fields}
        operation, before = owned.get(entry["manager"], (entry["operation"], set()))
        owned[entry["manager"]] = (operation, before | fields)
    return owned


async def test_a_gitops_field_manager_and_the_operator_never_conflict(
    real_stack: Any, kube_client: Any, real_namespace: str, bucket: Any
) -> None:
    real_stack.engine.apply_config({"minRunSeconds": 3})
    src = write_jsonl(bucket, "in.jsonl", requests_rows(5))
    manifest = job_manifest("ssa", src, f"gs://{bucket.name}/out/", namespace=real_namespace)
    manifest["metadata"]["labels"] = {"team": "search"}
    await server_side_apply(real_stack, real_namespace, manifest)

    running = await phase_of(real_stack, kube_client, real_namespace, "ssa", {"Running"})
    assert running["metadata"]["finalizers"], "the operator added its finalizer beside the applied fields"

    # The user changes what they own while the operator is writing status: no conflict, no force.
    manifest["metadata"]["labels"] = {"team": "search", "tier": "gold"}
    await server_side_apply(real_stack, real_namespace, manifest)
    done = await phase_of(real_stack, kube_client, real_namespace, "ssa")
    assert done["status"]["phase"] == "Succeeded", done["status"].get("message")
    assert done["metadata"]["labels"] == {"team": "search", "tier": "gold"}
    assert done["metadata"]["generation"] == 1, "labels are metadata; the operator never changed the spec"
    assert done["spec"]["input"] == manifest["spec"]["input"] and done["spec"]["model"] == manifest["spec"]["model"]

    owned = owned_fields(done)
    operation, user_fields = owned[MANAGER]
    assert operation == "Apply" and "f:spec" in user_fields, owned
    writers_of_status = {m for m, (_, fields) in owned.items() if any(f.startswith("status:") for f in fields)}
    assert writers_of_status and MANAGER not in writers_of_status, owned
    assert all("f:spec" not in fields for m, (_, fields) in owned.items() if m != MANAGER), (
        f"another manager owns spec fields: {json.dumps(done['metadata']['managedFields'], indent=1)}"
    )

    # Re-applying the same manifest once the job is done changes nothing: no fight over any field.
    before = stored(kube_client, real_namespace, "ssa")["metadata"]["resourceVersion"]
    await server_side_apply(real_stack, real_namespace, manifest)
    assert stored(kube_client, real_namespace, "ssa")["metadata"]["resourceVersion"] == before
