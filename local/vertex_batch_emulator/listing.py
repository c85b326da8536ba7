"""The jobs of each project and location in creation order, so a list page costs its own jobs.

Vertex lists newest first with an opaque page token; here the token is the id of the last job on the
page (ids grow with time). A page walks the index backwards from the token and tests each job's filter
fields (display name, state, create time, labels) without rendering the job, stopping as soon as the
page is full and one more match is known; when the filter names the states a job must be in, other
jobs are skipped on their state alone. Holding 10,000 jobs, a page takes milliseconds
(benchmarks/bench_emulator_list.py), where rendering and sorting every job took a second.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator
from typing import Any

from .filtering import required_states
from .jobs import Job, project_number, rfc3339


class JobIndex:
    def __init__(self) -> None:
        self._ids: dict[tuple[str, str], list[int]] = {}  # (project id or number, location) -> ids ascending
        self._fields: dict[str, dict[str, Any]] = {}  # id -> the filter fields that never change

    def _keys(self, job: Job) -> set[tuple[str, str]]:
        return {(job.project, job.location), (project_number(job.project), job.location)}

    def add(self, job: Job) -> None:
        """A new job: its id is larger than every id before it."""
        for key in self._keys(job):
            self._ids.setdefault(key, []).append(int(job.id))
        self._fields[job.id] = {
            "displayName": job.display_name,
            "model": job.model,
            "createTime": rfc3339(job.create_time),
            "labels": job.labels,
        }

    def remove(self, job: Job) -> None:
        for key in self._keys(job):
            ids = self._ids.get(key, [])
            at = bisect.bisect_left(ids, int(job.id))
            if at < len(ids) and ids[at] == int(job.id):
                del ids[at]
        self._fields.pop(job.id, None)

    def clear(self) -> None:
        self._ids.clear()
        self._fields.clear()

    def newest_first(self, project: str, location: str, before: int | None) -> Iterator[str]:
        """Ids of the project's jobs in the location, newest first, older than `before` if given."""
        ids = self._ids.get((project, location), [])
        end = len(ids) if before is None else bisect.bisect_left(ids, before)
        for at in range(end - 1, -1, -1):
            yield str(ids[at])

    def page(
        self,
        jobs: dict[str, Job],
        project: str,
        location: str,
        predicate: Callable[[dict[str, Any]], bool],
        size: int,
        before: int | None,
    ) -> tuple[list[Job], str | None]:
        """Up to `size` matching jobs and the next page's token (None on the last page)."""
        matched: list[Job] = []
        states = required_states(predicate)
        for job_id in self.newest_first(project, location, before):
            job = jobs[job_id]
            if states is not None and job.state not in states:
                continue
            fields = self._fields[job_id]
            fields["state"] = job.state
            if predicate(fields):
                if len(matched) == size:
                    return matched, matched[-1].id
                matched.append(job)
        return matched, None
