"""`python -m local_stack kube-api --port P --kubeconfig FILE`: the Kubernetes API server, standalone."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import pathlib
import signal
import sys

from .kube_server import running_kube_api, server_url, write_kubeconfig


async def serve_kube_api(host: str, port: int, kubeconfig: pathlib.Path) -> None:
    async with running_kube_api(host=host, port=port or None) as server:
        write_kubeconfig(kubeconfig, server_url(server))
        print(f"Kubernetes API on {server_url(server)}; kubeconfig written to {kubeconfig}", flush=True)
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local_stack", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    kube = commands.add_parser("kube-api", help="serve the Kubernetes API with the BatchInferenceJob CRD")
    kube.add_argument("--host", default="127.0.0.1")
    kube.add_argument("--port", type=int, default=0, help="0 picks a free port")
    kube.add_argument("--kubeconfig", type=pathlib.Path, default=pathlib.Path("kubeconfig"))
    args = parser.parse_args(argv)
    if args.command == "kube-api":
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve_kube_api(args.host, args.port, args.kubeconfig))
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
