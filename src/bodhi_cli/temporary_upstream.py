"""TEMPORARY, until the API-models issue: register an upstream model by hand.

    bodhi temporary-upstream add MODEL --base-url URL [--api-key-stdin]
    bodhi temporary-upstream remove MODEL
    bodhi temporary-upstream list

The key is stored in plain text in ``temporary_upstreams``; API models will replace all of this.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import asyncpg

from bodhi_shared.migrate import migrate

DatabaseUrl = Callable[[], AbstractContextManager[str]]


def add_parser(sub: Any, *, database_url: DatabaseUrl) -> None:
    parser = sub.add_parser("temporary-upstream", help="TEMPORARY: register an upstream model by hand")
    verbs = parser.add_subparsers(dest="verb", required=True)
    add = verbs.add_parser("add", help="route MODEL to an OpenAI-compatible base URL")
    add.add_argument("model")
    add.add_argument("--base-url", required=True)
    add.add_argument("--api-key-stdin", action="store_true", help="read the provider key from stdin")
    remove = verbs.add_parser("remove")
    remove.add_argument("model")
    verbs.add_parser("list")
    parser.set_defaults(handler=lambda args: run(args, database_url))


def run(args: argparse.Namespace, database_url: DatabaseUrl) -> int:
    with database_url() as url:
        return asyncio.run(_run(args, url))


async def _run(args: argparse.Namespace, url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn)
        if args.verb == "add":
            api_key = sys.stdin.readline().strip() if args.api_key_stdin else ""
            await conn.execute(
                "INSERT INTO temporary_upstreams (model, base_url, api_key) VALUES ($1, $2, $3)"
                " ON CONFLICT (model) DO UPDATE SET base_url = $2, api_key = $3",
                args.model,
                args.base_url.rstrip("/"),
                api_key,
            )
            print(f"{args.model} -> {args.base_url.rstrip('/')}")
        elif args.verb == "remove":
            await conn.execute("DELETE FROM temporary_upstreams WHERE model = $1", args.model)
        else:
            for row in await conn.fetch("SELECT model, base_url FROM temporary_upstreams ORDER BY model"):
                print(f"{row['model']} -> {row['base_url']}")
    finally:
        await conn.close()
    return 0
