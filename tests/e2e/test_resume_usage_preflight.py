"""Resume, usage and preflight end to end, against the Vertex emulator's fault plans."""

from __future__ import annotations

from typing import Any

from test_operator import has_event, jobs_of, phase_of, stored

from conftest import (
    USAGE_KEYS,
    bij_path,
    call,
    control,
    eventually,
    job_manifest,
    read_jsonl,
    requests_rows,
    usage_totals,
    write_jsonl,
)

FAST = {"backoffSeconds": 0, "maxAttempts": 3}


def emulator_usage(stack: Any, gcs: Any, job: dict[str, Any]) -> dict[str, int]:
    """Token totals straight from the emulator's final output file."""
    return usage_totals(read_jsonl(gcs, job["outputDirectory"] + "/predictions.jsonl"))


async def test_a_job_failing_after_60_percent_is_resumed_to_success(stack: Any, gcs: Any, bucket: Any) -> None:
    src = write_jsonl(bucket, "in.jsonl", requests_rows(40))
    await control(stack, "POST", "/emulator/v1/faults", {"jobs": [{"outcome": "FAILED", "afterFraction": 0.6}]})
    await call(stack.kube, "POST", bij_path(), job_manifest("resumed", src, f"gs://{bucket.name}/out/", resume=FAST))
    done = (await phase_of(stack, "resumed", within=60))["status"]
    assert done["phase"] == "Succeeded", done["message"]
    assert [a["state"] for a in done["attempts"]] == ["JOB_STATE_FAILED", "JOB_STATE_SUCCEEDED"]
    first, second = done["attempts"]
    assert second["input"] == [first["outputLocation"] + "/predictions.jsonl"]
    assert first["rows"] == {
        "succeeded": 24,
        "failedTransient": 0,
        "failedPermanent": 0,
        "incomplete": 16,
        "unreadable": 0,
    }
    rows = read_jsonl(gcs, done["outputLocation"] + "/predictions.jsonl")
    assert sorted(r["id"] for r in rows) == sorted(f"r{i}" for i in range(40)), "every row exactly once"
    assert all(r["response"] and not r["status"] for r in rows)
    jobs = jobs_of(await control(stack, "GET", "/emulator/v1/jobs"), stored(stack, "resumed")["metadata"]["uid"])
    assert [j["rows"]["processed"] for j in jobs] == [24, 16], "the resumed job ran only the unfinished rows"
    await has_event(stack, "resumed", ("Normal", "Resuming"))


async def test_transient_rows_are_retried_permanent_ones_are_not(stack: Any, gcs: Any, bucket: Any) -> None:
    rows = requests_rows(30)
    rows[3]["request"]["contents"][0]["parts"][0]["text"] = "permanently bad"
    rows[7]["request"]["contents"][0]["parts"][0]["text"] = "briefly throttled"
    await control(
        stack,
        "POST",
        "/emulator/v1/faults",
        {"rows": [{"code": 400, "match": "permanently bad"}, {"code": 429, "match": "briefly throttled", "times": 1}]},
    )
    src = write_jsonl(bucket, "in.jsonl", rows)
    await call(stack.kube, "POST", bij_path(), job_manifest("rows", src, f"gs://{bucket.name}/out/", resume=FAST))
    done = (await phase_of(stack, "rows", within=60))["status"]
    assert done["phase"] == "PartiallySucceeded", done["message"]
    assert len(done["attempts"]) == 2, "one resume for the transient row; the 400 is not worth another"
    assert done["attempts"][1]["rows"] == {
        "succeeded": 29,
        "failedTransient": 0,
        "failedPermanent": 1,
        "incomplete": 0,
        "unreadable": 0,
    }
    assert done["usage"]["failed"] == 1 and done["usage"]["succeeded"] == 29
    complete = next(c for c in done["conditions"] if c["type"] == "Complete")
    assert (complete["status"], complete["reason"]) == ("True", "PartiallySucceeded")


