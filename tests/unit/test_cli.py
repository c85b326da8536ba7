"""The operator's command line: the commands of its image, and a clear word where the stand-ins went."""

from __future__ import annotations

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
