"""The data commands against a running `python -m local_stack up`: `mb`, `put`, `bq-load`, `ls`, `cat`.

They find the stack through the `endpoints.json` that `up` writes in its directory (`--dir`, else
`$LOCAL_STACK_DIR`, else `.stack`) and removes when it stops. Everything lives in the stack's memory
and is gone when `up` stops.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import urllib.error
import urllib.request
from typing import Any

from google.api_core import exceptions

from .data import (
    DataError,
    list_objects,
    load_table,
    make_bucket,
    make_dataset,
    read_object,
    read_table,
    upload,
)
from .gcs_server import gcs_client

DEFAULT_DIR = pathlib.Path(".stack")
ENDPOINTS = "endpoints.json"


class NoStack(RuntimeError):
    """No running local stack where the command looked."""


def stack_dir(given: pathlib.Path | None) -> pathlib.Path:
    return given or pathlib.Path(os.environ.get("LOCAL_STACK_DIR") or DEFAULT_DIR)


def find_stack(directory: pathlib.Path) -> dict[str, str]:
    """The endpoints of the stack running from `directory`, checked to answer."""
    path = directory / ENDPOINTS
    start = f"start one with `python -m local_stack up --dir {directory}`"
    if not path.exists():
        raise NoStack(f"no local stack is running from {directory} ({path} is missing): {start}")
    endpoints: dict[str, str] = json.loads(path.read_text())
    try:
        with urllib.request.urlopen(f"{endpoints['gcs']}/storage/v1/b", timeout=5):
            pass
    except (urllib.error.URLError, OSError):
        raise NoStack(f"the local stack recorded in {path} does not answer (it stopped?): {start}") from None
    return endpoints


def _mb(args: argparse.Namespace, endpoints: dict[str, str]) -> str:
    if args.uri.startswith("bq://"):
        made = make_dataset(endpoints["bigquery"], args.uri, args.location)
        return f"{'made' if made else 'already there:'} dataset {args.uri} in {args.location}"
    made = make_bucket(gcs_client(endpoints["gcs"]), args.uri)
    return f"{'made' if made else 'already there:'} bucket {args.uri}"


def _put(args: argparse.Namespace, endpoints: dict[str, str]) -> str:
    uri = upload(gcs_client(endpoints["gcs"]), args.file, args.uri)
    return f"uploaded {args.file} to {uri}"


def _bq_load(args: argparse.Namespace, endpoints: dict[str, str]) -> str:
    rows = load_table(endpoints["bigquery"], args.file, args.table, args.schema, args.location)
    return f"loaded {rows} row{'' if rows == 1 else 's'} from {args.file} into {args.table} ({args.location})"


def _ls(args: argparse.Namespace, endpoints: dict[str, str]) -> str:
    return "\n".join(list_objects(gcs_client(endpoints["gcs"]), args.uri)) or f"nothing under {args.uri}"


def _cat(args: argparse.Namespace, endpoints: dict[str, str]) -> str:
    if args.uri.startswith("bq://"):
        rows = read_table(endpoints["bigquery"], args.uri, args.rows)
        return "\n".join(json.dumps(row, default=str) for row in rows)
    return "".join(read_object(gcs_client(endpoints["gcs"]), args.uri)).rstrip("\n")


def add_data_commands(commands: Any) -> None:
    """The data commands' parsers, each with its own help."""
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument(
        "--dir", type=pathlib.Path, default=None, help="the stack's directory (default: $LOCAL_STACK_DIR or .stack)"
    )
    located = argparse.ArgumentParser(add_help=False)
    located.add_argument("--location", default="us-central1", help="a new dataset's location (default: us-central1)")

    def add(name: str, summary: str, run: Any, parents: list[argparse.ArgumentParser]) -> argparse.ArgumentParser:
        parser = commands.add_parser(name, help=summary, description=summary, parents=[where, *parents])
        parser.set_defaults(run_data=run)
        return parser

    mb = add("mb", "make a bucket (gs://BUCKET) or a BigQuery dataset (bq://PROJECT.DATASET)", _mb, [located])
    mb.add_argument("uri", metavar="gs://BUCKET | bq://PROJECT.DATASET")
    put = add("put", "upload a file; a URI ending in / keeps the file's name", _put, [])
    put.add_argument("file", type=pathlib.Path, metavar="FILE")
    put.add_argument("uri", metavar="gs://BUCKET/PATH")
    load = add(
        "bq-load",
        "load a JSONL file into a BigQuery table (replacing its rows), making the dataset if missing; the schema is "
        "--schema, else FILE's .schema.json beside it, else read from the first row (objects become JSON columns)",
        _bq_load,
        [located],
    )
    load.add_argument("file", type=pathlib.Path, metavar="FILE")
    load.add_argument("table", metavar="bq://PROJECT.DATASET.TABLE")
    load.add_argument("--schema", type=pathlib.Path, help="a JSON list of {name, type, mode} (BigQuery's schema)")
    ls = add("ls", "list the objects under a gs:// prefix", _ls, [])
    ls.add_argument("uri", metavar="gs://BUCKET[/PREFIX]")
    cat = add("cat", "print an object, or the first rows of a table as JSON lines", _cat, [])
    cat.add_argument("uri", metavar="gs://BUCKET/PATH | bq://PROJECT.DATASET.TABLE")
    cat.add_argument("--rows", type=int, default=10, help="rows of a table to print (default: 10)")


def run_data_command(args: argparse.Namespace) -> int:
    try:
        endpoints = find_stack(stack_dir(args.dir))
        print(args.run_data(args, endpoints))
    except (NoStack, DataError, FileNotFoundError, exceptions.GoogleAPICallError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0
