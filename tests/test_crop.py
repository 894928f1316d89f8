"""Crop math, the One-Euro filter, and the smart crop's smoothing on a real video."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from avatarify.core.faces import Box, SquareCrop, crop_around_face, largest_face
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


def test_zooming_far_in_stops_at_an_eight_pixel_square():
    assert adjust_crop(SquareCrop(320, 240, 480), 1000.0, (0.0, 0.0), (480, 640)) == SquareCrop(320, 240, 8.0)


# A pure low-pass (no speed term) whose time constant is one second: with one-second steps it moves halfway.
ONE_SECOND_HZ = 1 / (2 * math.pi)


def test_one_euro_filter_moves_by_its_documented_smoothing_factor():
    low_pass = OneEuroFilter(min_cutoff=ONE_SECOND_HZ, beta=0.0)
    assert low_pass(np.array([0.0, 4.0]), 10.0).tolist() == [0.0, 4.0]  # the first value passes through
    assert low_pass(np.array([1.0, 0.0]), 11.0) == pytest.approx([0.5, 2.0])
    assert low_pass(np.array([1.0, 0.0]), 12.0) == pytest.approx([0.75, 1.0])
    # The speed term opens the filter: a smoothed speed of 0.5 adds beta * 0.5 to the cutoff, here 3x in all.
    moving = OneEuroFilter(min_cutoff=ONE_SECOND_HZ, beta=4 * ONE_SECOND_HZ, d_cutoff=ONE_SECOND_HZ)
    moving(np.array([0.0]), 0.0)
    assert moving(np.array([1.0]), 1.0) == pytest.approx([0.75])
    moving.reset()
    assert moving(np.array([5.0]), 2.0).tolist() == [5.0]  # after a reset the next value passes through again


def test_one_euro_filter_gives_floats_for_whole_pixel_measurements():
    smoothing = OneEuroFilter()
    first, second = smoothing(np.array([3, 4]), 0.0), smoothing(np.array([3, 4]), 0.04)
    assert first.dtype == second.dtype == np.float64 and first.tolist() == second.tolist() == [3.0, 4.0]


class ScriptedDetector:
    """A face detector that finds the faces it is given, one per call (None: no face), and counts its calls."""

    def __init__(self, *faces: Box | None) -> None:
        self.faces = list(faces)
        self.calls = 0

    def __call__(self, frame: np.ndarray) -> Box | None:
        self.calls += 1
        return self.faces.pop(0) if self.faces else None


FRAME = np.zeros((100, 200, 3), np.uint8)
FACE = Box(x=40, y=20, w=30, h=40)  # centre (55, 40)


def test_smart_crop_centres_until_a_face_is_seen_then_frames_it():
    detector = ScriptedDetector(None, FACE)
    smart = SmartCrop(detect_every=1, detector=detector)
    assert smart.update(FRAME, 0.0) == SquareCrop(cx=100, cy=50, side=100) and smart.face is None
    crop = smart.update(FRAME, 0.04)
    expected = crop_around_face(FACE)
    assert (crop.cx, crop.cy, crop.side) == pytest.approx((expected.cx, expected.cy, expected.side))
    assert smart.face == FACE and detector.calls == 2


@pytest.mark.parametrize("detect_every, calls", [(None, [1, 1, 1, 2, 2, 2, 3]), (2, [1, 1, 2, 2, 3, 3, 4]),
                                                 (1, [1, 2, 3, 4, 5, 6, 7]), (0, [1, 2, 3, 4, 5, 6, 7]),
                                                 (-3, [1, 2, 3, 4, 5, 6, 7])])  # fmt: skip
def test_smart_crop_detects_on_the_first_frame_and_every_few_after(detect_every, calls):
    detector = ScriptedDetector()
    smart = SmartCrop(detector=detector) if detect_every is None else SmartCrop(detect_every, detector)
    seen = []
    for index in range(7):
        smart.update(FRAME, index / 25)
        seen.append(detector.calls)
    assert seen == calls


def test_smart_crop_smooths_in_units_of_the_frame_height():
    # The same head movement seen by cameras of one height and different widths is smoothed the same way.
    moved = Box(x=FACE.x + 40, y=FACE.y + 20, w=FACE.w * 2, h=FACE.h * 2)
    crops = []
    for width in (100, 200, 400):
        smart = SmartCrop(1, ScriptedDetector(FACE, moved), OneEuroFilter(min_cutoff=ONE_SECOND_HZ, beta=1.0))
        smart.update(np.zeros((100, width, 3), np.uint8), 0.0)
        crops.append(smart.update(np.zeros((100, width, 3), np.uint8), 1.0))
    assert crops[0] == crops[1] == crops[2]
    # The speed term opens the one-second low-pass: more than halfway to the new face, not all the way.
    values = [(crop.cx, crop.cy, crop.side) for crop in (crops[0], crop_around_face(FACE), crop_around_face(moved))]
    for now, start, end in zip(*values):
        assert 0.5 < (now - start) / (end - start) < 0.9


def test_smart_crop_reset_forgets_the_face_and_detects_again_at_once():
    detector = ScriptedDetector(FACE, None, FACE)
    controller = CropController(SmartCrop(detect_every=5, detector=detector))
    controller.crop(FRAME, 0.0, smart=True)
    controller.crop(FRAME, 0.04, smart=True)
    controller.reset()
    assert controller.smart.face is None and detector.calls == 1
    assert controller.crop(FRAME, 0.08, smart=True) == SquareCrop(cx=100, cy=50, side=100)  # no face at once
    assert detector.calls == 2


def test_crop_controller_follows_the_face_only_when_asked():
    controller = CropController(SmartCrop(detect_every=1, detector=ScriptedDetector(FACE, FACE)))
    assert controller.crop(FRAME, 0.0, smart=False) == SquareCrop(cx=100, cy=50, side=100)
    assert controller.smart.face is None  # not even looked for
    followed = controller.crop(FRAME, 0.0, smart=True, zoom=2.0)
    expected = crop_around_face(FACE)
    assert (followed.cx, followed.cy, followed.side) == pytest.approx((expected.cx, expected.cy, expected.side / 2))
    assert controller.crop(FRAME, 0.04, smart=True, offset=(0.1, 0.0)).cx == pytest.approx(expected.cx + 20)


def test_default_crop_controller_without_a_face_in_view():
    assert CropController().crop(FRAME, 0.0, smart=True) == SquareCrop(cx=100, cy=50, side=100)
    assert CropController().crop(FRAME, 0.0, smart=False, offset=(-0.5, 0.0)) == SquareCrop(cx=50, cy=50, side=100)
