"""Crop math, the One-Euro filter, and the smart crop's smoothing on a real video."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from avatarify.core.faces import SquareCrop, crop_around_face, largest_face
from avatarify.pipeline.crop import CropController, OneEuroFilter, SmartCrop, adjust_crop
from avatarify.core.video import read_frames

FRAMES = 40


@pytest.fixture(scope="module")
def driving_frames(driving_video) -> list[np.ndarray]:
    return list(itertools.islice(read_frames(driving_video), FRAMES))


def test_adjust_crop_zooms_and_moves_in_fractions_of_the_frame():
    base = SquareCrop(cx=320, cy=240, side=480)
    crop = adjust_crop(base, zoom=2.0, offset=(0.25, -0.1), frame_shape=(480, 640, 3))
    assert crop == SquareCrop(cx=320 + 160, cy=240 - 48, side=240)
    assert crop.corners() == (360, 72, 600, 312)
    assert adjust_crop(base, 1.0, (0.0, 0.0), (480, 640)) == base


@pytest.mark.parametrize(
    ("base", "zoom", "offset"),
    [
        (SquareCrop(320, 240, 480), 0.5, (0.0, 0.0)),  # zoomed out past the frame
        (SquareCrop(320, 240, 480), 1.0, (0.5, 0.5)),  # moved off the bottom right
        (SquareCrop(320, 240, 480), 2.0, (-0.5, -0.5)),  # a small square moved off the top left
        (SquareCrop(20, 20, 900), 1.0, (0.0, 0.0)),  # a face-following square larger than the frame
    ],
)
def test_the_crop_always_stays_inside_the_frame(base, zoom, offset):
    crop = adjust_crop(base, zoom, offset, (480, 640, 3))
    x0, y0, x1, y1 = crop.corners()
    assert 0 <= x0 and 0 <= y0 and x1 <= 640 and y1 <= 480
    assert crop.side == min(480.0, max(8.0, base.side / zoom))


def test_manual_crop_is_the_centre_square():
    frame = np.zeros((480, 640, 3), np.uint8)
    crop = CropController().crop(frame, t=0.0, smart=False, zoom=1.0)
    assert crop == SquareCrop(cx=320, cy=240, side=480)


def test_one_euro_filter_smooths_noise_and_follows_real_motion():
    rng = np.random.default_rng(0)
    smoothing = OneEuroFilter()
    still = [smoothing(np.array([0.5 + rng.normal(0, 0.005)]), i / 25)[0] for i in range(100)]
    assert np.std(np.diff(still[20:])) < 0.25 * 0.005 * np.sqrt(2)
    moved = [smoothing(np.array([0.8]), (100 + i) / 25)[0] for i in range(50)]
    assert moved[-1] == pytest.approx(0.8, abs=0.01)


def test_smart_crop_is_steadier_than_raw_detections_on_real_video(driving_frames):
    smart = SmartCrop(detect_every=1)
    raw, smoothed = [], []
    for index, frame in enumerate(driving_frames):
        face = largest_face(frame)
        assert face is not None
        crop = crop_around_face(face)
        raw.append((crop.cx, crop.cy, crop.side))
        result = smart.update(frame, index / 25)
        smoothed.append((result.cx, result.cy, result.side))
    raw_steps = np.abs(np.diff(np.array(raw), axis=0)).mean(axis=0)
    smooth_steps = np.abs(np.diff(np.array(smoothed), axis=0)).mean(axis=0)
    assert np.all(smooth_steps < 0.6 * raw_steps)
    # ...while staying on the face: within a few pixels of the raw detections on average.
    assert np.abs(np.array(raw) - np.array(smoothed))[10:].mean() < 8.0


def test_smart_crop_detects_every_few_frames_and_keeps_the_crop_without_a_face(driving_frames):
    calls = []

    def counting_detector(frame):
        calls.append(1)
        return largest_face(frame) if len(calls) == 1 else None

    smart = SmartCrop(detect_every=3, detector=counting_detector)
    crops = [smart.update(frame, i / 25) for i, frame in enumerate(driving_frames[:9])]
    assert len(calls) == 3
    assert smart.face is not None
    assert crops[-1] == crops[0]  # face lost: the crop stays where it was
    smart.reset()
    assert smart.update(np.zeros((100, 200, 3), np.uint8), 0.0) == SquareCrop(cx=100, cy=50, side=100)


def test_face_detection_runs_on_several_threads_with_a_classifier_each(avatar_path):
    import threading

    from avatarify.core import faces
    from avatarify.core.images import read_image

    image = read_image(avatar_path)
    expected = faces.detect_faces(image)
    assert expected
    classifiers, found = {}, {}

    def detect(name: int) -> None:
        classifiers[name] = faces._cascade()
        found[name] = faces.detect_faces(image)

    threads = [threading.Thread(target=detect, args=(name,)) for name in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(boxes == expected for boxes in found.values()) and len(found) == 3
    # Sharing one classifier between threads is not safe in OpenCV.
    assert len({id(classifier) for classifier in [*classifiers.values(), faces._cascade()]}) == 4
