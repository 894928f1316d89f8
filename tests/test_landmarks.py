"""Face landmarks: lazy, offline-safe loading of face-alignment, and the find-best-frame pose score."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from avatarify.core.images import read_image
from avatarify.model.landmarks import OFFLINE_ENV, LandmarkDetector, downloads_allowed
from avatarify.pipeline.pose import normalize_landmarks, pose_distance, pose_score
from avatarify.core.frame import prepare_frame


def face_like_points(seed: int = 0) -> np.ndarray:
    """68 points on an ellipse-ish face outline with some inner points, like a landmark set."""
    rng = np.random.default_rng(seed)
    angles = np.linspace(0, 2 * np.pi, 68, endpoint=False)
    return np.stack([100 + 40 * np.cos(angles), 120 + 55 * np.sin(angles)], axis=1) + rng.normal(0, 2, (68, 2))


def test_missing_weights_without_downloads_is_a_clear_state_and_touches_no_network(tmp_path, monkeypatch):
    torch_home = tmp_path / "torch"
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    detector = LandmarkDetector(allow_download=False)
    assert detector.state == "not loaded"
    assert detector.landmarks(np.zeros((64, 64, 3), np.uint8)) is None  # starts loading in the background
    assert not detector.wait_loaded(timeout=120)
    assert detector.state.startswith("unavailable: ")
    assert "2DFAN4" in detector.state and "downloading is switched off" in detector.state
    assert not torch_home.exists()
    assert detector.landmarks(np.zeros((64, 64, 3), np.uint8)) is None


def test_offline_environment_switches_downloads_off(monkeypatch):
    monkeypatch.setenv(OFFLINE_ENV, "1")
    assert not downloads_allowed() and not LandmarkDetector().allow_download
    monkeypatch.setenv(OFFLINE_ENV, "0")
    assert downloads_allowed()


def test_unreadable_weights_are_reported_not_raised(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    path = LandmarkDetector.weights_path()
    path.parent.mkdir(parents=True)
    path.write_bytes(b"truncated download")
    detector = LandmarkDetector(allow_download=False)
    assert not detector.load()
    assert detector.state.startswith("unavailable: the landmark network could not be loaded")


def test_cached_weights_load_and_give_68_points_on_a_real_portrait(tmp_path, monkeypatch, avatar_path):
    from face_alignment.models import FAN

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    path = LandmarkDetector.weights_path()
    path.parent.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(FAN(4).state_dict(), path)  # the real network, random weights: tests the loading and plumbing
    detector = LandmarkDetector(allow_download=False)
    assert detector.load() and detector.state == "ready"
    points = detector.landmarks(prepare_frame(read_image(avatar_path)))
    assert points.shape == (68, 2) and points.dtype == np.float32
    assert detector.landmarks(np.zeros((256, 256, 3), np.uint8)) is None  # no face


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
