"""Quiet status: the operator's own Kubernetes writes (controller/kube.py) against the API stand-in, and a
burst of resources through the whole stack paced into Queued instead of a retry storm."""

from __future__ import annotations

import datetime
from typing import Any

import kopf

from batch_inference_operator.controller.kube import Kube, involved_object
from batch_inference_operator.core.actions import Event
from conftest import bij_path, call, eventually, job_manifest, requests_rows, write_jsonl


def events_of(server: Any, name: str) -> list[dict[str, Any]]:
    return [e for e in server.list_objects("events", "default") if e["involvedObject"]["name"] == name]


async def test_a_recurring_problem_is_one_event_whose_count_grows(kube_api: Any, kube_url: str) -> None:
    """As the kubelet aggregates: one Event object per distinct problem of a resource, its count and
    lastTimestamp updated when it recurs; a different problem is its own Event."""
    writer = Kube()
    writer.info = kopf.ConnectionInfo(server=kube_url)
    resource = {"apiVersion": "batchinference.dev/v1alpha1", "kind": "BatchInferenceJob"}
    resource["metadata"] = {"name": "noisy", "namespace": "default", "uid": "u-1"}
    involved = involved_object(resource)
    retry = Event("Warning", "RetryingSubmit", "create: Vertex AI answered 429; retrying with backoff")
    try:
        for second in range(4):  # each recurrence after the update interval
            await writer.post_events(involved, [retry], now=second * (writer.event_update_interval + 1))
        await writer.post_events(involved, [retry], now=3 * (writer.event_update_interval + 1) + 1)  # counted
        await writer.post_events(involved, [Event("Warning", "Stalled", "queued too long")], now=200)
    finally:
        await writer.close()
    [retried] = [e for e in events_of(kube_api, "noisy") if e["reason"] == "RetryingSubmit"]
    assert retried["count"] == 4 and retried["type"] == "Warning"
    assert [e["reason"] for e in events_of(kube_api, "noisy")].count("Stalled") == 1
    writes = [r for r in kube_api.request_log if "/events" in r.url.path]
    assert len(writes) == 5, "one create and three count updates for the retries, one create for the stall"


async def test_a_burst_beyond_the_create_pace_is_queued_then_submitted_without_429s(stack: Any, bucket: Any) -> None:
    """Twelve resources at once with creates paced at 1 per second after a burst of 2: the rest show phase
    Queued (reason CreatePaced: a slot more than a second away is not waited for in the turn), every one is
    created exactly once, and Vertex never answers 429."""
    await stack.stop_operator()
    stack.operator_env.update({"BIJ_CREATE_RATE": "1", "BIJ_CREATE_BURST": "2", "BIJ_CREATE_CONCURRENCY": "2"})
    await stack.start_operator()
    src = write_jsonl(bucket, "in.jsonl", requests_rows(1))
    names = [f"paced-{i:02d}" for i in range(12)]
    # No create can be sent before the resources exist, and the bucket never holds more than the burst:
    # so the twelfth create is at least (12 - 2) / 1 s after this moment, however late any create arrives.
    posted = datetime.datetime.now(datetime.UTC)
    for name in names:
        await call(stack.kube, "POST", bij_path(), job_manifest(name, src, f"gs://{bucket.name}/{name}/"))

    def reasons() -> set[str]:
        found = set()
        for name in names:
            for c in (
                (stack.kube.get_object("batchinferencejobs", "default", name) or {})
                .get("status", {})
                .get("conditions", [])
            ):
                if c["type"] == "Ready":
                    found.add(c["reason"])
        return found

    await eventually(lambda: "CreatePaced" in reasons(), timeout=20, message="some resources wait in Queued")
    await eventually(
        lambda: all(
            (stack.kube.get_object("batchinferencejobs", "default", n) or {}).get("status", {}).get("phase")
            == "Succeeded"
            for n in names
        ),
        timeout=60,
        message="all twelve finished",
    )
    assert stack.engine.stats["create", 200] == 12 and stack.engine.stats["create", 429] == 0
    last = max(job.create_time for job in stack.engine.jobs.values())
    span = (last - posted).total_seconds()
    assert span >= (12 - 2) / 1, f"12 creates within {span:.2f}s of the resources: not paced"
    for name in names:
        queued = [e for e in events_of(stack.kube, name) if e["reason"] == "Queued"]
        assert len(queued) <= 1, f"{name}: {len(queued)} Queued Events"
