"""Routers: one model id served by an ordered list of targets (other served ids) with a strategy.

``schemas`` (what clients send and get), ``store`` (Postgres and the served-id rule), ``picking`` (the order of
targets for one request, the cool-downs and in-flight counts in Redis, shared by every replica) and
``routed_dispatch`` (trying the targets in that order until one answers).
"""
