"""``bodhi_shared.logs``: one JSON object per line, or text; the request id on the lines logged while it is bound."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator

import pytest

from bodhi_shared.logs import bound_request_id, build_handler


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO, list[logging.Handler]]]:
    logger = logging.getLogger("bodhi.test_logs")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    handlers: list[logging.Handler] = []
    out = io.StringIO()
    yield logger, out, handlers
    for handler in handlers:
        logger.removeHandler(handler)
    logger.propagate = True


def use(captured: tuple[logging.Logger, io.StringIO, list[logging.Handler]], log_format: str) -> logging.Logger:
    logger, out, handlers = captured
    handler = build_handler("json" if log_format == "json" else "text", out)
    logger.addHandler(handler)
    handlers.append(handler)
    return logger


async def test_json_lines_carry_the_bound_request_id_and_the_extras(
    captured: tuple[logging.Logger, io.StringIO, list[logging.Handler]],
) -> None:
    logger, out = use(captured, "json"), captured[1]

    async def in_a_task() -> None:
        logger.warning("in a task it started")

    logger.info("before")
    with bound_request_id("r1"):
        logger.info("during %d%%", 50, extra={"status": 200, "color_message": "\x1b[32mnoise\x1b[0m"})
        task = asyncio.create_task(in_a_task())
    await task  # runs after the block: it copied the context when it was created
    logger.info("after")

    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line["message"] for line in lines] == ["before", "during 50%", "in a task it started", "after"]
    assert [line.get("request_id") for line in lines] == [None, "r1", "r1", None]
    assert list(lines[1])[:4] == ["timestamp", "level", "logger", "message"]
    assert lines[1]["level"] == "INFO"
    assert lines[1]["logger"] == "bodhi.test_logs"
    assert lines[1]["status"] == 200
    assert "color_message" not in lines[1]  # uvicorn's coloured copy of a message is dropped
    assert lines[1]["timestamp"].endswith("+00:00")


def test_text_lines_name_the_request_at_their_end(
    captured: tuple[logging.Logger, io.StringIO, list[logging.Handler]],
) -> None:
    logger, out = use(captured, "text"), captured[1]

    with bound_request_id("r2"):
        logger.info("during")
    logger.info("after")

    during, after = out.getvalue().splitlines()
    assert during.endswith("INFO bodhi.test_logs: during [request r2]")
    assert after.endswith("INFO bodhi.test_logs: after")


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_arqs_job_start_line_leaves_out_the_jobs_arguments(log_format: str) -> None:
    """arq logs the start of each job with its arguments: the client's prompt and the sealed key."""
    logger, out = logging.getLogger("arq.worker"), io.StringIO()
    handler = build_handler("json" if log_format == "json" else "text", out)
    logger.addHandler(handler)
    try:
        logger.warning("%6.2fs → %s(%s)%s", 0.01, "abc:inference", "{'body': b'my secret prompt'}", "")
    finally:
        logger.removeHandler(handler)

    assert "secret prompt" not in out.getvalue()
    assert "abc:inference(...)" in out.getvalue()
