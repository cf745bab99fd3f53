"""The gateway a local benchmark measures: ``bodhi api`` on a fresh database and Redis prefix, and the local workers
started beside it (bench/common.py starts the processes)."""

from __future__ import annotations

import asyncio
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

if __package__:  # imported as `bench.local_gateway`: bench/ is not on sys.path
    from bench import common
else:  # run as a script, or imported by one: bench/ is the script directory
    import common  # puts the repository root on sys.path, for `tests.support`
if __package__:
    from bench.local_streams import Stream, astream_http, chat_body
else:
    from local_streams import Stream, astream_http, chat_body


def redis_cpu_seconds() -> float:
    """The Redis server's own CPU time (INFO cpu): all its clients, this benchmark's gateway nearly alone."""
    import redis

    client = redis.Redis.from_url(common.REDIS_URL)
    try:
        info: dict[str, Any] = client.info("cpu")  # type: ignore[assignment]
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
    finally:
        client.close()


@dataclass
class Gateway:
    """``bodhi api`` and the local workers started beside it, each with ``start_worker``."""

    api: common.Api
    workers: list[common.Child] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.api.url

    @property
    def headers(self) -> dict[str, str]:
        return self.api.headers

    @property
    def processes(self) -> list[common.Child]:
        return [self.api.process, *self.workers]

    def start_worker(self, alias: str) -> common.Child:
        """``bodhi local-worker --models ALIAS``; returns once /health counts it."""
        number = len(self.workers) + 1
        worker = self.api.start_worker(
            f"local-worker-{number}", "local-worker", "--models", alias, kind="local", count=number
        )
        self.workers.append(worker)
        return worker

    def create_alias(self, alias: str, path: Path, context_params: dict[str, Any]) -> None:
        self.api.create(
            "/bodhi/v1/models/alias",
            {"alias": alias, "path": str(path), "context_params": context_params},
            what=f"creating alias {alias}",
        )


async def _concurrent(gateway: Gateway, alias: str, count: int, max_tokens: int, first_index: int) -> list[Stream]:
    timeout = httpx.Timeout(600, connect=10)
    limits = httpx.Limits(max_connections=count)
    async with httpx.AsyncClient(timeout=timeout, limits=limits) as client:
        url = f"{gateway.url}/v1/chat/completions"
        return list(
            await asyncio.gather(
                *(
                    astream_http(
                        client, url, chat_body(alias, first_index + i, max_tokens, usage=True), gateway.headers
                    )
                    for i in range(count)
                )
            )
        )


class ConcurrentRuns:
    """Runs of streams sent at once (``runs``: each run's streams and its wall time until the last ended), with
    their aggregate tokens/s: what the local benchmarks' setups and cells have in common."""

    runs: list[tuple[list[Stream], float]]

    @property
    def throughputs(self) -> list[float]:
        return [sum(stream.tokens for stream in streams) / wall for streams, wall in self.runs]

    @property
    def throughput(self) -> float:
        return statistics.median(self.throughputs)

    @property
    def streams(self) -> list[Stream]:
        return [stream for streams, _ in self.runs for stream in streams]


def concurrent(gateway: Gateway, alias: str, count: int, *, max_tokens: int, first_index: int, budget: float) -> Any:
    """``count`` streams of ``alias`` sent at once (prompts ``first_index`` on), within ``budget`` seconds."""
    return asyncio.run(asyncio.wait_for(_concurrent(gateway, alias, count, max_tokens, first_index), budget))
