"""How close two faces' poses are, from their 68 landmarks: the score *find best frame* maximises."""
from __future__ import annotations

import cv2
import numpy as np


def normalize_landmarks(points: np.ndarray) -> np.ndarray:
    """Landmarks centred on their mean and scaled by the square root of their convex hull's area."""
    points = np.asarray(points, dtype=np.float64)[:, :2]
    centred = points - points.mean(axis=0, keepdims=True)
    hull = cv2.convexHull(centred.astype(np.float32))
    # All points on a line or one spot have no area: no face shape to compare, and no division by zero.
    area = float(cv2.contourArea(hull))
    return centred / np.sqrt(max(area, 1e-9))


def pose_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Sum of squared differences of two normalised landmark sets: 0 for the same pose and shape."""
    return float(np.sum((normalize_landmarks(a) - normalize_landmarks(b)) ** 2))


def pose_score(a: np.ndarray, b: np.ndarray) -> float:
    """How close two faces' poses are, in (0, 1]: 1 is identical."""
    return 1.0 / (1.0 + pose_distance(a, b))
