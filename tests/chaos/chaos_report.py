"""What a chaos run prints: a report per failed trial (seed, plan, what happened, the operator's log) and
one summary table for the whole run."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from chaos_plan import API_KINDS, KILL_TRIGGERS, RESOURCE_KINDS
from chaos_trial import Run
from chaos_verdict import DEFINITIONS, Verdict, brief

LOG_LINES = 150


@dataclass
class Tally:
    """Every trial of the run (across the test functions that share it)."""

    trials: list[tuple[Run, Verdict]] = field(default_factory=list)

    def add(self, run: Run, verdict: Verdict) -> None:
        self.trials.append((run, verdict))

    def table(self) -> str:
        if not self.trials:
            return "chaos: no trials ran"
        seconds = sum(run.seconds for run, _ in self.trials)
        lines = [
            f"chaos: {len(self.trials)} trials, {seconds:.0f} s in trials ({seconds / len(self.trials):.1f} s each)",
            "",
            f"{'':26}{'trials':>7}{'duplicates':>12}{'lost':>6}{'stuck':>7}{'leaked':>8}{'fired':>7}",
            self._row("all", [v for _, v in self.trials], None),
            "by fault kind (fired: api faults and job faults the emulator applied, rows it failed, spec changes made):",
        ]
        for kind in (*API_KINDS, *RESOURCE_KINDS):
            chosen = [(run, verdict) for run, verdict in self.trials if kind in run.plan.kinds]
            fired = sum(run.fired.get(kind, 0) for run, _ in chosen)
            lines.append(self._row(f"  {kind}", [v for _, v in chosen], fired))
        planned = Counter(kill.trigger for run, _ in self.trials for kill in run.plan.kills)
        done = Counter()
        for run, _ in self.trials:
            done.update(run.kills_by)
        lines.append(
            "kills performed: "
            + ", ".join(f"{trigger} {done[trigger]} of {planned[trigger]}" for trigger in KILL_TRIGGERS)
            + f"; total {sum(done.values())} (a targeted kill whose trigger never came is skipped)"
        )
        phases = Counter(phase for _, verdict in self.trials for phase in verdict.phases.values())
        lines.append("end phases: " + ", ".join(f"{phase} {count}" for phase, count in phases.most_common()))
        failed = [run.plan.seed for run, verdict in self.trials if verdict.failed]
        lines.append(f"failed trials (seeds): {failed or 'none'}")
        lines += ["", "definitions:", DEFINITIONS]
        return "\n".join(lines)

    @staticmethod
    def _row(label: str, verdicts: list[Verdict], fired: int | None) -> str:
        counts = [
            sum(len(getattr(v, measure)) for v in verdicts) for measure in ("duplicates", "lost", "stuck", "leaked")
        ]
        tail = "" if fired is None else f"{fired:>7}"
        return f"{label:<26}{len(verdicts):>7}{counts[0]:>12}{counts[1]:>6}{counts[2]:>7}{counts[3]:>8}{tail}"


def failure_report(run: Run, verdict: Verdict, operator_log: str) -> str:
    """Everything needed to understand and reproduce one failed trial."""
    seed = run.plan.seed
    lines = [
        f"==== chaos trial FAILED: seed {seed} (reproduce: BIJ_CHAOS_SEEDS={seed} make chaos)",
        f"plan: {run.plan.describe()}",
        "what the harness did:",
        *(f"  {note}" for note in run.notes),
    ]
    for measure in ("duplicates", "lost", "stuck", "leaked"):
        lines += [f"{measure}:", *(f"  {item}" for item in getattr(verdict, measure))]
    lines.append("Vertex jobs of the trial:")
    lines += [f"  uid {job['labels'].get('bij-uid', '')[:8]} {brief(job)}" for job in run.jobs]
    lines.append("resources at the end:")
    for name, obj in run.objects.items():
        lines.append(f"  {name}: {json.dumps(_status_summary(obj))}")
    lines += ["Events of the trial's resources:", *(f"  {event}" for event in run.events)]
    tail = operator_log[run.log_offset :].splitlines()[-LOG_LINES:]
    lines += [f"operator log (last {len(tail)} lines of the trial):", *tail]
    return "\n".join(lines)


def _status_summary(obj: dict[str, Any] | None) -> dict[str, Any]:
    if obj is None:
        return {"gone": True}
    status = obj.get("status") or {}
    return {
        "uid": obj["metadata"]["uid"],
        "phase": status.get("phase"),
        "message": status.get("message"),
        "attempts": status.get("attempts"),
        "conditions": [(c["type"], c["status"], c["reason"]) for c in status.get("conditions") or []],
        "usage": status.get("usage"),
    }
