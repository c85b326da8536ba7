"""A permission error, told as the grant that fixes it: which role, to whom, on what.

Google's 403 names the permission it checked (`Permission 'aiplatform.batchPredictionJobs.create' denied
on resource ...`); the operator's service account gets that permission from one predefined role, which
the message names, so the fix is one `gcloud ... add-iam-policy-binding` away.
"""

from __future__ import annotations

import re

# HTTP 403 (PERMISSION_DENIED), and the google.rpc code a resource fails with for it.
FORBIDDEN = 403
PERMISSION_DENIED_CODE = 7

# The smallest predefined role holding each family of permissions the operator uses, and where to grant it.
_ROLES = (
    ("aiplatform.", "roles/aiplatform.user", "on the project {project}"),
    ("storage.buckets.", "roles/storage.legacyBucketReader", "on the bucket"),
    ("storage.objects.", "roles/storage.objectViewer", "on the bucket"),
    ("bigquery.jobs.", "roles/bigquery.jobUser", "on the project {project}"),
    ("bigquery.", "roles/bigquery.metadataViewer", "on the dataset"),
)
_PERMISSION = re.compile(r"\b((?:aiplatform|storage|bigquery)\.[a-zA-Z]+\.[a-zA-Z]+)\b")


def denied_permission(message: str) -> str | None:
    """The permission a 403's message names, if it names one."""
    found = _PERMISSION.search(message)
    return found.group(1) if found else None


def permission_advice(message: str, project: str, fallback: str = "aiplatform.batchPredictionJobs.create") -> str:
    """What to grant for this 403: `grant roles/aiplatform.user on the project p to the operator's service
    account (it lacks aiplatform.batchPredictionJobs.create)`. `fallback`: the permission the call needed,
    for a message that names none."""
    permission = denied_permission(message) or fallback
    role, where = next(
        ((role, where) for prefix, role, where in _ROLES if permission.startswith(prefix)),
        ("a role holding it", "where it applies"),
    )
    return (
        f"grant {role} {where.format(project=project)} to the operator's Kubernetes service account's Google "
        f"service account (Workload Identity): it lacks {permission}"
    )
