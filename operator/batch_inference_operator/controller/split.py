"""Cutting an input over a job's limits into the shards preflight planned, over the data adapters.

Crash-safe by construction: each shard file is written only if absent and an existing one is verified
(adapters.gcs.write_shard); each shard table is made by one query that fails if the table exists, and an
existing one is checked (adapters.bigquery.make_shard_table). A split cut off by a kill runs again from
the start on the next turn (the plan is recorded only once every shard is in place) and finds the shards
already written. Synchronous: the executor runs it in a worker thread.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from ..api import Shard
from ..core.actions import RunPreflight
from ..core.sharding import Piece, row_ranges, shard_file, shard_table
from ..core.uris import BigQueryUri, is_bigquery
from .checks import Checked

PARALLEL_SHARDS = 2


class ShardFiles(Protocol):
    def write_shard(self, uri: str, pieces: list[Piece], size: int) -> bool: ...


class ShardTables(Protocol):
    def make_shard_table(
        self, source: str, target: str, first: int, last: int, order: str, project: str, location: str
    ) -> bool: ...


def split_input(gcs: ShardFiles, bigquery: ShardTables, action: RunPreflight, checked: Checked) -> list[Shard]:
    """Write every planned shard (those already there are verified) and return status.shards."""
    source = action.uris[0]
    if is_bigquery(source):
        dataset = BigQueryUri.parse(action.bigquery_output or source).dataset_uri
        ranges = row_ranges(checked.table_rows, action.max_rows)
        shards = []
        for index, (first, last) in enumerate(ranges, 1):
            target = shard_table(dataset, source, index, len(ranges))
            bigquery.make_shard_table(source, target, first, last, checked.order, action.project, action.location)
            shards.append(Shard(index=index, input=[target], rows=last - first + 1))
        return shards
    assert action.gcs_output, "a Cloud Storage input is split only under a Cloud Storage output"
    prefix = action.gcs_output
    uris = [shard_file(prefix, planned.index) for planned in checked.shards]
    # A few shards at once: one upload stream rarely fills the link (memory: one chunk per stream).
    with ThreadPoolExecutor(max_workers=PARALLEL_SHARDS, thread_name_prefix="split") as pool:
        list(pool.map(lambda p, uri: gcs.write_shard(uri, p.pieces, p.bytes), checked.shards, uris))
    return [
        Shard(index=planned.index, input=[uri], rows=planned.rows, bytes=planned.bytes)
        for planned, uri in zip(checked.shards, uris, strict=True)
    ]
