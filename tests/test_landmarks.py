"""Face landmarks: lazy, offline-safe loading of face-alignment, and the find-best-frame pose score."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from avatarify.core.images import read_image
from avatarify.model.landmarks import OFFLINE_ENV, LandmarkDetector, downloads_allowed
from avatarify.core.frame import prepare_frame

pytestmark = pytest.mark.slow



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
