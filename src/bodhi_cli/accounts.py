"""Headless set-up of users and tokens:

bodhi users create NAME --role ROLE --password-stdin
bodhi tokens create --user NAME --scope SCOPE [--name N] [--expires-in-days N] [--models A,B]
                    [--rpm N] [--tpm N] [--budget N --budget-period day|month]
                                                            (prints the token alone on its last line)
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from typing import Any

from bodhi_shared.errors import BodhiError
from bodhi_shared.migrate import migrate
from bodhi_shared.postgres import create_pool

# Spelled out rather than imported: the CLI loads no service package a command does not need (the remote-worker
# image has no bodhi_api).
ROLES = ("user", "power_user", "manager", "admin")
SCOPES = ("user", "power_user")
MAX_EXPIRY_DAYS = 3650  # as ``bodhi_api.auth.token_expiry.MAX_DAYS``

DatabaseUrl = Callable[[], AbstractContextManager[str]]


def add_parsers(sub: Any, *, database_url: DatabaseUrl) -> None:
    users = sub.add_parser("users", help="manage users").add_subparsers(dest="verb", required=True)
    create = users.add_parser("create", help="create a user")
    create.add_argument("username")
    create.add_argument("--role", choices=ROLES, required=True)
    create.add_argument("--password-stdin", action="store_true", required=True, help="read the password from stdin")
    create.set_defaults(handler=lambda args: run(database_url, create_user_command, args))

    tokens = sub.add_parser("tokens", help="manage API tokens").add_subparsers(dest="verb", required=True)
    issue = tokens.add_parser("create", help="create an API token for a user")
    issue.add_argument("--user", required=True)
    issue.add_argument("--scope", choices=SCOPES, default="user")
    issue.add_argument("--name", default="cli")
    issue.add_argument("--expires-in-days", type=int, metavar="N", help="the token stops working N days from now")
    issue.add_argument(
        "--models",
        metavar="A,B",
        help="the model ids or patterns (`*`: any characters, e.g. `openai/*`) it may use; default: all",
    )
    issue.add_argument("--rpm", type=int, metavar="N", help="at most N requests per minute; default: unlimited")
    issue.add_argument("--tpm", type=int, metavar="N", help="at most N tokens (in + out) per minute")
    issue.add_argument("--budget", type=int, metavar="N", help="at most N tokens per --budget-period (UTC)")
    issue.add_argument("--budget-period", choices=("day", "month"), help="the period of --budget")
    issue.set_defaults(handler=lambda args: run(database_url, create_token_command, args))


Command = Callable[[Any, argparse.Namespace], Awaitable[None]]


def run(database_url: DatabaseUrl, command: Command, args: argparse.Namespace) -> int:
    async def main(url: str) -> None:
        db = await create_pool(url, max_size=2)
        try:
            async with db.acquire() as conn:
                await migrate(conn)
            await command(db, args)
        finally:
            await db.close()

    try:
        with database_url() as url:
            asyncio.run(main(url))
    except BodhiError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    return 0


async def create_user_command(db: Any, args: argparse.Namespace) -> None:
    from bodhi_api.auth.roles import Role
    from bodhi_api.auth.users import create_user

    password = sys.stdin.readline().rstrip("\n")
    user = await create_user(db, username=args.username, password=password, role=Role(args.role))
    print(f"created user {user.username} ({user.role.value}) id={user.id}")


async def create_token_command(db: Any, args: argparse.Namespace) -> None:
    from pydantic import ValidationError

    from bodhi_api.auth.limits import LimitsBody
    from bodhi_api.auth.roles import TokenScope
    from bodhi_api.auth.token_expiry import expiry
    from bodhi_api.auth.tokens import issue_token, now_utc
    from bodhi_api.auth.users import find_login

    found = await find_login(db, args.user)
    if found is None:
        raise BodhiError(f"No user named `{args.user}`.")
    user = found[0]
    scope = TokenScope(args.scope)
    if not user.role.at_least(scope.role):
        raise BodhiError(f"A `{scope.value}` token would exceed {user.username}'s role `{user.role.value}`.")
    days = args.expires_in_days
    if days is not None and not 1 <= days <= MAX_EXPIRY_DAYS:
        raise BodhiError(f"--expires-in-days must be 1 to {MAX_EXPIRY_DAYS}.")
    models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models is not None else None
    if models == []:
        raise BodhiError("--models names no model; leave it out to allow every model.")
    try:
        rates = LimitsBody(
            rpm_limit=args.rpm, tpm_limit=args.tpm, budget_tokens=args.budget, budget_period=args.budget_period
        ).limits()
    except ValidationError as exc:
        problems = "; ".join(str(e["msg"]) for e in exc.errors())
        raise BodhiError(f"--rpm, --tpm, --budget and --budget-period: {problems}") from None
    expires_at = expiry(expires_in_days=days, expires_at=None, now=now_utc())
    token_id, token = await issue_token(
        db, user_id=user.id, name=args.name, scope=scope, expires_at=expires_at, allowed_models=models, limits=rates
    )
    limits = "".join(
        [
            f", expires {expires_at.strftime('%Y-%m-%d %H:%M UTC')}" if expires_at else "",
            f", models {', '.join(models)}" if models else "",
            f", {rates.rpm} requests/min" if rates.rpm else "",
            f", {rates.tpm} tokens/min" if rates.tpm else "",
            f", {rates.budget_tokens} tokens/{rates.budget_period}" if rates.budget_tokens else "",
        ]
    )
    print(f"token {args.name} id={token_id} for {user.username} ({scope.value}{limits}):")
    print(token)
