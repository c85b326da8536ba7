"""The Vertex emulator's list holding many jobs: a page from the index, beside the former way (render
every job, filter and sort them all per page) in the same run.

    .venv/bin/python benchmarks/bench_emulator_list.py [--jobs 10000]

Jobs are put straight into the engine's registry and index (their lifecycles are not started), so the
figures are the list's own cost. Printed as the bench table's rows (see bench_scale.py).
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import time
from collections.abc import Callable

from vertex_batch_emulator.engine import Engine
from vertex_batch_emulator.filtering import compile_filter
from vertex_batch_emulator.jobs import Job

START = datetime.datetime(2026, 11, 1, tzinfo=datetime.UTC)
LIVE_FILTER = 'labels.bij-managed:* AND (state="JOB_STATE_RUNNING" OR state="JOB_STATE_QUEUED")'


def fill(engine: Engine, count: int) -> None:
    for number in range(count):
        job = Job(
            id=str(10**18 + number),
            project="bench",
            location="us-central1",
            display_name=f"bij-{number}",
            model="publishers/google/models/gemini-2.5-flash",
            model_id="gemini-2.5-flash",
            input_config={"instancesFormat": "jsonl", "gcsSource": {"uris": [f"gs://in/{number}.jsonl"]}},
            output_config={"predictionsFormat": "jsonl", "gcsDestination": {"outputUriPrefix": "gs://out/"}},
            labels={"bij-managed": "true", "bij-uid": f"u{number}"},
            create_time=START + datetime.timedelta(seconds=number),
            state="JOB_STATE_RUNNING" if number % 10 == 0 else "JOB_STATE_SUCCEEDED",
        )
        engine.jobs[job.id] = job
        engine.index.add(job)


def former_list(engine: Engine, text: str, size: int, token: str | None) -> tuple[list[Job], str | None]:
    """The list before the index: render, filter and sort every job of the project for each page."""
    predicate = compile_filter(text)
    jobs = sorted(engine.jobs.values(), key=lambda j: int(j.id), reverse=True)
    if token:
        jobs = [j for j in jobs if int(j.id) < int(token)]
    matched: list[Job] = []
    for job in jobs:
        if predicate(job.to_rest()):
            if len(matched) == size:
                return matched, matched[-1].id
            matched.append(job)
    return matched, None


def walk(lister: Callable[[str | None], tuple[list[Job], str | None]]) -> tuple[float, int, int]:
    """Seconds per page (median), pages and jobs of a whole listing."""
    times, token, jobs = [], None, 0
    while True:
        started = time.perf_counter()
        page, token = lister(token)
        times.append(time.perf_counter() - started)
        jobs += len(page)
        if token is None:
            return statistics.median(times), len(times), jobs


def measure(count: int) -> list[tuple[str, str, str, bool]]:
    engine = Engine()
    fill(engine, count)
    rows = []
    for label, text, size in [
        ("all jobs, pages of 100", "", 100),
        ("live jobs only, pages of 100", LIVE_FILTER, 100),
    ]:
        fast, pages, jobs = walk(lambda token, t=text, s=size: engine.list("bench", "us-central1", t, s, token))
        slow, slow_pages, slow_jobs = walk(lambda token, t=text, s=size: former_list(engine, t, s, token))
        assert (pages, jobs) == (slow_pages, slow_jobs), "the index and the former list disagree"
        rows.append(
            (
                f"emulator list, {count:,} jobs, {label}",
                f"{fast * 1000:.2f} ms/page ({pages} pages, {jobs:,} jobs); former {slow * 1000:.0f} ms/page",
                "a page of 100 in milliseconds (< 10 ms)",
                fast < 0.010,
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=10_000)
    args = parser.parse_args()
    for name, figure, goal, met in measure(args.jobs):
        print(f"{name}: {figure} | goal {goal} | {'met' if met else 'MISSED'}")


if __name__ == "__main__":
    main()
