"""Preflight of a BigQuery input from the table's metadata alone (schema, region, row count): its rows are
typed by BigQuery already, and reading them all would cost what the usage query avoids.
"""

from __future__ import annotations

from dataclasses import dataclass

from .preflight_jsonl import MAX_REQUESTS

RESERVED_COLUMNS = ("response", "status")
OUTPUT_COLUMNS = frozenset({"request", "response", "status", "processed_time"})
UNSUPPORTED_PASSTHROUGH = frozenset({"RECORD", "STRUCT", "RANGE", "DATETIME", "GEOGRAPHY"})


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    mode: str = "NULLABLE"


def region_problem(what: str, uri: str, dataset_location: str, job_location: str) -> str | None:
    """Vertex reads and writes BigQuery only in the job's region; multi-regions (US, EU) are not supported."""
    if dataset_location.lower() == job_location.lower():
        return None
    multi = " (a multi-region, which batch prediction does not support)" if "-" not in dataset_location else ""
    return (
        f"the {what} {uri} is in {dataset_location}{multi}, but the job runs in {job_location}: "
        "put the dataset in the job's region, or set spec.location to the dataset's region"
    )


def bigquery_input_problems(
    uri: str, columns: list[Column], rows: int | None, max_rows: int | None = MAX_REQUESTS
) -> list[str]:
    """Vertex's rules for an input table: a `request` JSON (or STRING) column; `response` and `status`
    reserved, unless the table is a previous job's output (how a job is resumed); passthrough columns of
    any type but ARRAY, STRUCT, RANGE, DATETIME and GEOGRAPHY; 1 to 200,000 rows (`rows` None: not
    known, as for a view; `max_rows` None: the table is split into shards, so any count will do)."""
    by_name = {column.name.lower(): column for column in columns}
    problems = []
    request = by_name.get("request")
    if request is None:
        problems.append(
            f"{uri} has no `request` column: put each GenerateContentRequest in a JSON column named request"
        )
    elif request.type.upper() not in ("JSON", "STRING") or request.mode == "REPEATED":
        problems.append(f"{uri}: column `request` is {request.type}; it must be JSON (or a STRING holding JSON)")
    previous_output = (
        "response" in by_name
        and "status" in by_name
        and by_name["response"].type.upper() == "JSON"
        and by_name["status"].type.upper() == "STRING"
    )
    if not previous_output:
        problems += [
            f"{uri}: column `{by_name[name].name}` has a name Vertex reserves for its output "
            "(response, status); rename it"
            for name in RESERVED_COLUMNS
            if name in by_name
        ]
    for column in columns:
        kind = column.type.upper()
        if column.name.lower() not in OUTPUT_COLUMNS and (column.mode == "REPEATED" or kind in UNSUPPORTED_PASSTHROUGH):
            shown = f"ARRAY<{kind}>" if column.mode == "REPEATED" else kind
            problems.append(
                f"{uri}: column `{column.name}` is {shown}; columns passed through to the output may be any "
                "type but ARRAY, STRUCT, RANGE, DATETIME and GEOGRAPHY"
            )
    if rows == 0:
        problems.append(f"{uri} holds no rows")
    elif rows is not None and max_rows is not None and rows > max_rows:
        problems.append(f"{uri} holds {rows} rows; a job takes at most {max_rows} requests")
    return problems
