"""Counterexamples the submit protocol model (test_submit_protocol_model.py) found, kept as plain tests:
each replays the shrunk steps on the same model and checks the invariants after every step, then
liveness as the model's teardown does."""

from __future__ import annotations

import datetime
from collections.abc import Callable

from test_submit_protocol_model import SubmitProtocolModel

from batch_inference_operator.core.exactly_once import create_gate


def replay(*steps: Callable[[SubmitProtocolModel], object]) -> SubmitProtocolModel:
    model = SubmitProtocolModel()
    try:
        for step in steps:
            step(model)
            model.assert_invariants()
        model.settle_without_faults()
    finally:
        model.loop.close()
    return model


def test_a_create_sent_long_after_its_marker_is_not_followed_by_a_second_create() -> None:
    """Found by a deep run (3000 examples). The marker is written at 09:00:00, but the turn that creates
    comes only after the settle window (09:02:31: a slow timer, a failover, a long backoff). Its create
    times out, and Vertex makes the job up to the client timeout later (by 09:03:31). The settle window
    counted from the marker had passed already, so the next turn found no job, wrote a new marker, and
    the turn after it created a second job; the first landed after it, and Vertex ran both."""
    model = replay(
        lambda m: m.turn(lists=[True]),  # 09:00:00 the marker is stored; its lookup fails, so no create yet
        lambda m: m.jump(1),  # 09:02:31 the next turn comes after the settle window
        lambda m: m.calm_turn("late"),  # the create times out; Vertex makes the job by 09:03:31
        lambda m: m.restart(),  # (a new process: no backoff to wait out)
        lambda m: m.calm_turn("ok"),  # no job listed yet: before the fix, a new marker
        lambda m: m.timer("ok"),  # 09:02:36 before the fix, a second create
        lambda m: m.jump(1),  # the late create lands
        lambda m: m.vertex_schedules(),  # Vertex starts every pending job
    )
    assert len(model.vertex.jobs) == 1, model.vertex.jobs


def test_a_list_outage_then_a_restart_does_not_lead_to_a_second_create() -> None:
    """The same hole without a clock jump: after the marker, LISTs fail for a while and the backoff grows
    (5, 10, 20, 40, 60 s, each +-20 %), so the create is sent 162 s after the marker; it times out, and
    the operator restarts (no backoff left to wait out)."""
    steps: list[Callable[[SubmitProtocolModel], object]] = [lambda m: m.turn(lists=[True])]
    for wait in (6, 12, 24, 48, 72):  # each backoff passed, with room for its jitter
        steps += [lambda m: m.turn(lists=[True]), lambda m, wait=wait: m.tick(wait)]
    steps += [
        lambda m: m.calm_turn("late"),  # 09:02:42 the create times out; the job lands up to 60 s later
        lambda m: m.restart(),
        lambda m: m.calm_turn("ok"),  # no job listed yet: before the fix, a new marker
        lambda m: m.calm_turn("ok"),  # before the fix, a second create
        lambda m: m.tick(60),  # the late create lands
        lambda m: m.vertex_schedules(),
    ]
    model = replay(*steps)
    assert len(model.vertex.jobs) == 1, model.vertex.jobs


def test_a_fresh_marker_is_created_on_only_while_the_create_would_land_within_its_window() -> None:
    """The rule both counterexamples led to (core/exactly_once.py): every later decision waits out the
    settle window counted from the marker, so the create must land inside it."""
    marker = datetime.datetime(2026, 12, 1, 9, 0, tzinfo=datetime.UTC)
    settle, lands_within = datetime.timedelta(seconds=150), datetime.timedelta(seconds=60)

    def gate(fresh: bool, seconds: int) -> str:
        return create_gate(marker, fresh, marker + datetime.timedelta(seconds=seconds), settle, lands_within)

    assert [gate(True, s) for s in (0, 89, 90, 149, 150)] == ["create", "create", "remark", "remark", "remark"]
    assert [gate(False, s) for s in (0, 89, 90, 149, 150)] == ["wait", "wait", "wait", "wait", "remark"]
    assert create_gate(None, True, marker, settle, lands_within) == "remark"
