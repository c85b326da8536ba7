"""The operator end to end on a real kube-apiserver: GCS and BigQuery jobs, resume, suspend, delete
with Cancel, and a kill-and-restart, with the same emulators as the fast tier. Resources are made and
changed with kubectl; the test reads them with the kubernetes client."""

from __future__ import annotations

import json
from typing import Any

import kubernetes
import pytest
import yaml
from kubernetes.client.exceptions import ApiException
from test_bigquery import TICKET_COLUMNS, bq_manifest, tickets

from batch_inference_operator import api
from conftest import (
    control,
    eventually,
    job_manifest,
    make_table,
    read_jsonl,
    read_table,
    requests_rows,
    run_kubectl,
    write_jsonl,
)

pytestmark = pytest.mark.slow

GROUP, VERSION, PLURAL = "batchinference.dev", "v1alpha1", "batchinferencejobs"
TERMINAL = {"Succeeded", "PartiallySucceeded", "Failed", "Cancelled"}
FAST = {"backoffSeconds": 0, "maxAttempts": 3}


def stored(kube_client: Any, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        return kubernetes.client.CustomObjectsApi(kube_client).get_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name
        )
    except ApiException as error:
        if error.status == 404:
            return None
        raise


async def phase_of(
    stack: Any, kube_client: Any, namespace: str, name: str, phases: set[str] = TERMINAL, within: float = 60
) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        obj = stored(kube_client, namespace, name)
        return obj if obj and obj.get("status", {}).get("phase") in phases else None

    try:
        return await eventually(check, timeout=within, interval=0.1, message=f"{name} reaches {phases}")
    except AssertionError:
        print(stack.operator_log()[-5000:])
        print(json.dumps(stored(kube_client, namespace, name), indent=1))
        raise


async def apply(stack: Any, namespace: str, manifest: dict[str, Any]) -> None:
    code, _, err = await run_kubectl(
        stack.kubeconfig, "apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(manifest)
    )
    assert code == 0, err


async def patch(stack: Any, namespace: str, name: str, body: dict[str, Any]) -> None:
    code, _, err = await run_kubectl(
        stack.kubeconfig, "patch", "-n", namespace, "bij", name, "--type=merge", "-p", json.dumps(body)
    )
    assert code == 0, err


def reasons(kube_client: Any, namespace: str, name: str) -> list[str]:
    events = kubernetes.client.CoreV1Api(kube_client).list_namespaced_event(namespace).items
    return [e.reason for e in events if e.involved_object.name == name]


def jobs_of(stack: Any, uid: str) -> list[Any]:
    return [job for job in stack.engine.jobs.values() if job.labels.get("bij-uid") == uid]


async def test_a_gcs_job_succeeds_and_kubectl_wait_returns(
    real_stack: Any, kube_client: Any, real_namespace: str, gcs: Any, bucket: Any
) -> None:
    src = write_jsonl(bucket, "in.jsonl", requests_rows(20))
    await apply(
        real_stack, real_namespace, job_manifest("gcs", src, f"gs://{bucket.name}/out/", namespace=real_namespace)
    )
    code, _, err = await run_kubectl(
        real_stack.kubeconfig, "wait", "-n", real_namespace, "--for=condition=Complete", "bij/gcs", "--timeout=60s"
    )
    assert code == 0, err + real_stack.operator_log()[-3000:]
    status = stored(kube_client, real_namespace, "gcs")["status"]
    assert status["phase"] == "Succeeded" and status["completionStats"]["successful"] == 20
    rows = read_jsonl(gcs, status["outputLocation"] + "/predictions.jsonl")
    assert sorted(r["id"] for r in rows) == sorted(f"r{i}" for i in range(20))
    await eventually(lambda: "Succeeded" in reasons(kube_client, real_namespace, "gcs"), timeout=10)
    code, table, _ = await run_kubectl(real_stack.kubeconfig, "get", "bij", "-n", real_namespace)
    assert table.splitlines()[1].split()[:2] == ["gcs", "Succeeded"], table


async def test_a_bigquery_job_succeeds_with_every_row(
    real_stack: Any, kube_client: Any, real_namespace: str, bigquery: Any, dataset: str
) -> None:
    source = make_table(bigquery, f"{dataset}.tickets", tickets(12), TICKET_COLUMNS)
    manifest = bq_manifest("bq", {"bigquery": {"table": source}}, {"bigquery": {"dataset": f"bq://{dataset}"}})
    manifest["metadata"]["namespace"] = real_namespace
    await apply(real_stack, real_namespace, manifest)
    done = (await phase_of(real_stack, kube_client, real_namespace, "bq"))["status"]
    assert done["phase"] == "Succeeded", done["message"]
    rows = read_table(bigquery, done["outputLocation"])
    assert sorted(r["id"] for r in rows) == sorted(f"r{i}" for i in range(12))


