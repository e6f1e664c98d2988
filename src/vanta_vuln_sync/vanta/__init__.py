"""Async client for Vanta's vulnerability API: auth, resources and filters, pagination, retry, rate."""

from __future__ import annotations

from .auth import InProcessTokenProvider, Token, TokenProvider, fetch_token, token_fetcher
from .broker import TokenBroker
from .client import ClientCounters, Page, VantaClient
from .errors import (
    AuthError,
    ClientError,
    DeadlineReached,
    InvalidFilterError,
    ProtocolError,
    RateLimitedError,
    ServerError,
    TokenUnavailableError,
    VantaError,
)
from .ratelimit import (
    FleetRateLimiter,
    LocalRateLimiter,
    NoRateLimit,
    RateAdaptation,
    RateLimiter,
    RateState,
    read_rate_state,
)
from .resources import RESOURCES, validate_filters
from .retry import RetryPolicy

__all__ = [
    "RESOURCES",
    "AuthError",
    "ClientCounters",
    "ClientError",
    "DeadlineReached",
    "FleetRateLimiter",
    "InProcessTokenProvider",
    "InvalidFilterError",
    "LocalRateLimiter",
    "NoRateLimit",
    "Page",
    "ProtocolError",
    "RateAdaptation",
    "RateLimitedError",
    "RateLimiter",
    "RateState",
    "RetryPolicy",
    "ServerError",
    "Token",
    "TokenBroker",
    "TokenProvider",
    "TokenUnavailableError",
    "VantaClient",
    "VantaError",
    "fetch_token",
    "read_rate_state",
    "token_fetcher",
    "validate_filters",
]
