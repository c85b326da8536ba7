"""`python -m local_stack {up,demo,kube-api}`: the embedded local stack, for development and tests only.

- `up --dir DIR`: the whole stack on loopback until Ctrl-C; writes DIR/kubeconfig and DIR/endpoints.json.
- `demo`: the examples end to end on a fresh stack (`make demo`).
- `kube-api`: only the Kubernetes API stand-in, with the BatchInferenceJob CRD installed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import pathlib
import signal
import sys

from .kube.launch import running_kube_api, server_url, write_kubeconfig


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
    up = commands.add_parser("up", help="start the whole stack on loopback until interrupted")
    up.add_argument("--dir", type=pathlib.Path, default=pathlib.Path(".stack"), help="where kubeconfig goes")
    demo = commands.add_parser("demo", help="run the examples end to end on a fresh local stack")
    demo.add_argument("--examples", default="examples", help="folder of example manifests")
    kube = commands.add_parser("kube-api", help="serve the Kubernetes API with the BatchInferenceJob CRD")
    kube.add_argument("--host", default="127.0.0.1")
    kube.add_argument("--port", type=int, default=0, help="0 picks a free port")
    kube.add_argument("--kubeconfig", type=pathlib.Path, default=pathlib.Path("kubeconfig"))
    args = parser.parse_args(argv)
    if args.command == "up":
        from .stack import run_until_interrupted

        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(run_until_interrupted(args.dir))
        return 0
    if args.command == "demo":
        from .demo import run_demo

        return run_demo(args.examples)
    if args.command == "kube-api":
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve_kube_api(args.host, args.port, args.kubeconfig))
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
