from __future__ import annotations

import pytest

from bodhi_shared.contract import EventKind, InferenceJob, StreamEvent, Upstream, pack, unpack
from bodhi_shared.errors import UpstreamHTTPError, relayable_error_body


def test_chat_job_survives_the_wire() -> None:
    job = InferenceJob(
        request_id="r1",
        channel="c",
        upstream=Upstream(base_url="http://x/v1", key_row="row", sealed_key=b"\x01sealed"),
        endpoint="chat/completions",
        body=b'{"model": "m"}',
        stream=True,
        pickup_deadline=12.5,
    )

    assert InferenceJob.from_wire(unpack(pack(job.to_wire()))) == job


@pytest.mark.parametrize(
    "event",
    [
        StreamEvent(EventKind.STARTED),
        StreamEvent(EventKind.CHUNK, data=b'{"x": 1}'),
        StreamEvent(EventKind.ERROR, 429, b'{"error": {}}'),
        StreamEvent(EventKind.DONE, meta={"usage": {"total_tokens": 3}}),
    ],
)
def test_events_survive_the_wire(event: StreamEvent) -> None:
    assert StreamEvent.decode(event.encode()) == event


def test_openai_shaped_upstream_errors_pass_unchanged_and_others_are_wrapped() -> None:
    shaped = b'{"error": {"message": "m", "type": "t", "param": null, "code": "c"}}'
    assert relayable_error_body(400, shaped) == shaped
    wrapped = UpstreamHTTPError(500, b"<html>Bad Gateway</html>").to_json()
    assert b'"type": "api_error"' in wrapped
    assert b"Bad Gateway" in wrapped
