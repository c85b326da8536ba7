"""`make demo`: the examples through everything that exists so far.

Today that is admission: each example is checked as the cluster would check it (the generated CRD's
schema and CEL rules) and as the operator will (the pydantic models), and the Vertex job it asks for
is shown. Submitting to the local Vertex emulator arrives with the operator itself.
"""

from __future__ import annotations

import pathlib
import sys

import yaml

from batch_inference_operator import api, crd

from .crd_validation import CrdSchema


def load_manifests(folder: str) -> list[tuple[pathlib.Path, dict]]:
    manifests = []
    for path in sorted(pathlib.Path(folder).glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document and document.get("kind") == api.KIND:
                manifests.append((path, document))
    return manifests


def run_demo(folder: str) -> int:
    schema = CrdSchema.from_crd(crd.build_crd())
    manifests = load_manifests(folder)
    if not manifests:
        print(f"no {api.KIND} manifests found in {folder}/", file=sys.stderr)
        return 1
    failures = 0
    for path, manifest in manifests:
        name = f"{manifest['metadata'].get('namespace', 'default')}/{manifest['metadata']['name']}"
        stored, unknown, causes = schema.admit(manifest)
        problems = [f"unknown field {field!r}" for field in unknown] + [c.render() for c in causes]
        try:
            spec = api.parse_spec(stored["spec"])
        except ValueError as error:
            problems.append(str(error))
        if problems:
            failures += 1
            print(f"REFUSED  {path}: {name}")
            for problem in problems:
                print(f"         {problem}")
            continue
        print(f"ACCEPTED {path}: {name}")
        print(f"         model {spec.model}, input {', '.join(spec.input.uris())}, output {spec.output.uri()}")
        print(
            f"         resume: up to {spec.resume.max_attempts} attempts, retry {spec.resume.retry_failed_requests} "
            f"failures; preflight {spec.preflight}; on delete: {spec.deletion_policy}"
        )
    print()
    print("The operator that submits these to Vertex is not built yet: this demo stops after admission.")
    return 1 if failures else 0
