"""The one error every adapter raises: what failed, whether retrying may help, and what to call it."""

from __future__ import annotations


class AdapterError(Exception):
    """A call to an external system failed.

    `retryable`: a later try may succeed (429, 5xx, timeouts, a 403 that an IAM grant may fix).
    `reason`: the CamelCase reason the resource fails with when it is not retryable (None: let the
    HTTP `code` decide). `status`: the API's own status word (e.g. FAILED_PRECONDITION).
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        reason: str | None = None,
        code: int | None = None,
        status: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.reason = reason
        self.code = code
        self.status = status
