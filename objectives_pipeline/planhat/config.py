"""Client configuration: the retry policy and the checks on base URL and token."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from objectives_pipeline.settings import (
    DEFAULT_BASE_URL,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_REQUEST_DEADLINE_SECONDS,
)

from .errors import ConfigError

MAX_PAGE_SIZE = 2000
MAX_COMPANY_PAGE_SIZE = 5000
MAX_BULK_BATCH = 5000
MAX_CONCURRENCY = 50  # Planhat allows bursts of up to 50 parallel requests


class RetryPolicy(BaseModel):
    """How the client waits and retries.

    Failed attempts (429, 5xx, connection errors, timeouts, unusable 2xx bodies)
    are retried up to `max_attempts` in total, waiting
    ``min(initial_backoff * 2**(n-1), max_backoff) + uniform(0, jitter)`` seconds,
    or the server's ``Retry-After`` (capped at `max_retry_after`) when it sends one.

    With `pace_to_server`, the client learns the server's allowance from the
    ``X-Rate-Limit-Limit``/``X-Rate-Limit-Remaining`` headers (the window from
    how fast ``Remaining`` recovers and when 429s stop) and spaces its requests
    to it, and halves the requests it has in flight on a 429 (growing them back
    one at a time on success).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_attempts: int = Field(default=DEFAULT_MAX_ATTEMPTS, ge=1, le=50)
    initial_backoff: float = Field(default=0.5, ge=0)
    max_backoff: float = Field(default=30.0, ge=0)
    jitter: float = Field(default=0.5, ge=0)
    max_retry_after: float = Field(default=120.0, ge=0)
    pace_to_server: bool = True
    #: The longest one attempt may take, the whole body included (the client's `timeout`
    #: applies to each read; a body that trickles in would escape it).
    request_deadline: float = Field(default=DEFAULT_REQUEST_DEADLINE_SECONDS, gt=0)


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` and loopback IP addresses (127.0.0.0/8, ::1)."""
    host = host.rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_planhat_host(host: str) -> bool:
    host = host.rstrip(".").lower()
    return host == "planhat.com" or host.endswith(".planhat.com")


def check_base_url(base_url: str, token: SecretStr | None) -> str:
    """Return `base_url` without a trailing slash, or raise `ConfigError`.

    The token must not travel over plain http:// except to a loopback host, and
    the real Planhat cannot be used without a token.
    """
    if not isinstance(base_url, str) or not base_url.strip():
        raise ConfigError(
            "The Planhat base URL is empty: set PLANHAT_BASE_URL or pass base_url, "
            f"e.g. {DEFAULT_BASE_URL}"
        )
    url = base_url.strip()
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        _ = parts.port  # raises ValueError on a bad port
    except ValueError:
        host, parts = "", urlsplit("")
    if parts.scheme not in ("http", "https") or not host:
        raise ConfigError(
            f"The Planhat base URL {url!r} is not an http(s) URL: set PLANHAT_BASE_URL "
            f"to e.g. {DEFAULT_BASE_URL} (or https://api-eu.planhat.com for EU tenants)"
        )
    if parts.query or parts.fragment:
        raise ConfigError(
            f"The Planhat base URL {url!r} must not have a query or fragment: "
            f"use only scheme, host and optional path, e.g. {DEFAULT_BASE_URL}"
        )
    if token is not None and parts.scheme == "http" and not is_loopback_host(host):
        raise ConfigError(
            f"Refusing to send the Planhat API token over plain http:// to {host}: "
            "use an https:// base URL (plain http is allowed only for loopback hosts "
            "such as a local sandbox)"
        )
    if token is None and is_planhat_host(host):
        raise ConfigError(
            f"No Planhat API token for {host}: set PLANHAT_API_TOKEN to a private-app "
            "token (Planhat > Settings > Private apps) or pass token=...; to try the "
            "pipeline without an account, point PLANHAT_BASE_URL at the sandbox"
        )
    return url.rstrip("/")


def coerce_token(token: str | SecretStr | None) -> SecretStr | None:
    """A SecretStr for a non-empty token, None for a missing or blank one."""
    if token is None:
        return None
    secret = token if isinstance(token, SecretStr) else SecretStr(str(token))
    value = secret.get_secret_value().strip()
    if not value:
        return None
    if any(ch in value for ch in "\r\n"):
        raise ConfigError("The Planhat API token contains a line break: check PLANHAT_API_TOKEN")
    return SecretStr(value)
