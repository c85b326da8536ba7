"""Join a results manifest to the output files in one pass over each: one JSON line per input row,
`{"key", "outcome", "answer" | "error"}`, in input order.

    python examples/join_results.py results-manifest.jsonl predictions.jsonl [more output files...] > joined.jsonl

The output files are local copies of the files the manifest names (`file`), given by a path that ends
that URI: `gcloud storage cp -r gs://b/out/prediction-model-* .` keeps `prediction-model-<time>/predictions.jsonl`,
which is how a copy is told apart from a sharded job's other `predictions.jsonl` files. Only the standard
library is used. Memory holds the answers of the output files, one text per row.
"""

from __future__ import annotations

import json
import pathlib
import sys
from collections.abc import Iterator


def answer_text(row: dict) -> str:
    """The model's text of a succeeded output row."""
    parts = row["response"]["candidates"][0]["content"]["parts"]
    return "".join(part.get("text") or "" for part in parts)


def answers(paths: list[str]) -> dict[tuple[str, int], str]:
    """(local path, line) -> answer text, for every succeeded row of the output files."""
    found: dict[tuple[str, int], str] = {}
    for path in paths:
        with open(path, "rb") as lines:
            for number, line in enumerate(lines, 1):
                if line.strip():
                    row = json.loads(line)
                    if row.get("response") and not row.get("status"):
                        found[path, number] = answer_text(row)
    return found


def local_copy(uri: str, outputs: list[str]) -> str:
    """The output argument whose path ends the manifest's file URI (the longest such, if several)."""
    matches = [p for p in outputs if uri.endswith("/" + pathlib.PurePosixPath(p).as_posix().removeprefix("./"))]
    if not matches:
        raise SystemExit(f"no local copy of {uri} given")
    return max(matches, key=len)


def joined(manifest: str, outputs: list[str]) -> Iterator[dict]:
    known = answers(outputs)
    copies: dict[str, str] = {}
    with open(manifest, "rb") as lines:
        for line in lines:
            entry = json.loads(line)
            result = {"key": entry["key"], "outcome": entry["outcome"]}
            if entry["outcome"] == "succeeded":
                if entry["file"] not in copies:
                    copies[entry["file"]] = local_copy(entry["file"], outputs)
                result["answer"] = known[copies[entry["file"]], entry["line"]]
            elif entry["outcome"] == "failed":
                result["error"] = entry["error"]
            yield result


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    for result in joined(argv[1], argv[2:]):
        sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
