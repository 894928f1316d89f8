"""Pure drawing functions: the preview (crop square, avatar overlay, landmarks, statistics) and the output frame."""
from __future__ import annotations

import cv2
import numpy as np

from ..core.faces import SquareCrop
from .vcam import even_size, fit_frame

CROP_COLOR = (255, 255, 255)
SMART_CROP_COLOR = (80, 220, 80)
LANDMARK_COLOR = (255, 80, 80)


def output_size(frame_shape: tuple[int, ...], keep_aspect: bool) -> tuple[int, int]:
    """(width, height) of the output for camera frames of `frame_shape`: square, or the camera's aspect."""
    h, w = frame_shape[:2]
    return even_size((w, h)) if keep_aspect else even_size((min(w, h), min(w, h)))


def compose_output(square: np.ndarray, size: tuple[int, int], mirror: bool) -> np.ndarray:
    """The frame sent out: `square` fitted into `size` (width, height), mirrored if asked."""
    result = fit_frame(square, size)
    return np.ascontiguousarray(result[:, ::-1]) if mirror else result


def blend_into(image: np.ndarray, patch: np.ndarray, crop: SquareCrop, opacity: float) -> None:
    """Blend the square `patch`, scaled to `crop`, into `image` in place (clipped to the image)."""
    x0, y0, x1, y1 = crop.corners()
    h, w = image.shape[:2]
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if cx1 <= cx0 or cy1 <= cy0:
        return
    scaled = cv2.resize(patch, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
    region = image[cy0:cy1, cx0:cx1]
    part = scaled[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]
    image[cy0:cy1, cx0:cx1] = cv2.addWeighted(part, opacity, region, 1.0 - opacity, 0.0)


def draw_landmarks(image: np.ndarray, points: np.ndarray, crop: SquareCrop) -> None:
    """Dots at landmark positions (camera frame pixels), sized to the face."""
    radius = max(1, round(crop.side / 160))
    for x, y in points:
        cv2.circle(image, (round(x), round(y)), radius, LANDMARK_COLOR, -1, cv2.LINE_AA)


def draw_crop(image: np.ndarray, crop: SquareCrop, smart: bool) -> None:
    """The square the model sees; green while it follows the face."""
    x0, y0, x1, y1 = crop.corners()
    color = SMART_CROP_COLOR if smart else CROP_COLOR
    cv2.rectangle(image, (x0, y0), (x1 - 1, y1 - 1), color, max(1, image.shape[0] // 240))


def render_preview(
    frame: np.ndarray,
    crop: SquareCrop,
    *,
    smart: bool,
    mirror: bool,
    overlay: np.ndarray | None = None,
    opacity: float = 0.0,
    landmarks: np.ndarray | None = None,
) -> np.ndarray:
    """The camera frame as the user sees it: avatar overlay, landmarks and crop square drawn, then mirrored."""
    preview = frame.copy()
    if overlay is not None and opacity > 0:
        blend_into(preview, overlay, crop, opacity)
    if landmarks is not None:
        draw_landmarks(preview, landmarks, crop)
    draw_crop(preview, crop, smart)
    if mirror:
        preview = np.ascontiguousarray(preview[:, ::-1])
    return preview
