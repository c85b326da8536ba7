"""The whole local stack: Kubernetes API, fake-gcs-server, a BigQuery stand-in, the Vertex emulator
and the operator.

The Kubernetes API and the Vertex emulator run in this process's event loop; fake-gcs-server, the
BigQuery stand-in (bqemulator) and the operator are subprocesses, the operator started exactly as
its container starts it (`python -m batch_inference_operator run`), configured only through its
environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pathlib
import signal
import sys
from collections.abc import AsyncIterator

from vertex_batch_emulator.bigquery import BigQuery
from vertex_batch_emulator.engine import Config, Engine
from vertex_batch_emulator.rest import serve
from vertex_batch_emulator.storage import Storage

from .bigquery_server import BigQueryEmulator
from .control_plane.cluster import install_crd, kubeconfig_server, watchers
from .data import load_manifests, place_example
from .gcs_server import GcsEmulator
from .kube.launch import running_kube_api, server_url, write_kubeconfig
from .kube.server import KubeApiServer

DEMO_PROJECT = "demo-project"


class LocalStack:
    def __init__(
        self,
        directory: pathlib.Path,
        *,
        gcs: GcsEmulator | None = None,
        bigquery: BigQueryEmulator | None = None,
        vertex_config: Config | None = None,
        operator_env: dict[str, str] | None = None,
        cluster: pathlib.Path | None = None,
        operator_kubeconfig: pathlib.Path | None = None,
        start_operator: bool = True,
    ) -> None:
        """`cluster`: the kubeconfig of an existing cluster (a real control plane, kind, minikube) to use
        instead of the Kubernetes API stand-in; the CRD is installed there. `operator_kubeconfig`: the
        operator's own credentials on it (default: the same kubeconfig)."""
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.gcs = gcs
        self._own_gcs = gcs is None
        self.bigquery = bigquery
        self._own_bigquery = bigquery is None
        self.vertex_config = vertex_config or Config(queue_seconds=1.0, min_run_seconds=2.0)
        self.operator_env = {
            "BIJ_DEFAULT_PROJECT": DEMO_PROJECT,
            "BIJ_POLL_INTERVAL": "1",
            "BIJ_RECONCILE_INTERVAL": "0.5",
            "BIJ_RETRY_BASE": "1",
            "BIJ_VERTEX_TIMEOUT": "10",
            "BIJ_FINALIZER_TIMEOUT": "30",
            **(operator_env or {}),
        }
        self.cluster = cluster
        self.operator_kubeconfig = operator_kubeconfig or cluster
        self._start_operator = start_operator
        self.kube: KubeApiServer
        self.engine: Engine
        self.vertex_url = ""
        self.operator: asyncio.subprocess.Process | None = None
        self._stack = contextlib.AsyncExitStack()

    @property
    def kubeconfig(self) -> pathlib.Path:
        return self.cluster or self.directory / "kubeconfig"

    @property
    def endpoints(self) -> dict[str, str]:
        assert self.gcs is not None and self.bigquery is not None
        return {
            "kube": kubeconfig_server(self.cluster) if self.cluster else server_url(self.kube),
            "gcs": self.gcs.url,
            "bigquery": self.bigquery.url,
            "vertex": self.vertex_url,
        }

    async def __aenter__(self) -> LocalStack:
        try:
            starting = []
            if self.gcs is None:
                self.gcs = GcsEmulator(log_path=self.directory / "gcs.log")
                starting.append(asyncio.to_thread(self.gcs.start))
            if self.bigquery is None:
                self.bigquery = BigQueryEmulator(log_path=self.directory / "bigquery.log")
                starting.append(asyncio.to_thread(self.bigquery.start))
            await asyncio.gather(*starting)
            if self.cluster is None:
                self.kube = await self._stack.enter_async_context(running_kube_api())
                write_kubeconfig(self.kubeconfig, server_url(self.kube))
            else:
                await asyncio.to_thread(install_crd, self.cluster)
            self.engine = Engine(Storage(self.gcs.client()), self.vertex_config, BigQuery(self.bigquery.client()))
            self.vertex_url, _ = await self._stack.enter_async_context(serve(self.engine))
            (self.directory / "endpoints.json").write_text(json.dumps(self.endpoints, indent=2) + "\n")
            if self._start_operator:
                await self.start_operator()
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(self, *_: object) -> None:
        # The data commands find a running stack by this file; a stopped stack must not be found.
        (self.directory / "endpoints.json").unlink(missing_ok=True)
        await self.stop_operator()
        await self._stack.aclose()
        if self._own_gcs and self.gcs is not None:
            await asyncio.to_thread(self.gcs.stop)
        if self._own_bigquery and self.bigquery is not None:
            await asyncio.to_thread(self.bigquery.stop)

    def operator_environment(self) -> dict[str, str]:
        assert self.gcs is not None and self.bigquery is not None
        return {
            **os.environ,
            "BIGQUERY_EMULATOR_HOST": self.bigquery.url,
            "KUBECONFIG": str(self.operator_kubeconfig or self.kubeconfig),
            "BIJ_VERTEX_ENDPOINT": self.vertex_url,
            "STORAGE_EMULATOR_HOST": self.gcs.url,
            **self.operator_env,
        }

    async def start_operator(self, within: float = 30.0, *args: str) -> None:
        """Start the operator (with extra command-line `args`) and wait until it watches our resources."""
        watches_before = await self._operator_watches()
        log = (self.directory / "operator.log").open("ab")
        self.operator = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "batch_inference_operator",
            "run",
            *args,
            env=self.operator_environment(),
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
        )
        log.close()
        deadline = asyncio.get_running_loop().time() + within
        while await self._operator_watches() <= watches_before:
            if self.operator.returncode is not None:
                raise RuntimeError(
                    f"the operator exited with {self.operator.returncode}; see {self.directory / 'operator.log'}"
                )
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError(f"the operator did not start watching within {within}s")
            await asyncio.sleep(0.05)  # waiting on a subprocess, bounded by the deadline

    async def _operator_watches(self) -> int:
        if self.cluster is not None:
            return await asyncio.to_thread(watchers, self.cluster)
        return sum(
            1
            for r in self.kube.request_log
            if r.params.get("watch") in ("true", "1") and "batchinferencejobs" in r.url.path
        )

    async def stop_operator(self, kill: bool = False) -> None:
        if self.operator is None or self.operator.returncode is not None:
            return
        if kill:
            self.operator.kill()
        else:
            self.operator.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.operator.wait(), 20)
        except TimeoutError:
            self.operator.kill()
            await self.operator.wait()

    def operator_log(self) -> str:
        path = self.directory / "operator.log"
        return path.read_text(errors="replace") if path.exists() else ""


