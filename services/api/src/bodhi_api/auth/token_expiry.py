"""When an API token stops working: ``expires_at`` (NULL: never), set at creation from ``expires_in_days`` or an
``expires_at``, and checked on every request, a cached verification included (``principal._from_bearer``)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, Field

from bodhi_api.http_errors import NotAuthenticated
from bodhi_shared.clean_text import DocumentedPattern
from bodhi_shared.errors import InvalidRequest

MAX_DAYS = 3650
EXPIRED_CODE = "token_expired"

# RFC 3339's date-time with a required offset: what the document's `format: date-time` says, and nothing a lax
# parser would also take (a bare number is not a time here).
RFC3339_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$"
_RFC3339 = re.compile(RFC3339_PATTERN)


def parse_rfc3339(value: Any) -> datetime:
    """An RFC 3339 date-time with its offset, as an aware datetime."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("must name its offset (`Z` or `+hh:mm`)")
        return value
    if not isinstance(value, str) or not _RFC3339.match(value):
        raise ValueError("must be an RFC 3339 date-time with an offset, like `2030-01-31T12:00:00Z`")
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("is not a valid date and time") from None


Timestamp = Annotated[datetime, BeforeValidator(parse_rfc3339), DocumentedPattern(RFC3339_PATTERN)]
"""An instant a client sends: RFC 3339 with an offset."""
ExpiresInDays = Annotated[int, Field(ge=1, le=MAX_DAYS, strict=True)]


def expiry(*, expires_in_days: int | None, expires_at: datetime | None, now: datetime) -> datetime | None:
    """When a new token expires (None: never). One way or the other, not both; never already past."""
    if expires_in_days is not None and expires_at is not None:
        raise InvalidRequest("Send `expires_in_days` or `expires_at`, not both.", param="expires_at")
    if expires_in_days is not None:
        return now + timedelta(days=expires_in_days)
    if expires_at is None:
        return None
    if expires_at <= now:
        raise InvalidRequest(f"`expires_at` ({expires_at.isoformat()}) is already past.", param="expires_at")
    if expires_at > now + timedelta(days=MAX_DAYS):
        raise InvalidRequest(f"`expires_at` may be at most {MAX_DAYS} days away.", param="expires_at")
    return expires_at.astimezone(UTC)


def is_expired(expires_at: datetime | None, now: datetime) -> bool:
    return expires_at is not None and now >= expires_at


def token_expired(expires_at: datetime) -> NotAuthenticated:
    when = expires_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return NotAuthenticated(
        f"This API token expired at {when}. Create a new one (POST /bodhi/v1/tokens, or the web UI's Tokens page).",
        code=EXPIRED_CODE,
    )
