"""``bodhi``: the command line of the gateway.

bodhi serve                 everything on one machine (embedded Postgres and Redis unless URLs are set)
bodhi api                   one API replica
bodhi remote-worker         one remote worker
bodhi local-worker          one local worker (--gpu N pins it to a GPU, --models a,b names its aliases)
bodhi migrate               apply database migrations
bodhi users create          create a user (password from stdin)
bodhi tokens create         create an API token for a user
bodhi keys create           write a worker key pair (public key for the API, private key for remote workers)
bodhi keys rotate           re-wrap every stored provider key under a new worker key pair
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Callable, Iterator

import uvloop

from bodhi_cli import accounts, keys
from bodhi_cli.embedded import embedded_postgres, embedded_redis
from bodhi_cli.supervisor import bodhi_command, run_children
from bodhi_shared.crypto import load_or_create_key_pair
from bodhi_shared.logs import configure_logging_from_environment
from bodhi_shared.migrate import migrate_dsn
from bodhi_shared.settings import DrainSettings, PostgresSettings, RedisSettings
from bodhi_shared.worker_keys import KEYS_DIR

log = logging.getLogger("bodhi")


class ServeSettings(PostgresSettings, RedisSettings):
    pass


@contextlib.contextmanager
def database_and_redis(settings: ServeSettings) -> Iterator[tuple[str, str]]:
    """The configured URLs, or embedded servers started under BODHI_HOME for the missing ones."""
    with contextlib.ExitStack() as stack:
        database_url = (
            settings.database_url.get_secret_value()
            if settings.database_url
            else stack.enter_context(embedded_postgres(settings.home / "postgres"))
        )
        redis_url = (
            settings.redis_url.get_secret_value()
            if settings.redis_url
            else stack.enter_context(embedded_redis(settings.home / "redis"))
        )
        yield database_url, redis_url


def cmd_serve(args: argparse.Namespace) -> int:
    from bodhi_shared.worker_metrics import WorkerMetricsSettings

    settings = ServeSettings()
    # The embedded default's worker key pair: the API reads the public half, the worker the private one.
    load_or_create_key_pair(settings.home / KEYS_DIR)
    with database_and_redis(settings) as (database_url, redis_url):
        asyncio.run(migrate_dsn(database_url))
        env = {
            # One person's machine: providers on loopback or the LAN (a model server of their own) are allowed
            # unless BODHI_ALLOW_PRIVATE_UPSTREAMS says otherwise; metadata addresses stay refused.
            "BODHI_ALLOW_PRIVATE_UPSTREAMS": "true",
            **os.environ,
            "BODHI_DATABASE_URL": database_url,
            "BODHI_REDIS_URL": redis_url,
            "BODHI_MIGRATE_ON_START": "false",
        }
        if env["BODHI_ALLOW_PRIVATE_UPSTREAMS"].lower() in ("1", "true", "yes", "on"):
            log.warning(
                "providers at loopback and private addresses are allowed (BODHI_ALLOW_PRIVATE_UPSTREAMS=true); "
                "set it to false when others can create API models here"
            )
        children = {
            "api": bodhi_command("api"),
            "remote-worker": bodhi_command("remote-worker"),
            "local-worker": bodhi_command("local-worker"),  # on the CPU, serving every alias in the catalogue
        }
        worker_metrics_port = WorkerMetricsSettings().worker_metrics_port
        if worker_metrics_port:  # both workers read the variable: the local one takes the next port
            children["local-worker"] += ["--metrics-port", str(worker_metrics_port + 1)]
        # Each child restarts if it dies; the drain timeout bounds how long they finish their work when stopped.
        return run_children(children, env=env, drain_timeout=DrainSettings().drain_timeout)


def cmd_api(args: argparse.Namespace) -> int:
    from bodhi_api.app import create_app
    from bodhi_api.settings import ApiSettings
    from bodhi_cli.api_server import serve_api

    settings = ApiSettings()
    settings.require_database_url()
    settings.require_redis_url()
    started = serve_api(
        create_app(settings),  # builds routes only: connections open in its lifespan
        # On SIGTERM: stop accepting, let the open requests finish for up to BODHI_DRAIN_TIMEOUT, then end the
        # rest with an error (in-band for a stream) rather than cut them.
        drain_timeout=settings.drain_timeout,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        access_log=False,
        # The app reads X-Forwarded-* itself, from BODHI_TRUSTED_PROXIES only (``forwarded.ForwardedHeadersMiddleware``,
        # which also honours -Host). uvicorn's own copy would otherwise believe X-Forwarded-For from 127.0.0.1 (its
        # default FORWARDED_ALLOW_IPS), which anyone on the host, or behind a local proxy, can set to anything.
        proxy_headers=False,
    )
    return 0 if started else 3  # uvicorn's own exit code for a server that failed to start


def cmd_remote_worker(args: argparse.Namespace) -> int:
    from bodhi_remote_worker.settings import RemoteWorkerSettings
    from bodhi_remote_worker.worker import run_remote_worker

    uvloop.run(run_remote_worker(RemoteWorkerSettings()))
    return 0


def cmd_local_worker(args: argparse.Namespace) -> int:
    from bodhi_local_worker.gpu import pin_gpu
    from bodhi_local_worker.settings import LocalWorkerSettings

    overrides: dict[str, object] = {}
    if args.gpu is not None:
        overrides["gpu"] = args.gpu
    if args.models is not None:
        overrides["local_models"] = args.models
    if args.metrics_port is not None:
        overrides["worker_metrics_port"] = args.metrics_port
    settings = LocalWorkerSettings().model_copy(update=overrides)  # the options win over BODHI_GPU, ...
    pin_gpu(settings.gpu)  # first: before anything imports llama_cpp

    from bodhi_local_worker.worker import run_local_worker

    uvloop.run(run_local_worker(settings))
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = ServeSettings()
    with postgres_url(settings) as database_url:
        applied = asyncio.run(migrate_dsn(database_url))
    print(f"applied {len(applied)} migration(s): {', '.join(applied) or 'none pending'}")
    return 0


@contextlib.contextmanager
def postgres_url(settings: ServeSettings) -> Iterator[str]:
    """The configured database URL, or the embedded Postgres under BODHI_HOME."""
    if settings.database_url:
        yield settings.database_url.get_secret_value()
    else:
        with embedded_postgres(settings.home / "postgres") as url:
            yield url


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bodhi", description="Bodhi: an OpenAI-compatible LLM gateway")
    sub = parser.add_subparsers(dest="command", required=True)
    commands: dict[str, tuple[Callable[[argparse.Namespace], int], str]] = {
        "serve": (cmd_serve, "run everything: API, remote worker, embedded Postgres/Redis unless URLs are set"),
        "api": (cmd_api, "run one API replica (needs BODHI_DATABASE_URL and BODHI_REDIS_URL)"),
        "remote-worker": (cmd_remote_worker, "run one remote worker (needs BODHI_REDIS_URL)"),
        "local-worker": (cmd_local_worker, "run one local worker: GGUF models with llama.cpp (needs BODHI_REDIS_URL)"),
        "migrate": (cmd_migrate, "apply pending database migrations"),
    }
    for name, (handler, help_text) in commands.items():
        command = sub.add_parser(name, help=help_text)
        command.set_defaults(handler=handler)
        if name == "local-worker":
            command.add_argument("--gpu", type=int, metavar="N", help="pin to GPU N (CUDA_VISIBLE_DEVICES=N)")
            command.add_argument("--models", metavar="A,B", help="serve these aliases (default: the whole catalogue)")
            command.add_argument(
                "--metrics-port", type=int, metavar="N", help="serve metrics on port N (BODHI_WORKER_METRICS_PORT)"
            )
    accounts.add_parsers(sub, database_url=lambda: postgres_url(ServeSettings()))
    keys.add_parser(sub, database_url=lambda: postgres_url(ServeSettings()))
    return parser


def main(argv: list[str] | None = None) -> None:
    configure_logging_from_environment()  # BODHI_LOG_LEVEL, BODHI_LOG_FORMAT: every command, children included
    args = build_parser().parse_args(argv)
    sys.exit(args.handler(args))


if __name__ == "__main__":
    main()
