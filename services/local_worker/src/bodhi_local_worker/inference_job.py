"""The ``inference`` job of a local worker: run the alias's model and publish its answer on the request's channel.

Events are those of the remote worker (``bodhi_shared.contract``): STARTED (kind ``local``), then CHUNK frames of
``chat.completion.chunk`` (``text_completion`` for ``/v1/completions``) objects and DONE for a stream, or one
RESPONSE; ERROR on a failure. ``model`` in every body is the alias. A cancelled job publishes nothing more: its
generation stops at the next token.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from bodhi_local_worker import request_params
from bodhi_local_worker.context import LocalWorkerContext, context_of
from bodhi_local_worker.generation import Chunk, complete_chat, complete_text, embed, stream_chat, stream_text
from bodhi_local_worker.models import ModelLoadFailed
from bodhi_shared.contract import Endpoint, EventKind, InferenceJob, LocalModel, StreamEvent
from bodhi_shared.errors import BodhiError, InvalidRequest
from bodhi_shared.event_publisher import EventPublisher
from bodhi_shared.job_runner import run_inference_job
from bodhi_shared.redis_keys import LOCAL_WORKER_KIND
from bodhi_shared.translated_jobs import answer_in_format
from bodhi_shared.worker_metrics import WorkerMetrics

if TYPE_CHECKING:
    from bodhi_local_worker.engine import MeteredLlama

log = logging.getLogger(__name__)


async def inference(ctx: dict[str, Any], payload: dict[str, Any]) -> None:
    worker = context_of(ctx)
    job = InferenceJob.from_wire(payload)
    await run_inference_job(
        job,
        redis=worker.redis,
        cancels=worker.cancels,
        worker_id=worker.worker_id,
        kind=LOCAL_WORKER_KIND,
        # `/v1/responses` and `/v1/messages` are answered as chat completions, translated (``translated_jobs``)
        answer=lambda events: answer_in_format(
            job, events, lambda chat, chat_events: answer(worker, chat, chat_events)
        ),
        metrics=worker.metrics,
    )


async def answer(worker: LocalWorkerContext, job: InferenceJob, events: EventPublisher) -> StreamEvent:
    """Run the model; chunks go out as they come; returns the closing DONE or RESPONSE event."""
    local = job.local
    if local is None:
        raise BodhiError(f"Request {job.request_id} reached a local worker without a local model.")
    if job.endpoint not in (Endpoint.EMBEDDINGS, Endpoint.CHAT_COMPLETIONS, Endpoint.COMPLETIONS):
        raise InvalidRequest(f"Local models do not serve /v1/{job.endpoint}.")
    request = request_params.parse_body(job.body)
    text = job.endpoint == Endpoint.COMPLETIONS  # a legacy text completion: a prompt, not messages
    if job.endpoint == Endpoint.EMBEDDINGS:
        inputs = request_params.embedding_inputs(request)
    else:
        params = request_params.completion_params(request) if text else request_params.chat_params(request)
    try:
        async with worker.models.use(local) as llm:
            if job.endpoint == Endpoint.EMBEDDINGS:
                return await embeddings(llm, local, request, inputs)
            started = time.perf_counter()
            if job.stream:
                done = await streamed_chat(
                    llm, local, job=job, request=request, params=params, events=events, text=text
                )
            else:
                done = await chat(llm, local, params, text=text)
            count_generation(worker.metrics, local.alias, done, seconds=time.perf_counter() - started)
            return done
    except ModelLoadFailed as exc:
        log.error("alias %s: loading %s failed: %s", local.alias, local.path, exc)
        raise BodhiError(f"The local model '{local.alias}' could not be loaded.") from None
    except ValueError as exc:  # llama.cpp's way to refuse a request: a prompt longer than the context, ...
        raise InvalidRequest(str(exc)) from None
    except BodhiError:
        raise
    except Exception:
        log.exception("request %s: the local model %s failed", job.request_id, local.alias)
        raise BodhiError(f"The local model '{local.alias}' failed to answer.") from None


def count_generation(metrics: WorkerMetrics, alias: str, done: StreamEvent, *, seconds: float) -> None:
    """A finished generation's completion tokens and time, for the alias's tokens per second."""
    completion = (done.usage or {}).get("completion_tokens")
    metrics.generated_tokens.labels(alias).inc(completion if isinstance(completion, int) and completion > 0 else 0)
    metrics.generation_seconds.labels(alias).inc(seconds)


async def embeddings(llm: MeteredLlama, local: LocalModel, request: dict[str, Any], inputs: list[str]) -> StreamEvent:
    vectors, prompt_tokens = await embed(llm, inputs)
    body = request_params.embeddings_body(request, vectors, model=local.alias, prompt_tokens=prompt_tokens)
    usage = {"prompt_tokens": prompt_tokens, "completion_tokens": 0, "total_tokens": prompt_tokens}
    return StreamEvent(EventKind.RESPONSE, data=body, meta={"usage": usage})


async def chat(llm: MeteredLlama, local: LocalModel, params: dict[str, Any], *, text: bool = False) -> StreamEvent:
    """A non-streamed chat completion, or (``text``) a legacy text completion."""
    completion, usage = await (complete_text if text else complete_chat)(llm, params)
    completion["model"] = local.alias
    meta = {"usage": request_params.usage_meta(usage)}
    return StreamEvent(EventKind.RESPONSE, data=request_params.to_json(completion), meta=meta)


async def streamed_chat(
    llm: MeteredLlama,
    local: LocalModel,
    *,
    job: InferenceJob,
    request: dict[str, Any],
    params: dict[str, Any],
    events: EventPublisher,
    text: bool = False,
) -> StreamEvent:
    """A streamed chat completion, or (``text``) a legacy text completion."""
    last: Chunk = {}

    def emit(chunk: Chunk) -> None:
        nonlocal last
        chunk["model"] = local.alias
        last = chunk
        events.chunk(request_params.sse_frame(chunk))

    usage = await (stream_text if text else stream_chat)(llm, params, emit)
    if job.relay_usage_chunk and request_params.wants_usage_chunk(request):
        head: dict[str, Any] = {
            key: last[key] for key in ("id", "object", "created", "model", "system_fingerprint") if key in last
        }
        events.chunk(request_params.sse_frame({**head, "choices": [], "usage": usage}))
    return StreamEvent(EventKind.DONE, meta={"usage": usage})
