"""The findings of the chaos and security pass, each end to end on the local stack: the operator as its own
process, the real kopf, google-genai and Kubernetes clients, the emulator reaching Vertex's states."""

from __future__ import annotations

from typing import Any

from test_operator import events_for, has_event, jobs_of, phase_of, stored

from conftest import bij_path, call, control, eventually, job_manifest, requests_rows, run_kubectl, write_jsonl


async def restart_with(stack: Any, **env: str) -> None:
    await stack.stop_operator()
    stack.operator_env.update(env)
    await stack.start_operator()


async def test_a_create_that_lands_after_the_client_gave_up_is_adopted_not_paid_twice(stack: Any, bucket: Any) -> None:
    """Finding 1: the create times out at the client but Vertex completes it later. Before, the operator
    retried after its backoff, the label LIST found nothing yet, and a second paid job was created."""
    await restart_with(stack, BIJ_VERTEX_TIMEOUT="1", BIJ_CREATE_SETTLE="8")
    src = write_jsonl(bucket, "in.jsonl", requests_rows(4))
    await control(stack, "POST", "/emulator/v1/faults", {"api": [{"method": "create", "hangSeconds": 3}]})
    await call(stack.kube, "POST", bij_path(), job_manifest("late", src, f"gs://{bucket.name}/late/"))
    done = await phase_of(stack, "late", within=60)
    assert done["status"]["phase"] == "Succeeded", done["status"].get("message")
    jobs = jobs_of(await control(stack, "GET", "/emulator/v1/jobs"), done["metadata"]["uid"])
    assert len(jobs) == 1, f"one Vertex job for the attempt, found {len(jobs)}"
    assert done["status"]["attempts"][0]["uncertainCreates"] == 1
    assert ("Warning", "CreateUncertain") in events_for(stack, "late")
    assert ("Normal", "Adopted") in events_for(stack, "late"), "the late job was found and adopted"


async def test_two_names_sharing_63_characters_never_share_a_job(stack: Any, bucket: Any) -> None:
    """Finding 2: labels were truncated to 63 characters, so the second resource adopted the first's job."""
    src = write_jsonl(bucket, "in.jsonl", requests_rows(3))
    stem = "a" * 63
    for suffix in ("one", "two"):
        manifest = job_manifest(f"{stem}-{suffix}", src, f"gs://{bucket.name}/shared/")
        await call(stack.kube, "POST", bij_path(), manifest)
    first = await phase_of(stack, f"{stem}-one")
    second = await phase_of(stack, f"{stem}-two")
    everything = await control(stack, "GET", "/emulator/v1/jobs")
    mine = jobs_of(everything, first["metadata"]["uid"])
    theirs = jobs_of(everything, second["metadata"]["uid"])
    assert len(mine) == len(theirs) == 1 and mine[0]["name"] != theirs[0]["name"]
    assert mine[0]["labels"]["bij-name"] != theirs[0]["labels"]["bij-name"]
    assert first["status"]["job"]["name"] != second["status"]["job"]["name"]
    assert ("Normal", "Adopted") not in events_for(stack, f"{stem}-two")


async def test_a_project_outside_the_namespace_allow_list_is_refused(stack: Any, bucket: Any) -> None:
    """Finding 3: spec.project silently overrode the namespace's project."""
    namespace = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": "team-a",
            "annotations": {
                "batchinference.dev/project": "team-a-project",
                "batchinference.dev/allowed-projects": "team-a-project",
            },
        },
    }
    await call(stack.kube, "POST", "/api/v1/namespaces", namespace)
    src = write_jsonl(bucket, "in.jsonl", requests_rows(2))
    manifest = job_manifest("elsewhere", src, f"gs://{bucket.name}/x/", namespace="team-a", project="team-b-project")
    await call(stack.kube, "POST", bij_path("team-a"), manifest)

    def failed() -> Any:
        obj = stack.kube.get_object("batchinferencejobs", "team-a", "elsewhere") or {}
        return obj if obj.get("status", {}).get("phase") == "Failed" else None

    done = await eventually(failed, timeout=30, message="refused by policy")
    assert "project team-b-project is not among the namespace's allowed projects" in done["status"]["message"]
    jobs = jobs_of(await control(stack, "GET", "/emulator/v1/jobs"), done["metadata"]["uid"])
    assert jobs == [], "nothing was created"


