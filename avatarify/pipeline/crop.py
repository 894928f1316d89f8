"""Where in the camera frame the model looks: a manual square crop, or a smoothed crop that follows the face."""
from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from ..core.faces import Box, SquareCrop, center_crop, crop_around_face, largest_face

# The Haar detector costs ~10-20 ms a frame; the filter carries the crop between detections.
DETECT_EVERY = 3
# One-Euro parameters on crop values in units of the frame height: a low cutoff at rest hides
# detection noise, and the speed term opens the filter when the head really moves.
MIN_CUTOFF_HZ = 0.2
BETA = 1.0
DERIVATIVE_CUTOFF_HZ = 1.0


def adjust_crop(base: SquareCrop, zoom: float, offset: tuple[float, float], frame_shape: tuple[int, ...]) -> SquareCrop:
    """`base` zoomed (>1 zooms in) and moved by `offset`, a fraction of the frame's width and height, kept inside
    the frame: the model never sees made-up border pixels, and the preview always shows the whole square."""
    h, w = frame_shape[:2]
    side = min(max(8.0, base.side / zoom), float(min(h, w)))
    half = side / 2
    cx = min(max(base.cx + offset[0] * w, half), w - half)
    cy = min(max(base.cy + offset[1] * h, half), h - half)
    return SquareCrop(cx=cx, cy=cy, side=side)


class OneEuroFilter:
    """The One-Euro filter (Casiez et al., CHI 2012) on a vector: smooth at rest, responsive when moving."""

    def __init__(
        self, min_cutoff: float = MIN_CUTOFF_HZ, beta: float = BETA, d_cutoff: float = DERIVATIVE_CUTOFF_HZ
    ) -> None:
        self.min_cutoff = min_cutoff
        self.beta = beta
        self.d_cutoff = d_cutoff
        self.reset()

    def reset(self) -> None:
        self._value: np.ndarray | None = None
        self._derivative: np.ndarray | None = None
        self._time = 0.0

    @staticmethod
    def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
        tau = 1.0 / (2.0 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / dt)

    def __call__(self, value: np.ndarray, t: float) -> np.ndarray:
        """The filtered value of a measurement taken at time `t` (seconds, increasing)."""
        value = np.asarray(value, dtype=np.float64)
        if self._value is None:
            self._value, self._derivative, self._time = value, np.zeros_like(value), t
            return value.copy()
        dt = max(t - self._time, 1e-3)
        derivative = (value - self._value) / dt
        self._derivative = self._derivative + self._alpha(self.d_cutoff, dt) * (derivative - self._derivative)
        cutoff = self.min_cutoff + self.beta * np.abs(self._derivative)
        self._value = self._value + self._alpha(cutoff, dt) * (value - self._value)
        self._time = t
        return self._value.copy()


class SmartCrop:
    """A crop that follows the largest face: detected every few frames, smoothed with a One-Euro filter.

    Until a face has been seen, the centre square is used; when the face is lost the crop stays where it was.
    """

    def __init__(
        self,
        detect_every: int = DETECT_EVERY,
        detector: Callable[[np.ndarray], Box | None] = largest_face,
        smoothing: OneEuroFilter | None = None,
    ) -> None:
        self.detect_every = max(1, detect_every)
        self.detector = detector
        self.filter = smoothing or OneEuroFilter()
        self.face: Box | None = None
        self._target: SquareCrop | None = None
        self._frame_count = 0

    def reset(self) -> None:
        self.filter.reset()
        self.face = None
        self._target = None
        self._frame_count = 0

    def update(self, frame: np.ndarray, t: float) -> SquareCrop:
        """The smoothed face crop for this frame (taken at time `t`, seconds)."""
        if self._frame_count % self.detect_every == 0:
            face = self.detector(frame)
            if face is not None:
                self.face = face
                self._target = crop_around_face(face)
        self._frame_count += 1
        if self._target is None:
            return center_crop(frame.shape)
        # Normalised by the frame height so that the filter's parameters do not depend on resolution.
        scale = float(frame.shape[0])
        target = np.array([self._target.cx, self._target.cy, self._target.side]) / scale
        cx, cy, side = self.filter(target, t) * scale
        return SquareCrop(cx=float(cx), cy=float(cy), side=float(side))


class CropController:
    """The crop the pipeline cuts from each camera frame: manual zoom/offset over a centred or face-following base."""

    def __init__(self, smart: SmartCrop | None = None) -> None:
        self.smart = smart or SmartCrop()

    def crop(
        self,
        frame: np.ndarray,
        t: float,
        smart: bool,
        zoom: float = 1.0,
        offset: tuple[float, float] = (0.0, 0.0),
    ) -> SquareCrop:
        base = self.smart.update(frame, t) if smart else center_crop(frame.shape)
        return adjust_crop(base, zoom, offset, frame.shape)

    def reset(self) -> None:
        self.smart.reset()
