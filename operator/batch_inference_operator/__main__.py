"""Command line: `python -m batch_inference_operator {run,crd}`. The local stack is `python -m local_stack`."""

from __future__ import annotations

import argparse
import logging
import sys

from . import crd


def run_operator(args: argparse.Namespace) -> int:
    """The production entry point (the container's command): kopf with our handlers."""
    import kopf

    from .settings import Settings

    settings = Settings.from_env()  # fail fast on bad configuration, before connecting anywhere
    log_format = kopf.LogFormat.JSON if settings.log_format == "json" else kopf.LogFormat.FULL
    kopf.configure(verbose=args.verbose, log_format=log_format)
    from .controller.handlers import register

    memo = register(settings)

    logging.getLogger("batch_inference_operator").info(
        "starting: namespaces=%s default project=%s location=%s vertex=%s",
        ",".join(settings.namespaces) or "all",
        settings.default_project,
        settings.default_location,
        settings.vertex_endpoint or "Google (Application Default Credentials)",
    )
    kopf.run(
        standalone=settings.peering is None,
        peering_name=settings.peering,
        clusterwide=not settings.namespaces,
        namespaces=list(settings.namespaces),
        liveness_endpoint=args.liveness,
        memo=memo,
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="batch-inference-operator", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the operator (configured by BIJ_* environment variables)")
    run.add_argument("--liveness", default=None, help="liveness endpoint, e.g. http://0.0.0.0:8080/healthz")
    run.add_argument("--verbose", action="store_true")
    commands.add_parser("crd", help="print the generated CustomResourceDefinition")
    for moved in ("local-stack", "demo"):  # the stand-ins left the operator's package: say where they went
        old = commands.add_parser(
            moved, help=f"moved: python -m local_stack {'up' if moved == 'local-stack' else 'demo'}"
        )
        old.add_argument("ignored", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)

    if args.command == "crd":
        sys.stdout.write(crd.render_crd())
        return 0
    if args.command == "run":
        return run_operator(args)
    replacement = "up --dir DIR" if args.command == "local-stack" else "demo"
    print(
        f"'{args.command}' moved out of the operator (its image ships the operator only): "
        f"run `python -m local_stack {replacement}` (installed by `make`, from local/)",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    sys.exit(main())
