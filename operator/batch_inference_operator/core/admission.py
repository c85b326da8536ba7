"""The concurrency queue: at most `maxConcurrentJobs` Vertex jobs per project and location, oldest first."""

from __future__ import annotations

from dataclasses import dataclass

from .identity import Resource

# Phases in which a resource holds a slot (its job is submitted, or about to be).
ACTIVE_PHASES = frozenset({"Pending", "Running", "Resuming"})


@dataclass(frozen=True)
class Peer:
    """Another BatchInferenceJob, as the concurrency queue needs to see it."""

    uid: str
    created: str  # creationTimestamp (whole seconds): queue order
    name: str  # "namespace/name": breaks ties within a second
    project: str | None
    location: str | None
    phase: str | None
    attempted: bool  # has at least one attempt (submitted, or about to be)


@dataclass(frozen=True)
class Queue:
    """`maxConcurrentJobs` per project and location (0: no limit), and the other resources."""

    limit: int = 0
    peers: tuple[Peer, ...] = ()


def admission(resource: Resource, created: str, project: str, location: str, queue: Queue) -> tuple[bool, int, int]:
    """(admitted, running, position): jobs holding a slot in this project/location, and this resource's
    place among those waiting, oldest first. A soft limit: two resources deciding at the same instant
    from the same view may both take the last slot."""
    if queue.limit <= 0:
        return True, 0, 0
    # A peer whose project or location is not resolved yet (created a moment ago) may be in this queue.
    same = [
        p
        for p in queue.peers
        if p.uid != resource.uid
        and (p.project, p.location) in ((project, location), (None, None), (project, None), (None, location))
    ]
    running = sum(1 for p in same if p.attempted and p.phase in ACTIVE_PHASES)
    ahead = sum(
        1
        for p in same
        if not p.attempted
        and p.phase in ("Queued", "Pending", None)
        and (p.created, p.name) < (created, f"{resource.namespace}/{resource.name}")
    )
    return running + ahead < queue.limit, running, ahead + 1
