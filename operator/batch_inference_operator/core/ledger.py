"""The ledger: every input row joined, by its key, to the output row that answers it.

Pure. The input is streamed row by row in its own order; each shard's final output is read once into
an index of key -> where its answer is (one small tuple per row), so memory is bounded by one shard's
rows (at most Vertex's 200,000 per job), never by the whole input. A row's answer is in the *latest*
output of its shard: a resumed attempt's output holds every row, the carried ones too, so a row
carried through resumes is found, and counted, once.

Outcomes: `succeeded` (a response and no status), `failed` (a status, with its text; or no response:
the job stopped before running it), `missing` (in the input, in no output row). An output row whose key
appears twice counts once (a success wins over a failure); output rows of keys not in the input are
counted as `unmatched`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson

from .keys import CONTENT_KEY_PREFIX, content_key, row_key

SUCCEEDED, FAILED, MISSING = "succeeded", "failed", "missing"
NOT_RUN = "not run: the Vertex job stopped before this request"
_RANK = {SUCCEEDED: 0, FAILED: 1}


class Answer(NamedTuple):
    outcome: str  # succeeded | failed
    position: int  # line of the output file (1-based), or row of the output table
    error: str | None


class Shard(NamedTuple):
    """One shard: its index (1-based), its input files or table, and where its final output is: a
    Cloud Storage predictions file or a BigQuery table."""

    index: int
    inputs: tuple[str, ...]
    output: str | None  # None: no attempt wrote an output (every row is missing)


@dataclass
class OutputIndex:
    """Where each key's answer is in one output; rows that cannot be keyed are counted, not kept.

    Identical requests without a key of their own share a content key: their answers are kept in output
    order and handed out one per input row (`take`), as any of them answers any of those rows."""

    answers: dict[str, Answer] = field(default_factory=dict)
    repeats: dict[str, list[Answer]] = field(default_factory=dict)  # content keys answered more than once
    duplicates: int = 0
    unreadable: int = 0

    def add(self, key: str, answer: Answer) -> None:
        seen = self.answers.get(key)
        if seen is None:
            self.answers[key] = answer
            return
        if key.startswith(CONTENT_KEY_PREFIX):
            self.repeats.setdefault(key, []).append(answer)
            return
        self.duplicates += 1
        if _RANK[answer.outcome] < _RANK[seen.outcome]:
            self.answers[key] = answer

    def take(self, key: str, taken: set[str]) -> Answer | None:
        """The answer for one input row with this key; a content key's next answer on each call."""
        if key not in taken:
            taken.add(key)
            return self.answers.get(key)
        more = self.repeats.get(key)
        return more.pop(0) if more else None

    def left_over(self, taken: set[str]) -> int:
        """Answers no input row took: output rows that answer nothing in this shard's input."""
        return len(self.answers.keys() - taken) + sum(len(more) for more in self.repeats.values())


def key_of(row: dict[str, Any], key_field: str) -> str:
    """The row's key as preflight takes it; a key field holding something no key can be (preflight refuses
    it, unless preflight was off) falls back to the content key, the same on both sides of the join."""
    return row_key(row, key_field) or content_key(row.get("request"))


def answer_of(row: dict[str, Any], position: int) -> Answer:
    """A Vertex output row's outcome, by the rules of `usage.scan`."""
    status = row.get("status")
    if status:
        return Answer(FAILED, position, str(status))
    if row.get("response"):
        return Answer(SUCCEEDED, position, None)
    return Answer(FAILED, position, NOT_RUN)


def index_rows(rows: Iterable[tuple[int, dict[str, Any] | None]], key_field: str) -> OutputIndex:
    """Index output rows given as (position, row); a row that is None or not an object is unreadable."""
    index = OutputIndex()
    for position, row in rows:
        if not isinstance(row, dict):
            index.unreadable += 1
            continue
        index.add(key_of(row, key_field), answer_of(row, position))
    return index


def parsed_lines(lines: Iterable[bytes]) -> Iterator[tuple[int, Any]]:
    """(line number, parsed row or None when not JSON) for each non-blank JSONL line."""
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            yield number, orjson.loads(line)
        except orjson.JSONDecodeError:
            yield number, None


def index_output(lines: Iterable[bytes], key_field: str) -> OutputIndex:
    """A Cloud Storage output file, streamed."""
    return index_rows(parsed_lines(lines), key_field)


class InputRow(NamedTuple):
    source: str  # the input file or table
    position: int  # its line (or row)
    key: str
    raw: bytes | None  # the line as read (to resubmit it when missing); None for a table row


def input_rows(source: str, lines: Iterable[bytes], key_field: str) -> Iterator[InputRow]:
    """A JSONL input file's rows with their keys. Preflight has checked every line is a JSON object."""
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        row = orjson.loads(line)
        yield InputRow(source, number, key_of(row if isinstance(row, dict) else {}, key_field), line)


@dataclass
class Totals:
    """Rows by outcome; `unmatched` output rows answer no input row, `duplicates` answer one twice."""

    total: int = 0
    succeeded: int = 0
    failed: int = 0
    missing: int = 0
    duplicates: int = 0
    unmatched: int = 0
    unreadable: int = 0

    def add(self, other: Totals) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


class Entry(NamedTuple):
    """One manifest row, and the input row it is about."""

    row: dict[str, Any]
    input: InputRow


def join(shard: Shard, inputs: Iterable[InputRow], index: OutputIndex, totals: Totals) -> Iterator[Entry]:
    """The shard's manifest rows in input order; `totals` is updated as they are produced. A table
    output names `table` and `row`, a file output `file` and `line`."""
    table = shard.output is not None and shard.output.startswith("bq://")
    where = ("table", "row") if table else ("file", "line")
    used: set[str] = set()
    totals.duplicates += index.duplicates
    totals.unreadable += index.unreadable
    for item in inputs:
        totals.total += 1
        answer = index.take(item.key, used)
        row: dict[str, Any] = {"key": item.key, "outcome": MISSING, "shard": shard.index}
        if answer is None:
            totals.missing += 1
        else:
            row["outcome"] = answer.outcome
            row[where[0]], row[where[1]] = shard.output, answer.position
            if answer.outcome == SUCCEEDED:
                totals.succeeded += 1
            else:
                totals.failed += 1
                row["error"] = answer.error
        row["input"], row["inputLine" if not item.source.startswith("bq://") else "inputRow"] = (
            item.source,
            item.position,
        )
        yield Entry(row, item)
    totals.unmatched += index.left_over(used)


def manifest_lines(entries: Iterable[Entry]) -> Iterator[bytes]:
    """JSONL of the manifest rows."""
    for entry in entries:
        yield orjson.dumps(entry.row) + b"\n"
