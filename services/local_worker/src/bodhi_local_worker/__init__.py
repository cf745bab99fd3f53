"""Bodhi local worker: runs GGUF models with llama.cpp, one worker per GPU.

A placeholder until the local-model issue lands; the package exists so the workspace has its final shape.
"""

NOT_AVAILABLE_YET = "bodhi local-worker is not available yet: local GGUF models arrive with the local-model issue."
