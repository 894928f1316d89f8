"""The find-best-frame pose score from 68 landmarks (numpy and OpenCV only)."""
from __future__ import annotations

import numpy as np
import pytest

from avatarify.pipeline.pose import normalize_landmarks, pose_distance, pose_score


def face_like_points(seed: int = 0) -> np.ndarray:
    """68 points on an ellipse-ish face outline with some inner points, like a landmark set."""
    rng = np.random.default_rng(seed)
    angles = np.linspace(0, 2 * np.pi, 68, endpoint=False)
    return np.stack([100 + 40 * np.cos(angles), 120 + 55 * np.sin(angles)], axis=1) + rng.normal(0, 2, (68, 2))


def test_normalised_landmarks_ignore_position_and_size():
    points = face_like_points()
    np.testing.assert_allclose(normalize_landmarks(points), normalize_landmarks(points * 3 + [50, -20]), atol=1e-9)
    assert pose_distance(points, points * 0.5 + 7) == pytest.approx(0.0, abs=1e-12)
    assert pose_score(points, points) == pytest.approx(1.0)


def test_pose_score_is_higher_for_closer_poses():
    points = face_like_points()
    turned = points.copy()
    turned[:, 0] = 100 + (points[:, 0] - 100) * 0.8  # a head turned a little: narrower face
    more_turned = points.copy()
    more_turned[:, 0] = 100 + (points[:, 0] - 100) * 0.5
    assert 1.0 > pose_score(points, turned) > pose_score(points, more_turned) > 0.0


def test_degenerate_landmarks_do_not_crash():
    line = np.stack([np.arange(68.0), np.zeros(68)], axis=1)
    assert 0.0 < pose_score(line, face_like_points()) < 1.0
