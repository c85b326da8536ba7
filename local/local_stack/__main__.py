"""`python -m local_stack COMMAND`: the embedded local stack, for development and tests only.

- `up [--dir DIR] [--with-examples]`: the whole stack on loopback until Ctrl-C; writes DIR/kubeconfig
  and DIR/endpoints.json. Everything is in memory and gone when it stops.
- `mb`, `put`, `bq-load`, `ls`, `cat`: buckets, files and BigQuery tables on a running `up`.
- `demo`: the examples end to end on a fresh stack (`make demo`).
- `kube-api`: only the Kubernetes API stand-in, with the BatchInferenceJob CRD installed.

`python -m local_stack COMMAND --help` describes each.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import pathlib
import signal
import sys

from .commands import DEFAULT_DIR, add_data_commands, run_data_command
from .kube.launch import running_kube_api, server_url, write_kubeconfig


async def serve_kube_api(host: str, port: int, kubeconfig: pathlib.Path) -> None:
    async with running_kube_api(host=host, port=port or None) as server:
        write_kubeconfig(kubeconfig, server_url(server))
        print(f"Kubernetes API on {server_url(server)}; kubeconfig written to {kubeconfig}", flush=True)
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        await stop.wait()


def parser() -> argparse.ArgumentParser:
    main_parser = argparse.ArgumentParser(
        prog="python -m local_stack", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = main_parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, summary: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=summary, description=summary)

    up = add(
        "up",
        "start the Kubernetes API, Cloud Storage, BigQuery, the Vertex emulator and the operator on loopback until "
        "Ctrl-C; state is in memory only and is gone when it stops",
    )
    up.add_argument(
        "--dir", type=pathlib.Path, default=DEFAULT_DIR, help="where kubeconfig and endpoints.json go (default: .stack)"
    )
    up.add_argument(
        "--with-examples",
        action="store_true",
        help="put the examples' inputs, buckets and datasets in place, so `kubectl apply -f examples/` runs",
    )
    up.add_argument("--examples", type=pathlib.Path, default=pathlib.Path("examples"), help="the examples folder")
    where = up.add_mutually_exclusive_group()
    where.add_argument(
        "--kubeconfig",
        type=pathlib.Path,
        help="use this existing cluster (kind, minikube, ...) instead of the Kubernetes API stand-in: the CRD is "
        "installed there and the operator runs here against it",
    )
    where.add_argument(
        "--control-plane",
        action="store_true",
        help="start a real etcd and kube-apiserver instead of the stand-in (build them first: make control-plane)",
    )
    add_data_commands(commands)
    demo = add("demo", "run the examples end to end on a fresh local stack, then stop it (make demo)")
    demo.add_argument("--examples", default="examples", help="folder of example manifests")
    kube = add("kube-api", "serve only the Kubernetes API, with the BatchInferenceJob CRD installed")
    kube.add_argument("--host", default="127.0.0.1")
    kube.add_argument("--port", type=int, default=0, help="0 picks a free port")
    kube.add_argument("--kubeconfig", type=pathlib.Path, default=pathlib.Path("kubeconfig"))
    return main_parser


def main(argv: list[str] | None = None) -> int:
    command_line = parser()
    args = command_line.parse_args(argv)
    if args.command == "up" and args.with_examples and not (args.examples / "data").is_dir():
        command_line.error(
            f"--with-examples: no examples in {args.examples}/ (run from the repository, or --examples DIR)"
        )
    if args.command == "up" and args.kubeconfig is not None and not args.kubeconfig.is_file():
        command_line.error(f"--kubeconfig: no such file: {args.kubeconfig}")
    if args.command == "up" and args.control_plane:
        from .control_plane.launch import cached_binaries

        if cached_binaries() is None:
            command_line.error(
                "--control-plane: kube-apiserver and etcd are not built yet; run `make control-plane` first "
                "(it builds them from the Go module proxy, about 10 minutes on 2 cores, once)"
            )
    if hasattr(args, "run_data"):
        return run_data_command(args)
    if args.command == "up":
        from .stack import run_until_interrupted

        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(
                run_until_interrupted(
                    args.dir,
                    args.examples if args.with_examples else None,
                    cluster=args.kubeconfig,
                    control_plane=args.control_plane,
                )
            )
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