def banner(stack: LocalStack, examples: list[str] | None, cluster_persists: bool = False) -> str:
    """What `up` prints: where everything is, that it lives in memory, and what to type next."""
    config = stack.kubeconfig
    memory = (
        "Everything is in memory: buckets, tables, jobs and resources are gone when it stops."
        if not cluster_persists
        else "Buckets, tables and Vertex jobs are in memory and gone when it stops; the cluster keeps its resources."
    )
    lines = [
        f"local stack up. {memory}",
        *(f"  {name:<9} {url}" for name, url in stack.endpoints.items()),
        f"  kubeconfig {config}   (or: export KUBECONFIG={config})",
    ]
    data_dir = "" if stack.directory == pathlib.Path(".stack") else f" --dir {stack.directory}"
    if examples is None:
        lines.append("No buckets or data yet: start with --with-examples for the examples' data, or add your own:")
    else:
        lines.append("In place for the examples: " + ", ".join(examples))
        lines.append("Your own data (in another terminal):")
    lines += [
        f"  python -m local_stack mb gs://my-bucket{data_dir}",
        f"  python -m local_stack put requests.jsonl gs://my-bucket/in/{data_dir}",
        f"  python -m local_stack bq-load rows.jsonl bq://{DEMO_PROJECT}.my_dataset.my_table{data_dir}",
        f"  python -m local_stack ls gs://my-bucket/{data_dir}   (and cat gs://... or bq://... to read results)",
    ]
    if examples is not None:
        lines += [
            f"try: kubectl --kubeconfig {config} apply -f examples/gcs-job.yaml",
            f"     kubectl --kubeconfig {config} wait --for=condition=Finished bij/reviews-sentiment --timeout=10m",
            f"     kubectl --kubeconfig {config} get bij reviews-sentiment",
        ]
    lines.append("Ctrl-C stops it.")
    return "\n".join(lines)


async def run_until_interrupted(
    directory: pathlib.Path,
    examples: pathlib.Path | None = None,
    *,
    cluster: pathlib.Path | None = None,
    control_plane: bool = False,
) -> None:
    """`python -m local_stack up`: everything on loopback until Ctrl-C or SIGTERM; on an existing
    cluster (`cluster`, a kubeconfig) or on a real etcd and kube-apiserver started here."""
    async with contextlib.AsyncExitStack() as resources:
        if control_plane:
            cluster = await resources.enter_async_context(real_control_plane(directory / "control-plane"))
        stack = await resources.enter_async_context(LocalStack(directory, cluster=cluster))
        await serve_until_interrupted(stack, examples, cluster_persists=cluster is not None and not control_plane)


@contextlib.asynccontextmanager
async def real_control_plane(directory: pathlib.Path) -> AsyncIterator[pathlib.Path]:
    """A real etcd and kube-apiserver from the binaries `make control-plane` built; yields the admin kubeconfig."""
    from .control_plane.launch import ControlPlane, ControlPlaneUnavailable, cached_binaries

    binaries = cached_binaries()
    if binaries is None:
        raise ControlPlaneUnavailable("kube-apiserver and etcd are not built: run `make control-plane` first")
    plane = await asyncio.to_thread(ControlPlane(directory, binaries).start)
    try:
        yield plane.kubeconfig()
    finally:
        await asyncio.to_thread(plane.stop)


async def serve_until_interrupted(stack: LocalStack, examples: pathlib.Path | None, cluster_persists: bool) -> None:
    placed = None
    if examples is not None:
        placed = await asyncio.to_thread(place_examples, stack, examples)
    print(banner(stack, placed, cluster_persists), flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await stop.wait()


def place_examples(stack: LocalStack, folder: pathlib.Path) -> list[str]:
    """Every example's inputs, output bucket or dataset; returns the inputs placed."""
    assert stack.gcs is not None
    manifests = load_manifests(folder)
    if not manifests:
        raise FileNotFoundError(f"no BatchInferenceJob manifests in {folder} (run from the repository, or --examples)")
    placed = []
    for _, manifest in manifests:
        place_example(stack.gcs.client(), stack.endpoints["bigquery"], manifest, folder / "data")
        source = manifest["spec"]["input"]
        placed += source["gcs"]["uris"] if "gcs" in source else [source["bigquery"]["table"]]
    return placed
