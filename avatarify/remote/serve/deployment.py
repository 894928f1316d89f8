"""The Ray Serve deployment: FOMM replicas that animate frames of many sessions, batched into one model call.

A replica keeps no session: each request carries the session's neutral pose (or says that its frame is the new
one) and names the avatar by content hash. Avatars are routed and cached by that hash (`serve.multiplexed`, an LRU
per replica); a replica that lacks one fetches the image from Ray's object store, where the link process put it,
so that a replica that never saw a session, or a new one replacing a dead one, serves it at once. Frames arrive
as the clients sent them (JPEG or raw) and leave coded the same way: decoding and coding run on the replicas, not on
the front end.
"""
from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from ray import serve

from ...core.frame import MotionOptions, content_key
from ...model.loader import ModelOptions
from ..protocol import ProtocolError, decode_image, encode_image

log = logging.getLogger(__name__)

APP_NAME = "avatarify"
DEPLOYMENT_NAME = "Animator"
# Avatar encodings one replica keeps (about 4 MB each with the published model).
AVATARS_PER_REPLICA = 64


@dataclass
class FrameRequest:
    """One session's frame: its avatar (hash, and where the image is), the frame as the client coded it, the
    session's neutral pose (`Pose` bytes; None: this frame is the neutral pose) and its motion options."""

    avatar: str
    avatar_ref: Any
    payload: bytes
    enc: str
    quality: int
    neutral: bytes | None
    motion: MotionOptions = field(default_factory=MotionOptions)


@dataclass
class FrameReply:
    """The animated frame coded as the request's was (None with `error`: "rejected", "need_avatar"), the frame's
    own pose, and the replica's figures: its id and process, the batch this frame ran in, ms per stage, and how many
    requests it held then."""

    payload: bytes | None
    pose: bytes
    replica: str
    pid: int
    batch: int
    stage_ms: dict[str, float]
    queue: int
    error: str | None = None
    message: str = ""


