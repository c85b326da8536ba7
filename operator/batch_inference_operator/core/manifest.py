"""When the ledger runs, and what it leaves in status: missing rows after each attempt, the results
manifest once the resource finishes. The join itself is `ledger`; the controller performs it."""

from __future__ import annotations

from ..api import Attempt, BatchInferenceJobSpec, BatchInferenceJobStatus, RowTotals
from .actions import Event, ScanOutput, WriteManifest
from .ledger import Shard, Totals
from .uris import BigQueryUri, is_bigquery, is_gcs, predictions_file
from .wording import plural

MANIFEST_FILE = "results-manifest.jsonl"
MANIFEST_TABLE_PREFIX = "results_manifest_"
BIGQUERY_TABLE_NAME_MAX = 1024


def scan_of(spec: BatchInferenceJobSpec, attempt: Attempt) -> ScanOutput:
    """Read a finished attempt's output; for a Cloud Storage job, also find the input rows it lacks and
    write them to a file under the output prefix (the next attempt's second input)."""
    output = attempt.output_location or ""
    missing_uri = None
    if is_gcs(output) and spec.output.gcs and spec.input.gcs:
        missing_uri = f"{spec.output.gcs.uri_prefix.rstrip('/')}/ledger/missing-after-attempt-{attempt.attempt}.jsonl"
    return ScanOutput(
        attempt.attempt, output, tuple(spec.input.uris()), key_field=spec.input.key, missing_uri=missing_uri
    )


def manifest_uri(spec: BatchInferenceJobSpec, final_output: str) -> str:
    """`results-manifest.jsonl` next to the outputs, or a `results_manifest_<output table>` table beside
    the output table."""
    if spec.output.gcs:
        return f"{spec.output.gcs.uri_prefix.rstrip('/')}/{MANIFEST_FILE}"
    table = BigQueryUri.parse(final_output)
    name = (MANIFEST_TABLE_PREFIX + (table.table or "output"))[:BIGQUERY_TABLE_NAME_MAX]
    return f"{table.dataset_uri}.{name}"


def final_output(status: BatchInferenceJobStatus) -> str | None:
    """Where the resource's answers are: the latest output that was read (it holds the carried rows too)."""
    for attempt in reversed(status.attempts):
        location = attempt.output_location or ""
        if attempt.rows is not None and (is_gcs(location) or is_bigquery(location)):
            return predictions_file(location) if is_gcs(location) else location
    return None


def manifest_of(spec: BatchInferenceJobSpec, status: BatchInferenceJobStatus, shard: int = 1) -> WriteManifest | None:
    """The manifest to write before the resource's final phase; None when written already, or when no
    attempt produced an output to join (the resource failed before any row ran)."""
    if status.rows is not None:
        return None
    output = final_output(status)
    if output is None:
        return None
    return WriteManifest(
        uri=manifest_uri(spec, output),
        shards=(Shard(shard, tuple(spec.input.uris()), output),),
        key_field=spec.input.key,
        project=status.project or "",
        location=status.location or "",
    )


def manifest_for_shards(
    spec: BatchInferenceJobSpec, status: BatchInferenceJobStatus, shards: list[Shard], name: str
) -> WriteManifest:
    """A sharded parent's manifest: every shard's input joined to that shard's final output (its child's
    latest read output: a Cloud Storage predictions file or a BigQuery table; None when it wrote none), in
    shard order, written once next to the parent's outputs (`name`, the parent's name, names the BigQuery
    table, as a parent has no single output table)."""
    uri = (
        f"{spec.output.gcs.uri_prefix.rstrip('/')}/{MANIFEST_FILE}"
        if spec.output.gcs
        else f"{BigQueryUri.parse(spec.output.uri()).dataset_uri}.{MANIFEST_TABLE_PREFIX}{name.replace('-', '_')}"
    )
    ordered = tuple(sorted(shards, key=lambda shard: shard.index))
    return WriteManifest(uri, ordered, spec.input.key, status.project or "", status.location or "")


def row_totals(totals: Totals) -> RowTotals:
    return RowTotals(total=totals.total, succeeded=totals.succeeded, failed=totals.failed, missing=totals.missing)


def record_manifest(status: BatchInferenceJobStatus, uri: str, totals: Totals) -> BatchInferenceJobStatus:
    status = status.model_copy(deep=True)
    status.manifest = uri
    status.rows = row_totals(totals)
    return status


def fallback_rows(status: BatchInferenceJobStatus) -> RowTotals | None:
    """Row totals without a manifest (none could be written, or no attempt wrote an output): the last read
    output's counts; input rows in none of them are missing. None when the input's size is unknown too."""
    last = next((a for a in reversed(status.attempts) if a.rows is not None), None)
    rows = last.rows if last else None
    succeeded = rows.succeeded if rows else 0
    failed = (rows.failed_transient + rows.failed_permanent + rows.incomplete) if rows else 0
    if status.preflight is not None:
        total = max(status.preflight.requests, succeeded + failed)
    elif rows is not None:
        total = succeeded + failed + ((last.missing or 0) if last else 0)
    else:
        return None
    return RowTotals(total=total, succeeded=succeeded, failed=failed, missing=total - succeeded - failed)


def record_manifest_failed(status: BatchInferenceJobStatus) -> BatchInferenceJobStatus:
    """The manifest could not be written (the output location refused it): the row totals come from the
    last output's counts, so the resource still finishes (and is not asked to write it again)."""
    status = status.model_copy(deep=True)
    status.rows = fallback_rows(status) or RowTotals()
    return status


def record_missing(
    status: BatchInferenceJobStatus, attempt: int, missing: int, missing_input: str | None
) -> BatchInferenceJobStatus:
    """The input rows an attempt's output lacks, and the file holding them (None: none, or not written)."""
    status = status.model_copy(deep=True)
    entry = next(a for a in status.attempts if a.attempt == attempt)
    entry.missing = missing
    entry.missing_input = missing_input if missing else None
    return status


def missing_event(missing: int, attempt: int, missing_input: str | None, problem: str | None = None) -> Event:
    """Input rows that came back in no output row: said once, when found."""
    message = f"{plural(missing, 'input row')} of attempt {attempt} came back in no output row"
    if missing_input:
        message += f"; written to {missing_input}, resubmitted if attempts remain"
    elif problem:
        message += f"; not resubmitted, as they could not be written under the output prefix: {problem}"
    return Event("Warning", "RowsMissing", message)
