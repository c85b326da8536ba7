"""The local Kubernetes API server, over real HTTP: the semantics kopf and kubectl depend on."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from conftest import bij_path, call, example_manifests

MERGE = {"Content-Type": "application/merge-patch+json"}
JSON_PATCH = {"Content-Type": "application/json-patch+json"}


def manifest(name: str = "job-a", **labels: str) -> dict[str, Any]:
    body = json.loads(json.dumps(dict(example_manifests())["gcs-job.yaml"]))
    body["metadata"] = {"name": name, "labels": labels} if labels else {"name": name}
    return body


async def test_create_fills_server_side_metadata(kube_api: Any) -> None:
    status, created = await call(kube_api, "POST", bij_path(), manifest())
    assert status == 201
    meta = created["metadata"]
    assert meta["namespace"] == "default" and meta["generation"] == 1
    assert len(meta["uid"]) == 36 and meta["creationTimestamp"].endswith("Z") and int(meta["resourceVersion"]) > 0
    assert created["spec"]["preflight"] == "Enabled", "CRD defaults are applied"

    status, again = await call(kube_api, "POST", bij_path(), manifest())
    assert (status, again["reason"]) == (409, "AlreadyExists")


async def test_generate_name_and_namespace_checks(kube_api: Any) -> None:
    body = manifest()
    body["metadata"] = {"generateName": "job-"}
    names = {(await call(kube_api, "POST", bij_path(), body))[1]["metadata"]["name"] for _ in range(3)}
    assert len(names) == 3 and all(n.startswith("job-") for n in names)

    status, error = await call(kube_api, "POST", bij_path("missing"), manifest())
    assert (status, error["message"]) == (404, 'namespaces "missing" not found')

    wrong = manifest()
    wrong["metadata"]["namespace"] = "other"
    assert (await call(kube_api, "POST", bij_path(), wrong))[0] == 400


async def test_status_and_spec_are_separate_and_generation_follows_spec(kube_api: Any) -> None:
    body = manifest()
    body["status"] = {"phase": "Succeeded"}
    _, created = await call(kube_api, "POST", bij_path(), body)
    assert "status" not in created, "status is dropped on create when the status subresource exists"

    _, updated = await call(
        kube_api,
        "PATCH",
        bij_path(name="job-a", status=True),
        {"status": {"phase": "Running"}, "spec": {"suspend": True}},
        MERGE,
    )
    assert updated["status"]["phase"] == "Running" and updated["spec"]["suspend"] is False
    assert updated["metadata"]["generation"] == 1

    _, updated = await call(
        kube_api, "PATCH", bij_path(name="job-a"), {"status": {"phase": "Failed"}, "spec": {"suspend": True}}, MERGE
    )
    assert updated["status"]["phase"] == "Running" and updated["spec"]["suspend"] is True
    assert updated["metadata"]["generation"] == 2

    _, labelled = await call(kube_api, "PATCH", bij_path(name="job-a"), {"metadata": {"labels": {"a": "b"}}}, MERGE)
    assert labelled["metadata"]["generation"] == 2, "metadata changes do not bump generation"


async def test_every_write_gets_a_new_resource_version_and_stale_ones_conflict(kube_api: Any) -> None:
    _, created = await call(kube_api, "POST", bij_path(), manifest())
    first = created["metadata"]["resourceVersion"]
    _, patched = await call(kube_api, "PATCH", bij_path(name="job-a"), {"metadata": {"labels": {"x": "1"}}}, MERGE)
    second = patched["metadata"]["resourceVersion"]
    assert int(second) > int(first)

    _, same = await call(kube_api, "PATCH", bij_path(name="job-a"), {"metadata": {"labels": {"x": "1"}}}, MERGE)
    assert same["metadata"]["resourceVersion"] == second, "a no-op patch is not a write"

    stale = {"metadata": {"resourceVersion": first, "labels": {"x": "2"}}}
    status, error = await call(kube_api, "PATCH", bij_path(name="job-a"), stale, MERGE)
    assert (status, error["reason"]) == (409, "Conflict")

    status, error = await call(
        kube_api,
        "PATCH",
        bij_path(name="job-a"),
        [
            {"op": "test", "path": "/metadata/resourceVersion", "value": first},
            {"op": "add", "path": "/metadata/finalizers", "value": ["x/y"]},
        ],
        JSON_PATCH,
    )
    assert status == 422, "a failed JSON-patch test is 422, as kopf expects"

    status, ok = await call(
        kube_api,
        "PATCH",
        bij_path(name="job-a"),
        [
            {"op": "test", "path": "/metadata/resourceVersion", "value": second},
            {"op": "add", "path": "/metadata/finalizers", "value": ["x/y"]},
        ],
        JSON_PATCH,
    )
    assert status == 200 and ok["metadata"]["finalizers"] == ["x/y"]


async def test_put_replaces_with_a_required_resource_version(kube_api: Any) -> None:
    _, created = await call(kube_api, "POST", bij_path(), manifest())
    body = dict(created, spec={**created["spec"], "suspend": True})
    body["metadata"] = {k: v for k, v in created["metadata"].items() if k != "resourceVersion"}
    assert (await call(kube_api, "PUT", bij_path(name="job-a"), body))[0] == 422
    body["metadata"]["resourceVersion"] = created["metadata"]["resourceVersion"]
    status, replaced = await call(kube_api, "PUT", bij_path(name="job-a"), body)
    assert status == 200 and replaced["spec"]["suspend"] is True and replaced["metadata"]["generation"] == 2
    assert (await call(kube_api, "PUT", bij_path(name="job-a"), body))[0] == 409


async def test_crd_is_enforced_with_field_named_causes(kube_api: Any) -> None:
    bad = manifest()
    bad["spec"]["input"]["gcs"]["uris"] = ["s3://bucket/in.jsonl"]
    status, error = await call(kube_api, "POST", bij_path(), bad)
    assert (status, error["reason"]) == (422, "Invalid")
    assert error["details"]["causes"][0]["field"] == "spec.input.gcs.uris[0]"

    unknown = manifest()
    unknown["spec"]["colour"] = "blue"
    status, error = await call(kube_api, "POST", bij_path(), unknown, params={"fieldValidation": "Strict"})
    assert status == 400 and 'unknown field "spec.colour"' in error["message"]
    status, created = await call(kube_api, "POST", bij_path(), unknown)
    assert status == 201 and "colour" not in created["spec"], "unknown fields are pruned unless strict"

    sharded = manifest()
    sharded["metadata"]["name"], sharded["spec"]["sharding"] = "job-s", {"maxRequestsPerShard": 100}
    status, _ = await call(kube_api, "POST", bij_path(), sharded)
    assert status == 201
    recut = {"spec": {"sharding": {"maxRequestsPerShard": 50}}}
    status, error = await call(kube_api, "PATCH", bij_path(name="job-s"), recut, MERGE)
    assert status == 422 and "spec.sharding is immutable" in error["message"], "the shards were planned from it"

    status, error = await call(kube_api, "PATCH", bij_path(name="job-a"), {"spec": {"model": "gemini-2.5-pro"}}, MERGE)
    assert status == 422 and error["details"]["causes"][0]["field"] == "spec.model"
    assert "immutable" in error["message"]


async def test_finalizers_hold_deletion(kube_api: Any) -> None:
    body = manifest()
    body["metadata"]["finalizers"] = ["batchinference.dev/finalizer"]
    await call(kube_api, "POST", bij_path(), body)
    status, marked = await call(kube_api, "DELETE", bij_path(name="job-a"))
    assert status == 200 and marked["metadata"]["deletionTimestamp"]
    assert (await call(kube_api, "GET", bij_path(name="job-a")))[0] == 200

    status, _ = await call(
        kube_api,
        "PATCH",
        bij_path(name="job-a"),
        {"metadata": {"finalizers": ["batchinference.dev/finalizer", "new/one"]}},
        MERGE,
    )
    assert status == 422, "no new finalizers while deleting"

    await call(kube_api, "PATCH", bij_path(name="job-a"), {"metadata": {"finalizers": None}}, MERGE)
    assert (await call(kube_api, "GET", bij_path(name="job-a")))[0] == 404


async def test_list_carries_kind_and_filters_by_selectors(kube_api: Any) -> None:
    await call(kube_api, "POST", bij_path(), manifest("a", team="search", tier="gold"))
    await call(kube_api, "POST", bij_path(), manifest("b", team="ads"))
    await call(kube_api, "POST", bij_path(), manifest("c"))

    async def names(**params: str) -> list[str]:
        status, listing = await call(kube_api, "GET", bij_path(), params=params)
        assert status == 200 and listing["kind"] == "BatchInferenceJobList"
        assert listing["apiVersion"] == "batchinference.dev/v1alpha1" and listing["metadata"]["resourceVersion"]
        return [item["metadata"]["name"] for item in listing["items"]]

    assert await names() == ["a", "b", "c"]
    assert await names(labelSelector="team=search") == ["a"]
    assert await names(labelSelector="team") == ["a", "b"]
    assert await names(labelSelector="!team") == ["c"]
    assert await names(labelSelector="team!=search") == ["b", "c"]
    assert await names(labelSelector="team in (ads,search),tier notin (silver)") == ["a", "b"]
    assert await names(fieldSelector="metadata.name=b") == ["b"]
    first = await call(kube_api, "GET", bij_path(), params={"limit": "2"})
    assert [i["metadata"]["name"] for i in first[1]["items"]] == ["a", "b"]
    rest = await call(kube_api, "GET", bij_path(), params={"limit": "2", "continue": first[1]["metadata"]["continue"]})
    assert [i["metadata"]["name"] for i in rest[1]["items"]] == ["c"]


async def watch(server: Any, params: dict[str, str], count: int, path: str | None = None) -> list[tuple[str, str]]:
    """Read `count` events from a watch, then close it."""
    events = []
    async with (
        aiohttp.ClientSession() as session,
        session.get(str(server.url).rstrip("/") + (path or bij_path()), params={"watch": "true", **params}) as response,
    ):
        assert response.headers["Content-Type"].startswith("application/json")
        async for line in response.content:
            if line.strip():
                event = json.loads(line)
                events.append((event["type"], event["object"]["metadata"].get("name", "")))
                if len(events) == count:
                    break
    return events


async def test_watch_resumes_from_a_resource_version_without_replaying(kube_api: Any) -> None:
    await call(kube_api, "POST", bij_path(), manifest("a"))
    _, listing = await call(kube_api, "GET", bij_path())
    since = listing["metadata"]["resourceVersion"]
    await call(kube_api, "POST", bij_path(), manifest("b"))
    await call(kube_api, "PATCH", bij_path(name="a"), {"metadata": {"labels": {"x": "y"}}}, MERGE)

    events = await asyncio.wait_for(watch(kube_api, {"resourceVersion": since}, 2), 5)
    assert events == [("ADDED", "b"), ("MODIFIED", "a")], "only what happened after the resourceVersion"

    fresh = await asyncio.wait_for(watch(kube_api, {}, 2), 5)
    assert sorted(fresh) == [("ADDED", "a"), ("ADDED", "b")], "no resourceVersion: the current state first"


async def test_watch_follows_live_changes_and_selector_transitions(kube_api: Any) -> None:
    _, listing = await call(kube_api, "GET", bij_path())
    watcher = asyncio.create_task(
        watch(kube_api, {"labelSelector": "team=search", "resourceVersion": listing["metadata"]["resourceVersion"]}, 3)
    )
    await call(kube_api, "POST", bij_path(), manifest("a", team="ads"))
    await call(kube_api, "PATCH", bij_path(name="a"), {"metadata": {"labels": {"team": "search"}}}, MERGE)
    await call(kube_api, "PATCH", bij_path(name="a"), {"spec": {"suspend": True}}, MERGE)
    await call(kube_api, "PATCH", bij_path(name="a"), {"metadata": {"labels": {"team": "ads"}}}, MERGE)
    events = await asyncio.wait_for(watcher, 5)
    assert events == [("ADDED", "a"), ("MODIFIED", "a"), ("DELETED", "a")]


async def test_watch_timeout_ends_the_stream(kube_api: Any) -> None:
    events = await asyncio.wait_for(watch(kube_api, {"timeoutSeconds": "1", "resourceVersion": "1"}, 99), 5)
    assert events == []


async def test_namespaces_and_events(kube_api: Any) -> None:
    status, listing = await call(kube_api, "GET", "/api/v1/namespaces")
    assert status == 200 and [n["metadata"]["name"] for n in listing["items"]] == ["default"]
    status, _ = await call(kube_api, "POST", "/api/v1/namespaces", {"metadata": {"name": "team-a"}})
    assert status == 201
    event = {
        "metadata": {"generateName": "job-a."},
        "reason": "Submitted",
        "message": "x",
        "type": "Normal",
        "involvedObject": {"kind": "BatchInferenceJob", "name": "job-a", "namespace": "team-a"},
    }
    for _ in range(2):
        assert (await call(kube_api, "POST", "/api/v1/namespaces/team-a/events", event))[0] == 201
    _, events = await call(
        kube_api, "GET", "/api/v1/namespaces/team-a/events", params={"fieldSelector": "involvedObject.name=job-a"}
    )
    assert len(events["items"]) == 2

    await call(
        kube_api, "POST", bij_path("team-a"), {**manifest(), "metadata": {"name": "held", "finalizers": ["x/y"]}}
    )
    _, terminating = await call(kube_api, "DELETE", "/api/v1/namespaces/team-a")
    assert terminating["status"]["phase"] == "Terminating"
    assert (await call(kube_api, "POST", bij_path("team-a"), manifest("late")))[0] == 403
    assert (await call(kube_api, "GET", "/api/v1/namespaces/team-a"))[0] == 200, "held by the finalizer"
    await call(kube_api, "PATCH", bij_path("team-a", "held"), {"metadata": {"finalizers": None}}, MERGE)
    assert (await call(kube_api, "GET", "/api/v1/namespaces/team-a"))[0] == 404


async def test_discovery_and_openapi(kube_api: Any) -> None:
    _, core = await call(kube_api, "GET", "/api/v1")
    assert core["groupVersion"] == "v1"
    _, ours = await call(kube_api, "GET", "/apis/batchinference.dev/v1alpha1")
    resources = {r["name"]: r for r in ours["resources"]}
    assert resources["batchinferencejobs"]["shortNames"] == ["bij"]
    assert resources["batchinferencejobs/status"]["verbs"] == ["get", "patch", "update"]
    _, root = await call(kube_api, "GET", "/openapi/v3")
    url = root["paths"]["apis/batchinference.dev/v1alpha1"]["serverRelativeURL"]
    _, document = await call(kube_api, "GET", url.split("?")[0])
    schema = document["components"]["schemas"]["dev.batchinference.v1alpha1.BatchInferenceJob"]
    assert schema["properties"]["spec"]["required"] == ["model", "input", "output"]


@pytest.mark.parametrize("accept", ["application/json;as=Table;v=v1;g=meta.k8s.io"])
async def test_server_side_table_uses_printer_columns(kube_api: Any, accept: str) -> None:
    await call(kube_api, "POST", bij_path(), manifest("a"))
    await call(
        kube_api,
        "PATCH",
        bij_path(name="a", status=True),
        {"status": {"phase": "Running", "completionStats": {"successful": 7}}},
        MERGE,
    )
    _, table = await call(kube_api, "GET", bij_path(), headers={"Accept": accept})
    assert table["kind"] == "Table"
    columns = [c["name"] for c in table["columnDefinitions"]]
    assert columns[:4] == ["Name", "Phase", "Model", "Succeeded"]
    cells = dict(zip(columns, table["rows"][0]["cells"], strict=True))
    assert cells["Phase"] == "Running" and cells["Succeeded"] == 7 and cells["Age"].endswith("s")


async def test_yaml_bodies_are_accepted_and_unknown_media_types_refused(kube_api: Any) -> None:
    import yaml

    text = yaml.safe_dump(manifest("from-yaml"))
    async with aiohttp.ClientSession() as session:
        url = str(kube_api.url).rstrip("/") + bij_path()
        async with session.post(url, data=text, headers={"Content-Type": "application/yaml"}) as response:
            assert response.status == 201, await response.text()
            assert (await response.json())["metadata"]["name"] == "from-yaml"
        async with session.post(url, data=b"\x01", headers={"Content-Type": "application/cbor"}) as response:
            refusal = await response.json()
            assert (response.status, refusal["reason"]) == (415, "UnsupportedMediaType")
            assert "application/yaml" in refusal["message"]


async def test_field_selectors_only_on_the_fields_a_type_declares(kube_api: Any) -> None:
    """A real apiserver answers a field label the type does not support with a 400, never by ignoring it:
    the CRD declares `status.phase` (selectableFields), not `spec.model`."""
    for name, phase in (("a", "Running"), ("b", "Failed")):
        await call(kube_api, "POST", bij_path(), manifest(name))
        await call(kube_api, "PATCH", bij_path(name=name, status=True), {"status": {"phase": phase}}, MERGE)
    _, failed = await call(kube_api, "GET", bij_path(), params={"fieldSelector": "status.phase=Failed"})
    assert [o["metadata"]["name"] for o in failed["items"]] == ["b"]
    status, refusal = await call(kube_api, "GET", bij_path(), params={"fieldSelector": "spec.model=gemini-2.5-flash"})
    assert (status, refusal["message"]) == (400, "field label not supported: spec.model")
    watch_params = {"fieldSelector": "spec.model=x", "watch": "true"}
    assert (await call(kube_api, "GET", bij_path(), params=watch_params))[0] == 400
    status, refusal = await call(kube_api, "GET", "/api/v1/namespaces", params={"fieldSelector": "spec.finalizers=x"})
    assert (status, refusal["message"]) == (400, "field label not supported: spec.finalizers")


async def test_events_table_has_the_apiservers_columns(kube_api: Any) -> None:
    event = {
        "metadata": {"name": "job-a.1"},
        "type": "Warning",
        "reason": "Failed",
        "message": "Vertex job failed (code 3) ",
        "count": 2,
        "source": {"component": "batch-inference-operator"},
        "involvedObject": {"kind": "BatchInferenceJob", "name": "job-a", "namespace": "default"},
        "firstTimestamp": "2026-01-01T00:00:00Z",
        "lastTimestamp": "2026-01-01T00:00:00Z",
    }
    await call(kube_api, "POST", "/api/v1/namespaces/default/events", event)
    accept = {"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"}
    _, table = await call(kube_api, "GET", "/api/v1/namespaces/default/events", headers=accept)
    columns = [(c["name"], c["priority"]) for c in table["columnDefinitions"]]
    assert [name for name, priority in columns if priority == 0] == ["Last Seen", "Type", "Reason", "Object", "Message"]
    cells = dict(zip([name for name, _ in columns], table["rows"][0]["cells"], strict=True))
    assert cells["Object"] == "batchinferencejob/job-a" and cells["Message"] == "Vertex job failed (code 3)"
    assert (cells["Count"], cells["Source"], cells["Name"]) == (2, "batch-inference-operator", "job-a.1")
    assert cells["Last Seen"].endswith("d")


async def test_protobuf_namespace_create_as_kubectl_sends_it(kube_api: Any) -> None:
    """`kubectl create namespace` posts Kubernetes' protobuf envelope; the name and labels must land."""

    def field(number: int, payload: bytes) -> bytes:
        return bytes([number << 3 | 2, len(payload)]) + payload

    meta = field(1, b"team-b") + field(11, field(1, b"team") + field(2, b"b"))
    envelope = b"k8s\x00" + field(1, field(1, b"v1") + field(2, b"Namespace")) + field(2, field(1, meta))
    async with aiohttp.ClientSession() as session:
        url = str(kube_api.url).rstrip("/") + "/api/v1/namespaces"
        headers = {"Content-Type": "application/vnd.kubernetes.protobuf", "Accept": "application/json"}
        async with session.post(url, data=envelope, headers=headers) as response:
            created = await response.json()
            assert response.status == 201, created
    assert created["metadata"]["name"] == "team-b" and created["metadata"]["labels"] == {"team": "b"}
    assert created["status"] == {"phase": "Active"}

    pod = b"k8s\x00" + field(1, field(1, b"v1") + field(2, b"Pod")) + field(2, field(1, field(1, b"p")))
    async with aiohttp.ClientSession() as session:
        url = str(kube_api.url).rstrip("/") + "/api/v1/namespaces"
        headers = {"Content-Type": "application/vnd.kubernetes.protobuf"}
        for body, code, words in (
            (pod, 415, "only for v1 Namespace, not v1 Pod"),
            (envelope[:-3], 400, "could not be decoded"),
        ):
            async with session.post(url, data=body, headers=headers) as response:
                refusal = await response.json()
                assert response.status == code and words in refusal["message"], refusal
