"""The ``inference`` job of a local worker: run the alias's model and publish its answer on the request's channel.

Events are those of the remote worker (``bodhi_shared.contract``): STARTED (kind ``local``), then CHUNK frames of
``chat.completion.chunk`` (``text_completion`` for ``/v1/completions``) objects and DONE for a stream, or one
RESPONSE; ERROR on a failure. ``model`` in every body is the alias. A cancelled job publishes nothing more: its
generation stops at the next token.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bodhi_local_worker import batched, prompts, request_params
from bodhi_local_worker.batching import EngineClosed, SequenceRequest
from bodhi_local_worker.context import LocalWorkerContext, context_of
from bodhi_local_worker.generation import (
    Chunk,
    complete_chat,
    complete_text,
    embed,
    in_thread,
    stream_chat,
    stream_text,
)
from bodhi_local_worker.models import LoadedModel, ModelLoadFailed
from bodhi_shared.contract import Endpoint, EventKind, InferenceJob, LocalModel, StreamEvent
from bodhi_shared.errors import BodhiError, InvalidRequest, ServiceUnavailable
from bodhi_shared.event_publisher import EventPublisher
from bodhi_shared.job_runner import run_inference_job
from bodhi_shared.redis_keys import LOCAL_WORKER_KIND
from bodhi_shared.translated_jobs import answer_in_format
from bodhi_shared.worker_metrics import WorkerMetrics

if TYPE_CHECKING:
    from bodhi_local_worker.batching import BatchingEngine

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
        async with worker.models.use(local) as model:
            if job.endpoint == Endpoint.EMBEDDINGS:
                return await embeddings(model, local, request, inputs)
            started = time.perf_counter()
            answering = Answering(model, local, job=job, request=request, params=params, events=events, text=text)
            done = await answering.run()
            count_generation(worker.metrics, local.alias, done, seconds=time.perf_counter() - started)
            return done
    except ModelLoadFailed as exc:
        log.error("alias %s: loading %s failed: %s", local.alias, local.path, exc)
        raise BodhiError(f"The local model '{local.alias}' could not be loaded.") from None
    except ValueError as exc:  # llama.cpp's way to refuse a request: a prompt longer than the context, ...
        raise InvalidRequest(str(exc)) from None
    except EngineClosed:
        raise ServiceUnavailable("The local model was unloaded before it finished this answer; retry.") from None
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


async def embeddings(model: LoadedModel, local: LocalModel, request: dict[str, Any], inputs: list[str]) -> StreamEvent:
    if model.batcher is None:
        async with model.exclusive() as llm:
            vectors, prompt_tokens = await embed(llm, inputs)
    else:  # batched with the other requests' inputs, between generation steps
        batcher = model.batcher
        limit = batcher.embedding_limit
        # As llama-cpp-python's own embed: each input cut to what one batch holds.
        tokens = await in_thread(lambda: [model.llm.tokenize(text.encode())[:limit] for text in inputs])
        embedded = await batched.embed(batcher, tokens)
        vectors, prompt_tokens = embedded.vectors, embedded.prompt_tokens
    body = request_params.embeddings_body(request, vectors, model=local.alias, prompt_tokens=prompt_tokens)
    usage = {"prompt_tokens": prompt_tokens, "completion_tokens": 0, "total_tokens": prompt_tokens}
    return StreamEvent(EventKind.RESPONSE, data=body, meta={"usage": usage})


@dataclass
class Answering:
    """One chat or text completion: batched when the model batches and the request allows it (``prompts``),
    llama-cpp-python's own call on the whole context otherwise."""

    model: LoadedModel
    local: LocalModel
    job: InferenceJob
    request: dict[str, Any]
    params: dict[str, Any]
    events: EventPublisher
    text: bool
    last: Chunk = field(default_factory=dict)

    async def run(self) -> StreamEvent:
        model = self.model
        prepare = prompts.text_request if self.text else prompts.chat_request
        sequence = await in_thread(lambda: prepare(model.llm, self.params))
        if sequence is not None:
            prompts.check_fits(
                len(sequence.prompt),
                limit=model.slot_context,
                n_ctx=int(model.llm.n_ctx()),
                n_parallel=model.n_parallel,
                param="prompt" if self.text else "messages",
            )
        if sequence is not None and model.batcher is not None:
            return await self._batched(model.batcher, sequence)
        async with model.exclusive() as llm:
            if self.job.stream:
                usage = await (stream_text if self.text else stream_chat)(llm, self.params, self._emit)
                return self._done(usage)
            completion, usage = await (complete_text if self.text else complete_chat)(llm, self.params)
            return self._response(completion, usage)

    async def _batched(self, batcher: BatchingEngine, sequence: SequenceRequest) -> StreamEvent:
        alias = self.local.alias
        if self.job.stream:
            stream = batched.stream_text if self.text else batched.stream_chat
            return self._done(await stream(batcher, sequence, self._emit, model=alias))
        complete = batched.complete_text if self.text else batched.complete_chat
        completion = await complete(batcher, sequence, model=alias)
        return self._response(completion, completion["usage"])

    def _emit(self, chunk: Chunk) -> None:
        chunk["model"] = self.local.alias
        self.last = chunk
        self.events.chunk(request_params.sse_frame(chunk))

    def _done(self, usage: dict[str, Any]) -> StreamEvent:
        if self.job.relay_usage_chunk and request_params.wants_usage_chunk(self.request):
            head: dict[str, Any] = {
                key: self.last[key]
                for key in ("id", "object", "created", "model", "system_fingerprint")
                if key in self.last
            }
            self.events.chunk(request_params.sse_frame({**head, "choices": [], "usage": usage}))
        return StreamEvent(EventKind.DONE, meta={"usage": usage})

    def _response(self, completion: Chunk, usage: dict[str, Any]) -> StreamEvent:
        completion["model"] = self.local.alias
        meta = {"usage": request_params.usage_meta(usage)}
        return StreamEvent(EventKind.RESPONSE, data=request_params.to_json(completion), meta=meta)
