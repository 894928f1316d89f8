"""What the pipeline hands to its listeners for every processed camera frame."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class PipelineStats:
    """Rates and per-stage timings (medians over the last second or so), plus device states."""

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
    """One camera frame's results: the preview the user sees and the frame sent out."""

    preview: np.ndarray
    output: np.ndarray
    stats: PipelineStats
