"""Connecting to a worker never blocks the caller; without one, the predictor says it cannot animate."""
from __future__ import annotations

import socket
import time

import numpy as np
import pytest

from avatarify.core.errors import EngineUnavailable
from avatarify.remote.client import connect
from avatarify.remote.options import RemoteOptions

pytestmark = pytest.mark.worker


def test_connect_returns_at_once_and_a_frame_without_a_worker_is_unavailable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nobody listens here
    started = time.monotonic()
    remote = connect(RemoteOptions(f"tcp://127.0.0.1:{port}", transport="raw"))
    try:
        assert time.monotonic() - started < 0.5 and remote.state == "connecting"
        remote.set_avatar(np.zeros((256, 256, 3), np.uint8))
        with pytest.raises(EngineUnavailable, match="not animating"):
            remote.predict(np.zeros((256, 256, 3), np.uint8))
        assert remote.device_name == f"remote tcp://127.0.0.1:{port} (connecting)"
    finally:
        remote.close()
    assert remote.state == "closed"
