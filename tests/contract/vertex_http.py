"""Raw HTTP to the Vertex emulator, as any client of Vertex's REST surface sends it."""

from __future__ import annotations

from typing import Any

import aiohttp

from conftest import eventually

PARENT = "/v1/projects/demo-project/locations/us-central1"
AUTH = {"Authorization": "Bearer test-token"}


class Api:
    """The API calls (with a token) and the control API (without)."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session, self.url = session, url

    async def call(self, method: str, path: str, body: Any = None, **query: Any) -> tuple[int, Any]:
        async with self.session.request(
            method, self.url + path, json=body, params=query or None, headers=AUTH
        ) as response:
            return response.status, await response.json(content_type=None)

    async def control(self, method: str, path: str, body: Any = None) -> Any:
        async with self.session.request(method, self.url + "/emulator/v1/" + path, json=body) as response:
            assert response.status == 200, await response.text()
            return await response.json()

    async def create(self, body: dict[str, Any]) -> dict[str, Any]:
        status, job = await self.call("POST", PARENT + "/batchPredictionJobs", body)
        assert status == 200, job
        return job

    async def state(self, job: dict[str, Any], wanted: str, within: float = 20) -> dict[str, Any]:
        async def reached() -> Any:
            _, got = await self.call("GET", "/v1/" + job["name"])
            return got if got.get("state") == wanted else None

        return await eventually(reached, timeout=within, message=f"{job['name']} in {wanted}")


def gcs_body(src: str, prefix: str, name: str = "contract", **extra: Any) -> dict[str, Any]:
    return {
        "displayName": name,
        "model": "publishers/google/models/gemini-2.5-flash",
        "inputConfig": {"instancesFormat": "jsonl", "gcsSource": {"uris": [src]}},
        "outputConfig": {"predictionsFormat": "jsonl", "gcsDestination": {"outputUriPrefix": prefix}},
        "labels": {"team": "search", "bij-uid": "u-1"},
        **extra,
    }


async def contract_problems(url: str) -> tuple[list[dict[str, Any]], list[str]]:
    """The calls the emulator recorded (`recordExchanges`) and every way they break the discovery contract."""
    from discovery import check_exchange

    async with aiohttp.ClientSession() as session, session.get(url + "/emulator/v1/exchanges") as response:
        exchanges = (await response.json())["exchanges"]
    return exchanges, [problem for exchange in exchanges for problem in check_exchange(exchange)]
