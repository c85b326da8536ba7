"""The output bucket's location, files named twice, permission advice, counts in messages and the TTL's
deadline: the pure rules of issue 19, each with a case that failed (or did not exist) before."""

from __future__ import annotations

import datetime

import pytest

from batch_inference_operator import api
from batch_inference_operator.core.expiry import expires_at
from batch_inference_operator.core.permissions import denied_permission, permission_advice
from batch_inference_operator.core.preflight_gcs import bucket_region_problem
from batch_inference_operator.core.wording import article, plural


@pytest.mark.parametrize(
    ("bucket", "job", "fits"),
    [
        ("US-CENTRAL1", "us-central1", True),
        ("US", "us-central1", True),
        ("NAM4", "us-east1", True),
        ("EU", "europe-west4", True),
        ("US", "us", True),
        ("us-east1", "us", True),
        ("EUROPE-WEST4", "us-central1", False),
        ("EU", "us-central1", False),
        ("NAM4", "europe-west4", False),
        ("ASIA1", "us", False),
        ("US-CENTRAL1", "global", True),  # global: the region is Vertex's choice, nothing is known to clash
        ("SOMEWHERE-NEW", "us-central1", True),  # a code this version does not know is not refused
    ],
)
def test_the_output_bucket_must_be_where_the_job_runs(bucket: str, job: str, fits: bool) -> None:
    problem = bucket_region_problem("gs://out/prefix/", bucket, job)
    assert (problem is None) == fits, problem
    if problem:
        assert f"is in {bucket.upper()}, but the job runs in {job}" in problem and "spec.location" in problem


def test_a_file_named_twice_is_refused_by_the_spec_with_the_duplicate_named() -> None:
    spec = {
        "model": "gemini-2.5-flash",
        "input": {"gcs": {"uris": ["gs://in-bucket/a.jsonl", "gs://in-bucket/b.jsonl", "gs://in-bucket/a.jsonl"]}},
        "output": {"gcs": {"uriPrefix": "gs://out-bucket/x/"}},
    }
    with pytest.raises(ValueError, match=r'spec.input.gcs.uris\[2\]: Duplicate value: "gs://in-bucket/a.jsonl"'):
        api.parse_spec(spec)
    schema = api.BatchInferenceJobSpec.model_json_schema(by_alias=True)["$defs"]["GcsInput"]["properties"]["uris"]
    assert schema["x-kubernetes-list-type"] == "set", "the apiserver refuses duplicates too"


def test_a_403_names_the_role_that_grants_the_permission_it_names() -> None:
    vertex = (
        "Permission 'aiplatform.batchPredictionJobs.create' denied on resource '//aiplatform...' (or it may not exist)."
    )
    assert denied_permission(vertex) == "aiplatform.batchPredictionJobs.create"
    assert "grant roles/aiplatform.user on the project p1" in permission_advice(vertex, "p1")
    storage = (
        "sa@p.iam.gserviceaccount.com does not have storage.objects.get access to the Google Cloud Storage object."
    )
    assert "grant roles/storage.objectViewer on the bucket" in permission_advice(storage, "p1")
    assert "roles/storage.legacyBucketReader" in permission_advice("no storage.buckets.get access", "p1")
    assert "lacks aiplatform.batchPredictionJobs.create" in permission_advice("403 Forbidden", "p1")


def test_counts_and_articles_read_as_english() -> None:
    assert [plural(n, "request") for n in (0, 1, 2)] == ["0 requests", "1 request", "2 requests"]
    assert plural(1, "try") == "1 try" and plural(3, "try") == "3 tries"
    assert [article(w) for w in ("array", "object", "string", "integer")] == [
        "an array",
        "an object",
        "a string",
        "an integer",
    ]


def test_the_ttl_counts_from_the_later_of_completion_and_creation() -> None:
    t0 = datetime.datetime(2026, 11, 24, 10, tzinfo=datetime.UTC)
    hour = datetime.timedelta(hours=1)
    assert expires_at(60, "Succeeded", t0, t0 - hour) == t0 + datetime.timedelta(seconds=60)
    # Re-created by GitOps a day later, adopting a job that finished long ago: a full TTL again, not at once.
    assert expires_at(60, "Succeeded", t0, t0 + 24 * hour) == t0 + 24 * hour + datetime.timedelta(seconds=60)
    assert expires_at(60, "Running", t0, t0) is None and expires_at(None, "Failed", t0, t0) is None
