"""The emulator's list index pages exactly as filtering every job and sorting them newest first would."""

from __future__ import annotations

import datetime

import pytest

from vertex_batch_emulator.filtering import compile_filter
from vertex_batch_emulator.jobs import Job, project_number
from vertex_batch_emulator.listing import JobIndex

START = datetime.datetime(2026, 11, 1, tzinfo=datetime.UTC)


def job(number: int, project: str, location: str = "us-central1") -> Job:
    return Job(
        id=str(10**18 + number),
        project=project,
        location=location,
        display_name=f"job-{number}",
        model="publishers/google/models/gemini-2.5-flash",
        model_id="gemini-2.5-flash",
        input_config={},
        output_config={},
        labels={"team": "a" if number % 3 else "b"},
        create_time=START + datetime.timedelta(seconds=number),
        state="JOB_STATE_SUCCEEDED" if number % 2 else "JOB_STATE_RUNNING",
    )


def pages(index: JobIndex, jobs: dict[str, Job], project: str, text: str, size: int) -> list[list[str]]:
    found, token = [], None
    while True:
        page, token = index.page(jobs, project, "us-central1", compile_filter(text), size, token and int(token))
        found.append([j.id for j in page])
        if token is None:
            return found


def test_pages_hold_the_matching_jobs_newest_first_with_tokens_between() -> None:
    index, jobs = JobIndex(), {}
    for number in range(1, 251):
        made = job(number, "p" if number % 5 else "other", "us-central1" if number % 7 else "europe-west4")
        jobs[made.id] = made
        index.add(made)
    text = 'labels.team=a AND state!="JOB_STATE_SUCCEEDED"'
    expected = sorted(
        (
            j.id
            for j in jobs.values()
            if j.project == "p"
            and j.location == "us-central1"
            and j.labels["team"] == "a"
            and j.state != "JOB_STATE_SUCCEEDED"
        ),
        reverse=True,
    )
    found = pages(index, jobs, "p", text, 20)
    assert [i for page in found for i in page] == expected
    assert [len(page) for page in found[:-1]] == [20] * (len(found) - 1) and 0 < len(found[-1]) <= 20
    assert pages(index, jobs, project_number("p"), text, 20) == found, "the project number lists the same jobs"

    removed = jobs.pop(expected[3])
    index.remove(removed)
    assert [i for page in pages(index, jobs, "p", text, 1000) for i in page] == expected[:3] + expected[4:]
    index.clear()
    assert pages(index, jobs, "p", "", 10) == [[]]


@pytest.mark.parametrize(
    "text",
    [
        'display_name="job-8"',
        'display_name:"job-1*"',
        'model_display_name="gemini-2.5-flash"',
        'model_display_name!="gemini-2.5-flash"',
        "state=JOB_STATE_RUNNING",
        'create_time>="2026-11-01T00:01:00Z"',
        "labels.team=b",
        "labels.team:*",
    ],
)
def test_every_documented_filter_field_pages_as_filtering_the_rendered_jobs(text: str) -> None:
    """The index reads a job's fields without rendering it: each field must read as the rendered job."""
    index, jobs = JobIndex(), {}
    for number in range(1, 120):
        made = job(number, "p")
        if number % 4 == 0:
            made.model = "publishers/google/models/gemini-2.0-flash"
        jobs[made.id] = made
        index.add(made)
    predicate = compile_filter(text)
    expected = sorted((j.id for j in jobs.values() if predicate(j.to_rest())), reverse=True)
    assert expected, f"the case {text!r} should match some jobs"
    assert [i for page in pages(index, jobs, "p", text, 25) for i in page] == expected