async def test_failures_left_after_max_attempts_end_partially_succeeded(stack: Any, bucket: Any) -> None:
    await control(stack, "POST", "/emulator/v1/faults", {"rows": [{"code": 500, "rate": 0.5, "seed": 1}]})
    src = write_jsonl(bucket, "in.jsonl", requests_rows(20))
    await call(
        stack.kube,
        "POST",
        bij_path(),
        job_manifest("stubborn", src, f"gs://{bucket.name}/out/", resume={"backoffSeconds": 0, "maxAttempts": 2}),
    )
    done = (await phase_of(stack, "stubborn", within=60))["status"]
    assert len(done["attempts"]) == 2 and done["phase"] == "PartiallySucceeded"
    assert done["attempts"][1]["rows"]["failedTransient"] > 0


async def test_an_expired_job_resubmits_the_original_input(stack: Any, bucket: Any) -> None:
    await control(stack, "POST", "/emulator/v1/faults", {"jobs": [{"outcome": "EXPIRED"}]})
    src = write_jsonl(bucket, "in.jsonl", requests_rows(5))
    await call(stack.kube, "POST", bij_path(), job_manifest("expired", src, f"gs://{bucket.name}/out/", resume=FAST))
    done = (await phase_of(stack, "expired", within=60))["status"]
    assert [a["state"] for a in done["attempts"]] == ["JOB_STATE_EXPIRED", "JOB_STATE_SUCCEEDED"]
    assert done["attempts"][1]["input"] == [src] and done["phase"] == "Succeeded"


async def test_rejected_input_is_not_resumed(stack: Any, bucket: Any) -> None:
    rows = requests_rows(5)
    rows[2]["request"]["tools"] = [{"googleSearch": {}}]
    src = write_jsonl(bucket, "in.jsonl", rows)
    await call(
        stack.kube,
        "POST",
        bij_path(),
        job_manifest("code3", src, f"gs://{bucket.name}/out/", resume=FAST, preflight="Disabled"),
    )
    done = (await phase_of(stack, "code3", within=60))["status"]
    assert done["phase"] == "Failed" and len(done["attempts"]) == 1
    assert done["attempts"][0]["error"]["code"] == 3 and "line 3" in done["message"]
    assert next(c for c in done["conditions"] if c["type"] == "Failed")["reason"] == "InvalidInput"


async def test_preflight_rejects_bad_input_without_a_vertex_job(stack: Any, bucket: Any) -> None:
    rows = requests_rows(6)
    rows[4]["request"]["generationConfig"] = {"responseSchema": {"$defs": {"x": {"type": "string"}}}}
    src = write_jsonl(bucket, "in.jsonl", rows)
    await call(stack.kube, "POST", bij_path(), job_manifest("preflighted", src, f"gs://{bucket.name}/out/"))
    done = (await phase_of(stack, "preflighted"))["status"]
    assert done["phase"] == "Failed" and "in.jsonl line 5" in done["message"] and "column-name" in done["message"]
    assert next(c for c in done["conditions"] if c["type"] == "Failed")["reason"] == "InvalidInput"
    assert stack.engine.stats["create", 200] == 0, "no Vertex job was created"
    await has_event(stack, "preflighted", ("Warning", "InvalidInput"))


async def test_usage_equals_the_emulators_totals_with_and_without_caching(stack: Any, gcs: Any, bucket: Any) -> None:
    shared = "You are a careful reviewer. " + "Follow the house style strictly. " * 330  # ~2,800 tokens
    cached_src = write_jsonl(bucket, "cached.jsonl", requests_rows(12, prefix=shared))
    plain_src = write_jsonl(bucket, "plain.jsonl", requests_rows(12))
    for name, src in (("cached", cached_src), ("plain", plain_src)):
        await call(stack.kube, "POST", bij_path(), job_manifest(name, src, f"gs://{bucket.name}/{name}/"))
    jobs = {}
    for name in ("cached", "plain"):
        done = await phase_of(stack, name, within=60)
        [job] = jobs_of(await control(stack, "GET", "/emulator/v1/jobs"), done["metadata"]["uid"])
        jobs[name] = (done["status"], emulator_usage(stack, gcs, job))
    for name, (status, truth) in jobs.items():
        usage = status["usage"]
        assert {key: usage[key] for key in USAGE_KEYS} == truth, name
        assert usage["requests"] == 12 and usage["succeeded"] == 12 and usage["estimatedCostUSD"]
    assert jobs["cached"][0]["usage"]["cacheHitRatio"] > 0.5
    assert jobs["plain"][0]["usage"]["cacheHitRatio"] == 0
    assert jobs["cached"][0]["preflight"]["sharedPrefixRequests"] == 11


