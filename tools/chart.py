"""`make chart`: render and lint the Helm chart without a helm binary.

Renders the chart with the Helm library (helm-python-sdk, Helm's own Go code) for every values file
in the chart's `ci/` folder (or the `--values` files given), lints it strictly with each, and writes
the rendered manifests to `--out` (default `build/chart/`). When a real `helm` is at hand (on PATH, or
built by the control-plane tier's `build.sh` into its cache), it also runs `helm lint --strict` and
`helm template`; it is never required. Exit status 1 when anything fails, naming the values file.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import subprocess
import sys
from collections import Counter
from typing import Any

import helm_python as helm
import yaml

REPO = pathlib.Path(__file__).resolve().parent.parent
CHART = REPO / "deploy/helm/batch-inference-operator"
BUILD_SCRIPT = REPO / "local/local_stack/control_plane/build.sh"
RELEASE, NAMESPACE = "bio", "operators"
KUBE_VERSION = "1.34.0"  # a helm built from source defaults to v1.20, which the chart's kubeVersion refuses


def find_helm() -> str | None:
    """`helm` on PATH, else the one the control-plane build cached (asked without building anything)."""
    found = shutil.which("helm")
    if found or not BUILD_SCRIPT.exists():
        return found
    result = subprocess.run(
        ["bash", str(BUILD_SCRIPT)],
        env={**os.environ, "BIJ_CONTROL_PLANE_CHECK_ONLY": "1"},
        capture_output=True,
        text=True,
        check=False,
    )
    cached = pathlib.Path(result.stdout.strip().splitlines()[-1]) / "helm" if result.returncode == 0 else None
    return str(cached) if cached is not None and os.access(cached, os.X_OK) else None


def render_and_lint(values_file: pathlib.Path, out: pathlib.Path) -> list[str]:
    """Problems found with one values file (empty when clean); writes the rendered manifests."""
    values: dict[str, Any] = yaml.safe_load(values_file.read_text()) or {}
    try:
        rendered = helm.Chart.load(CHART).render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    except helm.HelmError as error:
        return [f"render: {error}"]
    report = helm.lint(CHART, values, strict=True, namespace=NAMESPACE)
    problems = [f"lint: {m.get('path', '')}: {m.get('err') or m}" for m in report["messages"] if m["severity"] >= 2]
    problems += [f"lint: {error}" for error in report.get("errors", [])]
    documents = [
        document
        for path, text in sorted(rendered.items())
        if not path.endswith("NOTES.txt")
        for document in yaml.safe_load_all(text)
        if document
    ]
    target = out / f"{values_file.stem}.yaml"
    target.write_text(yaml.safe_dump_all(documents, sort_keys=False))
    kinds = Counter(document["kind"] for document in documents)
    summary = ", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items()))
    print(f"{values_file.name}: rendered {len(documents)} objects ({summary}) to {target}")
    return problems


def with_helm_binary(binary: str, values_file: pathlib.Path) -> list[str]:
    problems = []
    for command in (
        [binary, "lint", "--strict", str(CHART), "-f", str(values_file)],
        [binary, "template", RELEASE, str(CHART), "-f", str(values_file)],
    ):
        command += ["--namespace", NAMESPACE, "--kube-version", KUBE_VERSION]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            problems.append(f"helm {command[1]}: {(result.stderr or result.stdout).strip()}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tools/chart.py", description=__doc__)
    parser.add_argument("--values", type=pathlib.Path, action="append", help="values files (default: the chart's ci/)")
    parser.add_argument("--out", type=pathlib.Path, default=REPO / "build/chart", help="where rendered manifests go")
    parser.add_argument("--no-helm", action="store_true", help="do not use a helm binary even when one is found")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    values_files = args.values or sorted((CHART / "ci").glob("*-values.yaml"))
    binary = None if args.no_helm else find_helm()
    failed = 0
    for values_file in values_files:
        problems = render_and_lint(values_file, args.out)
        if binary and not problems:
            problems = with_helm_binary(binary, values_file)
        for problem in problems:
            print(f"{values_file.name}: {problem}", file=sys.stderr)
        failed += bool(problems)
    checker = f"the Helm library and {binary}" if binary else "the Helm library (no helm binary found; none is needed)"
    verdict = f"{failed} of {len(values_files)} failed" if failed else f"all {len(values_files)} clean"
    print(f"chart lint --strict with {checker}: {verdict}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
