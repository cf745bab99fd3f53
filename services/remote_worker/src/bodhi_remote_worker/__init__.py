"""Bodhi remote worker: the only tier that talks to providers (and, later, the only one that holds keys)."""
