"""The operator end to end: kubectl or the API in, a Vertex job in the emulator, status and Events out."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from conftest import (
    EXAMPLES,
    bij_path,
    call,
    control,
    eventually,
    job_manifest,
    read_jsonl,
    requests_rows,
    run_kubectl,
    write_jsonl,
)

TERMINAL = {"Succeeded", "PartiallySucceeded", "Failed", "Cancelled"}


def stored(stack: Any, name: str, namespace: str = "default") -> dict[str, Any] | None:
    return stack.kube.get_object("batchinferencejobs", namespace, name)


async def phase_of(stack: Any, name: str, phases: set[str] = TERMINAL, within: float = 30) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        obj = stored(stack, name)
        return obj if obj and obj.get("status", {}).get("phase") in phases else None

    try:
        return await eventually(check, timeout=within, message=f"{name} reaches {phases}")
    except AssertionError:
        print(stack.operator_log()[-5000:])
        print(json.dumps(stored(stack, name), indent=1))
        raise


def events_for(stack: Any, name: str) -> list[tuple[str, str]]:
    events = sorted(stack.kube.list_objects("events", "default"), key=lambda e: int(e["metadata"]["resourceVersion"]))
    return [(e["type"], e["reason"]) for e in events if e["involvedObject"]["name"] == name]


async def has_event(stack: Any, name: str, event: tuple[str, str]) -> None:
    """Events are posted after the status write that caused them: wait for one, boundedly."""
    await eventually(lambda: event in events_for(stack, name), timeout=10, message=f"{event} for {name}")


async def kubectl(stack: Any, *args: str) -> tuple[int, str, str]:
    return await run_kubectl(stack.kubeconfig, *args)


def jobs_of(emulator_jobs: dict[str, Any], uid: str) -> list[dict[str, Any]]:
    return [job for job in emulator_jobs["jobs"] if job["labels"].get("bij-uid") == uid]


async def test_the_gcs_example_runs_to_success_with_kubectl(stack: Any, gcs: Any) -> None:
    client = gcs.client()
    for bucket in ("demo-batch-inputs", "demo-batch-outputs"):
        if client.lookup_bucket(bucket) is None:
            client.create_bucket(bucket)
    write_jsonl(client.bucket("demo-batch-inputs"), "reviews/requests.jsonl", requests_rows(25))
    code, _, err = await kubectl(stack, "apply", "-f", str(EXAMPLES / "gcs-job.yaml"))
    assert code == 0, err
    code, _, err = await kubectl(stack, "wait", "--for=condition=Complete", "bij/reviews-sentiment", "--timeout=60s")
    assert code == 0, err + stack.operator_log()[-3000:]

    obj = stored(stack, "reviews-sentiment")
    status = obj["status"]
    assert status["phase"] == "Succeeded" and status["completionStats"]["successful"] == 25
    rows = read_jsonl(gcs, status["outputLocation"] + "/predictions.jsonl")
    assert sorted(r["id"] for r in rows) == sorted(f"r{i}" for i in range(25))
    assert status["observedGeneration"] == 1 and status["job"]["state"] == "JOB_STATE_SUCCEEDED"
    [job] = jobs_of(await control(stack, "GET", "/emulator/v1/jobs"), obj["metadata"]["uid"])
    assert job["labels"]["team"] == "search" and job["labels"]["bij-managed-by"] == "batch-inference-operator"
    assert job["displayName"] == "default-reviews-sentiment"

    code, table, _ = await kubectl(stack, "get", "bij")
    header, row = table.splitlines()[:2]
    assert header.split()[:6] == ["NAME", "PHASE", "MODEL", "SUCCEEDED", "FAILED", "ATTEMPTS"]
    assert row.split()[:6] == ["reviews-sentiment", "Succeeded", "gemini-2.5-flash", "25", "0", "1"]
    await has_event(stack, "reviews-sentiment", ("Normal", "Succeeded"))
    reasons = [reason for _, reason in events_for(stack, "reviews-sentiment")]
    assert reasons[:2] == ["PreflightPassed", "Accepted"] and "Submitted" in reasons and reasons[-1] == "Succeeded"


async def test_a_crash_between_create_and_status_write_costs_no_second_job(stack: Any, bucket: Any) -> None:
    src = write_jsonl(bucket, "in.jsonl", requests_rows(5))
    # The create is held 2 s and then carried out, so the operator dies with the create sent (its marker
    # stored first) and its job's name never recorded; the job lands while no operator runs.
    await control(stack, "POST", "/emulator/v1/faults", {"api": [{"method": "create", "hangSeconds": 2}]})
    await call(stack.kube, "POST", bij_path(), job_manifest("crashy", src, f"gs://{bucket.name}/out/"))
    uid = await eventually(lambda: (stored(stack, "crashy") or {}).get("metadata", {}).get("uid"))
    await eventually(lambda: not stack.engine.faults.describe()["api"], message="the create is being held")
    await stack.stop_operator(kill=True)
    await eventually(lambda: stack.engine.stats["create", 200] == 1, message="the held create made its job")
    status = stored(stack, "crashy")["status"]
    assert status["attempts"][0].get("submitting") and "jobName" not in status["attempts"][0], (
        "the crash came after the create and before the status write"
    )

    await control(stack, "DELETE", "/emulator/v1/faults")
    await stack.start_operator()
    done = await phase_of(stack, "crashy")
    assert done["status"]["phase"] == "Succeeded"
    jobs = jobs_of(await control(stack, "GET", "/emulator/v1/jobs"), uid)
    assert len(jobs) == 1, f"exactly one Vertex job for the resource, found {len(jobs)}"
    assert stack.engine.stats["create", 200] == 1
    await has_event(stack, "crashy", ("Normal", "Adopted"))


async def test_unknown_model_fails_once_with_the_model_named(stack: Any, bucket: Any) -> None:
    src = write_jsonl(bucket, "in.jsonl", requests_rows(2))
    await call(
        stack.kube, "POST", bij_path(), job_manifest("nomodel", src, f"gs://{bucket.name}/out/", model="gemini-9-ultra")
    )
    done = await phase_of(stack, "nomodel")
    status = done["status"]
    assert status["phase"] == "Failed" and "gemini-9-ultra" in status["message"]
    failed = next(c for c in status["conditions"] if c["type"] == "Failed")
    assert (failed["status"], failed["reason"]) == ("True", "UnknownModel")
    await asyncio.sleep(1.0)  # several reconcile intervals: a terminal failure must not be retried
    assert stack.engine.stats["create", 404] == 1 and stack.engine.stats["create", 200] == 0
    await has_event(stack, "nomodel", ("Warning", "UnknownModel"))


async def test_throttled_create_is_retried_with_backoff_and_warnings(stack: Any, bucket: Any) -> None:
    src = write_jsonl(bucket, "in.jsonl", requests_rows(2))
    await control(stack, "POST", "/emulator/v1/faults", {"api": [{"method": "create", "code": 429, "count": 3}]})
    await call(stack.kube, "POST", bij_path(), job_manifest("throttled", src, f"gs://{bucket.name}/out/"))
    done = await phase_of(stack, "throttled")
    assert done["status"]["phase"] == "Succeeded"
    assert stack.engine.stats["create", 429] == 3 and stack.engine.stats["create", 200] == 1
    # One Warning Event for the one problem, however often it was retried (counted on the Event, as the
    # kubelet aggregates), never one Event object per retry.
    await has_event(stack, "throttled", ("Warning", "RetryingSubmit"))
    assert [r for t, r in events_for(stack, "throttled") if t == "Warning"] == ["RetryingSubmit"]


async def test_a_job_vertex_fails_reads_as_failed(stack: Any, bucket: Any) -> None:
    src = write_jsonl(bucket, "in.jsonl", requests_rows(10))
    await control(
        stack,
        "POST",
        "/emulator/v1/faults",
        {"jobs": [{"outcome": "FAILED", "afterFraction": 0.5, "message": "System error: disk on fire"}]},
    )
    await call(
        stack.kube,
        "POST",
        bij_path(),
        job_manifest("doomed", src, f"gs://{bucket.name}/out/", resume={"maxAttempts": 1}),
    )
    done = await phase_of(stack, "doomed")
    status = done["status"]
    assert status["phase"] == "Failed" and "disk on fire" in status["message"]
    assert {c["type"]: c["status"] for c in status["conditions"]}["Failed"] == "True"
    assert status["attempts"][0]["error"] == {"code": 13, "message": "System error: disk on fire"}
    assert status["completionStats"] == {"successful": 5, "failed": 0, "incomplete": 5}


async def test_delete_cancels_or_abandons_the_vertex_job(stack: Any, bucket: Any) -> None:
    stack.engine.apply_config({"minRunSeconds": 30})
    src = write_jsonl(bucket, "in.jsonl", requests_rows(3))
    for name, policy in (("cancel-me", "Cancel"), ("keep-me", "Abandon")):
        await call(
            stack.kube,
            "POST",
            bij_path(),
            job_manifest(name, src, f"gs://{bucket.name}/{name}/", deletionPolicy=policy),
        )
    for name in ("cancel-me", "keep-me"):
        await phase_of(stack, name, {"Running"})
    uids = {name: stored(stack, name)["metadata"]["uid"] for name in ("cancel-me", "keep-me")}
    for name in uids:
        await call(stack.kube, "DELETE", bij_path(name=name))
    for name in uids:
        await eventually(lambda name=name: stored(stack, name) is None, timeout=20, message=f"{name} deleted")
    jobs = await control(stack, "GET", "/emulator/v1/jobs")
    [cancelled] = jobs_of(jobs, uids["cancel-me"])
    [kept] = jobs_of(jobs, uids["keep-me"])
    await eventually(lambda: stack.engine.jobs[cancelled["id"]].state == "JOB_STATE_CANCELLED", timeout=5)
    assert kept["state"] == "JOB_STATE_RUNNING"
    assert stack.engine.stats["cancel", 200] == 1


async def test_a_recreated_resource_adopts_the_finished_job(stack: Any, bucket: Any) -> None:
    src = write_jsonl(bucket, "in.jsonl", requests_rows(3))
    manifest = job_manifest("gitops", src, f"gs://{bucket.name}/out/")
    await call(stack.kube, "POST", bij_path(), manifest)
    first = await phase_of(stack, "gitops")
    await call(stack.kube, "DELETE", bij_path(name="gitops"))
    await eventually(lambda: stored(stack, "gitops") is None, timeout=20)
    await call(stack.kube, "POST", bij_path(), manifest)
    second = await phase_of(stack, "gitops")
    assert second["metadata"]["uid"] != first["metadata"]["uid"]
    assert second["status"]["job"]["name"] == first["status"]["job"]["name"], "the same Vertex job, adopted"
    assert second["status"]["outputLocation"] == first["status"]["outputLocation"]
    assert stack.engine.stats["create", 200] == 1


async def test_namespace_annotations_give_project_and_location(stack: Any, bucket: Any) -> None:
    await call(
        stack.kube,
        "POST",
        "/api/v1/namespaces",
        {
            "metadata": {
                "name": "team-b",
                "annotations": {
                    "batchinference.dev/project": "team-b-project",
                    "batchinference.dev/location": "europe-west4",
                },
            }
        },
    )
    src = write_jsonl(bucket, "in.jsonl", requests_rows(2))
    manifest = job_manifest("annotated", src, f"gs://{bucket.name}/out/", namespace="team-b")
    del manifest["spec"]["project"], manifest["spec"]["location"]
    await call(stack.kube, "POST", bij_path("team-b"), manifest)
    done = await eventually(
        lambda: (
            (stored(stack, "annotated", "team-b") or {}).get("status", {}).get("phase") in TERMINAL
            and stored(stack, "annotated", "team-b")
        ),
        timeout=30,
    )
    assert (done["status"]["project"], done["status"]["location"]) == ("team-b-project", "europe-west4")
    assert "/locations/europe-west4/" in done["status"]["job"]["name"]


async def test_fifty_resources_cost_constant_vertex_calls_per_round(stack: Any, bucket: Any) -> None:
    src = write_jsonl(bucket, "in.jsonl", requests_rows(2))
    names = [f"bulk-{i:02d}" for i in range(50)]
    started = asyncio.get_running_loop().time()
    await asyncio.gather(
        *(call(stack.kube, "POST", bij_path(), job_manifest(n, src, f"gs://{bucket.name}/{n}/")) for n in names)
    )
    await eventually(
        lambda: all((stored(stack, n) or {}).get("status", {}).get("phase") in TERMINAL for n in names),
        timeout=90,
        message="all fifty finished",
    )
    assert all(stored(stack, n)["status"]["phase"] == "Succeeded" for n in names)
    stats = stack.engine.stats
    assert stats["create", 200] == 50
    # No GET after a submit; a GET only for a job that left the list of live jobs (it finished), once,
    # or again if a round came before its resource's turn took it off the followed list.
    assert stats["get", 200] <= 2 * 50, "no per-resource polling"
    # Polling is one LIST of live jobs per round for the one project/location (every 0.3 s here);
    # submitting costs one lookup per resource (a re-created resource's job). Per-resource polling would
    # cost 50 calls a round instead.
    rounds = (asyncio.get_running_loop().time() - started) / 0.3 + 2
    lists = stats["list", 200]
    assert lists <= 50 + rounds, f"{lists} LIST calls in about {rounds:.0f} poll rounds"

    for name in names:
        writes = [
            r
            for r in stack.kube.request_log
            if r.url.path == bij_path(name=name, status=True) and str(r.method).upper().endswith("PATCH")
        ]
        states = {"Pending(marker)", "JOB_STATE_PENDING", "JOB_STATE_RUNNING", "JOB_STATE_SUCCEEDED"}
        assert len(writes) <= len(states) + 2, f"{name}: {len(writes)} status writes: {[w.data for w in writes]}"


async def test_max_concurrent_jobs_queues_the_rest_in_creation_order(stack: Any, bucket: Any) -> None:
    await stack.stop_operator()
    stack.operator_env["BIJ_MAX_CONCURRENT_JOBS"] = "2"
    await stack.start_operator()
    stack.engine.apply_config({"minRunSeconds": 1.0})
    src = write_jsonl(bucket, "in.jsonl", requests_rows(2))
    names = [f"queued-{i}" for i in range(5)]
    for name in names:  # one at a time: creation order is queue order
        await call(stack.kube, "POST", bij_path(), job_manifest(name, src, f"gs://{bucket.name}/{name}/"))
    await phase_of(stack, "queued-4", {"Queued"})
    await eventually(
        lambda: all((stored(stack, n) or {}).get("status", {}).get("phase") == "Succeeded" for n in names),
        timeout=60,
        message="all five finished",
    )
    jobs = sorted(stack.engine.jobs.values(), key=lambda job: int(job.id))
    order = [job.display_name.removeprefix("default-") for job in jobs]
    # Admission follows creation order; jobs admitted in the same round may submit in either order.
    assert (set(order[:2]), set(order[2:4]), order[4]) == (
        {"queued-0", "queued-1"},
        {"queued-2", "queued-3"},
        "queued-4",
    ), order
    spans = [(job.create_time, job.end_time) for job in jobs]
    most = max(sum(1 for start, end in spans if start <= moment < end) for moment, _ in spans)
    assert most <= 2, f"{most} Vertex jobs ran at once"


async def test_a_namespace_policy_refuses_other_teams_buckets(stack: Any, bucket: Any) -> None:
    await call(
        stack.kube,
        "POST",
        "/api/v1/namespaces",
        {
            "metadata": {
                "name": "team-c",
                "annotations": {"batchinference.dev/allowed-gcs-prefixes": f"gs://{bucket.name}/team-c/"},
            }
        },
    )
    src = write_jsonl(bucket, "team-c/in.jsonl", requests_rows(2))
    other = write_jsonl(bucket, "team-d/in.jsonl", requests_rows(2))
    for name, source in (("own", src), ("theirs", other)):
        await call(
            stack.kube,
            "POST",
            bij_path("team-c"),
            job_manifest(name, source, f"gs://{bucket.name}/team-c/out/", namespace="team-c"),
        )

    def phase(name: str) -> str | None:
        return (stored(stack, name, "team-c") or {}).get("status", {}).get("phase")

    await eventually(lambda: phase("own") == "Succeeded" and phase("theirs") == "Failed", timeout=30)
    refused = stored(stack, "theirs", "team-c")["status"]
    assert "team-d/in.jsonl is outside the namespace's allowed" in refused["message"]
    assert stack.engine.stats["create", 200] == 1, "only the allowed job reached Vertex"
