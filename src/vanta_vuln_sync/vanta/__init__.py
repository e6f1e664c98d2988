"""Async client for Vanta's vulnerability API: auth, resources and filters, pagination, retry, rate."""

from __future__ import annotations

from .auth import InProcessTokenProvider, Token, TokenProvider, fetch_token, token_fetcher
from .client import ClientCounters, Page, RecentDurations, VantaClient
from .errors import (
    AuthError,
    DeadlineReached,
    InvalidFilterError,
    ProtocolError,
    RateLimitedError,
    RequestRejectedError,
    ServerError,
    TokenUnavailableError,
    VantaError,
)
from .ratelimit import LocalRateLimiter, NoRateLimit, RateLimiter
from .resources import RESOURCES, validate_filters
from .retry import RetryPolicy

__all__ = [
    "RESOURCES",
    "AuthError",
    "ClientCounters",
    "DeadlineReached",
    "InProcessTokenProvider",
    "InvalidFilterError",
    "LocalRateLimiter",
    "NoRateLimit",
    "Page",
    "ProtocolError",
    "RateLimitedError",
    "RateLimiter",
    "RecentDurations",
    "RequestRejectedError",
    "RetryPolicy",
    "ServerError",
    "Token",
    "TokenProvider",
    "TokenUnavailableError",
    "VantaClient",
    "VantaError",
    "fetch_token",
    "token_fetcher",
    "validate_filters",
]
