"""Offline face detection (OpenCV's bundled Haar cascade) and the square face crops the model expects."""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import cv2
import numpy as np

log = logging.getLogger(__name__)

# The VoxCeleb crops FOMM was trained on show the whole head with some hair, neck and shoulders:
# a square about 1.8 times the size of a frontal-face detection box.
CROP_MARGIN = 1.8
# Detection runs on a downscaled copy: Haar cascades cost grows with pixels, and faces in
# webcam frames and portraits are large.
DETECTION_SIDE = 480


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in pixels (x, y of the top-left corner, width, height)."""

    x: float
    y: float
    w: float
    h: float

    @property
    def center(self) -> tuple[float, float]:
        return self.x + self.w / 2, self.y + self.h / 2

    @property
    def area(self) -> float:
        return self.w * self.h


@dataclass(frozen=True)
class SquareCrop:
    """A square region of an image: centre (cx, cy) and side length, in pixels. May extend past the borders."""

    cx: float
    cy: float
    side: float

    def corners(self) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1), rounded to whole pixels."""
        half = self.side / 2
        x0, y0 = round(self.cx - half), round(self.cy - half)
        side = max(1, round(self.side))
        return x0, y0, x0 + side, y0 + side


# One classifier per thread: detectMultiScale is not safe to call on one classifier from several
# threads (the camera's capture thread and the GUI's crop editor detect faces at the same time).
_per_thread = threading.local()


def _cascade() -> cv2.CascadeClassifier:
    cascade = getattr(_per_thread, "cascade", None)
    if cascade is None:
        path = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
        cascade = cv2.CascadeClassifier(path)
        if cascade.empty():
            raise RuntimeError(f"OpenCV's face cascade {path} is missing; reinstall opencv-python (4.x).")
        _per_thread.cascade = cascade
    return cascade


def detect_faces(image: np.ndarray) -> list[Box]:
    """Frontal faces in an RGB image, largest first."""
    h, w = image.shape[:2]
    scale = min(1.0, DETECTION_SIDE / max(h, w))
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    if scale < 1.0:
        gray = cv2.resize(gray, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    gray = cv2.equalizeHist(gray)
    min_side = max(24, round(min(gray.shape) * 0.12))
    found = _cascade().detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(min_side, min_side))
    boxes = [Box(x / scale, y / scale, bw / scale, bh / scale) for x, y, bw, bh in np.asarray(found).reshape(-1, 4)]
    return sorted(boxes, key=lambda box: box.area, reverse=True)


def largest_face(image: np.ndarray) -> Box | None:
    """The largest frontal face in an RGB image, or None."""
    faces = detect_faces(image)
    return faces[0] if faces else None


def crop_around_face(face: Box, margin: float = CROP_MARGIN) -> SquareCrop:
    """The square crop framing a detected face the way the model's training data was framed."""
    cx, cy = face.center
    return SquareCrop(cx=cx, cy=cy, side=max(face.w, face.h) * margin)


def center_crop(image_shape: tuple[int, ...]) -> SquareCrop:
    """The largest centred square of an image of the given shape."""
    h, w = image_shape[:2]
    return SquareCrop(cx=w / 2, cy=h / 2, side=min(h, w))


def cut_square(image: np.ndarray, crop: SquareCrop, size: int) -> np.ndarray:
    """The crop resized to size x size; parts outside the image repeat the border pixels."""
    x0, y0, x1, y1 = crop.corners()
    h, w = image.shape[:2]
    pad = max(0, -x0, -y0, x1 - w, y1 - h)
    if pad:
        image = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        x0, y0, x1, y1 = x0 + pad, y0 + pad, x1 + pad, y1 + pad
    region = image[y0:y1, x0:x1]
    if region.shape[0] == size:
        return region.copy()  # callers may draw on the result; never hand out a view of the input
    interpolation = cv2.INTER_AREA if region.shape[0] > size else cv2.INTER_LINEAR
    return cv2.resize(region, (size, size), interpolation=interpolation)


def face_crop(image: np.ndarray, size: int = 256, margin: float = CROP_MARGIN) -> tuple[np.ndarray, bool]:
    """A size x size crop around the largest face; the centre square when none is found.

    Returns the crop and whether a face was found.
    """
    face = largest_face(image)
    crop = crop_around_face(face, margin) if face is not None else center_crop(image.shape)
    return cut_square(image, crop, size), face is not None
