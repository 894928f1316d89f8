"""The user-adjustable state of the pipeline, as plain data."""
from __future__ import annotations

from dataclasses import dataclass

MIN_CROP_ZOOM = 0.5
MAX_CROP_ZOOM = 4.0
MAX_CROP_OFFSET = 0.5
MAX_MOTION_STRENGTH = 3.0


@dataclass
class PipelineSettings:
    """Every switch and slider of the pipeline; serialisable with `dataclasses.asdict`."""

    relative: bool = True
    adapt_movement_scale: bool = True
    motion_strength: float = 1.0
    passthrough: bool = False
    mirror_preview: bool = True
    mirror_output: bool = False
    overlay_opacity: float = 0.0
    show_landmarks: bool = False
    show_stats: bool = False
    smart_crop: bool = False
    crop_zoom: float = 1.0
    crop_offset: tuple[float, float] = (0.0, 0.0)
    output_keep_aspect: bool = False
    find_best_frame: bool = False