async def test_ineffective_caching_is_reported(stack: Any, bucket: Any) -> None:
    stack.engine.apply_config({"cacheThresholdTokens": 100000})  # the service caches nothing this time
    shared = "Context paragraph. " * 600
    src = write_jsonl(bucket, "in.jsonl", requests_rows(10, prefix=shared))
    await call(stack.kube, "POST", bij_path(), job_manifest("nocache", src, f"gs://{bucket.name}/out/"))
    done = await phase_of(stack, "nocache", within=60)
    assert done["status"]["usage"]["cacheHitRatio"] == 0
    await has_event(stack, "nocache", ("Warning", "ImplicitCachingIneffective"))


async def test_suspend_cancels_and_resume_finishes_the_unfinished_rows(stack: Any, gcs: Any, bucket: Any) -> None:
    stack.engine.apply_config({"rowsPerSecond": 20})
    src = write_jsonl(bucket, "in.jsonl", requests_rows(60))
    await call(stack.kube, "POST", bij_path(), job_manifest("pausable", src, f"gs://{bucket.name}/out/"))
    await eventually(
        lambda: (
            (stored(stack, "pausable") or {}).get("status", {}).get("completionStats", {}).get("successful", 0) > 0
            or any(j.counts and j.counts.processed > 5 for j in stack.engine.jobs.values())
        ),
        timeout=30,
    )
    await call(
        stack.kube,
        "PATCH",
        bij_path(name="pausable"),
        {"spec": {"suspend": True}},
        {"Content-Type": "application/merge-patch+json"},
    )
    held = await phase_of(stack, "pausable", {"Suspended"})
    await eventually(
        lambda: stored(stack, "pausable")["status"]["attempts"][0].get("state") == "JOB_STATE_CANCELLED", timeout=30
    )
    assert held["status"]["attempts"][0]["cancelRequested"] is True
    stack.engine.apply_config({"rowsPerSecond": 0})
    await call(
        stack.kube,
        "PATCH",
        bij_path(name="pausable"),
        {"spec": {"suspend": False}},
        {"Content-Type": "application/merge-patch+json"},
    )
    done = (await phase_of(stack, "pausable", within=60))["status"]
    assert done["phase"] == "Succeeded" and len(done["attempts"]) == 2
    rows = read_jsonl(gcs, done["outputLocation"] + "/predictions.jsonl")
    assert sorted(r["id"] for r in rows) == sorted(f"r{i}" for i in range(60))


async def test_killing_the_operator_during_a_resume_makes_no_second_job(stack: Any, bucket: Any) -> None:
    src = write_jsonl(bucket, "in.jsonl", requests_rows(10))
    await control(stack, "POST", "/emulator/v1/faults", {"jobs": [{"outcome": "FAILED", "afterFraction": 0.5}]})
    await call(
        stack.kube, "POST", bij_path(), job_manifest("crash-resume", src, f"gs://{bucket.name}/out/", resume=FAST)
    )
    uid = await eventually(lambda: (stored(stack, "crash-resume") or {}).get("metadata", {}).get("uid"))
    await eventually(
        lambda: len(jobs_of_now(stack, uid)) == 1 and jobs_of_now(stack, uid)[0].state == "JOB_STATE_FAILED", timeout=30
    )
    await control(stack, "POST", "/emulator/v1/faults", {"api": [{"method": "get", "hangSeconds": 60}]})
    await eventually(lambda: len(jobs_of_now(stack, uid)) == 2, timeout=30, message="attempt 2 created")
    await stack.stop_operator(kill=True)
    await control(stack, "DELETE", "/emulator/v1/faults")
    await stack.start_operator()
    done = (await phase_of(stack, "crash-resume", within=60))["status"]
    assert done["phase"] == "Succeeded" and len(done["attempts"]) == 2
    assert len(jobs_of_now(stack, uid)) == 2, "one Vertex job per attempt"


def jobs_of_now(stack: Any, uid: str) -> list[Any]:
    return [job for job in stack.engine.jobs.values() if job.labels.get("bij-uid") == uid]
