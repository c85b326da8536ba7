"""Seeing, fixing and re-running jobs end to end (issue 19): the Reason and Message columns, a 403 that names
the role to grant, preflight of duplicate inputs and the output bucket, the re-run annotation, and
ttlSecondsAfterFinished with a GitOps re-create that adopts the finished job instead of paying again."""

from __future__ import annotations

from typing import Any

from test_operator import events_for, has_event, jobs_of, kubectl, phase_of, stored

from conftest import bij_path, call, control, eventually, job_manifest, requests_rows, write_jsonl

DENIED = (
    "Permission 'aiplatform.batchPredictionJobs.create' denied on resource "
    "'//aiplatform.googleapis.com/projects/demo-project/locations/us-central1' (or it may not exist)."
)


def condition(obj: dict[str, Any], kind: str) -> tuple[str, str, str]:
    found = next(c for c in obj["status"]["conditions"] if c["type"] == kind)
    return found["status"], found["reason"], found.get("message", "")


async def restart_with(stack: Any, **env: str) -> None:
    await stack.stop_operator()
    stack.operator_env.update(env)
    await stack.start_operator()


async def test_a_403_names_the_role_fails_bounded_and_reruns_once_granted(stack: Any, bucket: Any) -> None:
    """Before: a 403 on create left the resource Pending forever, the cause only in `describe`."""
    await restart_with(stack, BIJ_PERMISSION_TRIES="2")
    await control(
        stack,
        "POST",
        "/emulator/v1/faults",
        {"api": [{"method": "create", "code": 403, "message": DENIED, "count": 2}]},
    )
    src = write_jsonl(bucket, "in.jsonl", requests_rows(3))
    await call(stack.kube, "POST", bij_path(), job_manifest("denied", src, f"gs://{bucket.name}/denied/"))
    failed = await phase_of(stack, "denied", within=60)
    assert failed["status"]["phase"] == "Failed"
    state, reason, message = condition(failed, "Failed")
    assert (state, reason) == ("True", "PermissionDenied")
    assert "grant roles/aiplatform.user on the project demo-project" in message, message
    assert "aiplatform.batchPredictionJobs.create" in message and "batchinference.dev/rerun" in message
    await has_event(stack, "denied", ("Warning", "PermissionDenied"))
    code, out, err = await kubectl(stack, "get", "bij", "denied", "-o", "wide")
    assert code == 0, err
    header, row = out.splitlines()[:2]
    assert "REASON" in header and "MESSAGE" in header
    assert "PermissionDenied" in row and "roles/aiplatform.user" in row
    assert stack.engine.stats["create", 200] == 0 and stack.engine.stats["create", 403] == 2

    # The role is granted (the fault plan is spent): a new value of the annotation runs the job from its input.
    code, _, err = await kubectl(stack, "annotate", "bij", "denied", "batchinference.dev/rerun=granted")
    assert code == 0, err
    done = await phase_of(stack, "denied", {"Succeeded"}, within=60)
    assert done["status"]["rerun"]["value"] == "granted" and done["status"]["rerun"]["source"] == "Input"
    assert stack.engine.stats["create", 200] == 1
    await has_event(stack, "denied", ("Normal", "Rerun"))


async def test_a_partial_job_is_rerun_from_its_last_output_once_per_value(stack: Any, gcs: Any, bucket: Any) -> None:
    """Before: a finished job could only be re-run by deleting and re-creating it (impossible from Git)."""
    rows = requests_rows(6)
    rows[2]["request"]["contents"][0]["parts"][0]["text"] = "quota topic"
    await control(stack, "POST", "/emulator/v1/faults", {"rows": [{"code": 400, "match": "quota topic"}]})
    src = write_jsonl(bucket, "in.jsonl", rows)
    manifest = job_manifest("partial", src, f"gs://{bucket.name}/partial/", resume={"maxAttempts": 1})
    await call(stack.kube, "POST", bij_path(), manifest)
    first = await phase_of(stack, "partial", within=60)
    assert first["status"]["phase"] == "PartiallySucceeded"
    await control(stack, "DELETE", "/emulator/v1/faults")

    code, _, err = await kubectl(stack, "annotate", "bij", "partial", "batchinference.dev/rerun=1")
    assert code == 0, err
    await eventually(lambda: len(stored(stack, "partial")["status"]["attempts"]) == 2, timeout=30, message="rerun")
    done = await phase_of(stack, "partial", {"Succeeded"}, within=60)
    status = done["status"]
    assert status["rerun"]["value"] == "1" and status["rerun"]["source"] == "Output"
    assert status["attempts"][1]["input"] == [status["attempts"][0]["outputLocation"] + "/predictions.jsonl"]
    assert status["attempts"][1]["rows"]["succeeded"] == 6
    jobs = jobs_of(await control(stack, "GET", "/emulator/v1/jobs"), done["metadata"]["uid"])
    assert sorted(job["labels"]["bij-attempt"] for job in jobs) == ["1", "2"], "one paid job per attempt"
    assert ("Normal", "Rerunning") in events_for(stack, "partial")


