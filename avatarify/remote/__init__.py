"""The remote GPU worker and its client: run the model on another machine over ZeroMQ, with CurveZMQ keys.

`connect(RemoteOptions(...))` gives a predictor that runs on a worker without blocking the caller; `Worker`
serves predictors to clients. Importing the package costs nothing: its parts load when first used.
"""
from __future__ import annotations

import importlib
from typing import Any

DEFAULT_BIND = "tcp://127.0.0.1:5557"
# Clients send a heartbeat every half second; one silent this long has gone away.
CLIENT_TIMEOUT = 10.0
# Places one CurveZMQ key (with keys) or one address (without) may hold; over an SSH tunnel every client comes
# from 127.0.0.1.
MAX_CLIENTS_PER_PEER = 4
# Clients one worker serves at once with the model in its own process; a front end forwarding to Ray Serve replicas
# does little per frame, so many more fit there.
MAX_CLIENTS = 8
RAY_MAX_CLIENTS = 256

_PUBLIC = {
    "RemoteOptions": "options",
    "RemotePredictor": "client",
    "WorkerRefusedError": "client",
    "connect": "client",
    "Worker": "worker",
}

__all__ = ["CLIENT_TIMEOUT", "DEFAULT_BIND", "MAX_CLIENTS", "MAX_CLIENTS_PER_PEER", "RAY_MAX_CLIENTS", *_PUBLIC]


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
