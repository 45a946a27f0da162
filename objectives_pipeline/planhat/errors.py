"""The exceptions the Planhat client raises.

```
PlanhatError
├── ConfigError                 bad client configuration (also a ValueError)
├── InvalidObjectiveError       an objective rejected before sending (also a ValueError)
├── APIError                    Planhat answered with an error status
│   ├── AuthError               401 (bad token) and 403 (token without rights)
│   ├── NotFoundError           404
│   ├── BadRequestError         400, with the server's message
│   ├── RateLimitedError        429, still after every retry
│   └── ServerError             5xx, still after every retry
├── BadResponseError            a body that is empty, not JSON, truncated or of the wrong shape
└── PlanhatTransportError       no usable HTTP answer
    ├── PlanhatTimeoutError
    └── PlanhatConnectionError
```

Messages name the request (e.g. ``GET /objectives offset=4000 limit=2000``), say
what failed and what to do. They never contain the API token.
"""

from __future__ import annotations


class PlanhatError(Exception):
    """Base class of every error raised by `objectives_pipeline.planhat`."""


class ConfigError(PlanhatError, ValueError):
    """The client was configured with a value it cannot work with."""


class InvalidObjectiveError(PlanhatError, ValueError):
    """An objective was rejected by client-side validation; nothing was sent."""


class _RequestError(PlanhatError):
    """An error tied to one request; carries the request label and attempt count."""

    def __init__(self, message: str, *, request: str, attempts: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.request = request
        self.attempts = attempts

    def __str__(self) -> str:
        tries = f" after {self.attempts} attempts" if self.attempts > 1 else ""
        return f"{self.message} [{self.request}{tries}]"


class APIError(_RequestError):
    """Planhat answered with a non-success HTTP status."""

    def __init__(
        self,
        message: str,
        *,
        request: str,
        status: int,
        server_message: str | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
        attempts: int = 1,
    ) -> None:
        super().__init__(message, request=request, attempts=attempts)
        self.status = status
        self.server_message = server_message
        self.request_id = request_id
        self.retry_after = retry_after
        self._body = b""

    @property
    def method(self) -> str:
        return self.request.split(" ", 1)[0]

    @property
    def path(self) -> str:
        parts = self.request.split(" ", 2)
        return parts[1] if len(parts) > 1 else ""

    def __str__(self) -> str:
        server = f". Planhat said: {self.server_message}" if self.server_message else ""
        request_id = f"; request id {self.request_id}" if self.request_id else ""
        tries = f" after {self.attempts} attempts" if self.attempts > 1 else ""
        return f"{self.message.rstrip('.')}{server} [{self.request}: HTTP {self.status}{request_id}{tries}]"


class AuthError(APIError):
    """401: the token was rejected; 403: the token lacks rights for the request."""


class NotFoundError(APIError):
    """404: no objective with that id (or extid-/srcid- reference)."""


class BadRequestError(APIError):
    """400: Planhat rejected the payload; `server_message` says why."""


class RateLimitedError(APIError):
    """429: still rate limited after every retry."""


class ServerError(APIError):
    """5xx: Planhat failed, still after every retry."""


class BadResponseError(_RequestError):
    """A success status with a body the client cannot use."""

    def __init__(
        self, message: str, *, request: str, retryable: bool = True, attempts: int = 1
    ) -> None:
        super().__init__(message, request=request, attempts=attempts)
        self.retryable = retryable


class PlanhatTransportError(_RequestError):
    """No usable HTTP answer: the connection failed or timed out."""

    def __init__(
        self, message: str, *, request: str, request_sent: bool, attempts: int = 1
    ) -> None:
        super().__init__(message, request=request, attempts=attempts)
        self.request_sent = request_sent


class PlanhatTimeoutError(PlanhatTransportError):
    """Planhat did not answer within the configured timeout."""


class PlanhatConnectionError(PlanhatTransportError):
    """The connection could not be made or broke before a full answer arrived."""


class InvalidItemError(InvalidObjectiveError):
    """A company or metric item was rejected by client-side validation; nothing was sent."""
