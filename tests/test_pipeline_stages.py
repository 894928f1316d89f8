"""The pipeline's bookkeeping with fake parts: routing, the snapshot, stand-ins, problems, latency, stopping."""
from __future__ import annotations

import queue
import time

import numpy as np
import pytest

from avatarify.core.faces import cut_square
from avatarify.core.frame import FRAME_SIZE, MotionOptions
from avatarify.core.settings import Settings
from avatarify.pipeline.drawing import output_size
from avatarify.pipeline.frames import PipelineFrame
from avatarify.pipeline.handoff import DropOldest
from avatarify.pipeline.pipeline import Pipeline
from avatarify.pipeline.state import Avatar
from avatarify.pipeline.vcam import VirtualCameraOutput
from fakes import BACKEND, WAIT, FakeCamera, FakeLandmarks, FakePredictor, backends_for, eventually

AVATAR = Avatar.from_picture(np.full((300, 300, 3), 180, np.uint8), "grey")
OTHER = Avatar.from_picture(np.full((300, 300, 3), 40, np.uint8), "dark")


class Frames:
    """Collects what a pipeline hands its listeners."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.queue: queue.Queue[PipelineFrame] = queue.Queue()
        pipeline.add_listener(self.queue.put)

    def next(self, accept=lambda frame: True, skip: int = 0) -> PipelineFrame:
        """The first frame after `skip` accepted ones from now on."""
        while not self.queue.empty():
            self.queue.get_nowait()
        deadline = time.monotonic() + WAIT
        while True:
            frame = self.queue.get(timeout=max(0.1, deadline - time.monotonic()))
            if accept(frame):
                if skip == 0:
                    return frame
                skip -= 1


def animated(frame: PipelineFrame) -> bool:
    return frame.animated and frame.fresh


@pytest.fixture
def parts():
    camera, predictor = FakeCamera(), FakePredictor()
    pipeline = Pipeline(camera, Settings(mirror_preview=False), predictor, avatar=AVATAR)
    yield pipeline, camera, predictor
    assert pipeline.stop(timeout=5.0)


def test_drop_oldest_keeps_the_newest_items_and_never_blocks():
    handoff: DropOldest[int] = DropOldest(2)
    for value in range(5):
        handoff.put(value)
    assert handoff.dropped == 3
    assert [handoff.get(0), handoff.get(0), handoff.get(0)] == [3, 4, None]


def test_output_size_square_or_camera_aspect():
    assert output_size((480, 640, 3), keep_aspect=False) == (480, 480)
    assert output_size((480, 640, 3), keep_aspect=True) == (640, 480)
    assert output_size((481, 641, 3), keep_aspect=True) == (640, 480)


def test_the_model_gets_the_square_cut_once_and_its_result_goes_out(parts):
    pipeline, camera, predictor = parts
    frames = Frames(pipeline)
    pipeline.start()
    frame = frames.next(animated, skip=2)
    face = predictor.faces[-1]
    assert face.shape == (FRAME_SIZE, FRAME_SIZE, 3) and face.dtype == np.uint8 and face.flags.c_contiguous
    assert predictor.avatar_sets == 1 and np.array_equal(predictor.avatar, AVATAR.image)
    # The output is the model's own square, scaled to the camera's short side (240).
    assert frame.output.shape == (240, 240, 3)
    assert frame.preview.shape == (240, 320, 3)
    stats = pipeline.stats()
    assert stats.model_fps > 0 and stats.device == "fake" and stats.vcam_state == "off"


def test_a_result_goes_out_at_once_not_with_the_next_camera_frame():
    camera = FakeCamera(fps=2.0)  # a camera frame every 500 ms
    pipeline = Pipeline(camera, Settings(), FakePredictor(delay=0.02), avatar=AVATAR)
    frames = Frames(pipeline)
    with pipeline:
        results = [frames.next(animated) for _ in range(3)]
    # Waiting for the next camera frame would add up to 500 ms; the result leaves as soon as it is made.
    assert results[-1].stats.latency_ms < 250
    assert results[-1].stats.handoff_ms < 100 and results[-1].stats.wait_ms < 100


def test_settings_reach_the_model_and_the_drawing_as_one_snapshot(parts):
    pipeline, camera, predictor = parts
    frames = Frames(pipeline)
    pipeline.start()
    frames.next(animated)
    pipeline.apply(Settings(mirror_preview=False, relative=False, motion_strength=2.5, adapt_scale=False))
    frames.next(animated, skip=2)
    assert predictor.motions[-1] == MotionOptions(relative=False, adapt_movement_scale=False, motion_strength=2.5)
    pipeline.apply(Settings(mirror_preview=False, mirror_output=True))
    mirrored = frames.next(animated, skip=2)
    expected = FakePredictor.result(AVATAR.image, predictor.faces[-1])
    assert mirrored.output.shape == (240, 240, 3)
    assert np.abs(mirrored.output[:, ::-1].astype(int).mean() - expected.astype(int).mean()) < 3


def test_switching_avatars_sets_each_once(parts):
    pipeline, _camera, predictor = parts
    frames = Frames(pipeline)
    pipeline.start()
    frames.next(animated)
    pipeline.set_avatar(OTHER)
    frames.next(animated, skip=2)
    assert np.array_equal(predictor.avatar, OTHER.image) and predictor.avatar_sets == 2
    frames.next(animated, skip=2)
    assert predictor.avatar_sets == 2


def test_passthrough_sends_the_camera_crop(parts):
    pipeline, camera, _predictor = parts
    frames = Frames(pipeline)
    pipeline.apply(Settings(mirror_preview=False, passthrough=True))
    pipeline.start()
    frame = frames.next(lambda f: f.tick)
    crop = cut_square(frame.preview, _centre(frame.preview), 240)
    assert frame.animated and np.abs(frame.output[8:-8, 8:-8].astype(int) - crop[8:-8, 8:-8]).mean() < 2


def _centre(image):
    from avatarify.core.faces import center_crop

    return center_crop(image.shape)


def test_without_a_model_the_avatar_is_held_and_the_camera_never_goes_out():
    pipeline = Pipeline(FakeCamera(), Settings(), None, avatar=AVATAR)
    frames = Frames(pipeline)
    with pipeline:
        frame = frames.next(lambda f: f.tick)
    assert not frame.animated and frame.note == "no model"
    assert np.all(frame.output == 180)  # the avatar picture, not a camera pixel


def test_camera_while_unavailable_only_when_chosen():
    pipeline = Pipeline(FakeCamera(), Settings(camera_when_unavailable=True, mirror_preview=False), None, avatar=AVATAR)
    frames = Frames(pipeline)
    with pipeline:
        frame = frames.next(lambda f: f.tick)
    assert not frame.animated
    assert not np.all(frame.output == 180) and frame.output.std() > 10


def test_an_unavailable_engine_holds_the_last_avatar_frame_and_recovers(parts):
    pipeline, _camera, predictor = parts
    frames = Frames(pipeline)
    pipeline.start()
    last = frames.next(animated).output
    predictor.unavailable = "The worker at tcp://x:1 is not animating (worker unreachable)."
    held = frames.next(lambda f: f.tick and not f.animated, skip=1)
    assert held.note == predictor.unavailable and np.array_equal(held.output.shape, last.shape)
    assert pipeline.problems.get("model") == predictor.unavailable
    predictor.unavailable = None
    frames.next(animated)
    assert pipeline.problems.get("model") is None


def test_a_frame_the_model_fails_on_is_reported_once_and_the_model_goes_on(parts):
    pipeline, _camera, predictor = parts
    frames = Frames(pipeline)
    predictor.avatar_sets = 0
    failing = {"left": 3}
    real_predict = predictor.predict

    def predict(frame):
        if failing["left"]:
            failing["left"] -= 1
            raise ValueError("bad\nframe")
        return real_predict(frame)

    predictor.predict = predict
    reports = []
    pipeline.problems.add_listener(lambda topic, message: reports.append((topic, message)))
    pipeline.start()
    frames.next(animated)
    assert reports[0] == ("model", "The model failed on a frame: ValueError: bad frame")
    assert reports.count(reports[0]) == 1 and ("model", None) in reports
    assert predictor.avatar_sets >= 2  # the avatar is set again after a failure


class OneBadFrame(FakeCamera):
    """A camera whose first frame OpenCV cannot resize (a misbehaving driver)."""

    def read(self, timeout: float = 1.0):
        if self.frames_read == 0:
            self.frames_read += 1
            return np.zeros((64, 64, 3), np.float16)
        return super().read(timeout)


def test_a_bad_camera_frame_is_reported_and_capture_goes_on():
    pipeline = Pipeline(OneBadFrame(), Settings(passthrough=True))
    reports = []
    pipeline.problems.add_listener(lambda topic, message: reports.append((topic, message)))
    frames = Frames(pipeline)
    with pipeline:
        frames.next(lambda f: f.tick, skip=1)
    assert reports[0][0] == "capture" and reports[0][1].startswith("A camera frame could not be processed: error: ")
    assert "\n" not in reports[0][1]


def test_a_failing_camera_is_reported_once_and_clears_when_it_is_back():
    camera = FakeCamera()
    camera.failure = OSError("unplugged")
    pipeline = Pipeline(camera, Settings(passthrough=True))
    reports = []
    pipeline.problems.add_listener(lambda topic, message: reports.append((topic, message)))
    frames = Frames(pipeline)
    with pipeline:
        eventually(lambda: reports, "the camera problem")
        time.sleep(0.5)
        camera.failure = None
        frames.next(lambda f: f.tick)
    assert reports == [("camera", "Camera fake camera lost: unplugged Retrying."), ("camera", None)]


def test_landmark_failures_are_reported_once_and_analysis_goes_on():
    detector = FakeLandmarks(fails=True)
    pipeline = Pipeline(FakeCamera(), Settings(show_landmarks=True), landmarks=detector)
    with pipeline:
        eventually(lambda: pipeline.problems.get("analysis"), "the failure reported")
        calls = detector.calls
        eventually(lambda: detector.calls > calls + 2, "more frames analysed")
    assert pipeline.problems.get("analysis") == "Face analysis failed on a frame: RuntimeError: landmark network failed"


def test_find_best_frame_sets_better_neutral_poses_and_restarts_on_calibrate(parts):
    pipeline, _camera, predictor = parts
    pipeline.set_landmarks(FakeLandmarks())
    pipeline.apply(Settings(find_best_frame=True))
    pipeline.start()
    eventually(lambda: pipeline.stats().best_frame_score is not None, "a best-frame score")
    assert 0.0 < pipeline.stats().best_frame_score <= 1.0 and predictor.neutral_frames
    pipeline.calibrate()
    assert predictor.calibrations == 1
    pipeline.apply(Settings(find_best_frame=False))
    assert pipeline.stats().best_frame_score is None


def test_unavailable_landmarks_are_named_on_the_preview_and_reported():
    pipeline = Pipeline(
        FakeCamera(), Settings(show_landmarks=True, passthrough=True), landmarks=FakeLandmarks("unavailable: no file")
    )
    with pipeline:
        eventually(lambda: pipeline.problems.get("landmarks"), "the landmark problem")
    assert pipeline.problems.get("landmarks") == "Face landmarks unavailable: no file"


def test_frames_reach_the_virtual_camera_and_a_replaced_one_is_handed_back(parts):
    pipeline, _camera, _predictor = parts
    output = VirtualCameraOutput(device="stages-vcam", backend=BACKEND)
    pipeline.set_output(output)
    frames = Frames(pipeline)
    pipeline.start()
    frame = frames.next(animated, skip=1)
    (device,) = backends_for("stages-vcam")
    assert any(np.array_equal(frame.output, sent) for sent in device.frames[-3:])
    assert pipeline.set_output(None) is output
    assert pipeline.stats().vcam_state == "off"


def test_stop_ends_every_stage_within_its_timeout(parts):
    pipeline, _camera, _predictor = parts
    pipeline.start()
    started = time.monotonic()
    assert pipeline.stop(timeout=3.0)
    assert time.monotonic() - started < 3.0 and not pipeline.running
