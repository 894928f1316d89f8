"""Asking a running worker for its figures (`avatarify worker status`) and putting them in words."""
from __future__ import annotations

import uuid
from typing import Any

import zmq

from ..core.errors import AvatarifyError
from ..core.safejson import JsonInputError, loads_bounded
from .keys import ClientKeys
from .protocol import MAX_PART_BYTES, MAX_PAYLOAD_BYTES, ProtocolError, decode_message, encode_message

STATUS_TIMEOUT = 5.0
# Replicas, sessions and stages nest a few levels below the report itself.
MAX_REPORT_DEPTH = 6


class StatusError(AvatarifyError):
    """The worker did not answer the status query, or answered something that is not a report."""


def query_status(address: str, keys: ClientKeys | None = None, timeout: float = STATUS_TIMEOUT) -> dict[str, Any]:
    """The report of the worker at `address`; StatusError (one line) when none comes within `timeout` seconds."""
    context = zmq.Context.instance()
    socket = context.socket(zmq.DEALER)
    socket.linger = 0
    socket.setsockopt(zmq.MAXMSGSIZE, MAX_PART_BYTES)
    socket.routing_id = uuid.uuid4().hex.encode()
    try:
        if keys is not None:
            keys.apply(socket)
        socket.connect(address)
        socket.send_multipart(encode_message("status", 1))
        if not socket.poll(timeout * 1000):
            raise StatusError(
                f"No answer from the worker at {address} within {timeout:g} s: is it running there, and does it "
                "need keys (--keys DIR with a client pair it accepts)?"
            )
        message = decode_message(socket.recv_multipart())
    except zmq.ZMQError as exc:
        raise StatusError(f"Cannot ask the worker at {address}: {exc}. Give it as tcp://HOST:PORT.") from None
    except ProtocolError as exc:
        raise StatusError(f"The worker at {address} answered something unreadable: {exc}") from None
    finally:
        socket.close(linger=0)
    if message.type != "report" or message.payload is None:
        raise StatusError(f"The worker at {address} does not report its status (it answered {message.type}).")
    try:
        report = loads_bounded(message.payload, max_bytes=MAX_PAYLOAD_BYTES, max_depth=MAX_REPORT_DEPTH)
    except JsonInputError as exc:
        raise StatusError(f"The worker at {address} sent an unreadable report: {exc}") from None
    if not isinstance(report, dict):
        raise StatusError(f"The worker at {address} sent an unreadable report: not a JSON object.")
    return report


def describe(report: dict[str, Any]) -> list[str]:
    """A report as lines for a person: the front end, then the backend (and each Ray replica)."""
    counters = report.get("counters") or {}
    lines = [
        f"front end  {report.get('endpoint')}: {report.get('clients')}/{report.get('max_clients')} clients, "
        f"{report.get('waiting')} requests waiting, up {report.get('uptime_s')} s",
        f"           {counters.get('frames')} frames, {counters.get('dropped_frames')} stale frames skipped, "
        f"{counters.get('avatar_uploads')} avatars received, {counters.get('rejected_messages')} bad messages",
    ]
    if report.get("problem"):
        lines.append(f"PROBLEM    {report['problem']}")
    backend = report.get("backend") or {}
    if backend.get("backend") == "ray":
        lines += _describe_ray(backend)
    else:
        lines.append(
            f"model      local on {backend.get('device')}: {backend.get('sessions')} sessions, "
            f"{backend.get('model_ms')} ms a frame"
        )
    return lines


def _describe_ray(backend: dict[str, Any]) -> list[str]:
    states = ", ".join(f"{count} {state.lower()}" for state, count in (backend.get("replica_states") or {}).items())
    lines = [
        f"ray        {backend.get('address')}, deployment {backend.get('deployment')}: {states or 'no replicas'}; "
        f"{backend.get('in_flight')} frames in flight",
        f"           {backend.get('fps')} frames/s; frames by batch size {_sizes(backend.get('batch_sizes'))}",
    ]
    stages = backend.get("stage_ms") or {}
    if stages:
        lines.append("           median ms: " + ", ".join(f"{name} {value}" for name, value in stages.items()))
    for replica, figures in sorted((backend.get("replicas") or {}).items(), key=lambda item: str(item[0])):
        if not isinstance(figures, dict):
            continue
        lines.append(
            f"replica    {replica} ({figures.get('state')}, process {figures.get('pid')} on {figures.get('node')}): "
            f"{figures.get('sessions')} sessions, {figures.get('frames')} frames, queue {figures.get('queue')}, "
            f"frames by batch size {_sizes(figures.get('batch_sizes'))}, generator {figures.get('generator_ms')} ms a batch"
        )
    return lines


def _sizes(histogram: Any) -> str:
    if not isinstance(histogram, dict) or not histogram:
        return "none yet"
    # Sizes are numbers written as text: shorter ones first sorts them by value.
    return " ".join(f"{size}:{count}" for size, count in sorted(histogram.items(), key=lambda item: (len(item[0]), item[0])))
