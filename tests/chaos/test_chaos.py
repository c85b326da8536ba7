"""Chaos trials on the whole local stack: never pay twice, never lose, never hang.

Each test runs a batch of trials on one stack; each trial is a fresh set of resources in its own
namespace with a plan drawn from its seed (`chaos_plan`), judged by `chaos_verdict`. `make test` runs
a slice (`BIJ_CHAOS_TRIALS`, default 20); `make chaos` runs 200 and prints the summary table at the end.
`BIJ_CHAOS_SEEDS=3,17` runs exactly those seeds; `BIJ_CHAOS_SEED` moves the first seed.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from chaos_plan import OPERATOR_ENV, draw
from chaos_report import LOG_LINES, Tally, failure_report
from chaos_trial import Trial
from chaos_verdict import judge

PER_TEST = 5  # trials per test function (one stack each): bounds a test's time


def seeds() -> list[int]:
    chosen = [int(s) for s in os.environ.get("BIJ_CHAOS_SEEDS", "").split(",") if s.strip()]
    if chosen:
        return chosen
    first = int(os.environ.get("BIJ_CHAOS_SEED", "1000"))
    return list(range(first, first + int(os.environ.get("BIJ_CHAOS_TRIALS", "20"))))


BATCHES = [seeds()[i : i + PER_TEST] for i in range(0, len(seeds()), PER_TEST)]


@pytest.fixture(scope="module")
def tally(request: pytest.FixtureRequest) -> Iterator[Tally]:
    """Collects every trial of the module; prints the summary table once, after the last test."""
    collected = Tally()
    yield collected
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print("\n" + collected.table(), flush=True)


@pytest.fixture
async def chaos_stack(gcs: Any, bigquery: Any, tmp_path: pathlib.Path) -> AsyncIterator[Any]:
    """The local stack (as conftest's `stack`), its operator started with the trials' small settings."""
    from local_stack.stack import LocalStack

    async with LocalStack(tmp_path / "stack", gcs=gcs, bigquery=bigquery, operator_env=dict(OPERATOR_ENV)) as running:
        yield running


@pytest.mark.slow
@pytest.mark.parametrize("batch", BATCHES, ids=[f"seeds-{b[0]}-{b[-1]}" for b in BATCHES])
async def test_chaos_trials(chaos_stack: Any, bucket: Any, tally: Tally, batch: list[int]) -> None:
    stack = chaos_stack
    failures = []
    for seed in batch:
        trial = Trial(stack, bucket, draw(seed))
        try:
            run = await trial.execute()
        except Exception as error:  # the harness or the stack broke: say which seed, stop the batch
            log = stack.operator_log()[trial.run.log_offset :].splitlines()[-LOG_LINES:]
            notes = "\n".join(trial.run.notes)
            pytest.fail(f"seed {seed}: the trial could not run: {error!r}\n{notes}\n" + "\n".join(log))
        verdict = judge(run)
        tally.add(run, verdict)
        print(
            f"seed {seed}: {run.seconds:.1f} s, kinds {run.plan.kinds}, kills {run.kills_by}, "
            f"phases {verdict.phases}, failed {verdict.failed}"
        )
        print("\n".join(f"  {note}" for note in run.notes))
        if verdict.failed:
            failures.append(failure_report(run, verdict, stack.operator_log()))
        await trial.clean_up()
    assert not failures, "\n\n".join(failures)
