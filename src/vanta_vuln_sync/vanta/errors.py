"""One small error hierarchy for everything that can go wrong talking to Vanta.

Every message says what to do next and never contains the client secret or an access token.
"""

from __future__ import annotations


class VantaError(Exception):
    """Base of every Vanta failure; catch this to handle any of them."""


class AuthError(VantaError):
    """Vanta refused our credentials or token, or the token endpoint could not be reached."""


class TokenUnavailableError(AuthError):
    """The token endpoint failed in a way worth retrying later (503/504, 429, timeout, dropped link)."""


class RateLimitedError(VantaError):
    """Vanta kept answering 429 until the retry policy gave up."""


class ServerError(VantaError):
    """Vanta kept failing (5xx, timeouts, broken connections) until the retry policy gave up."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class RequestRejectedError(VantaError):
    """Vanta rejected the request (a 4xx other than 401/429); retrying the same request cannot help."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class InvalidFilterError(RequestRejectedError):
    """A filter name or value Vanta would not understand; raised before any request is sent."""


class ProtocolError(VantaError):
    """Vanta answered with a payload that is not the documented envelope (or not JSON at all)."""


class DeadlineReached(Exception):
    """No request (or retry) could start and finish before the caller's deadline.

    Not a VantaError: Vanta did not fail, time ran out. Raised before sleeping, so the caller still
    has its remaining time to hand the rest of its work on. A retry cut short this way chains the
    failure it was retrying (`__cause__`).
    """
