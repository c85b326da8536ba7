"""Where an input over a job's limits is cut into shards: a pure plan made while preflight streams the input.

A Vertex job takes at most 200,000 requests and 1 GB per input file (`spec.sharding` may lower both). An
input within them runs as one job, as it is, without a copy. Any other input is cut, in input order, into
shards that each hold at most `max_rows` requests and `max_bytes` bytes: a shard is a list of byte ranges
of the input files (whole lines), so the splitter copies bytes and never parses a line again. Memory is
one entry per shard and file, whatever the number of lines.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Piece:
    """Bytes [start, end) of one input file; `newline`: the piece ends a file whose last line has no `\\n`,
    so the splitter adds one (a shard's lines must not run together)."""

    uri: str
    start: int
    end: int
    newline: bool = False


@dataclass
class PlannedShard:
    index: int
    rows: int = 0
    bytes: int = 0
    pieces: list[Piece] = field(default_factory=list)


def shard_file(output_prefix: str, index: int) -> str:
    """`gs://b/out/` -> `gs://b/out/shards/input-00001.jsonl`."""
    return f"{output_prefix.rstrip('/')}/shards/input-{index:05d}.jsonl"


def shard_table(dataset: str, input_table: str, index: int, count: int) -> str:
    """A shard's table in the output dataset, named after the input table and the cut (so a plan with other
    limits never meets this one's tables): `bq://p.d.requests_shard00001of00003`."""
    table = input_table.rsplit(".", 1)[-1]
    return f"{dataset}.{table}_shard{index:05d}of{count:05d}"


def row_ranges(rows: int, max_rows: int) -> list[tuple[int, int]]:
    """A table's rows in key order cut into shards: 1-based inclusive row numbers, as equal as may be."""
    count = -(-rows // max_rows)
    size, extra = divmod(rows, count)
    ranges, first = [], 1
    for index in range(count):
        last = first + size + (1 if index < extra else 0) - 1
        ranges.append((first, last))
        first = last + 1
    return ranges


class Planner:
    """Fed the input in order, file by file (`start_file`) and line by line (`line`): the cut points.

    A cut is made before a request that would take the shard over either limit; blank lines stay in the
    shard they follow, unless they would take it over its bytes. `split` says whether the input needs cutting at all."""

    def __init__(self, max_rows: int, max_bytes: int) -> None:
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        self.shards: list[PlannedShard] = []
        self.requests = 0
        self.too_big_file = False
        self._uri = ""
        self._size = 0
        self._offset = 0
        self._start = 0
        self._unterminated = False

    def start_file(self, uri: str, size: int) -> None:
        self._close_piece()
        self._uri, self._size, self._offset, self._start = uri, size, 0, 0
        self.too_big_file = self.too_big_file or size > self.max_bytes

    def line(self, length: int, request: bool) -> None:
        """One line of `length` bytes without its `\\n`; `request`: it holds a request (not blank). Only a
        file's last line may lack its `\\n`; in a shard it gets one, so it counts `length + 1` bytes."""
        newline = self._offset + length < self._size
        if request:
            shard = self.shards[-1] if self.shards else None
            full = shard is not None and (shard.rows >= self.max_rows or shard.bytes + length + 1 > self.max_bytes)
            if shard is None or full:
                self._close_piece()
                self.shards.append(PlannedShard(index=len(self.shards) + 1))
            self.requests += 1
            self.shards[-1].rows += 1
        elif self.shards and self.shards[-1].bytes + length + 1 > self.max_bytes:
            # A blank line that would take the shard over its bytes is left out (it holds no request).
            self._close_piece()
            self._offset += length + (1 if newline else 0)
            self._start = self._offset
            return
        if self.shards:
            self.shards[-1].bytes += length + 1
        self._offset += length + (1 if newline else 0)
        self._unterminated = not newline

    def _close_piece(self) -> None:
        if self.shards and self._offset > self._start:
            piece = Piece(self._uri, self._start, self._offset, newline=self._unterminated)
            self.shards[-1].pieces.append(piece)
        self._start = self._offset
        self._unterminated = False

    def finish(self) -> list[PlannedShard]:
        self._close_piece()
        return self.shards

    @property
    def split(self) -> bool:
        return self.requests > self.max_rows or self.too_big_file
