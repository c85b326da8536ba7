"""RBAC shown, not asserted: the operator runs on the real server with a token of the chart's own
ServiceAccount, bound to the chart's rendered ClusterRole. With every rule, the whole flow works; with
any one permission removed, a named step of the flow breaks, so no grant is there without a reason."""

from __future__ import annotations

import contextlib
import copy
import json
import pathlib
from typing import Any

import kubernetes
import pytest
import yaml
from kubernetes.client.exceptions import ApiException
from test_chart import by_kind, render
from test_real_operator_flows import GROUP, PLURAL, VERSION, jobs_of, reasons, stored
from test_real_shards import children_of

from batch_inference_operator import api
from batch_inference_operator.api import meta
from conftest import (
    control,
    eventually,
    fast_stack,
    job_manifest,
    requests_rows,
    run_kubectl,
    shard_plan,
    write_jsonl,
)

pytestmark = pytest.mark.slow

RELEASE_NAMESPACE = "operators"


def chart_rbac() -> list[dict[str, Any]]:
    """The ServiceAccount, ClusterRole and ClusterRoleBinding of a default install."""
    objects = render({})
    return [o for o in objects if o["kind"] in ("ServiceAccount", "ClusterRole", "ClusterRoleBinding")]


def permissions(cluster_role: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [
        (group, resource, verb)
        for rule in cluster_role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    ]


def without(cluster_role: dict[str, Any], permission: tuple[str, str, str] | None) -> dict[str, Any]:
    reduced = copy.deepcopy(cluster_role)
    rules = []
    for rule in reduced["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                verbs = [v for v in rule["verbs"] if (group, resource, v) != permission]
                if verbs:
                    rules.append({"apiGroups": [group], "resources": [resource], "verbs": verbs})
    reduced["rules"] = rules
    return reduced


async def install_rbac(kubeconfig: pathlib.Path, kube_client: Any, objects: list[dict[str, Any]]) -> str:
    """Applies the objects; returns a token of the ServiceAccount, minted by the TokenRequest API."""
    try:
        kubernetes.client.CoreV1Api(kube_client).create_namespace({"metadata": {"name": RELEASE_NAMESPACE}})
    except ApiException as error:
        if error.status != 409:
            raise
    code, _, err = await run_kubectl(
        kubeconfig, "apply", "-n", RELEASE_NAMESPACE, "-f", "-", stdin=yaml.safe_dump_all(objects)
    )
    assert code == 0, err
    [account] = by_kind(objects, "ServiceAccount")
    code, token, err = await run_kubectl(
        kubeconfig, "create", "token", account["metadata"]["name"], "-n", RELEASE_NAMESPACE, "--duration=1h"
    )
    assert code == 0, err
    return token.strip()


def retry_count(kube_client: Any, namespace: str) -> int:
    events = kubernetes.client.CoreV1Api(kube_client).list_namespaced_event(namespace).items
    return max((e.count or 0 for e in events if e.reason == "RetryingSubmit"), default=0)


def remove_jobs(kube_client: Any, namespace: str) -> None:
    """A case whose flow broke leaves its resource behind, unsubmitted; the next case's operator (which
    watches every namespace) would submit it and spend that case's emulator faults. Gone, finalizer too."""
    jobs = kubernetes.client.CustomObjectsApi(kube_client)
    for job in jobs.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)["items"]:
        name = job["metadata"]["name"]
        jobs.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name, {"metadata": {"finalizers": None}})
        with contextlib.suppress(ApiException):
            jobs.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)


async def first_broken_step(stack: Any, kube_client: Any, bucket: Any, namespace: str) -> str | None:
    """Runs the flow a user sees and returns the first step that did not happen (None: all did)."""
    try:
        await stack.start_operator(within=15)
    except RuntimeError:
        return "watching"
    kubernetes.client.CoreV1Api(kube_client).create_namespace(
        {"metadata": {"name": namespace, "annotations": {meta.PROJECT_ANNOTATION: "team-project"}}}
    )
    manifest = job_manifest("flow", write_jsonl(bucket, "in.jsonl", requests_rows(3)), f"gs://{bucket.name}/o/")
    manifest["metadata"]["namespace"] = namespace
    del manifest["spec"]["project"]
    manifest["spec"]["ttlSecondsAfterFinished"] = 5
    # Three refused creates: one problem, so one Warning Event whose count grows (a patch of the Event).
    await control(stack, "POST", "/emulator/v1/faults", {"api": [{"method": "create", "code": 429, "count": 3}]})
    code, _, err = await run_kubectl(stack.kubeconfig, "apply", "-f", "-", stdin=yaml.safe_dump(manifest))
    assert code == 0, err
    uid = stored(kube_client, namespace, "flow")["metadata"]["uid"]
    checks: list[tuple[str, Any, float]] = [
        ("submitted", lambda: jobs_of(stack, uid), 15),
        ("namespace-defaults", lambda: jobs_of(stack, uid)[0].project == "team-project", 0.5),
        (
            "finalizer",
            lambda: api.FINALIZER in (stored(kube_client, namespace, "flow")["metadata"].get("finalizers") or []),
            5,
        ),
        ("status", lambda: stored(kube_client, namespace, "flow").get("status", {}).get("phase") == "Succeeded", 15),
        ("events", lambda: "Succeeded" in reasons(kube_client, namespace, "flow"), 5),
        ("event-count", lambda: retry_count(kube_client, namespace) >= 2, 15),
        ("ttl-delete", lambda: stored(kube_client, namespace, "flow") is None, 30),
    ]
    for step, check, within in checks:
        try:
            await eventually(check, timeout=within, interval=0.1)
        except AssertionError:
            return step
    # A sharded resource: the operator creates its children. Its plan is written as preflight leaves it,
    # while the operator is stopped (only the operator writes status while it runs). Not suspended (a
    # suspended parent starts no shard); the flow above has spent its emulator faults by now.
    await stack.stop_operator()
    src = write_jsonl(bucket, "big.jsonl", requests_rows(2))
    parent = job_manifest("sharded", src, f"gs://{bucket.name}/s/", namespace=namespace)
    jobs = kubernetes.client.CustomObjectsApi(kube_client)
    uid = jobs.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, parent)["metadata"]["uid"]
    plan = {"status": {"shards": shard_plan(bucket, "s/", [1, 1])}}
    jobs.patch_namespaced_custom_object_status(GROUP, VERSION, namespace, PLURAL, "sharded", plan)
    await stack.start_operator(within=15)
    try:
        await eventually(lambda: len(children_of(kube_client, namespace, uid)) == 2, timeout=15, interval=0.1)
    except AssertionError:
        return "shards"
    # kopf logs a refused call and carries on where it can (e.g. without the CRD watch, which it needs
    # only to notice resources that appear after it started): the log is the last witness.
    return "no-forbidden" if "Forbidden" in stack.operator_log() else None


