"""A permission error (403) met while acting: the grant that fixes it, on the resource; bounded for a submit."""

from __future__ import annotations

from ..adapters.errors import AdapterError
from ..api import BatchInferenceJobStatus
from ..core.actions import Decision, RunPreflight, ScanOutput, SubmitJob
from ..core.identity import Resource
from ..core.permissions import permission_advice
from ..core.record import record_permission_denied
from .runtime import Runtime


def permission_denied(
    runtime: Runtime,
    error: AdapterError,
    status: BatchInferenceJobStatus,
    resource: Resource,
    action: object,
    delay: float,
) -> Decision:
    """A 403: say which role to grant; a submit or a preflight gives up after `permission_tries` (nothing was
    paid; the re-run annotation starts it again once granted), anything else keeps retrying."""
    needed = "storage.objects.get" if isinstance(action, RunPreflight | ScanOutput) else None
    advice = permission_advice(error.message, status.project or "", needed or "aiplatform.batchPredictionJobs.create")
    gives_up = isinstance(action, SubmitJob | RunPreflight)
    tries = (runtime.backoff[resource.uid].failures, runtime.settings.permission_tries if gives_up else None)
    return record_permission_denied(status, error.message, advice, delay, tries, runtime.clock(), resource.generation)
