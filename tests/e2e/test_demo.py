"""`make demo` runs `python -m local_stack demo`: it must pass, and say what it did."""

from __future__ import annotations

import asyncio
import sys

from conftest import REPO


async def test_demo_runs_every_example_to_success() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "local_stack",
        "demo",
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 300)
    text = out.decode()
    assert process.returncode == 0, text
    assert "reviews-sentiment: 300 requests succeeded" in text
    assert "catalog-descriptions: 200 requests succeeded" in text
    assert "reviews-sharded: 300 requests succeeded in 3 shards" in text
    assert "reviews-sharded/results-manifest.jsonl: 300 rows, 300 succeeded, 0 failed, 0 missing" in text
    assert "review-0000: succeeded, shard 1, gs://demo-batch-outputs/reviews-sharded/shards/output-00001/" in text
    assert (
        "support-tickets-triage: 120 requests succeeded; output: bq://demo-project.support_results.predictions_" in text
    )
    assert text.count("review-0") >= 3 and text.count("sku-00") >= 3, "result rows are shown"
    assert text.count("T-0") >= 3, "the BigQuery job's rows are shown, read from its output table"
    assert "from the implicit cache, hit ratio 0%" in text, "the reviews share no long prefix"
    assert "hit ratio 8" in text or "hit ratio 9" in text, "the catalog shares a long style guide"