@pytest.fixture
async def sa_stack(
    gcs: Any, bigquery: Any, admin_kubeconfig: pathlib.Path, control_plane: Any, tmp_path: pathlib.Path
) -> Any:
    """The stack on the real server; the operator (started by the test) uses `operator.kubeconfig`."""
    operator_kubeconfig = tmp_path / "operator.kubeconfig"
    async with fast_stack(
        tmp_path / "stack",
        gcs,
        bigquery,
        cluster=admin_kubeconfig,
        operator_kubeconfig=operator_kubeconfig,
        start_operator=False,
    ) as running:
        running.operator_env["BIJ_EVENT_UPDATE_INTERVAL"] = "0"  # a recurring Event's count is written at once
        yield running


DEFAULT_ROLE = by_kind(chart_rbac(), "ClusterRole")[0]
# Which step of the flow each permission of the chart's ClusterRole is needed for.
# Namespaces: the operator decides nothing before it knows a namespace's policy annotations. The
# resource's patch: kopf adds its finalizer before any handler runs. Status: the submit marker is
# written there before the create. Delete: ttlSecondsAfterFinished. Create: a sharded resource's children.
NEEDED_FOR: dict[tuple[str, str, str], str] = {
    ("", "namespaces", "list"): "submitted",
    ("", "namespaces", "watch"): "submitted",
    ("apiextensions.k8s.io", "customresourcedefinitions", "list"): "no-forbidden",
    ("apiextensions.k8s.io", "customresourcedefinitions", "watch"): "no-forbidden",
    ("batchinference.dev", "batchinferencejobs", "list"): "watching",
    ("batchinference.dev", "batchinferencejobs", "watch"): "watching",
    ("batchinference.dev", "batchinferencejobs", "patch"): "submitted",
    ("batchinference.dev", "batchinferencejobs", "delete"): "ttl-delete",
    ("batchinference.dev", "batchinferencejobs", "create"): "shards",
    ("batchinference.dev", "batchinferencejobs/status", "patch"): "submitted",
    ("", "events", "create"): "events",
    ("", "events", "patch"): "event-count",
}


def test_every_permission_of_the_chart_has_a_named_reason() -> None:
    assert sorted(permissions(DEFAULT_ROLE)) == sorted(NEEDED_FOR)


@pytest.mark.parametrize(
    "removed", [None, *sorted(NEEDED_FOR)], ids=lambda p: "all-rules" if p is None else "without-" + "/".join(p)
)
async def test_the_flow_needs_each_rule_of_the_chart(
    sa_stack: Any,
    kube_client: Any,
    admin_kubeconfig: pathlib.Path,
    control_plane: Any,
    bucket: Any,
    removed: tuple[str, str, str] | None,
) -> None:
    objects = [without(o, removed) if o["kind"] == "ClusterRole" else o for o in chart_rbac()]
    token = await install_rbac(admin_kubeconfig, kube_client, objects)
    control_plane.write_kubeconfig(sa_stack.operator_kubeconfig, token)

    namespace = f"rbac-{bucket.name[-6:]}"
    try:
        broken = await first_broken_step(sa_stack, kube_client, bucket, namespace)
    finally:
        await sa_stack.stop_operator()
        remove_jobs(kube_client, namespace)
    expected = None if removed is None else NEEDED_FOR[removed]
    assert broken == expected, (
        f"without {removed}: expected the {expected!r} step to break, saw {broken!r}\n"
        + sa_stack.operator_log()[-3000:]
        + json.dumps(objects, indent=1)[:2000]
    )
