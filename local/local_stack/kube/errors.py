"""Refusals as the apiserver words them: a Status object with a code, a reason, a message and,
for invalid objects, the causes naming each field. Clients (kopf, kubectl, the kubernetes client)
read these, so every refusal in the package is raised as an `ApiError` and rendered here."""

from __future__ import annotations

from typing import Any

import kmock

JSON_HEADERS = {"Content-Type": "application/json"}


class ApiError(kmock.KubernetesError):
    """An apiserver Status error: code, reason and message, with optional details (causes)."""


def api_error(code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> ApiError:
    return ApiError(status=code, reason=reason, message=message, details=details)


def status_body(error: kmock.KubernetesError) -> dict[str, Any]:
    """The Status object the apiserver sends for a refusal."""
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": error.message or "",
        "reason": error.reason or "",
        "code": error.status,
    }
    if isinstance(error.details, dict):
        body["details"] = error.details
    return body


def error_response(error: kmock.KubernetesError) -> kmock.Response:
    """A refusal as an answer (not a server error), with its status set explicitly."""
    return kmock.Response(status=error.status, headers=JSON_HEADERS, payload=status_body(error))
