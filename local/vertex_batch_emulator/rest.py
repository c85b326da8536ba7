"""The REST surface: Vertex's `batchPredictionJobs` under `v1` and `v1beta1`, plus `/emulator/v1/`.

Every success is HTTP 200 with a JSON body (the SDK accepts nothing else); every error is a
google.rpc.Status `{"error": {code, message, status}}`. A request without a bearer token is refused
with 401, as Vertex refuses it. Requests are counted by method and status code for `stats`.

The control API (no token needed):

| call | does |
|---|---|
| `GET /emulator/v1/jobs` | `{"jobs": [...]}`: every job as the emulator sees it (`Job.describe`), oldest first |
| `GET /emulator/v1/jobs/{id}` | one job, the same way |
| `POST /emulator/v1/jobs/{id}:pause` | RUNNING -> PAUSED: no further row runs, the counts stay as they are |
| `POST /emulator/v1/jobs/{id}:unpause` | PAUSED -> RUNNING: the rows go on from where they stopped |
| `POST /emulator/v1/jobs/{id}:update` | RUNNING -> UPDATING for `{"seconds": S}` (default 1), then RUNNING |
| `POST /emulator/v1/jobs/{id}:stall` | the job keeps its state but makes no progress: no row runs and it does not end |
| `POST /emulator/v1/jobs/{id}:unstall` | the stalled job goes on |
| `GET /emulator/v1/stats` | requests by method and HTTP code, rows by outcome |
| `GET, POST, DELETE /emulator/v1/faults` | the fault plan: read, add to, clear (`faults`) |
| `GET, DELETE /emulator/v1/exchanges` | the latest API calls with their requests and answers (`config`) |
| `POST /emulator/v1/reset` | forget every job, fault and count; abandon held requests |
| `GET, PUT /emulator/v1/config` | the settings (`config`) |

The job calls answer the job as `GET /emulator/v1/jobs/{id}` does; an unknown id is 404, a job in
the wrong state 400 FAILED_PRECONDITION (pause and update need RUNNING, unpause PAUSED; stall needs
a job that has not ended, unstall a stalled one). A job not yet running when stalled goes on to
RUNNING and stops before its first row. Rows go on while a job is UPDATING. A paused, updating or
stalled job does not end until it is let go, unless it is cancelled: a cancel stops it (an
UPDATING job goes back to RUNNING first, then CANCELLING).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web

from . import fieldmask, protojson
from .engine import Config, Engine
from .errors import ApiError
from .faults import FaultPlanError
from .filtering import FilterError

PARENT = "/{version}/projects/{project}/locations/{location}"
PREFIX = PARENT + "/batchPredictionJobs"
VERSIONS = ("v1", "v1beta1")
# Query parameters every Google API takes (system parameters), besides each method's own.
SYSTEM_PARAMETERS = frozenset(
    {"$alt", "alt", "key", "prettyPrint", "$prettyPrint", "fields", "$fields", "quotaUser", "access_token",
     "callback", "$callback", "upload_protocol", "uploadType", "$.xgafv", "$outputDefaults"}
)  # fmt: skip
LIST_PARAMETERS = ("filter", "pageSize", "pageToken", "readMask")
MAX_PAGE_SIZE = 1000  # larger page sizes are coerced to this (AIP-158); the real maximum is not documented
ENGINE = web.AppKey("engine", Engine)
JOB_ACTIONS = ("pause", "unpause", "update", "stall", "unstall")  # the control API's calls on a job


def _json(body: Any, status: int = 200) -> web.Response:
    return web.json_response(body, status=status, dumps=lambda value: json.dumps(value, separators=(",", ":")))


def _method_of(request: web.Request) -> str | None:
    """The API method a request calls, as fault plans and stats name it (None: not an API call)."""
    route = (request.match_info.route.name or "").removeprefix("flat_")
    if route in ("create", "list", "operation"):
        return "get_operation" if route == "operation" else route
    if route == "get":  # the flat `batchPredictionJobs/{id}`
        return "get" if request.method == "GET" else None
    if route != "item":
        return None
    if request.match_info["job"].endswith(":cancel"):
        return "cancel" if request.method == "POST" else None
    return {"GET": "get", "DELETE": "delete"}.get(request.method)


def _not_found(request: web.Request) -> ApiError:
    return ApiError(404, f"The requested URL {request.path} was not found on this server.")


def _check_call(request: web.Request, engine: Engine) -> None:
    """What Google's front end checks before the service: the version, the token, the location, the
    query parameters."""
    # Google's own GAPIC client reads operations through the `ui/` binding of operations.get.
    versions = (*VERSIONS, "ui") if _method_of(request) == "get_operation" else VERSIONS
    if request.match_info.get("version") not in versions:
        raise _not_found(request)
    if not request.headers.get("Authorization", "").startswith("Bearer "):
        raise ApiError(
            401,
            "Request is missing required authentication credential. Expected OAuth 2 "
            "access token, login cookie or other valid authentication credential.",
        )
    flat_get = request.match_info.route.name == "flat_get"
    location = engine.job(request.match_info["job"]).location if flat_get else _parent(request)[1]
    if location not in engine.config.locations:
        # Worded as Vertex words a location it does not serve (googleapis/python-aiplatform#1684 and
        # googleapis/nodejs-automl#263 show the shape), naming the location for the reader.
        field = "parent" if _method_of(request) in ("create", "list") else "name"
        description = f"The provided location ID is not valid: {location}."
        message = f"List of found errors:\t1.Field: {field}; Message: {description}\t"
        raise protojson.invalid(field, description, message)
    allowed = set(LIST_PARAMETERS) if _method_of(request) == "list" else set()
    if "project" not in request.match_info and not flat_get:
        allowed.add("parent")
    for name in request.query:
        if name not in SYSTEM_PARAMETERS and name not in allowed and protojson.camel(name) not in allowed:
            raise protojson.invalid(
                name, f'Invalid JSON payload received. Unknown name "{name}": Cannot bind query parameter.'
            )


def _parent(request: web.Request) -> tuple[str, str]:
    """The project and location of a call: from its path, or from `?parent=` on the flat paths."""
    info = request.match_info
    if "project" in info:
        return info["project"], info["location"]
    parent = request.query.get("parent", "")
    parts = parent.split("/")
    if len(parts) != 4 or parts[0] != "projects" or parts[2] != "locations" or not parts[1] or not parts[3]:
        raise protojson.invalid(
            "parent", f"Invalid parent {parent!r}: expected projects/{{project}}/locations/{{location}}."
        )
    return parts[1], parts[3]


@web.middleware
async def api_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    engine = request.app[ENGINE]
    method = _method_of(request)
    try:
        if method is not None:
            _check_call(request, engine)
            fault = engine.faults.take_api_fault(method)
            if fault is not None:
                if fault.hang_seconds:
                    await _hold(request, engine, fault.hang_seconds)
                if fault.code is not None:
                    raise ApiError(fault.code, fault.message or f"Injected fault for {method}.")
        elif request.match_info.route.name in ("item", "flat_get"):
            raise _not_found(request)  # a method the resource does not have (PATCH, PUT, ...)
        response = await handler(request)
    except ApiError as error:
        response = _json(error.body(), status=error.code)
    except web.HTTPException:  # no route: no such URL, or no such method on it
        response = _json(_not_found(request).body(), 404)
    if method is None and request.match_info.route.name in ("item", "flat_get"):
        method = "unsupported"  # counted and recorded too: its refusal is an answer of the API
    if method is not None:
        engine.stats[method, response.status] += 1
        if engine.config.record_exchanges:
            await engine.record(request, method, response)
    return response


async def _hold(request: web.Request, engine: Engine, seconds: float) -> None:
    """An injected slow call. The request is read whole first and then held, so it is carried out
    whether or not its client is still there, as a real server carries out what it has received
    (the server never cancels handlers: see `serve`). A reset or shutdown abandons it unanswered."""
    if request.body_exists:
        await request.read()  # aiohttp keeps it for the handler's own read (`_body`)
    if not await engine.hold(seconds):
        raise ApiError(503, "The request was abandoned: the emulator was reset or is shutting down.")


async def _body(request: web.Request) -> Any:
    """The JSON body, `{}` when there is none. Read from aiohttp's copy when `_hold` read it already:
    by then a client that went away has left the stream at its end."""
    raw = await request.read() if request.body_exists else b""
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except ValueError:
        raise ApiError(400, "Invalid JSON payload received.") from None


def _render(request: web.Request, body: dict[str, Any]) -> dict[str, Any]:
    return fieldmask.encode_enums(body) if fieldmask.int_enums(request.query.get("$alt")) else body


async def create_job(request: web.Request) -> web.Response:
    project, location = _parent(request)
    version = request.match_info["version"]
    job = request.app[ENGINE].create(project, location, await _body(request), version)
    return _json(_render(request, job.to_rest()))


def _page_size(query: Any) -> int:
    """AIP-158: unset or 0 is the default, negative is refused, above the maximum is the maximum."""
    raw = query.get("pageSize", query.get("page_size", "")) or "0"
    try:
        size = int(raw)
    except ValueError:
        raise protojson.invalid("page_size", f"Invalid value at 'page_size' (TYPE_INT32), \"{raw}\"") from None
    if size < 0:
        raise protojson.invalid("page_size", f"page_size must not be negative; got {size}.")
    return min(size, MAX_PAGE_SIZE)


async def list_jobs(request: web.Request) -> web.Response:
    query = request.query
    project, location = _parent(request)
    page_size = _page_size(query)
    mask = fieldmask.parse_mask(query.get("readMask", query.get("read_mask")))
    try:
        jobs, token = request.app[ENGINE].list(
            project, location, query.get("filter"), page_size, query.get("pageToken", query.get("page_token"))
        )
    except FilterError as error:
        raise ApiError(400, str(error)) from None
    body: dict[str, Any] = {}
    if jobs:
        body["batchPredictionJobs"] = [_render(request, fieldmask.apply(job.to_rest(), mask)) for job in jobs]
    if token:
        body["nextPageToken"] = token
    return _json(body)


async def job_item(request: web.Request) -> web.Response:
    info = request.match_info
    engine = request.app[ENGINE]
    job_id, _, action = info["job"].partition(":")
    if not job_id.isdigit():
        raise ApiError(400, f"Invalid BatchPredictionJob id: {job_id}.")
    if action == "cancel" and request.method == "POST":
        protojson.parse(await _body(request), "CancelBatchPredictionJobRequest", "", info["version"])  # empty
        engine.cancel(info["project"], info["location"], job_id)
        return _json({})
    if action:
        raise _not_found(request)
    if request.method == "GET":
        return _json(_render(request, engine.get(info["project"], info["location"], job_id).to_rest()))
    return _json(engine.delete(info["project"], info["location"], job_id))


async def flat_get_job(request: web.Request) -> web.Response:
    """`GET v1/batchPredictionJobs/{id}`: the discovery document's flat get, the job named by its id alone."""
    return _json(_render(request, request.app[ENGINE].job(request.match_info["job"]).to_rest()))


