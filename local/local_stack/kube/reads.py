"""The read verbs as the apiserver answers them: get one object, list (kind and apiVersion, a
resourceVersion, limit/continue paging), and watch; each as a server-side table when asked."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from .resources import Route
from .store import ObjectStore
from .tables import as_table, wants_table


def read_one(store: ObjectStore, route: Route, params: dict[str, str], accept: str) -> dict[str, Any]:
    obj = store.existing(route)
    return as_table(route.rtype, [obj], params, accept, store.last_rv) if wants_table(accept) else obj


def read_list(store: ObjectStore, route: Route, params: dict[str, str], accept: str) -> dict[str, Any]:
    items = store.matching(route, params)
    start = int(params.get("continue") or 0)
    limit = int(params.get("limit") or 0)
    page = items[start : start + limit] if limit else items[start:]
    metadata: dict[str, Any] = {"resourceVersion": str(store.last_rv)}
    if limit and start + limit < len(items):
        metadata["continue"] = str(start + limit)
        metadata["remainingItemCount"] = len(items) - start - limit
    if wants_table(accept):
        table = as_table(route.rtype, page, params, accept, store.last_rv)
        table["metadata"].update(metadata)
        return table
    return {
        "apiVersion": route.rtype.api_version,
        "kind": f"{route.rtype.kind}List",
        "metadata": metadata,
        "items": page,
    }


def watch_stream(
    store: ObjectStore, route: Route, params: dict[str, str], tabular: bool, client_gone: Callable[[], bool]
) -> AsyncIterator[Any]:
    """The watch events, each object shown as is or as a one-row table (columns in the first only)."""
    first_table = True

    def render(event_type: str, obj: dict[str, Any]) -> dict[str, Any]:
        nonlocal first_table
        if tabular:
            shown = as_table(route.rtype, [obj], params, "", store.last_rv, with_columns=first_table)
            first_table = False
            return {"type": event_type, "object": shown}
        return {"type": event_type, "object": obj}

    return store.watch(route, params, render, client_gone)
