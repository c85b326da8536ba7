"""The operator's command line: the commands of its image, and a clear word where the stand-ins went."""

from __future__ import annotations

import pathlib
import re

import pytest

from batch_inference_operator.__main__ import main


@pytest.mark.parametrize(("old", "new"), [(["local-stack", "up", "--dir", "x"], "up --dir DIR"), (["demo"], "demo")])
def test_the_old_local_stack_spellings_say_where_they_moved(
    old: list[str], new: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(old) == 2
    assert f"python -m local_stack {new}" in capsys.readouterr().err


def test_crd_prints_the_generated_crd(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["crd"]) == 0
    assert "kind: CustomResourceDefinition" in capsys.readouterr().out


def test_a_settle_window_too_short_for_any_create_is_refused_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    from batch_inference_operator.settings import Settings

    monkeypatch.setenv("BIJ_VERTEX_TIMEOUT", "60")
    monkeypatch.setenv("BIJ_CREATE_SETTLE", "30")
    with pytest.raises(ValueError, match="BIJ_CREATE_SETTLE=30 must exceed BIJ_VERTEX_TIMEOUT"):
        Settings.from_env()
    monkeypatch.setenv("BIJ_LOCATIONS", "europe-west4")
    monkeypatch.setenv("BIJ_CREATE_SETTLE", "200")
    with pytest.raises(ValueError, match="BIJ_DEFAULT_LOCATION='us-central1' is not in the supported locations"):
        Settings.from_env()


# ---------------------------------------------------------------- python -m local_stack


@pytest.mark.parametrize(
    ("command", "says"),
    [
        ("up", "state is in memory only"),
        ("mb", "make a bucket"),
        ("put", "upload a file"),
        ("bq-load", "load a JSONL file into a BigQuery table"),
        ("ls", "list the objects"),
        ("cat", "print an object"),
        ("demo", "run the examples end to end"),
        ("kube-api", "serve only the Kubernetes API"),
    ],
)
def test_each_local_stack_command_has_its_own_help(command: str, says: str, capsys: pytest.CaptureFixture[str]) -> None:
    from local_stack.__main__ import main as local_stack

    with pytest.raises(SystemExit) as exited:
        local_stack([command, "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: python -m local_stack {command}") and says in " ".join(out.split())


def test_data_commands_without_a_running_stack_say_how_to_start_one(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from local_stack.__main__ import main as local_stack

    assert local_stack(["mb", "gs://my-bucket", "--dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "no local stack is running" in err and f"python -m local_stack up --dir {tmp_path}" in err

    (tmp_path / "endpoints.json").write_text('{"gcs": "http://127.0.0.1:9", "bigquery": "http://127.0.0.1:9"}')
    assert local_stack(["ls", "gs://my-bucket", "--dir", str(tmp_path)]) == 1
    assert "does not answer (it stopped?)" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("uri", "parts", "says"),
    [
        ("gs:/bucket/x", 0, "is not a Cloud Storage URI: write gs://BUCKET/PATH"),
        ("gs://B/x", 0, "is not a bucket name"),
        ("demo-project:d.t", 3, "is not a BigQuery URI: write bq://PROJECT.DATASET.TABLE"),
        ("bq://demo-project.d", 3, "does not name a table"),
        ("bq://demo-project.d.t.u", 2, "does not name a dataset: write bq://PROJECT.DATASET"),
    ],
)
def test_data_uris_are_refused_saying_how_to_write_them(uri: str, parts: int, says: str) -> None:
    from local_stack.data import DataError, split_bq, split_gcs

    with pytest.raises(DataError, match=re.escape(says)):
        split_bq(uri, parts) if parts else split_gcs(uri)


def test_bq_load_reads_a_schema_from_the_first_row(tmp_path: pathlib.Path) -> None:
    from local_stack.data import DataError, infer_schema

    rows = tmp_path / "rows.jsonl"
    rows.write_text('\n{"id": "a", "n": 3, "score": 0.5, "ok": true, "request": {"contents": []}}\n')
    assert infer_schema(rows) == [
        {"name": "id", "type": "STRING"},
        {"name": "n", "type": "INTEGER"},
        {"name": "score", "type": "FLOAT"},
        {"name": "ok", "type": "BOOLEAN"},
        {"name": "request", "type": "JSON"},
    ]
    rows.write_text('{"id": "a"}\n')
    with pytest.raises(DataError, match="must be a JSON object with a `request`"):
        infer_schema(rows)
    rows.write_text("id,request\n")
    with pytest.raises(DataError, match="the first line is not JSON"):
        infer_schema(rows)


def test_up_with_examples_outside_the_repository_says_where_it_looked(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from local_stack.__main__ import main as local_stack

    with pytest.raises(SystemExit) as exited:
        local_stack(["up", "--with-examples", "--examples", str(tmp_path), "--dir", str(tmp_path / "stack")])
    assert exited.value.code == 2
    assert f"--with-examples: no examples in {tmp_path}/ (run from the repository" in capsys.readouterr().err
    assert not (tmp_path / "stack").exists(), "refused before anything started"


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("BIJ_CREATE_RATE", "-1", "must not be negative"),
        ("BIJ_CREATE_CONCURRENCY", "2.5", "must be a whole number"),
        ("BIJ_POLL_INTERVAL", "0", "must be above 0"),
        ("BIJ_POLL_INTERVAL_QUEUED", "fast", "is not a number"),
    ],
)
def test_the_pace_and_poll_settings_are_checked_at_start(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, problem: str
) -> None:
    from batch_inference_operator.settings import Settings

    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=f"{name}=.*{problem}"):
        Settings.from_env()


def test_the_queued_poll_interval_defaults_to_twice_the_poll_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    from batch_inference_operator.settings import Settings

    monkeypatch.setenv("BIJ_POLL_INTERVAL", "7")
    assert Settings.from_env().queued_poll_interval == 14
    monkeypatch.setenv("BIJ_POLL_INTERVAL_QUEUED", "3")
    assert Settings.from_env().queued_poll_interval == 7, "never shorter than the moving interval"