async def get_operation(request: web.Request) -> web.Response:
    info = request.match_info
    return _json(request.app[ENGINE].operation(info["project"], info["location"], info["operation"]))


# ---------------------------------------------------------------- the control API


async def control_jobs(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    jobs = sorted(engine.jobs.values(), key=lambda job: int(job.id))
    return _json({"jobs": [job.describe() for job in jobs]})


async def control_job(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    job_id, _, action = request.match_info["job"].partition(":")
    job = engine.job(job_id)
    lifecycle = engine.lifecycle
    if request.method == "GET" and not action:
        return _json(job.describe())
    if request.method != "POST" or action not in JOB_ACTIONS:
        raise ApiError(404, f"The requested URL {request.path} was not found on this server.")
    if action == "update":
        lifecycle.update(job, _seconds(await _body(request)))
    else:
        getattr(lifecycle, action)(job)
    return _json(job.describe())


def _seconds(body: Any) -> float:
    seconds = body.get("seconds", 1.0) if isinstance(body, dict) else None
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
        raise ApiError(400, 'The body of :update must be {"seconds": <a number, 0 or more>}.')
    return float(seconds)


async def control_stats(request: web.Request) -> web.Response:
    by_method: dict[str, dict[str, int]] = {}
    for (method, code), count in sorted(request.app[ENGINE].stats.items()):
        by_method.setdefault(method, {})[str(code)] = count
    return _json({"requests": {m: c for m, c in by_method.items() if m != "rows"}, "rows": by_method.get("rows", {})})


async def control_faults(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    if request.method == "POST":
        try:
            engine.faults.add(await _body(request))
        except FaultPlanError as error:
            raise ApiError(400, str(error)) from None
    elif request.method == "DELETE":
        engine.faults.clear()
    return _json(engine.faults.describe())


async def control_exchanges(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    if request.method == "DELETE":
        engine.exchanges.clear()
    return _json({"exchanges": list(engine.exchanges)})


async def control_reset(request: web.Request) -> web.Response:
    await request.app[ENGINE].reset()
    return _json({})


async def control_config(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    if request.method in ("PUT", "PATCH", "POST"):
        try:
            engine.apply_config(await _body(request))
        except (TypeError, ValueError) as error:
            raise ApiError(400, f"invalid config: {error}") from None
    return _json(engine.config.describe())


async def _release_holds(app: web.Application) -> None:
    app[ENGINE].release_holds()


def create_app(engine: Engine) -> web.Application:
    app = web.Application(middlewares=[api_middleware], client_max_size=16 << 20)
    app[ENGINE] = engine
    app.router.add_route("POST", PREFIX, create_job, name="create")
    app.router.add_route("GET", PREFIX, list_jobs, name="list")
    app.router.add_route("*", PREFIX + "/{job}", job_item, name="item")
    app.router.add_route("GET", PARENT + "/operations/{operation}", get_operation, name="operation")
    # The discovery document's flat paths, the location in `?parent=`.
    app.router.add_route("POST", "/{version}/batchPredictionJobs", create_job, name="flat_create")
    app.router.add_route("GET", "/{version}/batchPredictionJobs", list_jobs, name="flat_list")
    app.router.add_route("*", "/{version}/batchPredictionJobs/{job}", flat_get_job, name="flat_get")
    app.router.add_route("GET", "/emulator/v1/jobs", control_jobs)
    app.router.add_route("*", "/emulator/v1/jobs/{job}", control_job)
    app.router.add_route("GET", "/emulator/v1/stats", control_stats)
    app.router.add_route("*", "/emulator/v1/faults", control_faults)
    app.router.add_route("POST", "/emulator/v1/reset", control_reset)
    app.router.add_route("GET", "/emulator/v1/exchanges", control_exchanges)
    app.router.add_route("DELETE", "/emulator/v1/exchanges", control_exchanges)
    app.router.add_route("*", "/emulator/v1/config", control_config)
    app.on_shutdown.append(_release_holds)
    app.on_cleanup.append(lambda _: engine.close())
    return app


@contextlib.asynccontextmanager
async def serve(
    engine: Engine | None = None, host: str = "127.0.0.1", port: int = 0, config: Config | None = None
) -> AsyncIterator[tuple[str, Engine]]:
    """Run the emulator in this event loop (tests, the local stack); yields its base URL and engine."""
    engine = engine or Engine(config=config)
    # A held request outlives its client (a killed operator, a client timeout) and is still carried
    # out: handlers are never cancelled when a client goes. Shutting down first releases the held
    # requests (`on_shutdown`), so it does not wait for them.
    runner = web.AppRunner(create_app(engine), access_log=None, shutdown_timeout=1.0, handler_cancellation=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1] if site._server and site._server.sockets else port  # type: ignore[union-attr]
    try:
        yield f"http://{host}:{bound}", engine
    finally:
        await runner.cleanup()
