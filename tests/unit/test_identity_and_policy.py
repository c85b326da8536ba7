"""Who a job belongs to, and what a namespace may use: labels that identify whole names, the project
allow-list and the list of locations that serve Gemini batch."""

from __future__ import annotations

from test_reconcile import DEFAULTS, RESOURCE, T0, condition, empty, spec

from batch_inference_operator.core.actions import SubmitJob
from batch_inference_operator.core.decide import decide
from batch_inference_operator.core.identity import Resource, label_value
from batch_inference_operator.core.policy import NamespaceAnnotations, Tenancy

LONG = "a" * 63


def test_names_sharing_their_first_63_characters_get_different_labels() -> None:
    first, second = label_value(LONG + "-one"), label_value(LONG + "-two")
    assert first != second and len(first) == len(second) == 63
    assert label_value("reviews.v2") == "reviews_v2", "short names keep their readable label"


def submit_of(resource: Resource) -> SubmitJob:
    s = spec()
    marked = decide(s, empty(), None, resource, DEFAULTS, T0).status
    action = decide(s, marked, None, resource, DEFAULTS, T0).actions[0]
    assert isinstance(action, SubmitJob)
    return action


def test_two_long_names_never_look_for_each_others_jobs() -> None:
    one = submit_of(Resource("team-a", LONG + "-one", "uid-1"))
    two = submit_of(Resource("team-a", LONG + "-two", "uid-2"))
    assert one.adopt_labels and two.adopt_labels
    assert one.adopt_labels["bij-name"] != two.adopt_labels["bij-name"]
    assert one.request.labels["bij-name"] == one.adopt_labels["bij-name"]


def test_a_project_outside_the_namespaces_allow_list_fails_before_anything_is_created() -> None:
    tenancy = NamespaceAnnotations.read({"batchinference.dev/allowed-projects": "team-a-project, shared-project"})
    policy = tenancy.tenancy("team-a-project", "us-central1")
    decision = decide(spec(project="team-b-project"), empty(), None, RESOURCE, policy, T0)
    assert decision.status.phase == "Failed" and decision.actions == []
    assert condition(decision.status, "Failed") == ("True", "PolicyViolation")
    assert "project team-b-project is not among the namespace's allowed projects" in (decision.status.message or "")
    allowed = decide(spec(project="shared-project"), empty(), None, RESOURCE, policy, T0)
    assert allowed.status.phase == "Pending"


def test_a_location_that_serves_no_gemini_batch_fails_at_once() -> None:
    tenancy = Tenancy("demo-project", "us-central1", supported_locations=frozenset({"us-central1", "europe-west4"}))
    decision = decide(spec(location="mars-central1"), empty(), None, RESOURCE, tenancy, T0)
    assert decision.status.phase == "Failed" and decision.actions == []
    assert condition(decision.status, "Failed") == ("True", "InvalidSpec")
    assert "'mars-central1' does not serve Gemini batch prediction; use one of europe-west4, us-central1" in (
        decision.status.message or ""
    )
