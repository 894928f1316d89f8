"""Opening what the settings name: the camera, the virtual camera and the model. Slow: call off the GUI thread."""
from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..model.loader import create_predictor, predictor_from_args
from ..pipeline.camera import CameraError, CameraInfo, FrameSource, list_cameras, open_source
from ..pipeline.vcam import VirtualCameraOutput
from ..model.predictor import AvatarPredictor
from ..model.weights import find_checkpoint
from .settings import AppSettings

log = logging.getLogger(__name__)

CAMERA_RETRY_INTERVAL = 2.0


@dataclass
class ModelOptions:
    """Model options given on the command line; they win over the settings for this session."""

    config: Path | None = None  # None: the bundled vox-256 config
    checkpoint: Path | None = None
    device: str | None = None
    precision: str = "auto"  # the decoder's number type (see --precision)
    remote: argparse.Namespace | None = None  # the --worker options, when a remote worker runs the model


def cameras() -> list[CameraInfo]:
    """The cameras to offer in the settings; an empty list when they cannot be listed."""
    try:
        return list_cameras()
    except OSError as exc:
        log.warning("Cannot list cameras: %s", exc)
        return []


def open_camera(settings: AppSettings, spec: str | None = None) -> FrameSource:
    """The camera (or video file / image folder) `spec`, else the settings' camera, at the settings' resolution."""
    return open_source(spec or settings.camera, settings.camera_width, settings.camera_height)


def open_output(settings: AppSettings) -> VirtualCameraOutput | None:
    """The virtual camera the settings name (it opens with the first frame), or None when switched off."""
    if not settings.vcam_enabled:
        return None
    return VirtualCameraOutput(device=settings.vcam_device or None, backend=settings.vcam_backend or None)


class PendingCamera:
    """A camera that could not be opened at launch (unplugged, wrong name, missing file).

    Reading raises `CameraError` with the reason, so the window can show it, and retries opening
    the camera every `CAMERA_RETRY_INTERVAL` seconds; once open, it reads from that camera.
    """

    def __init__(self, opener: Callable[[], FrameSource], name: str, error: str) -> None:
        self._opener = opener
        self._source: FrameSource | None = None
        self._name = name
        self.error = error
        self._next_try = time.monotonic() + CAMERA_RETRY_INTERVAL

    @property
    def name(self) -> str:
        return self._source.name if self._source is not None else self._name

    @property
    def fps(self) -> float:
        return self._source.fps if self._source is not None else 0.0

    @property
    def size(self) -> tuple[int, int]:
        return self._source.size if self._source is not None else (0, 0)

    def read(self, timeout: float = 1.0) -> np.ndarray | None:
        if self._source is None:
            now = time.monotonic()
            if now >= self._next_try:
                self._next_try = now + CAMERA_RETRY_INTERVAL
                try:
                    self._source = self._opener()
                except CameraError as exc:
                    self.error = str(exc)
            if self._source is None:
                time.sleep(min(timeout, max(0.0, self._next_try - now)))
                raise CameraError(self.error)
        return self._source.read(timeout)

    def close(self) -> None:
        if self._source is not None:
            self._source.close()


def open_camera_or_pending(settings: AppSettings, spec: str | None = None) -> tuple[FrameSource, str | None]:
    """The camera, or a `PendingCamera` and the reason it could not be opened now."""
    try:
        return open_camera(settings, spec), None
    except CameraError as exc:
        return PendingCamera(lambda: open_camera(settings, spec), spec or settings.camera, str(exc)), str(exc)


def checkpoint_path(settings: AppSettings, model: ModelOptions, checkpoint: Path | None = None) -> Path:
    """The checkpoint to load: the one given, the command line's, the settings', else the usual lookup."""
    explicit = checkpoint or model.checkpoint or (Path(settings.checkpoint) if settings.checkpoint else None)
    return find_checkpoint(explicit)


def load_predictor(settings: AppSettings, model: ModelOptions, checkpoint: Path | None = None) -> AvatarPredictor:
    """A predictor on the chosen device, or on the remote worker (the pipeline applies its motion settings)."""
    if model.remote is not None and checkpoint is None:
        return predictor_from_args(model.remote, settings.relative, settings.adapt_scale)
    return create_predictor(
        checkpoint_path(settings, model, checkpoint),
        model.config,
        model.device or settings.model_device,
        relative=settings.relative,
        adapt_movement_scale=settings.adapt_scale,
        precision=model.precision,
    )
