"""Preflight of Cloud Storage beyond the lines of the input: the output bucket's location, and input files
named twice. A missing output bucket fails a job only after it waited in Vertex's queue (code 9), and a
file named twice (the same URI, or a wildcard that also matches a listed file) is run and billed twice.
"""

from __future__ import annotations

# Cloud Storage's multi-regions, and the prefix of the regions each holds.
MULTI_REGIONS = {"US": "us-", "EU": "europe-", "ASIA": "asia-"}
# The predefined dual-regions and their two regions (a configurable dual-region reports its multi-region).
DUAL_REGIONS = {
    "ASIA1": ("asia-northeast1", "asia-northeast2"),
    "EUR4": ("europe-north1", "europe-west4"),
    "EUR5": ("europe-west1", "europe-west2"),
    "EUR7": ("europe-west3", "europe-west10"),
    "EUR8": ("europe-west6", "europe-west8"),
    "NAM4": ("us-central1", "us-east1"),
}


def _regions_of(location: str) -> tuple[str, ...] | str | None:
    """The regions a location code covers: a tuple of regions, a region prefix (a multi-region), or None when
    this version does not know the code."""
    code = location.upper()
    if code in MULTI_REGIONS:
        return MULTI_REGIONS[code]
    if code in DUAL_REGIONS:
        return DUAL_REGIONS[code]
    if "-" in code and code[-1].isdigit():
        return (code.lower(),)
    return None


def bucket_region_problem(uri: str, bucket_location: str, job_location: str) -> str | None:
    """Vertex reads and writes Cloud Storage in the job's region or a multi-region that holds it: an output
    bucket in another region is refused before submitting. Only what is known to clash is refused: a job
    in `global`, or a location code this version does not know, passes."""
    job = job_location.lower()
    bucket = _regions_of(bucket_location)
    if job == "global" or bucket is None:
        return None
    job_prefix = MULTI_REGIONS.get(job.upper())
    if job_prefix is not None:  # a job in the us or eu multi-region: a bucket inside it fits
        inside = bucket == job_prefix or (isinstance(bucket, tuple) and all(r.startswith(job_prefix) for r in bucket))
        compatible = inside
    else:
        compatible = job.startswith(bucket) if isinstance(bucket, str) else job in bucket
    if compatible:
        return None
    return (
        f"the output bucket of {uri} is in {bucket_location.upper()}, but the job runs in {job_location}: Vertex "
        f"writes to a bucket in the job's region or in a multi-region holding it. Use a bucket in {job_location}, "
        "or set spec.location to the bucket's region (spec.preflight: Disabled skips this check)"
    )


def listed_twice(path: str, first: str, again: str) -> str:
    """A file that two input URIs name: Vertex would run and bill its requests twice."""
    how = f"by {first} and again by {again}" if first != again else f"twice by {first}"
    return (
        f"{path} is named {how}: Vertex would run and bill its requests twice; list each file once "
        "(narrow the wildcard, or drop the listed file)"
    )
