"""The inference flow shared by every OpenAI endpoint: parse, route, dispatch to a worker, relay, record."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
import time
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from starlette.responses import Response, StreamingResponse
from starlette.types import Receive

from bodhi_api import access_log
from bodhi_api.auth.limits import state_headers
from bodhi_api.auth.principal import Principal
from bodhi_api.dispatch import QueueTarget, dispatch
from bodhi_api.error_handlers import DependencyUnavailable, as_bodhi_error
from bodhi_api.event_reader import EventReader
from bodhi_api.metrics import UNKNOWN
from bodhi_api.model_routers.picking import release_in_flight
from bodhi_api.model_routers.routed_dispatch import dispatch_routed
from bodhi_api.model_routing import Route, resolve_model
from bodhi_api.relay import SSE_KEEPALIVE, Outcome, Relay
from bodhi_api.resources import Resources
from bodhi_api.stream_wire import OPENAI_WIRE, StreamWire
from bodhi_api.usage import UsageRecord, tokens_of
from bodhi_shared.contract import INFERENCE_FUNCTION, Endpoint, EventKind, InferenceJob, StreamEvent
from bodhi_shared.errors import BodhiError, ModelNotFound
from bodhi_shared.openai_wire import parse_inference_request
from bodhi_shared.rate_limits import LimitCheck, LimitState

if TYPE_CHECKING:
    from bodhi_api.inbound_formats import InboundRequest

log = logging.getLogger(__name__)

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
WORKER_HEADER = "X-Bodhi-Worker"
TARGET_HEADER = "X-Bodhi-Target"  # which target of a router answered
# embeddings are never streamed
STREAMED_ENDPOINTS = (Endpoint.CHAT_COMPLETIONS, Endpoint.COMPLETIONS, Endpoint.RESPONSES, Endpoint.MESSAGES)


def apply_request_params(body: dict[str, Any], params: dict[str, Any]) -> None:
    """A local alias's request defaults, only where the request sets nothing; its system prompt likewise."""
    for key, value in params.items():
        if key != "system_prompt":
            body.setdefault(key, value)
    messages = body.get("messages")
    prompt = params.get("system_prompt")
    if (
        prompt
        and isinstance(messages, list)
        and not any(isinstance(m, dict) and m.get("role") == "system" for m in messages)
    ):
        body["messages"] = [{"role": "system", "content": prompt}, *messages]


