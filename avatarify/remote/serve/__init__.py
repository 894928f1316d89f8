"""The worker's model on a Ray Serve deployment: many sessions, a pool of GPUs, batching across sessions.

The front end (`backend.RayBackend`, inside `avatarify worker --ray`) keeps the ZeroMQ socket, the clients and each
session's state; a link process (`bridge`) is its Ray driver, so that the front end outlives Ray going away; the
replicas (`deployment`) batch frames of many sessions into one model call. Nothing here is imported unless `--ray` is
used: Ray is the optional `serve` extra.
"""
