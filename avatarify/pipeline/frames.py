"""What travels through the pipeline: camera frames with their crop, model results, and what listeners receive."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.faces import SquareCrop


@dataclass(frozen=True)
class Captured:
    """One camera frame and the square the model sees, cut from it once."""

    frame: np.ndarray  # the whole RGB camera frame
    crop: SquareCrop
    face: np.ndarray  # FRAME_SIZE square, RGB uint8, contiguous: no stage converts it again
    t: float  # clock time when the camera delivered the frame
    camera_fps: float


@dataclass(frozen=True)
class Prediction:
    """The model's output for one captured frame; `image` is None when the engine could not animate it."""

    image: np.ndarray | None
    t_capture: float
    t_started: float
    t_finished: float
    reason: str = ""  # why there is no image


@dataclass(frozen=True)
class Landmarks:
    """68 landmark positions in camera frame pixels, and when they were found."""

    points: np.ndarray
    t: float


@dataclass
class PipelineStats:
    """Rates and per-stage timings (medians over the last 30 frames), plus device states.

    `latency_ms` runs from the camera delivering a frame to its result leaving the output stage; of it,
    `wait_ms` is the frame's age when the model took it and `handoff_ms` the time from the model's result
    to the output.
    """

    camera_fps: float = 0.0
    model_fps: float = 0.0
    capture_ms: float = 0.0
    crop_ms: float = 0.0
    model_ms: float = 0.0
    output_ms: float = 0.0
    latency_ms: float = 0.0
    wait_ms: float = 0.0
    handoff_ms: float = 0.0
    best_frame_score: float | None = None
    device: str = "none"
    vcam_state: str = "off"

    def lines(self) -> list[str]:
        """The statistics as short lines, for an overlay."""
        lines = [
            f"camera {self.camera_fps:.1f} fps  model {self.model_fps:.1f} fps",
            f"capture {self.capture_ms:.0f}  crop {self.crop_ms:.0f}  model {self.model_ms:.0f}  "
            f"output {self.output_ms:.0f} ms",
            f"latency {self.latency_ms:.0f} ms  device {self.device}",
        ]
        if self.best_frame_score is not None:
            lines.append(f"best pose {self.best_frame_score:.2f}")
        return lines

    def summary(self) -> str:
        """One line for a terminal."""
        score = "" if self.best_frame_score is None else f" | best pose {self.best_frame_score:.2f}"
        return (
            f"camera {self.camera_fps:.1f} fps | model {self.model_fps:.1f} fps ({self.model_ms:.0f} ms) | "
            f"latency {self.latency_ms:.0f} ms{score}"
        )


@dataclass
class PipelineFrame:
    """What listeners get whenever the preview or the output changes.

    `tick` marks a camera frame (one per camera frame: recorders and frame counters use these); `fresh` marks
    an output sent for the first time. `animated` is False while the output is a stand-in because the model
    cannot animate (none loaded, loading, worker away): the last avatar frame or the avatar picture is held,
    or the camera if the user chose that; `note` says why.
    """

    preview: np.ndarray
    output: np.ndarray
    stats: PipelineStats
    animated: bool = True
    note: str = ""
    tick: bool = True
    fresh: bool = True
