"""What the emulated service offers: the Gemini models that run batch jobs, and the locations serving them.

From Google's "Generative AI on Vertex AI locations" and "batch prediction for Gemini" pages (the
project's reference notes). A publisher model's `modelVersionId` is the one Google's create sample
answers with ("1"); tuned models carry their own version after `@`.

A location outside `LOCATIONS` is refused as Vertex's front end refuses a location ID it does not
serve: 400 INVALID_ARGUMENT, `List of found errors: 1.Field: parent; Message: The provided location
ID is not valid.` (A client on Google's hosts would not get that far for a made-up region: the
regional host `<location>-aiplatform.googleapis.com` does not exist. One base URL cannot show that.)
"""

from __future__ import annotations

# google.cloud.aiplatform.v1.JobState, in enum order (its numbers are the indices)
JOB_STATES = (
    "JOB_STATE_UNSPECIFIED",
    "JOB_STATE_QUEUED",
    "JOB_STATE_PENDING",
    "JOB_STATE_RUNNING",
    "JOB_STATE_SUCCEEDED",
    "JOB_STATE_FAILED",
    "JOB_STATE_CANCELLING",
    "JOB_STATE_CANCELLED",
    "JOB_STATE_PAUSED",
    "JOB_STATE_EXPIRED",
    "JOB_STATE_UPDATING",
    "JOB_STATE_PARTIALLY_SUCCEEDED",
)

MODELS: dict[str, str] = {  # model id -> modelVersionId
    "gemini-2.0-flash": "1",
    "gemini-2.0-flash-001": "1",
    "gemini-2.0-flash-lite": "1",
    "gemini-2.0-flash-lite-001": "1",
    "gemini-2.5-flash": "1",
    "gemini-2.5-flash-lite": "1",
    "gemini-2.5-pro": "1",
    "gemini-3-flash-preview": "1",
    "gemini-3-pro-preview": "1",
}
DEFAULT_VERSION_ID = "1"

# Regions serving Gemini batch prediction, plus the global endpoint and the multi-regions.
LOCATIONS = frozenset(
    {
        "global", "us", "eu",
        "us-central1", "us-east1", "us-east4", "us-east5", "us-south1", "us-west1", "us-west4",
        "northamerica-northeast1", "southamerica-east1",
        "europe-west1", "europe-west2", "europe-west3", "europe-west4", "europe-west6", "europe-west8",
        "europe-west9", "europe-north1", "europe-central2", "europe-southwest1",
        "asia-east1", "asia-east2", "asia-northeast1", "asia-northeast3", "asia-south1", "asia-southeast1",
        "australia-southeast1", "me-west1",
    }
)  # fmt: skip


def version_id(model_name: str, model_id: str) -> str:
    """The `modelVersionId` a job on this model reports."""
    if "@" in model_name:
        return model_name.rsplit("@", 1)[1]
    return MODELS.get(model_id, DEFAULT_VERSION_ID)