async def test_files_named_twice_and_a_missing_output_bucket_fail_before_any_job(stack: Any, bucket: Any) -> None:
    """Before: a wildcard that also matched a listed file ran (and billed) it twice; a missing output bucket
    failed only after Vertex's queue (code 9). Also checked while suspended: the problem shows at once."""
    write_jsonl(bucket, "in/a.jsonl", requests_rows(2))
    write_jsonl(bucket, "in/b.jsonl", requests_rows(2, start=2))
    twice = job_manifest("twice", f"gs://{bucket.name}/in/*.jsonl", f"gs://{bucket.name}/out/")
    twice["spec"]["input"]["gcs"]["uris"].append(f"gs://{bucket.name}/in/a.jsonl")
    await call(stack.kube, "POST", bij_path(), twice)
    nobucket = job_manifest("nobucket", f"gs://{bucket.name}/in/a.jsonl", "gs://no-such-bucket-19/out/", suspend=True)
    await call(stack.kube, "POST", bij_path(), nobucket)
    first = await phase_of(stack, "twice")
    assert condition(first, "Failed")[:2] == ("True", "InvalidInput")
    assert (
        f"gs://{bucket.name}/in/a.jsonl is named by gs://{bucket.name}/in/*.jsonl and again by"
        in first["status"]["message"]
    )
    second = await phase_of(stack, "nobucket")
    assert condition(second, "Failed")[:2] == ("True", "OutputNotFound")
    assert "the bucket no-such-bucket-19 of gs://no-such-bucket-19/out/ does not exist" in second["status"]["message"]
    assert stack.engine.stats["create", 200] == 0


async def test_ttl_deletes_the_finished_resource_and_a_recreate_adopts_its_job(stack: Any, bucket: Any) -> None:
    """Before: ttlSecondsAfterFinished was accepted and did nothing."""
    src = write_jsonl(bucket, "in.jsonl", requests_rows(3))
    manifest = job_manifest("short-lived", src, f"gs://{bucket.name}/out/", ttlSecondsAfterFinished=1)
    await call(stack.kube, "POST", bij_path(), manifest)
    first = await phase_of(stack, "short-lived")
    assert first["status"]["phase"] == "Succeeded"
    await eventually(lambda: stored(stack, "short-lived") is None, timeout=30, message="deleted after its TTL")
    assert ("Normal", "TTLExpired") in events_for(stack, "short-lived")

    # GitOps puts it back: the same namespace, name and spec adopt the finished job; nothing is paid again.
    await call(stack.kube, "POST", bij_path(), manifest)
    second = await phase_of(stack, "short-lived")
    assert second["metadata"]["uid"] != first["metadata"]["uid"]
    assert second["status"]["job"]["name"] == first["status"]["job"]["name"]
    assert stack.engine.stats["create", 200] == 1, "one paid job for both resources"
    adopted = ("Normal", "Adopted")
    await eventually(lambda: adopted in events_for(stack, "short-lived"), timeout=30, message="Adopted posted")


async def test_events_come_from_the_operator(stack: Any, bucket: Any) -> None:
    """Before: `kubectl describe` showed `From: kopf`."""
    src = write_jsonl(bucket, "in.jsonl", requests_rows(1))
    await call(stack.kube, "POST", bij_path(), job_manifest("one", src, f"gs://{bucket.name}/one/"))
    await phase_of(stack, "one")
    await has_event(stack, "one", ("Normal", "Succeeded"))
    events = [e for e in stack.kube.list_objects("events", "default") if e["involvedObject"]["name"] == "one"]
    assert {e["source"]["component"] for e in events} == {"batch-inference-operator"}
    assert {e["reportingComponent"] for e in events} == {"batch-inference-operator"}
    passed = next(e for e in events if e["reason"] == "PreflightPassed")
    assert passed["message"].startswith("input checked: 1 request in 1 file,"), passed["message"]
