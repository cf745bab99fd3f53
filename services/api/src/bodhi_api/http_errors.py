"""Errors only the HTTP API raises, below ``bodhi_shared.errors.BodhiError``:

BodhiError
├── NotAuthenticated        401 authentication_error / invalid_api_key
├── PermissionDenied        403 permission_error / insufficient_role
│   └── CrossOriginRefused  403 permission_error / cross_origin_request
├── NotFound                404 invalid_request_error / not_found
│   └── RouteNotFound       404 not_found: no such route (the reference is at /docs) [error_handlers]
├── MethodNotAllowed        405 invalid_request_error / method_not_allowed, with Allow [error_handlers]
├── Conflict                409 invalid_request_error / conflict
├── RequestTooLarge         413 invalid_request_error / request_too_large [bodhi_api.body_limit]
└── TooManyRequests         429 rate_limit_error / rate_limit_exceeded (with Retry-After)
    ├── RateLimited         429 rate_limit_exceeded: a token's or user's RPM or TPM [bodhi_api.auth.limits]
    └── BudgetExceeded      429 budget_exceeded: a token's or user's budget for the day or month [auth.limits]
"""

from __future__ import annotations

from bodhi_shared.errors import BodhiError


class NotAuthenticated(BodhiError):
    status_code = 401
    error_type = "authentication_error"
    code = "invalid_api_key"


class PermissionDenied(BodhiError):
    status_code = 403
    error_type = "permission_error"
    code = "insufficient_role"


class CrossOriginRefused(PermissionDenied):
    code = "cross_origin_request"


class NotFound(BodhiError):
    status_code = 404
    error_type = "invalid_request_error"
    code = "not_found"


class Conflict(BodhiError):
    status_code = 409
    error_type = "invalid_request_error"
    code = "conflict"


class TooManyRequests(BodhiError):
    status_code = 429
    error_type = "rate_limit_error"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message)
        self.headers: dict[str, str] = {"Retry-After": str(retry_after_s)}
