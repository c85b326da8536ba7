"""The docs stay true to the code: the generated files are current, every reason the operator writes
has a troubleshooting entry, the Vertex codes name the roles, the wait recipes end on failure too, and
every relative link resolves."""

from __future__ import annotations

import ast
import re
import subprocess
import sys

import pytest

from conftest import REPO

DOCS = REPO / "docs"
OPERATOR = REPO / "operator/batch_inference_operator"
CAMEL = re.compile(r"^[A-Z][a-z]+(?:[A-Z][a-z0-9]*)*$")


@pytest.mark.parametrize("tool", ["tools/field_reference.py", "tools/argocd_config.py"])
def test_generated_files_are_current(tool: str) -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / tool), "--check"], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stderr


def _camel_constants(node: ast.AST) -> list[str]:
    return [
        n.value
        for n in ast.walk(node)
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and CAMEL.match(n.value)
    ]


def _reasons_of(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Call):
        func = node.func
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
        position = {"set_condition": 3, "Event": 1, "Stall": 0}.get(name)
        if position is None and "fail" in name.lower():
            position = 1
        got = _camel_constants(node.args[position]) if position is not None and len(node.args) > position else []
        return got + [c for kw in node.keywords if kw.arg in ("reason", "missing") for c in _camel_constants(kw.value)]
    if isinstance(node, ast.Assign) and any("reason" in ast.unparse(t).lower() for t in node.targets):
        return _camel_constants(node.value)
    if isinstance(node, ast.FunctionDef) and "reason" in node.name:
        returns = [r.value for r in ast.walk(node) if isinstance(r, ast.Return) and r.value is not None]
        return [c for value in returns for c in _camel_constants(value)]
    return []


def reasons_in_code() -> dict[str, str]:
    """Every reason the operator can write, read from its source: condition reasons (`set_condition`),
    Event reasons (`Event`), failure reasons (`fail`, `record_failure`, `reason=`/`missing=` keywords,
    values assigned to a `reason`, returned by a `*reason*` function), stall reasons (`Stall`), and the
    adapters' named reasons (their module constants)."""
    found: dict[str, str] = {}
    for path in sorted(OPERATOR.rglob("*.py")):
        if "api" in path.relative_to(OPERATOR).parts:
            continue
        tree = ast.parse(path.read_text())
        reasons = [reason for node in ast.walk(tree) for reason in _reasons_of(node)]
        if path.parent.name == "adapters":
            reasons += [c for node in tree.body if isinstance(node, ast.Assign) for c in _camel_constants(node.value)]
        for reason in reasons:
            found.setdefault(reason, str(path.relative_to(OPERATOR)))
    return found


def test_every_reason_the_operator_writes_has_a_troubleshooting_entry() -> None:
    text = (DOCS / "troubleshooting.md").read_text()
    entries = set(re.findall(r"^### `([A-Za-z]+)`", text, re.M)) | set(re.findall(r"^\| `([A-Za-z]+)` \|", text, re.M))
    reasons = reasons_in_code()
    assert {"InvalidInput", "VertexJobFailed", "QueuedTooLong", "UnreachableEndpoint", "OutputNotFound"} <= set(reasons)
    missing = {reason: where for reason, where in reasons.items() if reason not in entries}
    assert missing == {}, f"reasons without an entry in docs/troubleshooting.md: {missing}"


@pytest.mark.parametrize(
    ("heading", "must_say"),
    [
        ("### Code 3", ["InvalidInput", "preflight"]),
        (
            "### Code 7",
            ["service-PROJECT_NUMBER@gcp-sa-aiplatform", "roles/storage.objectViewer", "roles/storage.objectUser"],
        ),
        ("### Code 9", ["OutputNotFound", "bucket"]),
        ("### HTTP 403", ["roles/aiplatform.user", "roles/storage.objectViewer", "aiplatform.googleapis.com"]),
    ],
)
def test_vertex_error_codes_say_what_to_grant_or_fix(heading: str, must_say: list[str]) -> None:
    text = (DOCS / "troubleshooting.md").read_text()
    assert heading in text
    section = text.split(heading, 1)[1].split("\n### ", 1)[0]
    for words in must_say:
        assert words in section, f"{heading} does not mention {words}"


def test_wait_recipes_end_on_failure_too() -> None:
    """`Complete` is never True on a failed job, so a wait on it hangs until its timeout (issue 19, point 2)."""
    documents = [
        REPO / "README.md",
        *DOCS.glob("*.md"),
        REPO / "deploy/helm/batch-inference-operator/templates/NOTES.txt",
    ]
    for path in documents:
        for line in path.read_text().splitlines():
            assert "--for=condition=Complete" not in line, f"{path.name}: {line}"
    waiting = (DOCS / "waiting.md").read_text()
    assert "kubectl wait --for=condition=Finished" in waiting and "{.status.phase}" in waiting


def test_relative_links_resolve() -> None:
    for path in [REPO / "README.md", *DOCS.glob("*.md"), REPO / "deploy/argocd/README.md"]:
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", path.read_text()):
            if "://" in target:
                continue
            assert (path.parent / target).exists(), f"{path.name} links to {target}, which does not exist"


def test_readme_links_to_the_docs() -> None:
    readme = (REPO / "README.md").read_text()
    for page in (
        "docs/troubleshooting.md",
        "docs/waiting.md",
        "docs/fields.md",
        "docs/install.md",
        "docs/gitops.md",
        "docs/local-stack.md",
    ):
        assert f"({page}" in readme, page
