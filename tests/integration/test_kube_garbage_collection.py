"""Deleting an owner in the Kubernetes API stand-in, as the API server and its garbage collector do it:
dependents go with it (Background, the default), before it (Foreground) or stay (Orphan)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from conftest import bij_path, call, example_manifests

MERGE = {"Content-Type": "application/merge-patch+json"}


def manifest(name: str, owner: dict[str, Any] | None = None, finalizers: list[str] | None = None) -> dict[str, Any]:
    body = json.loads(json.dumps(dict(example_manifests())["gcs-job.yaml"]))
    body["metadata"] = {"name": name}
    if owner is not None:
        body["metadata"]["ownerReferences"] = [
            {
                "apiVersion": owner["apiVersion"],
                "kind": owner["kind"],
                "name": owner["metadata"]["name"],
                "uid": owner["metadata"]["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    if finalizers:
        body["metadata"]["finalizers"] = finalizers
    return body


async def family(kube_api: Any, child_finalizers: list[str] | None = None) -> dict[str, Any]:
    _, parent = await call(kube_api, "POST", bij_path(), manifest("parent"))
    for name in ("child-1", "child-2"):
        status, _ = await call(kube_api, "POST", bij_path(), manifest(name, parent, child_finalizers))
        assert status == 201
    return parent


def names(kube_api: Any) -> list[str]:
    return [o["metadata"]["name"] for o in kube_api.list_objects("batchinferencejobs", "default")]


async def test_background_deletion_is_the_default_and_collects_the_dependents(kube_api: Any) -> None:
    await family(kube_api)
    _, other = await call(kube_api, "POST", bij_path(), manifest("other"))
    _, shared = await call(kube_api, "POST", bij_path(), manifest("shared", other))
    second = dict(shared["metadata"]["ownerReferences"][0])
    parent = kube_api.get_object("batchinferencejobs", "default", "parent")
    refs = [second, {**second, "name": "parent", "uid": parent["metadata"]["uid"], "controller": False}]
    await call(kube_api, "PATCH", bij_path(name="shared"), {"metadata": {"ownerReferences": refs}}, MERGE)
    status, _ = await call(kube_api, "DELETE", bij_path(name="parent"))
    assert status == 200
    assert names(kube_api) == ["other", "shared"], "the children went; a dependent with an owner left stays"
    left = kube_api.get_object("batchinferencejobs", "default", "shared")["metadata"]["ownerReferences"]
    assert [r["name"] for r in left] == ["other"], "only the dangling reference is removed"


async def test_dependents_with_finalizers_are_marked_and_go_when_released(kube_api: Any) -> None:
    await family(kube_api, ["example.com/hold"])
    await call(kube_api, "DELETE", bij_path(name="parent"), {"propagationPolicy": "Background"})
    assert names(kube_api) == ["child-1", "child-2"]
    assert all(
        kube_api.get_object("batchinferencejobs", "default", n)["metadata"].get("deletionTimestamp")
        for n in names(kube_api)
    )


async def test_foreground_deletion_waits_for_the_blocking_dependents(kube_api: Any) -> None:
    await family(kube_api, ["example.com/hold"])
    status, marked = await call(kube_api, "DELETE", bij_path(name="parent"), {"propagationPolicy": "Foreground"})
    assert status == 200 and "foregroundDeletion" in marked["metadata"]["finalizers"]
    for name in ("child-1", "child-2"):
        assert "parent" in names(kube_api)
        await call(kube_api, "PATCH", bij_path(name=name), {"metadata": {"finalizers": None}}, MERGE)
    assert names(kube_api) == [], "the owner went after its last blocking dependent"


async def test_orphan_deletion_keeps_the_dependents_without_the_reference(kube_api: Any) -> None:
    await family(kube_api)
    status, _ = await call(kube_api, "DELETE", bij_path(name="parent"), params={"propagationPolicy": "Orphan"})
    assert status == 200
    assert names(kube_api) == ["child-1", "child-2"]
    assert all(
        "ownerReferences" not in kube_api.get_object("batchinferencejobs", "default", n)["metadata"]
        for n in names(kube_api)
    )


@pytest.mark.parametrize(
    ("options", "code"),
    [({"preconditions": {"uid": "not-the-uid"}}, 409), ({"propagationPolicy": "Sideways"}, 422)],
)
async def test_delete_options_are_checked(kube_api: Any, options: dict[str, Any], code: int) -> None:
    await family(kube_api)
    status, _ = await call(kube_api, "DELETE", bij_path(name="parent"), options)
    assert status == code
    assert "parent" in names(kube_api)
