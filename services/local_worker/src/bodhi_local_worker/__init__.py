"""Bodhi local worker: runs GGUF models with llama.cpp, one worker per GPU.

Modules: ``settings`` (LocalWorkerSettings), ``gpu`` (CUDA_VISIBLE_DEVICES pinning), ``catalogue`` (the aliases
the API keeps in Redis), ``models`` (LRU of loaded models), ``engine`` (the only ``llama_cpp`` import),
``generation`` (threaded, cancellable model calls), ``request_params`` (OpenAI bodies), ``inference_job`` (the
arq job), ``consumers`` (one arq consumer per alias and its liveness), ``worker`` (run_local_worker).
"""
