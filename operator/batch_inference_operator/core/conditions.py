"""metav1.Condition bookkeeping on the status."""

from __future__ import annotations

import datetime

from ..api import BatchInferenceJobStatus, Condition


def set_condition(
    status: BatchInferenceJobStatus,
    type_: str,
    value: bool | None,
    reason: str,
    message: str,
    now: datetime.datetime,
    generation: int,
) -> None:
    """metav1.Condition semantics: lastTransitionTime moves only when the status value changes."""
    text = "Unknown" if value is None else ("True" if value else "False")
    for index, condition in enumerate(status.conditions):
        if condition.type == type_:
            moved = condition.status != text
            status.conditions[index] = Condition(
                type=type_,
                status=text,
                reason=reason,
                message=message,
                last_transition_time=now if moved else condition.last_transition_time,
                observed_generation=generation,
            )
            return
    status.conditions.append(
        Condition(
            type=type_,
            status=text,
            reason=reason,
            message=message,
            last_transition_time=now,
            observed_generation=generation,
        )
    )


def is_true(status: BatchInferenceJobStatus, type_: str) -> bool:
    return any(c.type == type_ and c.status == "True" for c in status.conditions)
