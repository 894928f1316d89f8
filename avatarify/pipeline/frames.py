"""What the pipeline hands to its listeners for every processed camera frame."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class PipelineStats:
    """Rates and per-stage timings (medians over the last 30 frames), plus device states.

    `latency_ms` runs from the camera delivering a frame to its result leaving the output stage.
    """

    camera_fps: float = 0.0
    model_fps: float = 0.0
    capture_ms: float = 0.0
    crop_ms: float = 0.0
    model_ms: float = 0.0
    output_ms: float = 0.0
    latency_ms: float = 0.0
    best_frame_score: float | None = None
    device: str = "none"
    vcam_state: str = "off"

    def summary(self) -> str:
        """One line for a terminal or an on-screen overlay."""
        score = "" if self.best_frame_score is None else f" | best pose {self.best_frame_score:.2f}"
        return (
            f"camera {self.camera_fps:.1f} fps | model {self.model_fps:.1f} fps ({self.model_ms:.0f} ms) | "
            f"latency {self.latency_ms:.0f} ms{score}"
        )


@dataclass
class PipelineFrame:
    """One camera frame's results: the preview the user sees and the frame sent out.

    `animated` is False while the output is only a placeholder (the model has not produced a frame yet).
    """

    preview: np.ndarray
    output: np.ndarray
    stats: PipelineStats
    animated: bool = True
