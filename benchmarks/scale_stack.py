"""The processes of the scale benchmark, each its own: a Kubernetes API stand-in that counts the
requests it serves, fake-gcs-server, the Vertex emulator, and the operator (started as its container
starts it). The harness (bench.py) only drives them over HTTP and reads /proc for the operator.

    python benchmarks/scale_stack.py kube --port P --counts-port C --kubeconfig FILE

serves the stand-in on P and its request counts on C (`GET /counts`: {"METHOD plural[/status]": n}).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import pathlib
import re
import signal
import subprocess
import sys
from typing import TYPE_CHECKING, Any

from aiohttp import ClientSession, web

from local_stack.gcs_server import GcsEmulator
from local_stack.kube.launch import running_kube_api, server_url, write_kubeconfig
from local_stack.loopback import LoopbackServer, free_port

if TYPE_CHECKING:
    from real_kube import RealKube

_RESOURCE = re.compile(
    r"/apis?/(?:[^/]+/)?v1[^/]*/(?:namespaces/[^/]+/)?(?P<plural>[a-z]+)(?:/[^/]+(?P<sub>/status)?)?$"
)


def request_key(method: str, path: str, params: Any) -> str:
    """`PATCH batchinferencejobs/status`, `POST events`, `WATCH batchinferencejobs`..."""
    match = _RESOURCE.match(path)
    what = f"{match['plural']}{match['sub'] or ''}" if match else "other"
    verb = "WATCH" if params.get("watch") in ("true", "1") else method.upper()
    return f"{verb} {what}"


async def serve_counting_kube(port: int, counts_port: int, kubeconfig: pathlib.Path) -> None:
    async with running_kube_api(port=port) as server:
        write_kubeconfig(kubeconfig, server_url(server))

        async def counts(_: web.Request) -> web.Response:
            tally = collections.Counter(
                request_key(str(getattr(r.method, "value", r.method)), r.url.path, r.params) for r in server.request_log
            )
            return web.json_response(dict(tally))

        app = web.Application()
        app.router.add_get("/counts", counts)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", counts_port).start()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        await stop.wait()
        await runner.cleanup()


class KubeProcess(LoopbackServer):
    name = "Kubernetes API stand-in"
    what = "(the test double: one Python process, schema and CEL checks on every write)"
    health_path = "/version"
    headers: dict[str, str] = {}  # no authentication
    ssl = True  # aiohttp's default; the stand-in speaks plain HTTP

    def __init__(self, kubeconfig: pathlib.Path) -> None:
        super().__init__()
        self.kubeconfig = kubeconfig
        self.counts_url = f"http://127.0.0.1:{free_port()}/counts"

    def command(self) -> list[str]:
        counts_port = self.counts_url.rsplit(":", 1)[1].split("/")[0]
        return [
            *(sys.executable, __file__, "kube", "--port", str(self.port), "--counts-port", counts_port),
            *("--kubeconfig", str(self.kubeconfig)),
        ]

    def cpu_seconds(self) -> float:
        assert self._process is not None
        return cpu_seconds(self._process.pid)

    async def counts(self, session: ClientSession) -> collections.Counter[str]:
        async with session.get(self.counts_url) as response:
            return collections.Counter(await response.json())

    async def watches(self, session: ClientSession) -> int:
        """Watches on batchinferencejobs opened so far (the stand-in counts a request when it starts)."""
        return (await self.counts(session)).get("WATCH batchinferencejobs", 0)


def cpu_seconds(pid: int) -> float:
    """User and system CPU seconds of a process so far (/proc)."""
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class VertexProcess(LoopbackServer):
    name = "Vertex emulator"
    health_path = "/emulator/v1/stats"

    def __init__(self, gcs_url: str, *options: str) -> None:
        super().__init__()
        self.gcs_url, self.options = gcs_url, options

    def command(self) -> list[str]:
        return [
            *(sys.executable, "-m", "vertex_batch_emulator", "--port", str(self.port)),
            *("--gcs-endpoint", self.gcs_url, *self.options),
        ]


class OperatorProcess:
    """The operator as its container runs it, with /proc figures."""

    def __init__(self, env: dict[str, str], log: pathlib.Path, profile: pathlib.Path | None = None) -> None:
        self.env, self.log, self.profile = env, log, profile
        self.metrics_url = f"http://127.0.0.1:{env['BIJ_METRICS_PORT']}/metrics"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    *(("-m", "cProfile", "-o", str(self.profile)) if self.profile else ()),
                    *("-m", "batch_inference_operator", "run"),
                ],
                env={**os.environ, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def rss_mb(self) -> float:
        assert self.process is not None
        for line in pathlib.Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def cpu_seconds(self) -> float:
        assert self.process is not None
        return cpu_seconds(self.process.pid)


class Stack:
    """fake-gcs-server, the counting Kubernetes API and the Vertex emulator; the operator on demand."""

    def __init__(self, directory: pathlib.Path, emulator_options: list[str], kube: str = "stand-in") -> None:
        self.directory = directory
        self.gcs = GcsEmulator(log_path=directory / "gcs.log")
        self.kube: KubeProcess | RealKube
        if kube == "real":
            from real_kube import RealKube  # the control plane's binaries, built or cached on first use

            self.kube = RealKube(directory)
        else:
            self.kube = KubeProcess(directory / "kubeconfig")
        self.emulator_options = emulator_options
        self.vertex: VertexProcess | None = None
        self.operator: OperatorProcess | None = None

    def __enter__(self) -> Stack:
        self.gcs.start()
        if isinstance(self.kube, KubeProcess):
            self.kube._log_path = self.directory / "kube.log"
        self.kube.start()
        self.vertex = VertexProcess(self.gcs.url, *self.emulator_options)
        self.vertex._log_path = self.directory / "vertex.log"
        self.vertex.start()
        return self

    def __exit__(self, *_: object) -> None:
        if self.operator is not None:
            self.operator.stop()
        for server in (self.vertex, self.kube, self.gcs):
            if server is not None:
                server.stop()

    def start_operator(self, env: dict[str, str], profile: pathlib.Path | None = None) -> OperatorProcess:
        """The operator; under cProfile when `profile` names the file for its statistics (written when it stops)."""
        assert self.vertex is not None
        self.operator = OperatorProcess(
            {
                "KUBECONFIG": str(self.kube.kubeconfig),
                "BIJ_VERTEX_ENDPOINT": self.vertex.url,
                "BIJ_VERTEX_TOKEN": "bench",
                "STORAGE_EMULATOR_HOST": self.gcs.url,
                "BIJ_DEFAULT_PROJECT": "bench-project",
                "BIJ_METRICS_PORT": str(free_port()),
                **env,
            },
            self.directory / "operator.log",
            profile,
        )
        self.operator.start()
        return self.operator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("role", choices=["kube"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--counts-port", type=int, required=True)
    parser.add_argument("--kubeconfig", type=pathlib.Path, default=None)
    args = parser.parse_args()
    kubeconfig = args.kubeconfig or pathlib.Path(os.devnull)
    asyncio.run(serve_counting_kube(args.port, args.counts_port, kubeconfig))


if __name__ == "__main__":
    main()
