"""The contract validator finds what it is meant to find (a validator that passes everything proves nothing)."""

from __future__ import annotations

from discovery import JOB, Contract, check_error, check_exchange

GOOD = {
    "name": "projects/1/locations/us-central1/batchPredictionJobs/2",
    "displayName": "d",
    "model": "publishers/google/models/gemini-2.5-flash",
    "inputConfig": {"instancesFormat": "jsonl", "gcsSource": {"uris": ["gs://b/i.jsonl"]}},
    "outputConfig": {"predictionsFormat": "jsonl", "gcsDestination": {"outputUriPrefix": "gs://b/o/"}},
    "state": "JOB_STATE_RUNNING",
    "createTime": "2026-11-29T10:00:00.123456Z",
    "updateTime": "2026-11-29T10:00:00Z",
    "completionStats": {"successfulCount": "3"},
    "labels": {"team": "search"},
}


def test_a_good_job_passes_and_each_kind_of_slip_is_found() -> None:
    contract = Contract()
    assert contract.check(GOOD, JOB) == []
    slips = {
        "unknown": {**GOOD, "colour": "red"},
        "nested unknown": {**GOOD, "inputConfig": {**GOOD["inputConfig"], "x": 1}},
        "int64 as a number": {**GOOD, "completionStats": {"successfulCount": 3}},
        "not RFC 3339": {**GOOD, "createTime": "2026-11-29 10:00:00"},
        "enum": {**GOOD, "state": "RUNNING"},
        "type": {**GOOD, "displayName": 123},
        "label value": {**GOOD, "labels": {"team": 1}},
    }
    for kind, job in slips.items():
        assert contract.check(job, JOB), kind
    assert contract.check({"displayName": "d", "state": "JOB_STATE_RUNNING"}, JOB, request=True)


def test_error_envelopes() -> None:
    assert check_error(400, {"error": {"code": 400, "message": "m", "status": "INVALID_ARGUMENT"}}) == []
    assert check_error(405, {"error": {"code": 405, "message": "m", "status": "UNKNOWN"}})
    assert check_error(404, {"error": {"code": 400, "message": "m", "status": "NOT_FOUND"}})
    assert check_error(400, {"error": {"code": 400, "message": "", "status": "INVALID_ARGUMENT"}})
    assert check_error(400, {"error": {"code": 400, "message": "m", "status": "INVALID_ARGUMENT", "x": 1}})


def test_always_returned_fields_and_requests() -> None:
    partial = {k: v for k, v in GOOD.items() if k != "updateTime"}
    exchange = {
        "method": "get",
        "httpMethod": "GET",
        "path": "/v1/projects/p",
        "query": {},
        "status": 200,
        "response": partial,
    }
    assert check_exchange(exchange)
    create = {**exchange, "method": "create", "response": GOOD, "request": {**GOOD}}
    assert any("output-only" in problem for problem in check_exchange(create))
