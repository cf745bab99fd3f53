"""Users in Postgres: creation (including the first-run admin), lookup, role changes, deletion."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from bodhi_api.auth.grants import normalise
from bodhi_api.auth.limits import UNLIMITED, Limits
from bodhi_api.auth.passwords import hash_password
from bodhi_api.auth.roles import Role
from bodhi_api.http_errors import Conflict
from bodhi_shared.errors import InvalidRequest

# Serialises first-run setups so exactly one admin is created.
SETUP_LOCK_ID = 0x0B0D42
MAX_USERNAME = 64
MIN_PASSWORD = 8
MAX_PASSWORD = 1024  # a bound on what argon2 hashes, and on a login body
USER_COLUMNS = "id, username, role, allowed_models, rpm_limit, tpm_limit, budget_tokens, budget_period"


@dataclass(frozen=True, slots=True)
class User:
    id: uuid.UUID
    username: str
    role: Role
    allowed_models: tuple[str, ...] | None = None  # the models the user may use (``grants``); None: every model
    limits: Limits = UNLIMITED  # the user's rate limits and budget (``auth.limits``), their tokens' included

    def public(self) -> dict[str, str]:
        return {"id": str(self.id), "username": self.username, "role": self.role.value}

    def managed(self) -> dict[str, object]:
        """What managers see of the user: ``public``, the user's model grant and limits."""
        models = list(self.allowed_models) if self.allowed_models is not None else None
        return {**self.public(), "allowed_models": models, **self.limits.public()}


def _user(row: asyncpg.Record) -> User:
    models = row["allowed_models"]
    return User(
        id=row["id"],
        username=row["username"],
        role=Role(row["role"]),
        allowed_models=tuple(models) if models is not None else None,
        limits=Limits.from_row(row),
    )


def check_credentials_shape(username: str, password: str) -> None:
    name = username.strip()
    if not name or len(name) > MAX_USERNAME or any(c.isspace() for c in name):
        raise InvalidRequest(f"`username` must be 1 to {MAX_USERNAME} characters without spaces.", param="username")
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InvalidRequest(f"`password` must have {MIN_PASSWORD} to {MAX_PASSWORD} characters.", param="password")


async def create_user(
    db: asyncpg.Pool | asyncpg.Connection,
    *,
    username: str,
    password: str,
    role: Role,
    allowed_models: Sequence[str] | None = None,
) -> User:
    check_credentials_shape(username, password)
    password_hash = await hash_password(password)
    models = normalise(allowed_models)
    try:
        row = await db.fetchrow(
            "INSERT INTO users (username, password_hash, role, allowed_models) VALUES ($1, $2, $3, $4)"  # noqa: S608 -- constant column names
            f" RETURNING {USER_COLUMNS}",
            username.strip(),
            password_hash,
            role.value,
            list(models) if models is not None else None,
        )
    except asyncpg.UniqueViolationError:
        raise Conflict(f"The username `{username.strip()}` is taken; choose another.", param="username") from None
    assert row is not None
    return _user(row)


async def create_first_admin(db: asyncpg.Pool, *, username: str, password: str) -> User | None:
    """Create the first user as admin; None if any user exists already. Safe against concurrent calls."""
    check_credentials_shape(username, password)
    async with db.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", SETUP_LOCK_ID)
        if await conn.fetchval("SELECT EXISTS (SELECT 1 FROM users)"):
            return None
        return await create_user(conn, username=username, password=password, role=Role.ADMIN)


async def any_user_exists(db: asyncpg.Pool) -> bool:
    return bool(await db.fetchval("SELECT EXISTS (SELECT 1 FROM users)"))


async def find_user(db: asyncpg.Pool, user_id: uuid.UUID) -> User | None:
    row = await db.fetchrow(f"SELECT {USER_COLUMNS} FROM users WHERE id = $1", user_id)  # noqa: S608 -- constant column lists
    return _user(row) if row else None


async def find_login(db: asyncpg.Pool, username: str) -> tuple[User, str] | None:
    """The user and password hash for a login name, case-insensitively."""
    row = await db.fetchrow(
        f"SELECT {USER_COLUMNS}, password_hash FROM users WHERE lower(username) = lower($1)",  # noqa: S608 -- constant column lists
        username.strip(),
    )
    return (_user(row), row["password_hash"]) if row else None


async def list_users(db: asyncpg.Pool) -> list[User]:
    return [_user(r) for r in await db.fetch(f"SELECT {USER_COLUMNS} FROM users ORDER BY lower(username)")]  # noqa: S608 -- constant column lists


async def change_role(db: asyncpg.Pool, *, user_id: uuid.UUID, role: Role) -> None:
    """Set the role and deactivate the user's tokens in one transaction (they were issued under the old role)."""
    async with db.acquire() as conn, conn.transaction():
        await conn.execute("UPDATE users SET role = $2, updated_at = now() WHERE id = $1", user_id, role.value)
        await conn.execute("UPDATE api_tokens SET status = 'inactive', updated_at = now() WHERE user_id = $1", user_id)


async def set_allowed_models(
    db: asyncpg.Pool, *, user_id: uuid.UUID, allowed_models: Sequence[str] | None
) -> User | None:
    """Set the models the user may use (None: every model); their tokens keep working, within it. None: no such
    user (any more)."""
    models = normalise(allowed_models)
    row = await db.fetchrow(
        f"UPDATE users SET allowed_models = $2, updated_at = now() WHERE id = $1 RETURNING {USER_COLUMNS}",  # noqa: S608 -- constant column lists
        user_id,
        list(models) if models is not None else None,
    )
    return _user(row) if row else None


async def set_limits(db: asyncpg.Pool, *, user_id: uuid.UUID, limits: Limits) -> User | None:
    """Set the user's rate limits and budget (each None: unlimited); None: no such user (any more)."""
    row = await db.fetchrow(
        "UPDATE users SET rpm_limit = $2, tpm_limit = $3, budget_tokens = $4, budget_period = $5,"  # noqa: S608 -- constant column names
        " updated_at = now() WHERE id = $1"
        f" RETURNING {USER_COLUMNS}",
        user_id,
        *limits.values(),
    )
    return _user(row) if row else None


async def delete_user(db: asyncpg.Pool, user_id: uuid.UUID) -> None:
    await db.execute("DELETE FROM users WHERE id = $1", user_id)  # tokens go with it (ON DELETE CASCADE)


def parse_user_id(raw: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(raw)
    except ValueError:
        return None