async def test_an_input_carrying_a_response_is_refused_before_anything_is_paid(stack: Any, bucket: Any) -> None:
    """Finding 4: a `response` key in input passed preflight, was passed through unbilled, then crashed the
    usage scan (no condition, a traceback loop) and could spoof status.usage."""
    rows = requests_rows(3)
    rows[1]["response"] = 1
    src = write_jsonl(bucket, "in.jsonl", rows)
    await call(stack.kube, "POST", bij_path(), job_manifest("spoof", src, f"gs://{bucket.name}/spoof/"))
    done = await phase_of(stack, "spoof")
    status = done["status"]
    assert status["phase"] == "Failed"
    assert "line 2: 'response' is a key Vertex writes in its output rows" in status["message"]
    assert jobs_of(await control(stack, "GET", "/emulator/v1/jobs"), done["metadata"]["uid"]) == []


async def test_a_job_in_which_every_row_failed_is_failed_and_waitable(stack: Any, bucket: Any) -> None:
    """Finding 5: zero rows succeeded, yet the resource read Complete, Ready and Argo CD Healthy; and
    `kubectl wait --for=condition=Complete` hung on failures."""
    src = write_jsonl(bucket, "in.jsonl", requests_rows(3, prefix="forbidden topic "))
    await control(stack, "POST", "/emulator/v1/faults", {"rows": [{"code": 400, "match": "forbidden topic"}]})
    await call(stack.kube, "POST", bij_path(), job_manifest("all-bad", src, f"gs://{bucket.name}/bad/"))
    code, _, err = await run_kubectl(
        stack.kubeconfig, "wait", "--for=condition=Finished", "bij/all-bad", "--timeout=60s"
    )
    assert code == 0, err
    status = stored(stack, "all-bad")["status"]
    assert status["phase"] == "Failed"
    conditions = {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}
    assert conditions["Failed"] == ("True", "NoRequestSucceeded") and conditions["Complete"][0] == "False"
    assert conditions["Finished"] == ("True", "Failed")
    assert len(status["rowErrors"]) == 3 and all(e["code"] == 400 for e in status["rowErrors"])
    await has_event(stack, "all-bad", ("Warning", "NoRequestSucceeded"))


async def test_a_paused_job_reads_paused_and_finishes_when_vertex_resumes_it(stack: Any, bucket: Any) -> None:
    """Finding 6: PAUSED read as Running forever."""
    await control(stack, "PUT", "/emulator/v1/config", {"rowsPerSecond": 2})
    src = write_jsonl(bucket, "in.jsonl", requests_rows(6))
    await call(stack.kube, "POST", bij_path(), job_manifest("pausable", src, f"gs://{bucket.name}/p/"))
    running = await phase_of(stack, "pausable", {"Running"})
    job_id = running["status"]["job"]["name"].rsplit("/", 1)[-1]
    await control(stack, "POST", f"/emulator/v1/jobs/{job_id}:pause")
    paused = await phase_of(stack, "pausable", {"Paused"})
    conditions = {c["type"]: c["status"] for c in paused["status"]["conditions"]}
    assert conditions["Paused"] == "True" and "spec.suspend" in paused["status"]["message"]
    await has_event(stack, "pausable", ("Warning", "Paused"))
    await control(stack, "POST", f"/emulator/v1/jobs/{job_id}:unpause")
    await control(stack, "PUT", "/emulator/v1/config", {"rowsPerSecond": 0})
    done = await phase_of(stack, "pausable", within=60)
    assert done["status"]["phase"] == "Succeeded"
    assert {c["type"]: c["status"] for c in done["status"]["conditions"]}["Paused"] == "False"


async def test_a_location_that_serves_no_gemini_batch_fails_at_once(stack: Any, bucket: Any) -> None:
    """Finding 8: a mistyped location passed the schema and would have retried forever against Vertex."""
    src = write_jsonl(bucket, "in.jsonl", requests_rows(2))
    await call(
        stack.kube, "POST", bij_path(), job_manifest("mars", src, f"gs://{bucket.name}/m/", location="mars-central1")
    )
    done = await phase_of(stack, "mars")
    assert done["status"]["phase"] == "Failed"
    assert "'mars-central1' does not serve Gemini batch prediction" in done["status"]["message"]
    assert jobs_of(await control(stack, "GET", "/emulator/v1/jobs"), done["metadata"]["uid"]) == []


