"""Validated string types of the API: URIs, model, project, location, labels.

Each type is a list of `cel.Check`s: the CRD carries them as CEL rules with readable messages (no raw
regular expression reaches the user) and pydantic runs the very same tests, so the cluster and the
operator refuse the same values with the same words. URIs are checked as paths: no `.` or `..`
segments, no empty segments, no percent-escapes, backslashes or control characters, since a namespace's
allowed prefixes are compared as text and `gs://b/team-a/../team-b/` must not pass for `gs://b/team-a`.
Every string a rule reads has a `maxLength`, and the label map a `maxProperties`: the apiserver
prices CEL rules by them (map keys count as free).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import AfterValidator, Field

from . import cel
from .cel import Check, contains, matches, starts_with
from .meta import OPERATOR_LABEL_PREFIX

# Regexes are written in the common subset of Python `re` and Go RE2 (what the apiserver uses).
RE2_MAX_REPEAT = 1000  # RE2 refuses a {n,m} with m over 1000; a longer run is written as two


def _repeat(chars: str, least: int, most: int) -> str:
    """`chars{least,most}` in a form RE2 compiles."""
    if most <= RE2_MAX_REPEAT:
        return f"{chars}{{{least},{most}}}"
    return f"{chars}{{{least},{RE2_MAX_REPEAT}}}{chars}{{0,{most - RE2_MAX_REPEAT}}}"


BUCKET = r"[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]"
GCP_PROJECT = r"[a-z][a-z0-9-]{4,28}[a-z0-9]"
BQ_DATASET = _repeat("[A-Za-z0-9_]", 1, 1024)
BQ_TABLE = "[A-Za-z0-9_]" + _repeat("[A-Za-z0-9_-]", 0, 1023)
BQ_TABLE_URI_PATTERN = rf"^bq://{GCP_PROJECT}\.{BQ_DATASET}\.{BQ_TABLE}$"
BQ_DATASET_URI_PATTERN = rf"^bq://{GCP_PROJECT}\.{BQ_DATASET}$"
PROJECT_PATTERN = rf"^{GCP_PROJECT}$"
LOCATION_PATTERN = r"^[a-z]+(-[a-z0-9]+)*$"
_MODEL_ID = r"[a-z0-9][a-z0-9._-]{0,127}"
MODEL_PATTERN = (
    rf"^({_MODEL_ID}"
    rf"|publishers/google/models/{_MODEL_ID}"
    rf"|projects/[a-z0-9-]{{1,63}}/locations/[a-z0-9-]{{1,63}}/publishers/google/models/{_MODEL_ID}"
    r"|projects/[a-z0-9-]{1,63}/locations/[a-z0-9-]{1,63}/models/[A-Za-z0-9_-]{1,128}(@[A-Za-z0-9_-]{1,128})?)$"
)
LABEL_KEY_PATTERN = r"^[a-z][a-z0-9_-]{0,62}$"
LABEL_VALUE_PATTERN = r"^[a-z0-9_-]{0,63}$"
URI_MAX_LENGTH = 2048
MAX_INPUT_URIS = 100

INPUT_EXAMPLE = "gs://my-bucket/path/requests.jsonl"
OUTPUT_EXAMPLE = "gs://my-bucket/path/output/"
TABLE_EXAMPLE = "bq://my-project.my_dataset.my_table"
DATASET_EXAMPLE = "bq://my-project.my_dataset"


def _gcs_checks(example: str, file: bool) -> list[Check]:
    """A Cloud Storage URI, checked as a path. `file`: it names objects (not a bucket or a folder)."""
    web = matches(r"^https?://")
    checks = [
        Check(
            starts_with("gs://") | web,
            f"must be a Cloud Storage URI starting with gs:// (two slashes), such as {example}",
        ),
        Check(
            ~web,
            f"is a web URL: write it as a gs:// URI, such as {example} "
            f"for https://storage.googleapis.com/{example.removeprefix('gs://')}",
        ),
        Check(
            ~starts_with("gs://") | matches(rf"^gs://{BUCKET}(/|$)"),
            "needs a bucket name after gs://: 3-222 lowercase letters, digits, '-', '_' or '.', "
            f"starting and ending with a letter or digit, such as {example}",
        ),
    ]
    if file:
        checks += [
            Check(
                ~matches(rf"^gs://{BUCKET}/?$"),
                f"names a bucket but no file: add the file's path, such as {example} "
                "(a * in the file name matches several files)",
            ),
            Check(
                ~matches(r"^gs://[^/]*/.*[^/]/$"),
                f"ends with '/', which names a folder, not a file: name the file, such as {example}, "
                "or every JSONL file in the folder, such as gs://my-bucket/path/*.jsonl",
            ),
        ]
    empty_hint = "" if file else "; only the end may have one '/'"
    checks += [
        Check(
            ~matches(r"[\x00-\x1f\x7f]"),
            "contains a control character such as a newline or a tab: remove it "
            "(a YAML '|' block adds a newline at the end)",
        ),
        Check(~contains("\\"), f"contains a backslash: separate folders with '/', as in {example}"),
        Check(
            ~contains("%"),
            "contains '%': Cloud Storage URIs are not URL-encoded, so write the characters themselves, "
            "without percent-escapes",
        ),
        Check(
            ~matches(r"^gs://[^/]*/(.*/)?\.\.?(/|$)"),
            "has a '.' or '..' path segment, which is not allowed: write the path out in full, "
            "such as gs://my-bucket/team-b/data/ rather than gs://my-bucket/team-a/../team-b/data/",
        ),
        Check(
            ~matches(r"^gs://[^/]*/(.*/)?/"),
            f"has an empty path segment ('//'): separate folders with a single '/'{empty_hint}, as in {example}",
        ),
    ]
    return checks


def _bigquery_checks(pattern: str, what: str, example: str) -> list[Check]:
    colon = matches(rf"^(bq://)?{GCP_PROJECT}:[A-Za-z0-9_]")
    return [
        Check(
            ~colon,
            f"uses the project:dataset form of the bq tool: write {example}, "
            "with bq:// in front and a dot after the project",
        ),
        Check(
            starts_with("bq://") | colon,
            f"must be a BigQuery URI starting with bq:// (two slashes), such as {example}",
        ),
        Check(
            ~starts_with("bq://") | colon | matches(pattern),
            f"must name a {what}: a project id (6-30 lowercase letters, digits or hyphens, starting "
            "with a letter), then a dataset (letters, digits or '_')"
            + (" and a table name" if what.endswith("table") else "")
            + f", separated by single dots, such as {example}",
        ),
    ]


def _string(checks: Sequence[Check], max_length: int, description: str) -> Any:
    """A string type: pydantic runs the checks, the CRD carries them as CEL rules."""

    def check(value: str) -> str:
        problems = cel.failures(checks, value)
        if problems:
            raise ValueError(f"Invalid value: {json.dumps(value)}: {'; '.join(problems)}")
        return value

    # The length first, then the checks: the apiserver runs CEL rules only on a schema-valid value.
    return Annotated[
        str,
        Field(max_length=max_length, description=description, json_schema_extra=cel.string_rules(checks)),
        AfterValidator(check),
    ]


GCS_OBJECT_CHECKS = _gcs_checks(INPUT_EXAMPLE, file=True)
GCS_PREFIX_CHECKS = _gcs_checks(OUTPUT_EXAMPLE, file=False)
BQ_TABLE_CHECKS = _bigquery_checks(BQ_TABLE_URI_PATTERN, "table as bq://project.dataset.table", TABLE_EXAMPLE)
BQ_DATASET_CHECKS = _bigquery_checks(BQ_DATASET_URI_PATTERN, "dataset as bq://project.dataset", DATASET_EXAMPLE)
MODEL_CHECKS = [
    Check(
        matches(MODEL_PATTERN),
        "must be a Gemini model in lowercase: an id such as gemini-2.5-flash (not Gemini 2.5 Flash), "
        "publishers/google/models/<id>, projects/<project>/locations/<location>/publishers/google/models/<id>, "
        "or a tuned model projects/<project>/locations/<location>/models/<id>[@<version>]",
    )
]
PROJECT_CHECKS = [
    Check(
        matches(PROJECT_PATTERN),
        "must be a Google Cloud project id: 6-30 lowercase letters, digits or hyphens, starting with a "
        "letter and not ending with a hyphen, such as my-project-123 (the id, not the project's name or number)",
    )
]
LOCATION_CHECKS = [
    Check(
        matches(LOCATION_PATTERN),
        "must be a Google Cloud location in lowercase, such as us-central1, europe-west4 or global",
    ),
    Check(
        ~matches(r"^[a-z]+-[a-z]+[0-9]+-[a-z]$"),
        "is a zone, not a location: write its region, such as us-central1 for us-central1-a",
    ),
]
LABEL_VALUE_CHECKS = [
    Check(
        matches(LABEL_VALUE_PATTERN),
        "label values hold at most 63 lowercase letters, digits, '_' or '-', such as search-team (not Search Team)",
    )
]
LABEL_KEY_CHECKS = [
    Check(
        matches(LABEL_KEY_PATTERN),
        "label keys must start with a lowercase letter and hold at most 63 lowercase letters, digits, "
        "'_' or '-', such as cost-center",
    ),
    Check(
        ~starts_with(OPERATOR_LABEL_PREFIX),
        f"label keys starting with '{OPERATOR_LABEL_PREFIX}' are reserved for the operator: choose another key",
    ),
]

GcsObjectUri = _string(
    GCS_OBJECT_CHECKS,
    URI_MAX_LENGTH,
    "A JSONL file in Cloud Storage, gs://bucket/path/file.jsonl; `*` wildcards are expanded by Vertex.",
)
GcsPrefixUri = _string(
    GCS_PREFIX_CHECKS,
    URI_MAX_LENGTH,
    "Cloud Storage prefix under which Vertex creates a prediction-model-<timestamp>/ directory.",
)
BigQueryTableUri = _string(BQ_TABLE_CHECKS, URI_MAX_LENGTH, "A BigQuery table, bq://project.dataset.table.")
BigQueryDatasetUri = _string(
    BQ_DATASET_CHECKS,
    URI_MAX_LENGTH,
    "A BigQuery dataset, bq://project.dataset; Vertex creates a predictions_<timestamp> table in it.",
)
ModelName = _string(
    MODEL_CHECKS,
    512,
    "Gemini model: gemini-2.5-flash, publishers/google/models/<id>, or a tuned model resource name.",
)
ProjectId = _string(
    PROJECT_CHECKS,
    30,
    "Google Cloud project of the Vertex job. Default: the Namespace annotation "
    "batchinference.dev/project, then the operator's default.",
)
Location = _string(
    LOCATION_CHECKS,
    63,
    "Vertex location of the job. Default: the Namespace annotation batchinference.dev/location, "
    "then the operator's default.",
)
LabelValue = _string(LABEL_VALUE_CHECKS, 63, "Label value.")
DOLLARS = r"^[0-9]{1,9}(\.[0-9]{1,4})?$"
DOLLARS_MESSAGE = (
    'must be an amount in US dollars written as a decimal string, such as "25" or "25.00", '
    "without a sign or a dollar sign"
)
Dollars = _string([Check(matches(DOLLARS), DOLLARS_MESSAGE)], 16, 'An amount in US dollars, such as "25.00".')
KEY_FIELD_MESSAGE = (
    "must be a top-level JSONL field or a BigQuery column name: letters, digits and underscores, "
    "not starting with a digit, such as key or ticket_id"
)
KeyField = _string(
    [Check(matches(r"^[A-Za-z_][A-Za-z0-9_]{0,299}$"), KEY_FIELD_MESSAGE)],
    300,
    "The top-level JSONL field (or BigQuery column) holding each row's stable key (default: key); a row "
    "without it is keyed by a hash of its request.",
)


def check_label_keys(labels: dict[str, str]) -> dict[str, str]:
    """Every bad key, each with what is wrong with it (the CRD's rules say it once per rule)."""
    problems = [
        f"Invalid value: {json.dumps(key)}: {'; '.join(failed)}"
        for key in labels
        if (failed := cel.failures(LABEL_KEY_CHECKS, key))
    ]
    if problems:
        raise ValueError("; ".join(problems))
    return labels
