"""Bodhi local worker: runs GGUF models with llama.cpp, one worker per GPU.

Modules: ``settings`` (LocalWorkerSettings), ``gpu`` (CUDA_VISIBLE_DEVICES pinning), ``catalogue`` (the aliases
the API keeps in Redis), ``models`` (LRU of loaded models, their slots), ``engine`` (the only ``llama_cpp``
import), ``batching`` (continuous batching: the sequences of one model in one decode, its thread), ``batched``
(the event loop's side of it: chunks and bodies), ``prompts`` (a request's prompt tokens and sampling, the
context check), ``sampling`` (per-sequence sampling settings), ``text_stream`` (stop strings, whole characters),
``generation`` (threaded, cancellable one-at-a-time model calls), ``request_params`` (OpenAI bodies),
``inference_job`` (the arq job), ``consumers`` (one arq consumer per alias, its slots and liveness), ``worker``
(run_local_worker).
"""