async def test_a_job_stalled_in_the_queue_is_reported_and_resubmitted(stack: Any, bucket: Any) -> None:
    """Stalled jobs surface: a job that waits in Vertex's queue too long gets Stalled=True and, with
    action Resubmit, a new attempt once a slot frees."""
    await restart_with(stack, BIJ_STALL_QUEUED_AFTER="2")
    await control(stack, "PUT", "/emulator/v1/config", {"maxRunningJobsPerProject": 1, "rowsPerSecond": 1})
    src = write_jsonl(bucket, "in.jsonl", requests_rows(3))
    blocker = job_manifest("blocker", src, f"gs://{bucket.name}/b/")
    await call(stack.kube, "POST", bij_path(), blocker)
    await phase_of(stack, "blocker", {"Running"})
    waiting = job_manifest("waiting", src, f"gs://{bucket.name}/w/", stall={"action": "Resubmit"})
    await call(stack.kube, "POST", bij_path(), waiting)
    await has_event(stack, "waiting", ("Warning", "Stalled"))
    obj = stored(stack, "waiting")
    stalled = {c["type"]: (c["status"], c["reason"]) for c in obj["status"]["conditions"]}["Stalled"]
    # The resubmit follows the stall at once (the cancel, then the new attempt): by now the condition
    # may already have cleared for the new attempt.
    resubmitted = bool(obj["status"]["attempts"][0].get("resubmit"))
    assert stalled == ("True", "QueuedTooLong") or resubmitted, (stalled, obj["status"]["attempts"])
    await control(stack, "PUT", "/emulator/v1/config", {"maxRunningJobsPerProject": 0, "rowsPerSecond": 0})
    done = await phase_of(stack, "waiting", within=60)
    assert done["status"]["phase"] == "Succeeded", done["status"].get("message")
    first = done["status"]["attempts"][0]
    assert first["resubmit"] is True and first["state"] == "JOB_STATE_CANCELLED"
    jobs = jobs_of(await control(stack, "GET", "/emulator/v1/jobs"), done["metadata"]["uid"])
    assert [job["state"] for job in jobs].count("JOB_STATE_SUCCEEDED") == 1, "one job ran; the stalled one never did"


async def test_a_resource_deleted_while_its_create_may_still_land_is_kept_until_the_late_job_is_cancelled(
    stack: Any, bucket: Any
) -> None:
    """Found by the chaos suite (seed 3003): deleted right after a create timed out at the client, the
    resource was let go at once; the create then landed and its job ran with no resource to cancel it."""
    # A create is assumed to land within half the settle window of being sent: 3 s here, the hang's length.
    await restart_with(stack, BIJ_VERTEX_TIMEOUT="1", BIJ_CREATE_SETTLE="8")
    src = write_jsonl(bucket, "in.jsonl", requests_rows(4))
    await control(stack, "POST", "/emulator/v1/faults", {"api": [{"method": "create", "hangSeconds": 3}]})
    await call(stack.kube, "POST", bij_path(), job_manifest("late-gone", src, f"gs://{bucket.name}/lg/"))
    await has_event(stack, "late-gone", ("Warning", "CreateUncertain"))
    uid = stored(stack, "late-gone")["metadata"]["uid"]
    await call(stack.kube, "DELETE", bij_path(name="late-gone"))

    def landed() -> list[Any]:
        return [job for job in stack.engine.jobs.values() if job.labels.get("bij-uid") == uid]

    [job] = await eventually(landed, timeout=10, message="the held create landed")
    assert stored(stack, "late-gone") is not None, "the finalizer still holds the resource when the late job lands"
    await eventually(lambda: job.state == "JOB_STATE_CANCELLED", timeout=10, message="the late job is cancelled")
    await eventually(lambda: stored(stack, "late-gone") is None, timeout=20, message="then the resource goes")
    await has_event(stack, "late-gone", ("Normal", "AwaitingCreate"))
    assert len(landed()) == 1
