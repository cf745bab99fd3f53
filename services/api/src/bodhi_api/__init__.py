"""Bodhi API service: authenticates, resolves models, enqueues jobs and relays their tokens as SSE."""
