"""A real kube-apiserver and etcd in place of the Kubernetes API stand-in (bench.py --kube real), so the
control-loop figures are not bounded by the test double.

The binaries are the ones `make control-plane` builds from the Go module proxy and caches. The operator
runs as a user of its own; the harness as the admin. Requests are counted from the API server's own
`apiserver_request_total` (verb, resource, subresource): it has no user label, so the harness's applies
(POST batchinferencejobs) and watches are left out as with the stand-in, and its few LISTs are counted
by the harness and subtracted (bench.p2). The API server's own background requests (leases, a few a
minute) are in the count too: a few hundredths of a request per job at 1,000 jobs.
"""

from __future__ import annotations

import pathlib
import re
import ssl
from collections import Counter

import aiohttp

from local_stack.control_plane.cluster import install_crd
from local_stack.control_plane.launch import ControlPlane, User, build_binaries
from scale_stack import cpu_seconds

OPERATOR_USER = "bij-operator"
_LABEL = re.compile(r'(\w+)="([^"]*)"')


def metric_counts(text: str, name: str) -> Counter[str]:
    """`VERB resource[/subresource]` -> value, summed over the other labels, of one metric family."""
    tally: Counter[str] = Counter()
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        labels = dict(_LABEL.findall(line.split("}", 1)[0]))
        sub = f"/{labels['subresource']}" if labels.get("subresource") else ""
        tally[f"{labels.get('verb', '?')} {labels.get('resource', 'other')}{sub}"] += int(float(line.rsplit(" ", 1)[1]))
    return tally


class RealKube:
    """etcd and kube-apiserver under `directory`, the CRD installed, a kubeconfig for the operator."""

    name = "kube-apiserver + etcd"
    what = "(the real API server: Go, etcd with no fsync, on the same 2 cores)"

    def __init__(self, directory: pathlib.Path) -> None:
        # The operator's user is in system:masters (no chart RBAC here), which also puts it in the
        # exempt priority level of API Priority and Fairness: no server-side queueing of its requests.
        operator = User(OPERATOR_USER, ("system:masters",))
        self.plane = ControlPlane(directory / "control-plane", build_binaries(), users=(operator,))
        self.kubeconfig = self.plane.kubeconfig(OPERATOR_USER)

    def start(self) -> None:
        self.plane.start()
        install_crd(self.plane.kubeconfig())

    def stop(self) -> None:
        self.plane.stop()

    @property
    def url(self) -> str:
        return self.plane.url

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.plane.admin.token}"}

    @property
    def ssl(self) -> ssl.SSLContext:
        assert self.plane.api is not None
        return self.plane.api.ssl_context

    def cpu_seconds(self) -> float:
        processes = [server._process for server in (self.plane.api, self.plane.etcd) if server is not None]
        return sum(cpu_seconds(process.pid) for process in processes if process is not None)

    async def _metrics(self, session: aiohttp.ClientSession) -> str:
        async with session.get(f"{self.url}/metrics", headers=self.headers, ssl=self.ssl) as response:
            response.raise_for_status()
            return await response.text()

    async def counts(self, session: aiohttp.ClientSession) -> Counter[str]:
        """Requests answered so far (a watch is counted when it ends)."""
        return metric_counts(await self._metrics(session), "apiserver_request_total")

    async def watches(self, session: aiohttp.ClientSession) -> int:
        """Watches on batchinferencejobs open now."""
        open_now = metric_counts(await self._metrics(session), "apiserver_longrunning_requests")
        return open_now.get("WATCH batchinferencejobs", 0)