class Animator:
    """A replica: one FOMM on this replica's device, animating batches of frames from any sessions."""

    def __init__(self, model: ModelOptions, max_batch: int, batch_wait_s: float) -> None:
        from ...model.loader import create_batch_animator

        self._animator = create_batch_animator(model)
        self._refs: OrderedDict[str, Any] = OrderedDict()
        self._queue = 0
        # Set while no batch runs.
        self._idle = asyncio.Event()
        self._idle.set()
        self._replica = serve.get_replica_context().replica_id.unique_id
        self._batched.set_max_batch_size(max_batch)
        self._batched.set_batch_wait_timeout_s(batch_wait_s)

    async def predict(self, request: FrameRequest) -> FrameReply:
        """Animate one session's frame, in a batch with whatever other frames are waiting."""
        self._queue += 1
        try:
            # Where the loader finds the image if this replica lacks the avatar. Only the recent ones are kept: a
            # reference here keeps its image in the object store.
            self._refs[request.avatar] = request.avatar_ref
            self._refs.move_to_end(request.avatar)
            while len(self._refs) > 2 * AVATARS_PER_REPLICA:
                self._refs.popitem(last=False)
            avatar = await self._avatar(request.avatar)
            # Serve closes a batch as soon as it has waited `batch_wait` after its first frame, even while the batch
            # before still runs; frames that wait here instead join the batch after the running one all together.
            await self._idle.wait()
            # Serve keeps requests of different multiplexed ids (avatars, here) out of one batch, for handlers that
            # ask which id they serve. Ours get the avatar with each item, so frames of any avatars may share a
            # model call: the batch is joined from a context that names no id.
            return await contextvars.Context().run(asyncio.ensure_future, self._batched((request, avatar)))
        except ProtocolError as exc:
            return self._reply(None, b"", 0, {}, error="rejected", message=str(exc))
        finally:
            self._queue -= 1

    async def pose(self, payload: bytes, enc: str) -> tuple[bytes | None, str]:
        """The pose of one frame (a session's new neutral pose) as `Pose` bytes, or None and why the frame is not
        one."""
        try:
            frame = decode_image(enc, payload)
        except ProtocolError as exc:
            return None, str(exc)
        (pose,) = await asyncio.to_thread(self._animator.poses, [frame])
        return pose.to_bytes(), ""

    @serve.multiplexed(max_num_models_per_replica=AVATARS_PER_REPLICA)
    async def _avatar(self, key: str) -> Any:
        ref = self._refs.get(key)
        if ref is None:
            raise ProtocolError("avatar not uploaded", "avatar")
        image = np.array(await ref)  # the object store's copy is read-only; torch wants its own
        if content_key(image) != key:
            raise ProtocolError("avatar image does not match its hash", "avatar hash")
        log.info("Replica %s encodes avatar %s", self._replica, key[:12])
        return await asyncio.to_thread(self._animator.prepare_avatar, image)

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.002)
    async def _batched(self, items: list[tuple[FrameRequest, Any]]) -> list[FrameReply]:
        # The model runs on a thread of its own, so that requests keep arriving (and wait for the next batch) meanwhile.
        self._idle.clear()
        try:
            return await asyncio.to_thread(self._run_batch, items)
        finally:
            self._idle.set()

    def _run_batch(self, items: list[tuple[FrameRequest, Any]]) -> list[FrameReply]:
        from ...model.batch import FrameJob, Pose

        started = time.perf_counter()
        jobs: list[tuple[int, FrameJob]] = []
        replies: list[FrameReply | None] = [None] * len(items)
        for i, (request, avatar) in enumerate(items):
            try:
                frame = decode_image(request.enc, request.payload)
                neutral = None if request.neutral is None else Pose.from_bytes(request.neutral, self._animator.num_kp)
            except ValueError as exc:  # ProtocolError is one too: a bad frame spoils only its own request
                replies[i] = self._reply(None, b"", len(items), {}, error="rejected", message=str(exc))
                continue
            jobs.append((i, FrameJob(avatar, frame, neutral, request.motion)))
        decoded = time.perf_counter()
        if jobs:
            result = self._animator.animate([job for _, job in jobs])
            coded_at = time.perf_counter()
            stages = {"decode": (decoded - started) * 1000.0, **result.stage_ms}
            payloads = [encode_image(image, items[i][0].enc, items[i][0].quality) for (i, _), image in zip(jobs, result.images)]
            stages["encode"] = (time.perf_counter() - coded_at) * 1000.0
            for (i, _), payload, pose in zip(jobs, payloads, result.poses):
                replies[i] = self._reply(payload, pose.to_bytes(), len(items), stages)
        return replies  # type: ignore[return-value]  # every item has its reply by now

    def _reply(self, payload: bytes | None, pose: bytes, batch: int, stages: dict[str, float], **error: str) -> FrameReply:
        rounded = {name: round(ms, 3) for name, ms in stages.items()}
        return FrameReply(payload, pose, self._replica, os.getpid(), batch, rounded, self._queue, **error)


def build_app(model: ModelOptions, replicas: int, autoscale: tuple[int, int] | None, max_batch: int,
              batch_wait_ms: float, actor_resources: dict[str, float]) -> Any:  # fmt: skip
    """The Serve application of `Animator` replicas: `replicas` of them, or autoscaled within `autoscale`."""
    scaling: dict[str, Any] = {"num_replicas": replicas}
    if autoscale is not None:
        # More than a batch waiting per replica asks for another replica.
        scaling = {"autoscaling_config": {"min_replicas": autoscale[0], "max_replicas": autoscale[1],
                                          "initial_replicas": max(1, autoscale[0]), "target_ongoing_requests": max_batch}}  # fmt: skip
    deployment = serve.deployment(
        Animator,
        name=DEPLOYMENT_NAME,
        # Room for the batch being animated, the next one forming and a few more.
        max_ongoing_requests=max(32, 4 * max_batch),
        # A replica that stops answering is replaced within seconds, not the default half minute.
        health_check_period_s=2.0,
        health_check_timeout_s=20.0,
        graceful_shutdown_timeout_s=2.0,
        ray_actor_options=actor_resources,
        logging_config={"enable_access_log": False, "log_level": "WARNING"},
        **scaling,
    )
    return deployment.bind(model, max_batch, batch_wait_ms / 1000.0)
