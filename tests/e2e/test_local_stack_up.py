"""`python -m local_stack up` as a first-time user meets it: the examples run as the banner says, then
their own JSONL goes into a bucket and a BigQuery table with `mb`, `put` and `bq-load`, jobs on it
are waited on with `kubectl wait --for=condition=Finished`, the results are read with `ls` and `cat`,
and once the stack stops the commands say so."""

from __future__ import annotations

import asyncio
import json
import pathlib
import signal
import sys
from typing import Any

import yaml

from conftest import EXAMPLES, REPO, run_kubectl

START_TIMEOUT = 120


async def local_stack(directory: pathlib.Path, *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "local_stack", *args, "--dir", str(directory)),
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode or 0, out.decode().strip(), err.decode().strip()


async def read_banner(process: asyncio.subprocess.Process) -> str:
    assert process.stdout is not None
    lines: list[str] = []
    while not lines or lines[-1] != "Ctrl-C stops it.":
        line = await process.stdout.readline()
        if not line:
            raise AssertionError("local_stack up exited:\n" + "\n".join(lines))
        lines.append(line.decode().rstrip("\n"))
    return "\n".join(lines)


def own_job(name: str, source: dict[str, Any], output: dict[str, Any]) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "batchinference.dev/v1alpha1",
            "kind": "BatchInferenceJob",
            "metadata": {"name": name},
            "spec": {"model": "gemini-2.5-flash", "input": source, "output": output},
        }
    )


async def finished(kubeconfig: pathlib.Path, name: str) -> dict[str, Any]:
    code, _, err = await run_kubectl(kubeconfig, "wait", "--for=condition=Finished", f"bij/{name}", "--timeout=50s")
    assert code == 0, err
    _, out, _ = await run_kubectl(kubeconfig, "get", "bij", name, "-o", "json")
    return json.loads(out)["status"]


async def test_up_with_examples_then_own_data(tmp_path: pathlib.Path) -> None:
    directory = tmp_path / "stack"
    kubeconfig = directory / "kubeconfig"
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "local_stack", "up", "--dir", str(directory), "--with-examples"),
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        banner = await asyncio.wait_for(read_banner(process), START_TIMEOUT)
        assert "Everything is in memory" in banner and "gone when it stops" in banner
        assert "  bigquery  http://127.0.0.1:" in banner, banner
        assert "gs://demo-batch-inputs/reviews/requests.jsonl" in banner
        assert "apply -f examples/gcs-job.yaml" in banner and "--for=condition=Finished" in banner

        # The banner's hint works as printed.
        code, _, err = await run_kubectl(kubeconfig, "apply", "-f", str(EXAMPLES / "gcs-job.yaml"))
        assert code == 0, err
        assert (await finished(kubeconfig, "reviews-sentiment"))["phase"] == "Succeeded"

        # Their own data: a bucket, a file, a table.
        rows = [
            {"key": f"mine-{i}", "request": {"contents": [{"role": "user", "parts": [{"text": f"Say {i}"}]}]}}
            for i in range(3)
        ]
        mine = tmp_path / "mine.jsonl"
        mine.write_text("".join(json.dumps(row) + "\n" for row in rows))
        assert (await local_stack(directory, "mb", "gs://own-data"))[1] == "made bucket gs://own-data"
        code, out, err = await local_stack(directory, "put", str(mine), "gs://own-data/in/")
        assert (code, out) == (0, f"uploaded {mine} to gs://own-data/in/mine.jsonl"), err
        code, out, err = await local_stack(directory, "bq-load", str(mine), "bq://demo-project.own.requests")
        assert (code, out) == (0, f"loaded 3 rows from {mine} into bq://demo-project.own.requests (us-central1)"), err
        assert (await local_stack(directory, "mb", "bq://demo-project.own_results"))[0] == 0

        gcs_job = own_job(
            "own-gcs", {"gcs": {"uris": ["gs://own-data/in/mine.jsonl"]}}, {"gcs": {"uriPrefix": "gs://own-data/out/"}}
        )
        bq_job = own_job(
            "own-bq",
            {"bigquery": {"table": "bq://demo-project.own.requests"}},
            {"bigquery": {"dataset": "bq://demo-project.own_results"}},
        )
        for manifest in (gcs_job, bq_job):
            code, _, err = await run_kubectl(kubeconfig, "apply", "-f", "-", stdin=manifest)
            assert code == 0, err
        gcs_status = await finished(kubeconfig, "own-gcs")
        bq_status = await finished(kubeconfig, "own-bq")
        assert (gcs_status["phase"], gcs_status["completionStats"]["successful"]) == ("Succeeded", 3)
        assert (bq_status["phase"], bq_status["completionStats"]["successful"]) == ("Succeeded", 3)

        _, listing, _ = await local_stack(directory, "ls", "gs://own-data/out/")
        predictions = f"{gcs_status['outputLocation']}/predictions.jsonl"
        assert predictions in listing.split()
        _, text, _ = await local_stack(directory, "cat", predictions)
        assert sorted(json.loads(line)["key"] for line in text.splitlines()) == ["mine-0", "mine-1", "mine-2"]
        _, table, _ = await local_stack(directory, "cat", bq_status["outputLocation"], "--rows", "5")
        assert sorted(json.loads(line)["key"] for line in table.splitlines()) == ["mine-0", "mine-1", "mine-2"]
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(process.wait(), 60) == 0

    # Stopped: the state is gone, and the commands say there is no stack.
    assert not (directory / "endpoints.json").exists()
    code, _, err = await local_stack(directory, "ls", "gs://own-data/")
    assert code == 1 and "no local stack is running" in err
