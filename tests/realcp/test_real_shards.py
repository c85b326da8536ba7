"""A sharded resource on a real kube-apiserver: the server accepts the children the operator makes (their
ownerReferences, controller and blockOwnerDeletion included), and, as this tier runs no garbage
collector, deleting the parent still deletes every child and cancels their Vertex jobs: correctness does
not wait for the collector."""

from __future__ import annotations

import json
from typing import Any

import kubernetes
import pytest
from test_real_operator_flows import GROUP, PLURAL, VERSION, apply, jobs_of, phase_of, stored

from conftest import eventually, job_manifest, requests_rows, run_kubectl, shard_plan, write_jsonl

pytestmark = pytest.mark.slow


def children_of(kube_client: Any, namespace: str, uid: str) -> list[dict[str, Any]]:
    items = kubernetes.client.CustomObjectsApi(kube_client).list_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL
    )["items"]
    return [j for j in items if any(r["uid"] == uid for r in j["metadata"].get("ownerReferences") or [])]


async def test_children_have_owner_references_the_real_server_accepts_and_go_with_their_parent(
    real_stack: Any, kube_client: Any, real_namespace: str, bucket: Any
) -> None:
    real_stack.engine.apply_config({"minRunSeconds": 30})  # still running when the parent is deleted
    manifest = job_manifest(
        "big", write_jsonl(bucket, "big.jsonl", requests_rows(5)), f"gs://{bucket.name}/big/", namespace=real_namespace
    )
    await real_stack.stop_operator()  # the plan is written as preflight leaves it, before any decision
    await apply(real_stack, real_namespace, manifest)
    plan = json.dumps({"status": {"shards": shard_plan(bucket, "big/", [3, 2])}})
    code, _, err = await run_kubectl(
        real_stack.kubeconfig,
        "patch",
        "-n",
        real_namespace,
        "bij",
        "big",
        "--subresource=status",
        "--type=merge",
        "-p",
        plan,
    )
    assert code == 0, err
    await real_stack.start_operator()
    uid = stored(kube_client, real_namespace, "big")["metadata"]["uid"]
    running = await phase_of(real_stack, kube_client, real_namespace, "big", {"Running"})
    assert running["status"]["shardsDone"] == "0/2"
    children = children_of(kube_client, real_namespace, uid)
    assert sorted(c["metadata"]["name"] for c in children) == ["big-shard-00001", "big-shard-00002"]
    for child in children:
        [owner] = child["metadata"]["ownerReferences"]
        assert owner == {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "BatchInferenceJob",
            "name": "big",
            "uid": uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }
    await eventually(lambda: all(len(jobs_of(real_stack, c["metadata"]["uid"])) == 1 for c in children), timeout=30)
    vertex_jobs = [jobs_of(real_stack, c["metadata"]["uid"])[0] for c in children]

    code, _, err = await run_kubectl(
        real_stack.kubeconfig, "delete", "-n", real_namespace, "bij", "big", "--wait=true", "--timeout=30s"
    )
    assert code == 0, err
    await eventually(lambda: not children_of(kube_client, real_namespace, uid), timeout=30, message="children gone")
    await eventually(lambda: all(job.state == "JOB_STATE_CANCELLED" for job in vertex_jobs), timeout=10)