async def test_a_failed_job_is_resumed_to_success(
    real_stack: Any, kube_client: Any, real_namespace: str, gcs: Any, bucket: Any
) -> None:
    src = write_jsonl(bucket, "in.jsonl", requests_rows(30))
    await control(real_stack, "POST", "/emulator/v1/faults", {"jobs": [{"outcome": "FAILED", "afterFraction": 0.5}]})
    manifest = job_manifest("resumed", src, f"gs://{bucket.name}/out/", namespace=real_namespace, resume=FAST)
    await apply(real_stack, real_namespace, manifest)
    done = (await phase_of(real_stack, kube_client, real_namespace, "resumed"))["status"]
    assert done["phase"] == "Succeeded", done["message"]
    assert [a["state"] for a in done["attempts"]] == ["JOB_STATE_FAILED", "JOB_STATE_SUCCEEDED"]
    rows = read_jsonl(gcs, done["outputLocation"] + "/predictions.jsonl")
    assert sorted(r["id"] for r in rows) == sorted(f"r{i}" for i in range(30)), "every row exactly once"


async def test_suspend_cancels_and_resume_finishes(
    real_stack: Any, kube_client: Any, real_namespace: str, gcs: Any, bucket: Any
) -> None:
    real_stack.engine.apply_config({"rowsPerSecond": 20})
    src = write_jsonl(bucket, "in.jsonl", requests_rows(60))
    await apply(
        real_stack, real_namespace, job_manifest("pausable", src, f"gs://{bucket.name}/out/", namespace=real_namespace)
    )
    await eventually(
        lambda: any(j.counts and j.counts.processed > 5 for j in real_stack.engine.jobs.values()), timeout=30
    )
    await patch(real_stack, real_namespace, "pausable", {"spec": {"suspend": True}})
    await phase_of(real_stack, kube_client, real_namespace, "pausable", {"Suspended"})
    await eventually(
        lambda: (
            stored(kube_client, real_namespace, "pausable")["status"]["attempts"][0].get("state")
            == "JOB_STATE_CANCELLED"
        ),
        timeout=30,
    )
    real_stack.engine.apply_config({"rowsPerSecond": 0})
    await patch(real_stack, real_namespace, "pausable", {"spec": {"suspend": False}})
    done = (await phase_of(real_stack, kube_client, real_namespace, "pausable"))["status"]
    assert done["phase"] == "Succeeded" and len(done["attempts"]) == 2
    rows = read_jsonl(gcs, done["outputLocation"] + "/predictions.jsonl")
    assert sorted(r["id"] for r in rows) == sorted(f"r{i}" for i in range(60))


async def test_delete_with_cancel_cancels_the_vertex_job_before_the_resource_goes(
    real_stack: Any, kube_client: Any, real_namespace: str, bucket: Any
) -> None:
    real_stack.engine.apply_config({"minRunSeconds": 30})
    src = write_jsonl(bucket, "in.jsonl", requests_rows(3))
    manifest = job_manifest(
        "cancel-me", src, f"gs://{bucket.name}/c/", namespace=real_namespace, deletionPolicy="Cancel"
    )
    await apply(real_stack, real_namespace, manifest)
    running = await phase_of(real_stack, kube_client, real_namespace, "cancel-me", {"Running"})
    assert api.FINALIZER in running["metadata"]["finalizers"]
    code, _, err = await run_kubectl(
        real_stack.kubeconfig, "delete", "-n", real_namespace, "bij", "cancel-me", "--wait=true", "--timeout=30s"
    )
    assert code == 0, err
    assert stored(kube_client, real_namespace, "cancel-me") is None
    [job] = jobs_of(real_stack, running["metadata"]["uid"])
    await eventually(lambda: job.state == "JOB_STATE_CANCELLED", timeout=10)


async def test_killing_the_operator_between_create_and_record_costs_no_second_job(
    real_stack: Any, kube_client: Any, real_namespace: str, bucket: Any
) -> None:
    src = write_jsonl(bucket, "in.jsonl", requests_rows(10))
    await control(real_stack, "POST", "/emulator/v1/faults", {"jobs": [{"outcome": "FAILED", "afterFraction": 0.5}]})
    manifest = job_manifest("crash", src, f"gs://{bucket.name}/out/", namespace=real_namespace, resume=FAST)
    await apply(real_stack, real_namespace, manifest)
    uid = await eventually(lambda: (stored(kube_client, real_namespace, "crash") or {}).get("metadata", {}).get("uid"))
    await eventually(lambda: [j.state for j in jobs_of(real_stack, uid)] == ["JOB_STATE_FAILED"], timeout=30)
    await control(real_stack, "POST", "/emulator/v1/faults", {"api": [{"method": "get", "hangSeconds": 60}]})
    await eventually(lambda: len(jobs_of(real_stack, uid)) == 2, timeout=30, message="attempt 2 created")
    await real_stack.stop_operator(kill=True)
    await control(real_stack, "DELETE", "/emulator/v1/faults")
    await real_stack.start_operator()
    done = (await phase_of(real_stack, kube_client, real_namespace, "crash"))["status"]
    assert done["phase"] == "Succeeded" and len(done["attempts"]) == 2
    assert len(jobs_of(real_stack, uid)) == 2, "one Vertex job per attempt"
