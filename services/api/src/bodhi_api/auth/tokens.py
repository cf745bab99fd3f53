"""API tokens in Postgres: issue, list, update, delete, and verify a presented token."""

from __future__ import annotations

import hmac
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from bodhi_api.auth.api_tokens import ParsedToken, new_token, parse_token
from bodhi_api.auth.grants import ModelGrant, normalise
from bodhi_api.auth.limits import LIMIT_FIELDS, UNLIMITED, Limits, PrincipalLimits
from bodhi_api.auth.roles import Role, TokenScope, lower_of
from bodhi_api.auth.token_expiry import is_expired
from bodhi_api.auth.users import User

LAST_USED_RESOLUTION = timedelta(minutes=1)
TOKEN_COLUMNS = (
    "id, name, scope, status, created_at, updated_at, last_used_at, expires_at, allowed_models,"  # noqa: S105 -- column names
    " rpm_limit, tpm_limit, budget_tokens, budget_period"
)


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    token_id: uuid.UUID
    user: User  # with the token's effective role: the lower of its scope and its owner's role
    last_used_at: datetime | None
    owner_role: Role  # the owner's own role, which decides what the token may do beyond its scope (manage tokens)
    expires_at: datetime | None = None  # None: never; checked on every use, a cached one included
    allowed_models: tuple[str, ...] | None = None  # the token's own grant; None: every model its owner may use
    limits: Limits = UNLIMITED  # the token's own rate limits and budget (``auth.limits``)

    @property
    def grant(self) -> ModelGrant:
        """The owner's grant and the token's: a request must be allowed by both."""
        return ModelGrant(user=self.user.allowed_models, token=self.allowed_models)

    @property
    def principal_limits(self) -> PrincipalLimits:
        """The owner's limits and the token's: a request must be within both."""
        return PrincipalLimits(user_id=self.user.id, user=self.user.limits, token_id=self.token_id, token=self.limits)

    def needs_last_used_update(self, now: datetime) -> bool:
        return self.last_used_at is None or now - self.last_used_at >= LAST_USED_RESOLUTION


def public_token(row: asyncpg.Record) -> dict[str, object]:
    return {
        "id": str(row["id"]),
        "name": row["name"],
        "scope": row["scope"],
        "status": row["status"],
        "created_at": row["created_at"].isoformat(),
        "updated_at": row["updated_at"].isoformat(),
        "last_used_at": row["last_used_at"].isoformat() if row["last_used_at"] else None,
        "expires_at": row["expires_at"].isoformat() if row["expires_at"] else None,
        "expired": is_expired(row["expires_at"], now_utc()),
        "allowed_models": list(row["allowed_models"]) if row["allowed_models"] is not None else None,
        **Limits.from_row(row).public(),
    }


async def issue_token(
    db: asyncpg.Pool,
    *,
    user_id: uuid.UUID,
    name: str,
    scope: TokenScope,
    expires_at: datetime | None = None,
    allowed_models: Sequence[str] | None = None,
    limits: Limits = UNLIMITED,
) -> tuple[str, str]:
    """Create a token; returns (id, the token itself). The token is never stored or shown again.

    ``expires_at`` None: it never expires; ``allowed_models`` None: it may use every model its owner may."""
    token = new_token()
    parsed = parse_token(token)
    assert parsed is not None
    models = normalise(allowed_models)
    token_id = await db.fetchval(
        "INSERT INTO api_tokens (user_id, name, scope, lookup_prefix, token_hash, expires_at, allowed_models,"
        " rpm_limit, tpm_limit, budget_tokens, budget_period)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
        user_id,
        name,
        scope.value,
        parsed.lookup_prefix,
        parsed.token_hash,
        expires_at,
        list(models) if models is not None else None,
        *limits.values(),
    )
    return str(token_id), token


async def verify_token(db: asyncpg.Pool, parsed: ParsedToken) -> VerifiedToken | None:
    rows = await db.fetch(
        "SELECT t.id, t.scope, t.token_hash, t.last_used_at, t.expires_at, t.allowed_models,"
        " t.rpm_limit, t.tpm_limit, t.budget_tokens, t.budget_period,"
        " u.id AS user_id, u.username, u.role, u.allowed_models AS user_allowed_models,"
        " u.rpm_limit AS user_rpm_limit, u.tpm_limit AS user_tpm_limit, u.budget_tokens AS user_budget_tokens,"
        " u.budget_period AS user_budget_period"
        " FROM api_tokens t JOIN users u ON u.id = t.user_id"
        " WHERE t.lookup_prefix = $1 AND t.status = 'active'",
        parsed.lookup_prefix,
    )
    for row in rows:
        if hmac.compare_digest(bytes(row["token_hash"]), parsed.token_hash):
            owner_role = Role(row["role"])
            role = lower_of(TokenScope(row["scope"]).role, owner_role)
            user_models = row["user_allowed_models"]
            user = User(
                id=row["user_id"],
                username=row["username"],
                role=role,
                allowed_models=tuple(user_models) if user_models is not None else None,
                limits=Limits.from_row(row, "user_"),
            )
            models = row["allowed_models"]
            return VerifiedToken(
                token_id=row["id"],
                user=user,
                last_used_at=row["last_used_at"],
                owner_role=owner_role,
                expires_at=row["expires_at"],
                allowed_models=tuple(models) if models is not None else None,
                limits=Limits.from_row(row),
            )
    return None


async def touch_last_used(db: asyncpg.Pool, token_id: uuid.UUID) -> None:
    await db.execute("UPDATE api_tokens SET last_used_at = now() WHERE id = $1", token_id)


async def list_tokens(db: asyncpg.Pool, *, user_id: uuid.UUID) -> list[asyncpg.Record]:
    return list(
        await db.fetch(
            f"SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE user_id = $1 ORDER BY created_at DESC",  # noqa: S608 -- constant column lists
            user_id,
        )
    )


async def update_token(
    db: asyncpg.Pool,
    *,
    user_id: uuid.UUID,
    token_id: uuid.UUID,
    name: str | None,
    status: str | None,
    set_models: bool = False,
    allowed_models: Sequence[str] | None = None,
    limits: Mapping[str, int | str | None] | None = None,
) -> asyncpg.Record | None:
    """Change what is given (None: unchanged); the grant only if ``set_models`` (then None: every model); of the
    rate limits and budget (``auth.limits.LIMIT_FIELDS``), those in ``limits`` (a None value: unlimited)."""
    models = normalise(allowed_models)
    changes = {field: value for field, value in (limits or {}).items() if field in LIMIT_FIELDS}
    limit_sql = "".join(f" {field} = ${7 + i}," for i, field in enumerate(changes))
    row: asyncpg.Record | None = await db.fetchrow(
        "UPDATE api_tokens SET name = COALESCE($3, name), status = COALESCE($4, status),"  # noqa: S608 -- constant column names
        f" allowed_models = CASE WHEN $5 THEN $6::text[] ELSE allowed_models END,{limit_sql} updated_at = now()"
        " WHERE id = $1 AND user_id = $2"
        f" RETURNING {TOKEN_COLUMNS}",
        token_id,
        user_id,
        name,
        status,
        set_models,
        list(models) if models is not None else None,
        *changes.values(),
    )
    return row


async def delete_token(db: asyncpg.Pool, *, user_id: uuid.UUID, token_id: uuid.UUID) -> bool:
    result: str = await db.execute("DELETE FROM api_tokens WHERE id = $1 AND user_id = $2", token_id, user_id)
    return result.endswith(" 1")


def now_utc() -> datetime:
    return datetime.now(UTC)
