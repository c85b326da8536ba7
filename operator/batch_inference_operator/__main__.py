"""Command line: `python -m batch_inference_operator {crd,demo}`."""

from __future__ import annotations

import argparse
import sys

from . import crd


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="batch-inference-operator", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("crd", help="print the generated CustomResourceDefinition")
    demo = commands.add_parser("demo", help="run the examples on the embedded local stack")
    demo.add_argument("--examples", default="examples", help="folder of example manifests")
    args = parser.parse_args(argv)

    if args.command == "crd":
        sys.stdout.write(crd.render_crd())
        return 0
    if args.command == "demo":
        from local_stack.demo import run_demo

        return run_demo(args.examples)
    return 2


if __name__ == "__main__":
    sys.exit(main())
