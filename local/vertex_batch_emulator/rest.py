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

from .engine import Config, Engine
from .errors import ApiError
from .faults import FaultPlanError
from .filtering import FilterError

PREFIX = "/{version}/projects/{project}/locations/{location}/batchPredictionJobs"
VERSIONS = ("v1", "v1beta1")
ENGINE = web.AppKey("engine", Engine)
JOB_ACTIONS = ("pause", "unpause", "update", "stall", "unstall")  # the control API's calls on a job


def _json(body: Any, status: int = 200) -> web.Response:
    return web.json_response(body, status=status, dumps=lambda value: json.dumps(value, separators=(",", ":")))


def _method_of(request: web.Request) -> str | None:
    """The API method a request calls, as fault plans and stats name it."""
    if request.path.startswith("/emulator/"):
        return None
    job = request.match_info.get("job")
    if job is None:
        return {"POST": "create", "GET": "list"}.get(request.method)
    if job.endswith(":cancel"):
        return "cancel" if request.method == "POST" else None
    return {"GET": "get", "DELETE": "delete"}.get(request.method)


@web.middleware
async def api_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    engine = request.app[ENGINE]
    method = _method_of(request)
    try:
        if method is not None:
            if request.match_info.get("version") not in VERSIONS:
                raise ApiError(404, f"The requested URL {request.path} was not found on this server.")
            if not request.headers.get("Authorization", "").startswith("Bearer "):
                raise ApiError(
                    401,
                    "Request is missing required authentication credential. Expected OAuth 2 "
                    "access token, login cookie or other valid authentication credential.",
                )
            fault = engine.faults.take_api_fault(method)
            if fault is not None:
                if fault.hang_seconds:
                    await _hold(request, engine, fault.hang_seconds)
                if fault.code is not None:
                    raise ApiError(fault.code, fault.message or f"Injected fault for {method}.")
        response = await handler(request)
    except ApiError as error:
        response = _json(error.body(), status=error.code)
    except web.HTTPNotFound:
        response = _json(ApiError(404, f"The requested URL {request.path} was not found on this server.").body(), 404)
    if method is not None:
        engine.stats[method, response.status] += 1
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


async def create_job(request: web.Request) -> web.Response:
    info = request.match_info
    job = request.app[ENGINE].create(info["project"], info["location"], await _body(request))
    return _json(job.to_rest())


async def list_jobs(request: web.Request) -> web.Response:
    info, query = request.match_info, request.query
    try:
        page_size = int(query.get("pageSize") or 0)
    except ValueError:
        raise ApiError(400, "pageSize must be an integer.") from None
    try:
        jobs, token = request.app[ENGINE].list(
            info["project"], info["location"], query.get("filter"), page_size, query.get("pageToken")
        )
    except FilterError as error:
        raise ApiError(400, str(error)) from None
    body: dict[str, Any] = {}
    if jobs:
        body["batchPredictionJobs"] = [job.to_rest() for job in jobs]
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
        engine.cancel(info["project"], info["location"], job_id)
        return _json({})
    if action:
        raise ApiError(404, f"The requested URL {request.path} was not found on this server.")
    if request.method == "GET":
        return _json(engine.get(info["project"], info["location"], job_id).to_rest())
    if request.method == "DELETE":
        return _json(engine.delete(info["project"], info["location"], job_id))
    raise ApiError(405, f"Method {request.method} is not allowed here.")


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
    app.router.add_route("POST", PREFIX, create_job)
    app.router.add_route("GET", PREFIX, list_jobs)
    app.router.add_route("*", PREFIX + "/{job}", job_item)
    app.router.add_route("GET", "/emulator/v1/jobs", control_jobs)
    app.router.add_route("*", "/emulator/v1/jobs/{job}", control_job)
    app.router.add_route("GET", "/emulator/v1/stats", control_stats)
    app.router.add_route("*", "/emulator/v1/faults", control_faults)
    app.router.add_route("POST", "/emulator/v1/reset", control_reset)
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
