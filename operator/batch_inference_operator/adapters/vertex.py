"""The Vertex AI adapter: google-genai's `client.aio.batches`, behind one client factory.

In production the client authenticates with Application Default Credentials (Workload Identity on
GKE). With `BIJ_VERTEX_ENDPOINT` set it talks to that base URL with a static token instead (the local
emulator). Either way the SDK's own retries are off: the controller owns retry policy, and a
recoverable error comes back as `AdapterError(retryable=True)`. Values only: which job to adopt or
create is the controller's protocol (controller/executor.py), not this module's.
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Iterable
from typing import Any

import aiohttp
import pydantic
from google.genai import errors as genai_errors
from google.genai import types

from .. import metrics
from ..api import CompletionStats, JobError
from ..core.identity import managed_labels
from ..core.uris import BigQueryUri, is_bigquery
from ..core.vertex_jobs import UNSPECIFIED, JobRequest, ObservedJob
from ..settings import Settings
from .errors import AdapterError

UNREACHABLE = "UnreachableEndpoint"
# 401 and 403 may heal (token refresh, an IAM grant); 408, 429 and 5xx are transient by definition.
RETRYABLE_CODES = frozenset({401, 403, 408, 429, 500, 502, 503, 504})
# The largest page Vertex allows is not documented: the discovery document (aiplatform v1, revision
# 20261106, batchPredictionJobs.list) says only "The standard list page size", unlike the methods whose
# maximum it states. By AIP-158 a server coerces a page size above its maximum down to that maximum
# rather than refusing it, so ask for 1000 (the emulator's cap): a round costs ceil(N / page) calls for
# whatever page Vertex gives, 10x fewer than the 100 asked for before whenever Vertex gives 1000.
LIST_PAGE_SIZE = 1000
# The states a job can still leave (every state but the terminal ones), for lists of live jobs. The
# filter syntax (`state` with `=`, `AND`/`OR`, parentheses) is the list reference's.
LIVE_STATES = ("JOB_STATE_QUEUED", "JOB_STATE_PENDING", "JOB_STATE_RUNNING", "JOB_STATE_UPDATING",
               "JOB_STATE_PAUSED", "JOB_STATE_CANCELLING")  # fmt: skip


def _wrap(error: BaseException, action: str) -> AdapterError:
    """A transport or API error as an AdapterError whose message says what was being done."""
    if isinstance(error, genai_errors.APIError):
        code = int(error.code) if error.code else None
        text = f"{action}: Vertex AI answered {code} {error.status or ''}: {error.message or error}".strip()
        return AdapterError(text, code=code, status=error.status, retryable=code in RETRYABLE_CODES or code is None)
    if isinstance(error, TimeoutError | asyncio.TimeoutError):
        return AdapterError(f"{action}: Vertex AI did not answer in time", retryable=True)
    if isinstance(error, aiohttp.ClientConnectorError):
        # No connection, so nothing was sent: a name that does not resolve, a refused port. Retried a
        # bounded number of times (a mistyped location never resolves).
        return AdapterError(
            f"{action}: could not connect to Vertex AI's endpoint: {error}", retryable=True, reason=UNREACHABLE
        )
    return AdapterError(f"{action}: could not reach Vertex AI: {error!r}", retryable=True)


_TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    genai_errors.APIError,
    aiohttp.ClientError,
    TimeoutError,
    asyncio.TimeoutError,
    OSError,
)
try:  # the sync transport of google-genai; the async one is aiohttp
    import httpx2

    _TRANSPORT_ERRORS += (httpx2.HTTPError,)
except ImportError:  # pragma: no cover - depends on the SDK's transport
    pass


def observe(job: types.BatchJob) -> ObservedJob:
    """A google-genai BatchJob as plain values for the reconciler."""
    state = job.state.value if isinstance(job.state, types.JobState) else str(job.state or UNSPECIFIED)
    stats = None
    if job.completion_stats is not None:
        stats = CompletionStats(
            successful=job.completion_stats.successful_count or 0,
            failed=job.completion_stats.failed_count or 0,
            incomplete=max(job.completion_stats.incomplete_count or 0, 0),
        )
    error = None
    if job.error is not None and (job.error.code or job.error.message):
        error = JobError(code=job.error.code or 0, message=job.error.message or "")
    output = None
    if job.output_info is not None:
        if job.output_info.gcs_output_directory:
            output = job.output_info.gcs_output_directory
        elif job.output_info.bigquery_output_table and job.dest and job.dest.bigquery_uri:
            # The table's bare name (predictions_<timestamp>, or the named table), in the destination's dataset.
            table = job.output_info.bigquery_output_table.removeprefix("bq://")
            dataset = BigQueryUri.parse(job.dest.bigquery_uri).dataset_id
            output = f"bq://{table}" if "." in table else f"bq://{dataset}.{table}"
    return ObservedJob(
        name=job.name or "",
        state=state,
        create_time=job.create_time,
        start_time=job.start_time,
        end_time=job.end_time,
        error=error,
        stats=stats,
        output_location=output,
    )


def _label_filter(labels: dict[str, str]) -> str:
    return " AND ".join(f'labels.{key}="{value}"' for key, value in sorted(labels.items()))


class Vertex:
    """One google-genai client per (project, location), created on first use."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._clients: dict[tuple[str, str], Any] = {}

    def client(self, project: str, location: str) -> Any:
        key = (project, location)
        if key not in self._clients:
            from google import genai

            options = types.HttpOptions(
                api_version=self.settings.vertex_api_version,
                timeout=int(self.settings.vertex_timeout * 1000),
                retry_options=types.HttpRetryOptions(attempts=1),
            )
            credentials = None
            if self.settings.vertex_endpoint:
                from google.oauth2.credentials import Credentials

                options.base_url = self.settings.vertex_endpoint
                credentials = Credentials(token=self.settings.vertex_token or "local-stack")
            self._clients[key] = genai.Client(
                vertexai=True, project=project, location=location, credentials=credentials, http_options=options
            )
        return self._clients[key]

    async def _call(self, action: str, coroutine: Any) -> Any:
        method = action.split(" ", 1)[0]
        try:
            result = await asyncio.wait_for(coroutine, self.settings.vertex_timeout)
        except _TRANSPORT_ERRORS as error:
            wrapped = _wrap(error, action)
            metrics.VERTEX_CALLS.labels(method, str(wrapped.code or 0)).inc()
            raise wrapped from error
        except pydantic.ValidationError as error:  # an answer the SDK's types cannot hold: not our crash
            metrics.VERTEX_CALLS.labels(method, "200").inc()
            raise AdapterError(
                f"{action}: Vertex AI answered with something google-genai cannot read: {error.errors()[:1]}",
                retryable=True,
            ) from error
        metrics.VERTEX_CALLS.labels(method, "200").inc()
        return result

    async def get(self, project: str, location: str, name: str) -> ObservedJob:
        job = await self._call(f"get {name}", self.client(project, location).aio.batches.get(name=name))
        return observe(job)

    async def find_by_labels(
        self, project: str, location: str, labels: dict[str, str], states: Iterable[str] = ()
    ) -> list[ObservedJob]:
        """Jobs carrying all these labels (optionally only in these states), in Vertex's order (undocumented)."""
        text = _label_filter(labels)
        wanted = sorted(states)
        if wanted:
            text += " AND (" + " OR ".join(f'state="{state}"' for state in wanted) + ")"
        return await self.list(project, location, text)

    async def list(self, project: str, location: str, filter_text: str) -> list[ObservedJob]:
        batches = self.client(project, location).aio.batches
        config = {"filter": filter_text, "page_size": LIST_PAGE_SIZE}
        pager = await self._call(f"list jobs in {project}/{location}", batches.list(config=config))
        found = [observe(job) for job in pager.page]
        while pager.config.get("page_token"):
            await self._call(f"list jobs in {project}/{location}", pager.next_page())
            found += [observe(job) for job in pager.page]
        return found

    async def list_managed(self, project: str, location: str, since: datetime.datetime | None) -> list[ObservedJob]:
        """This operator's live jobs in one project/location, created at or after `since`: one poll round.
        A job that finished is not listed (the poller reads it once by name)."""
        text = _label_filter(managed_labels())
        text += " AND (" + " OR ".join(f'state="{state}"' for state in LIVE_STATES) + ")"
        if since is not None:
            stamp = since.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            text += f' AND create_time>="{stamp}"'  # the discovery document's name: createTime is undocumented
        return await self.list(project, location, text)

    async def create(self, request: JobRequest, attempt: int) -> ObservedJob:
        uris = list(request.input_uris)
        source: Any = uris[0] if is_bigquery(uris[0]) else types.BatchJobSource(format="jsonl", gcs_uri=uris)
        config = types.CreateBatchJobConfig(
            dest=request.output_uri,
            display_name=request.display_name,
            http_options=types.HttpOptions(extra_body={"labels": request.labels}),
        )
        batches = self.client(request.project, request.location).aio.batches
        job = await self._call(
            f"create the Vertex job for attempt {attempt}",
            batches.create(model=request.model, src=source, config=config),
        )
        return observe(job)

    async def cancel(self, project: str, location: str, name: str) -> None:
        await self._call(f"cancel {name}", self.client(project, location).aio.batches.cancel(name=name))