def upstream_body(body: dict[str, Any], route: Route, *, stream: bool) -> tuple[bytes, bool]:
    """The body for the worker: ``model`` without the prefix and, for streams, usage asked for.

    Returns the body and whether the usage chunk should reach the client (only if it asked for it).
    """
    body["model"] = route.upstream_model
    if route.local is not None:
        apply_request_params(body, route.request_params)
    relay_usage_chunk = True
    if stream:
        options = body.get("stream_options")
        if not isinstance(options, dict) or not options.get("include_usage"):
            relay_usage_chunk = False
            body["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
    return json.dumps(body).encode(), relay_usage_chunk


def api_model_label(route: Route) -> str:
    """The metrics label of where ``route`` goes: its API model's name, or its local alias."""
    if route.upstream is not None:
        return route.upstream.api_model_name or UNKNOWN
    return route.local.alias if route.local is not None else UNKNOWN


class RequestTimer:
    """Times one request and turns its outcome into a usage record and metrics."""

    def __init__(
        self,
        resources: Resources,
        principal: Principal,
        *,
        request_id: str,
        endpoint: Endpoint,
        model: str,
        route: Route,
        limits: Sequence[LimitCheck] = (),
    ) -> None:
        self.resources, self.principal = resources, principal
        self.request_id, self.endpoint, self.model, self.route = request_id, endpoint, model, route
        self.limits = limits  # the caller's rate limits and budgets: tokens per minute and budgets are charged here
        self.router = route.router  # a request to a router: ``route`` becomes the target tried last (``chose``)
        self.target: str | None = None
        self.started = time.perf_counter()
        self.first_at: float | None = None

    def chose(self, target: Route) -> None:
        """A router's target is being tried: the usage record and the metrics name it."""
        self.route, self.target = target, target.model

    def first_content(self) -> None:
        self.first_at = time.perf_counter()

    def finish(self, outcome: Outcome) -> None:
        now = time.perf_counter()
        ttft = None if self.first_at is None else self.first_at - self.started
        prompt, completion, total = tokens_of(outcome.usage)
        metrics = self.resources.metrics
        metrics.requests.labels(self.model, api_model_label(self.route), outcome.status, str(outcome.http_status)).inc()
        metrics.duration.labels(self.model).observe(now - self.started)
        if ttft is not None:
            metrics.ttft.labels(self.model).observe(ttft)
        metrics.tokens.labels(self.model, "in").inc(prompt or 0)
        metrics.tokens.labels(self.model, "out").inc(completion or 0)
        used = total if total is not None else (prompt or 0) + (completion or 0)
        if used and self.limits:  # off the request path, with other requests' charges (``Charges``)
            self.resources.charges.add(self.limits, used)
        if self.router is not None and self.router.strategy == "least_busy" and self.target is not None:
            resources = self.resources
            resources.spawn(
                release_in_flight(resources.redis, resources.keys, request_id=self.request_id, target=self.target)
            )
        self.resources.usage.record(
            UsageRecord(
                created_at=datetime.now(UTC),
                request_id=self.request_id,
                user_id=self.principal.user.id,
                token_id=self.principal.token_id,
                endpoint=self.endpoint.value,
                model=self.model,
                api_model_id=self.route.api_model_id,
                prompt_tokens=prompt,
                completion_tokens=completion,
                total_tokens=total,
                ttft_ms=None if ttft is None else ttft * 1000,
                duration_ms=(now - self.started) * 1000,
                status=outcome.status,
                http_status=outcome.http_status,
                target=self.target,
            )
        )


class JobDispatch:
    """The job of a request, sent to the workers of where its route goes: the model asked for, or a router's
    targets one after another (``model_routers.routed_dispatch``)."""

    def __init__(
        self,
        resources: Resources,
        route: Route,
        body: dict[str, Any],
        *,
        endpoint: Endpoint,
        stream: bool,
        inbound: InboundRequest | None,
        client_request_id: str | None,
        admitted: list[LimitState],
    ) -> None:
        self.resources, self.route, self.body, self.endpoint, self.stream = resources, route, body, endpoint, stream
        self.inbound, self.client_request_id, self.admitted = inbound, client_request_id, admitted

    async def dispatch(
        self, request_id: str, limits: Sequence[LimitCheck], timer: RequestTimer
    ) -> tuple[EventReader, StreamEvent]:
        if self.route.router is None:
            return await self.attempt(self.route, request_id, limits)
        return await dispatch_routed(
            self.resources,
            self.route,
            request_id=request_id,
            attempt=self.attempt,
            limits=limits,
            admitted=self.admitted,
            chosen=timer.chose,
        )

    def job(self, target: Route, job_id: str, body: dict[str, Any]) -> InferenceJob:
        if self.inbound is None:
            payload, relay_usage_chunk = upstream_body(body, target, stream=self.stream)
        else:  # no stream_options: the worker's translation asks for usage itself
            payload, relay_usage_chunk = self.inbound.upstream_body(body, target), True
        return InferenceJob(
            request_id=job_id,
            channel=self.resources.hub.channel,
            upstream=target.upstream,
            local=target.local,
            endpoint=self.endpoint.value,
            body=payload,
            stream=self.stream,
            relay_usage_chunk=relay_usage_chunk,
            pickup_deadline=time.time() + self.resources.settings.queue_wait_limit,
            client_request_id=self.client_request_id,
        )

    async def attempt(
        self, target: Route, job_id: str, checks: Sequence[LimitCheck]
    ) -> tuple[EventReader, StreamEvent]:
        routed = self.route.router is not None
        # A router's targets each get their own copy: ``job`` rewrites the body for its target.
        job = self.job(target, job_id, copy.deepcopy(self.body) if routed else self.body)
        keys = self.resources.keys
        subject = f"model `{target.model}`" + (f" (a target of the router `{self.route.model}`)" if routed else "")
        return await dispatch(
            self.resources,
            target=QueueTarget.local(keys, target.local.alias) if target.local else QueueTarget.remote(keys),
            function=INFERENCE_FUNCTION,
            payload=job.to_wire(),
            request_id=job_id,
            subject=subject,
            limits=checks,
            admitted=self.admitted,
        )


async def run_inference(
    resources: Resources,
    principal: Principal,
    *,
    endpoint: Endpoint,
    raw_body: bytes,
    request_id: str,
    client_request_id: str | None = None,
    receive: Receive | None = None,
    inbound: InboundRequest | None = None,
) -> Response:
    """``receive`` is the request's ASGI channel, its body already read: a client that disconnects before the
    answer (or, for a stream, before its response starts) cancels the job. ``inbound``: a route of another API's
    format (``inbound_formats``), whose steps run at their places here."""
    request, body = parse_inference_request(raw_body, endpoint=endpoint)
    principal.grant.check(request.model)  # 403 model_not_allowed before anything is looked up or enqueued
    if inbound is not None:
        await inbound.prepare(body)
    try:
        route = await resolve_model(resources.db, request.model, cache=resources.route_cache)
    except ModelNotFound as exc:  # counted under `unknown`: a client's string never becomes a label
        access_log.note(model=UNKNOWN)
        resources.metrics.requests.labels(UNKNOWN, UNKNOWN, "error", str(exc.status_code)).inc()
        raise
    access_log.note(model=route.model)
    stream = request.stream and endpoint in STREAMED_ENDPOINTS
    wire = OPENAI_WIRE if inbound is None else inbound.wire()
    limits = principal.limits.checks(resources.keys, datetime.now(UTC))  # none without limits: no cost
    admitted: list[LimitState] = []
    timer = RequestTimer(
        resources, principal, request_id=request_id, endpoint=endpoint, model=request.model, route=route, limits=limits
    )

    jobs = JobDispatch(
        resources,
        route,
        body,
        endpoint=endpoint,
        stream=stream,
        inbound=inbound,
        client_request_id=client_request_id,
        admitted=admitted,
    )
    dispatching = asyncio.ensure_future(jobs.dispatch(request_id, limits, timer))
    # A stream waits for its first content only so long before its response starts (keep-alives); a plain
    # request waits for the whole answer.
    wait_s = resources.settings.sse_keepalive_interval if stream else None
    if await _client_left_first(dispatching, receive, wait_s=wait_s):
        log.info("request %s: the client left before the answer; its job is cancelled", request_id)
        timer.finish(Outcome())
        return Response(status_code=499)  # nobody reads it
    if stream and not dispatching.done():
        # Still queued behind busy workers, or waiting for the first token: start the stream now and keep the
        # connection alive (load balancers cut idle ones); from here on an error reaches the client in-band.
        return StreamingResponse(
            _stream_once_dispatched(resources, dispatching, timer, request_id, wire=wire, inbound=inbound),
            media_type="text/event-stream",
            headers=SSE_HEADERS | state_headers(admitted),
        )
    try:
        reader, first = await dispatching
    except BodhiError as exc:
        timer.finish(Outcome("error", exc.status_code))
        raise
    timer.first_content()
    relay = Relay(resources, reader, first, request_id=request_id, on_finish=timer.finish, wire=wire)
    headers = worker_header(reader.worker_id) | target_header(timer.target) | state_headers(admitted)
    if stream:
        body_iterator = _counted(resources, relay, inbound=inbound)
        return StreamingResponse(body_iterator, media_type="text/event-stream", headers=SSE_HEADERS | headers)
    response = _single_response(relay, first)
    response.headers.update(headers)
    if inbound is not None:
        await inbound.answered(first.data)
    return response


async def _client_left_first(
    dispatching: asyncio.Future[Any], receive: Receive | None, *, wait_s: float | None
) -> bool:
    """Wait for ``dispatching`` (at most ``wait_s`` seconds); if the client disconnects first, cancel it and return
    True. Cancelling it is what cancels the job: ``dispatch`` withdraws it and publishes the cancel."""
    leaving = asyncio.ensure_future(_disconnect(receive)) if receive is not None else None
    try:
        waits: set[asyncio.Future[Any]] = {dispatching} if leaving is None else {dispatching, leaving}
        await asyncio.wait(waits, timeout=wait_s, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:  # this request's task is cancelled (the server stops): so is its job
        dispatching.cancel()
        raise
    finally:
        if leaving is not None and not leaving.done():
            leaving.cancel()
    if leaving is None or not leaving.done() or leaving.cancelled() or dispatching.done():
        return False
    dispatching.cancel()
    await asyncio.wait({dispatching})  # its clean-up (withdraw, cancel the job) runs; its outcome is nobody's now
    if not dispatching.cancelled():
        dispatching.exception()  # retrieved, so asyncio does not log it as never retrieved
    return True


async def _disconnect(receive: Receive) -> None:
    """Return when the client has closed the connection. The body has been read, so the next ASGI message is the
    disconnect (or the end of the server); an error reading it means the same: nobody can get the answer."""
    with contextlib.suppress(Exception):
        while (await receive())["type"] != "http.disconnect":
            pass


def worker_header(worker_id: str | None) -> dict[str, str]:
    """Which worker served the request: for operators tracing a request, and for tests of routing."""
    return {WORKER_HEADER: worker_id} if worker_id else {}


def target_header(target: str | None) -> dict[str, str]:
    return {TARGET_HEADER: target} if target else {}


def _single_response(relay: Relay, first: StreamEvent) -> Response:
    if first.kind != EventKind.RESPONSE:
        relay.close(Outcome("error", 502))
        raise BodhiError(f"The worker answered a non-streamed request with a {first.kind.name} event.")
    relay.close(Outcome("ok", 200, first.usage, worker_finished=True))
    return Response(first.data, media_type="application/json")


async def _stream_once_dispatched(
    resources: Resources,
    dispatching: asyncio.Future[tuple[EventReader, StreamEvent]],
    timer: RequestTimer,
    request_id: str,
    *,
    wire: StreamWire = OPENAI_WIRE,
    inbound: InboundRequest | None = None,
) -> AsyncIterator[bytes]:
    """A stream whose response started before a worker sent its first content: keep-alives until it does, then
    the relay; a failure meanwhile becomes an in-band error. A client that leaves meanwhile withdraws the job."""
    try:
        while not dispatching.done():
            yield SSE_KEEPALIVE
            await asyncio.wait({dispatching}, timeout=resources.settings.sse_keepalive_interval)
    finally:
        if not dispatching.done():
            dispatching.cancel()
            timer.finish(Outcome())
    try:
        reader, first = dispatching.result()
    except Exception as exc:  # the response has started: every failure goes in-band, as the error handlers would
        error = as_bodhi_error(exc)
        if not isinstance(exc, BodhiError) and not isinstance(error, DependencyUnavailable):
            log.error("request %s failed while it waited for a worker", request_id, exc_info=exc)
        timer.finish(Outcome("error", error.status_code))
        yield wire.error(error.status_code, error.to_json())
        return
    timer.first_content()
    relay = Relay(resources, reader, first, request_id=request_id, on_finish=timer.finish, wire=wire)
    async for frame in _counted(resources, relay, inbound=inbound):
        yield frame


async def _counted(resources: Resources, relay: Relay, *, inbound: InboundRequest | None = None) -> Any:
    resources.metrics.active_streams.inc()
    try:
        async for frame in relay.sse():
            yield frame
        if inbound is not None:
            await inbound.finished()  # before the body ends: what it stores is there for the client's next request
    finally:
        resources.metrics.active_streams.dec()
