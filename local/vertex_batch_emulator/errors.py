"""Error envelopes, as Google's APIs render them.

Every refused call is a google.rpc.Status `{"error": {code, message, status}}`, and so is the
embedded error in a failed output row. The HTTP code -> canonical status table lives here, once,
for both; this module imports nothing else of the emulator, so every layer may raise `ApiError`.
"""

from __future__ import annotations

from typing import Any

CANONICAL = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    501: "UNIMPLEMENTED",
    504: "DEADLINE_EXCEEDED",
}


def status_envelope(code: int, message: str, status: str | None = None) -> dict[str, Any]:
    """`{"error": {code, message, status}}`; without a status, the canonical one for the code."""
    return {"error": {"code": code, "message": message, "status": status or CANONICAL.get(code, "UNKNOWN")}}


class ApiError(Exception):
    """An API error, rendered as google.rpc.Status: `{"error": {code, message, status}}`."""

    def __init__(self, code: int, message: str, status: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status or CANONICAL.get(code, "UNKNOWN")
        self.details: list[dict[str, Any]] = []  # google.rpc.Status details, each with its `@type`

    def body(self) -> dict[str, Any]:
        body = status_envelope(self.code, self.message, self.status)
        if self.details:
            body["error"]["details"] = self.details
        return body
