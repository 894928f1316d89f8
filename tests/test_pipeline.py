"""The whole pipeline on a real driving video with the small golden checkpoint, through a registered
pyvirtualcam backend, with every control exercised; plus the drop-oldest hand-off."""
from __future__ import annotations

import queue
import shutil
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from avatarify.pipeline.avatars import AvatarLibrary
from avatarify.pipeline.camera import VideoFileSource
from avatarify.pipeline.frames import PipelineFrame
from avatarify.pipeline.handoff import DropOldest
from avatarify.model.landmarks import LandmarkDetector
from avatarify.pipeline.pipeline import SMART_CROP_COLOR, Pipeline, output_size
from avatarify.pipeline.vcam import VirtualCameraOutput
from avatarify.model.predictor import Predictor, prepare_frame
from test_vcam import BACKEND, backends_for

WAIT = 120.0  # a guard against hanging, never a speed requirement


class FrameLog:
    """Collects the frames a pipeline hands its listeners."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.queue: queue.Queue[PipelineFrame] = queue.Queue()
        self.errors: list[str] = []
        pipeline.add_listener(self.queue.put)
        pipeline.add_error_listener(self.errors.append)

    def next(self, count: int = 1, skip: int = 3, animated: bool = True) -> list[PipelineFrame]:
        """`count` frames produced after now; the first `skip` may predate a control change and are dropped."""
        while not self.queue.empty():
            self.queue.get_nowait()
        frames: list[PipelineFrame] = []
        deadline = time.monotonic() + WAIT
        while len(frames) < count + skip:
            frame = self.queue.get(timeout=max(0.1, deadline - time.monotonic()))
            if frame.animated or not animated:
                frames.append(frame)
        return frames[skip:]


def eventually(condition, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def mean_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def inner_diff(a: np.ndarray, b: np.ndarray) -> float:
    """Mean difference away from the borders, where the preview draws the crop outline."""
    return mean_diff(a[8:-8, 8:-8], b[8:-8, 8:-8])


@pytest.fixture(scope="module")
def random_landmark_weights(tmp_path_factory) -> Path:
    """face-alignment's real FAN network with random weights, in a private torch hub cache (no download)."""
    from face_alignment.models import FAN

    torch_home = tmp_path_factory.mktemp("torch-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TORCH_HOME", str(torch_home))
        path = LandmarkDetector.weights_path()
    path.parent.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(FAN(4).state_dict(), path)
    return torch_home


def test_drop_oldest_keeps_the_newest_items_and_never_blocks():
    handoff: DropOldest[int] = DropOldest(2)
    for value in range(5):
        handoff.put(value)
    assert handoff.dropped == 3
    assert [handoff.get(0), handoff.get(0), handoff.get(0)] == [3, 4, None]


def test_drop_oldest_wakes_a_waiting_consumer():
    handoff: DropOldest[str] = DropOldest(1)
    received = []
    consumer = threading.Thread(target=lambda: received.append(handoff.get(timeout=WAIT)))
    consumer.start()
    handoff.put("frame")
    consumer.join()
    assert received == ["frame"]


def test_output_size_square_or_camera_aspect():
    assert output_size((480, 640, 3), keep_aspect=False) == (480, 480)
    assert output_size((480, 640, 3), keep_aspect=True) == (640, 480)
    assert output_size((481, 641, 3), keep_aspect=True) == (640, 480)


def test_whole_pipeline_with_every_control(
    small_predictor, driving_video, avatars_dir, tmp_path, monkeypatch, random_landmark_weights
):
    monkeypatch.setenv("TORCH_HOME", str(random_landmark_weights))
    user_dir = tmp_path / "user-avatars"
    library = AvatarLibrary([user_dir, avatars_dir])
    assert len(library) >= 4
    pipeline = Pipeline(
        VideoFileSource(driving_video),
        library,
        small_predictor,
        output=VirtualCameraOutput(device="headline", backend=BACKEND),
        landmarks=LandmarkDetector(allow_download=False),
    )
    log = FrameLog(pipeline)
    pipeline.set_mirror_preview(False)
    pipeline.start()
    try:
        # Model output reaches the listeners and the virtual camera, square, at the video's size.
        frames = log.next(3)
        assert all(f.output.shape == (512, 512, 3) and f.preview.shape == (512, 512, 3) for f in frames)
        assert frames[-1].output.std() > 1.0
        (vcam,) = backends_for("headline")
        assert (vcam.width, vcam.height) == (512, 512)
        sent = [f.output for f in frames]
        assert any(np.array_equal(sent[-1], received) for received in vcam.frames[-5:])
        eventually(lambda: pipeline.stats().model_fps > 0, "a second model frame")
        stats = pipeline.stats()
        assert stats.camera_fps > 0 and stats.model_fps > 0 and stats.model_ms > 0 and stats.latency_ms > 0
        assert stats.device == "cpu" and stats.vcam_state == "headline 512x512@25"
        assert stats.best_frame_score is None

        # Avatars: by index, next/previous with wrap-around; the predictor gets the new one.
        pipeline.select_avatar(2)
        expected = prepare_frame(library.image(2))
        eventually(lambda: np.array_equal(small_predictor.avatar, expected), "avatar 2 in the predictor")
        assert pipeline.avatar_index == 2
        pipeline.next_avatar()
        assert pipeline.avatar_index == 3
        pipeline.previous_avatar()
        pipeline.previous_avatar()
        assert pipeline.avatar_index == 1
        pipeline.select_avatar(len(library) - 1)
        pipeline.next_avatar()
        assert pipeline.avatar_index == 0
        pipeline.previous_avatar()
        assert pipeline.avatar_index == len(library) - 1
        current = library.paths[pipeline.avatar_index]
        # Switching back to an avatar used before reuses its cached keypoints and encoding.
        eventually(lambda: np.array_equal(small_predictor.avatar, prepare_frame(library.image(len(library) - 1))),
                   "the last avatar in the predictor")
        cached = small_predictor.cached_avatars
        pipeline.select_avatar(2)
        eventually(lambda: np.array_equal(small_predictor.avatar, expected), "avatar 2 again")
        assert small_predictor.cached_avatars == cached
        pipeline.select_avatar(len(library) - 1)

        # Reloading picks up a new picture in the user folder and keeps the current avatar.
        user_dir.mkdir()
        shutil.copy(library.paths[0], user_dir / "added.jpg")
        pipeline.reload_avatars()
        assert len(pipeline.avatars) == len(library) and "added" in pipeline.avatars.names
        assert pipeline.avatars.paths[pipeline.avatar_index] == current
        pipeline.select_avatar(0)
        eventually(
            lambda: np.array_equal(small_predictor.avatar, prepare_frame(library.image(0))), "the added avatar"
        )

        # Calibrate: the next frame becomes the neutral pose.
        neutral = small_predictor.neutral_keypoints
        pipeline.calibrate()
        eventually(
            lambda: small_predictor.neutral_keypoints is not None and small_predictor.neutral_keypoints is not neutral,
            "a new neutral pose",
        )

        # Model options reach the predictor; frames keep coming.
        pipeline.set_relative(False)
        pipeline.set_adapt_scale(False)
        pipeline.set_motion_strength(1.5)
        assert (small_predictor.relative, small_predictor.adapt_movement_scale) == (False, False)
        assert small_predictor.motion_strength == 1.5
        absolute = log.next(2)
        pipeline.set_relative(True)
        pipeline.set_adapt_scale(True)
        pipeline.set_motion_strength(1.0)
        assert pipeline.settings.relative and small_predictor.relative and small_predictor.motion_strength == 1.0
        assert absolute[-1].output.std() > 1.0

        # Passthrough: the camera itself goes out (the preview is the camera frame plus the crop outline).
        pipeline.set_passthrough(True)
        (frame,) = log.next(1)
        assert inner_diff(frame.output, frame.preview) < 2.0
        # Mirror the output, then the preview.
        pipeline.set_mirror_output(True)
        (frame,) = log.next(1)
        assert inner_diff(frame.output, frame.preview[:, ::-1]) < 2.0
        pipeline.set_mirror_output(False)
        pipeline.set_mirror_preview(True)
        (frame,) = log.next(1)
        assert inner_diff(frame.output, frame.preview[:, ::-1]) < 2.0
        assert inner_diff(frame.output, frame.preview) > 5.0
        pipeline.set_mirror_preview(False)

        # Manual crop: zoom 2 shows the centre half of the camera frame; moves are fractions of the frame.
        pipeline.zoom_crop(2.0)
        (frame,) = log.next(1)
        centre = cv2.resize(frame.preview[128:384, 128:384], (512, 512))
        assert mean_diff(frame.output, centre) < 6.0
        pipeline.move_crop(0.1, -0.05)
        assert pipeline.settings.crop_offset == pytest.approx((0.1, -0.05))
        pipeline.set_mirror_preview(True)
        pipeline.move_crop(0.1, 0.0)  # right in a mirrored preview is left in the camera frame
        assert pipeline.settings.crop_offset == pytest.approx((0.0, -0.05))
        pipeline.set_mirror_preview(False)
        pipeline.reset_crop()
        assert pipeline.settings.crop_zoom == 1.0 and pipeline.settings.crop_offset == (0.0, 0.0)

        # Smart crop follows the face: with zoom the outline is inside the frame and drawn in its colour.
        pipeline.set_smart_crop(True)
        pipeline.zoom_crop(2.0)
        (frame,) = log.next(1, skip=5)
        assert np.all(frame.preview == SMART_CROP_COLOR, axis=2).sum() > 100
        pipeline.reset_crop()
        pipeline.set_smart_crop(False)

        # Overlay the avatar on the preview at full opacity: the preview shows the avatar.
        pipeline.set_overlay_opacity(1.0)
        (frame,) = log.next(1)
        avatar = cv2.resize(prepare_frame(library.image(0)), (512, 512))
        assert inner_diff(frame.preview, avatar) < 3.0
        pipeline.set_overlay_opacity(0.0)

        # Stats drawn on the preview: the top-left corner differs from the camera image there.
        pipeline.set_show_stats(True)
        (frame,) = log.next(1)
        assert mean_diff(frame.output[:60, :300], frame.preview[:60, :300]) > 10.0
        assert inner_diff(frame.output[200:, :], frame.preview[200:, :]) < 2.0
        pipeline.set_show_stats(False)
        pipeline.set_passthrough(False)

        # Landmarks (real face-alignment network, loaded from the local cache) drawn on the preview.
        pipeline.set_show_landmarks(True)
        eventually(lambda: pipeline._landmarks.available, "the landmark network")
        eventually(lambda: pipeline._frame_landmarks is not None, "landmarks of a camera frame")
        assert pipeline._frame_landmarks.points.shape == (68, 2)
        pipeline.set_show_landmarks(False)

        # Find best frame: a pose score appears and the predictor's neutral pose is replaced.
        neutral = small_predictor.neutral_keypoints
        pipeline.set_find_best_frame(True)
        eventually(lambda: pipeline.stats().best_frame_score is not None, "a best-frame score")
        score = pipeline.stats().best_frame_score
        assert 0.0 < score <= 1.0
        assert small_predictor.neutral_keypoints is not neutral
        pipeline.set_find_best_frame(False)
        assert pipeline.stats().best_frame_score is None

        # No predictor: camera passthrough only; then the predictor again.
        pipeline.set_predictor(None)
        (frame,) = log.next(1)
        assert pipeline.stats().device == "none" and inner_diff(frame.output, frame.preview) < 2.0
        pipeline.set_predictor(small_predictor)
        log.next(2)
        assert pipeline.stats().device == "cpu"

        # Another camera (the same video, faster) and another virtual camera.
        old_camera = pipeline.camera
        pipeline.set_camera(VideoFileSource(driving_video, fps=50))
        assert not old_camera._thread.is_alive()
        log.next(2)
        pipeline.set_output(VirtualCameraOutput(device="second", backend=BACKEND))
        assert vcam.closed
        log.next(2)
        (second,) = backends_for("second")
        assert len(second.frames) >= 2
        pipeline.set_output(None)
        assert pipeline.stats().vcam_state == "off" and second.closed
        assert log.errors == []
    finally:
        pipeline.stop()
    assert not pipeline.camera._thread.is_alive()


def test_output_is_square_or_padded_to_the_camera_aspect(driving_video, avatars_dir, tmp_path):
    from avatarify.pipeline.camera import ImageFolderSource
    from avatarify.core.video import read_frames

    folder = tmp_path / "camera"
    folder.mkdir()
    for index, frame in zip(range(5), read_frames(driving_video)):
        cv2.imwrite(str(folder / f"{index:03d}.png"), cv2.cvtColor(frame[64:448], cv2.COLOR_RGB2BGR))  # 512x384
    pipeline = Pipeline(ImageFolderSource(folder), AvatarLibrary([avatars_dir]), None)
    log = FrameLog(pipeline)
    pipeline.set_mirror_preview(False)
    with pipeline:
        (square,) = log.next(1)
        pipeline.set_output_keep_aspect(True)
        (padded,) = log.next(1)
    assert square.output.shape == (384, 384, 3) and padded.output.shape == (384, 512, 3)
    assert padded.output[:, :64].max() == 0 and padded.output[:, -64:].max() == 0
    assert inner_diff(padded.output[:, 64:-64], padded.preview[:, 64:-64]) < 2.0


def test_pipeline_keeps_running_when_landmarks_and_virtual_camera_are_unavailable(
    small_predictor, driving_video, avatars_dir, tmp_path, monkeypatch
):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-torch-home"))
    detector = LandmarkDetector(allow_download=False)
    pipeline = Pipeline(
        VideoFileSource(driving_video),
        AvatarLibrary([tmp_path / "none", avatars_dir]),
        small_predictor,
        output=VirtualCameraOutput(device="missing", backend=BACKEND),
        landmarks=detector,
    )
    log = FrameLog(pipeline)
    pipeline.set_show_landmarks(True)
    pipeline.set_find_best_frame(True)
    with pipeline:
        log.next(3)
        eventually(lambda: len(log.errors) >= 2, "both problems reported")
        frames = log.next(2)
    assert any(message.startswith("Face landmarks unavailable: ") for message in log.errors)
    assert any("device missing does not exist" in message for message in log.errors)
    assert len(log.errors) == 2  # each reported once
    assert frames[-1].stats.vcam_state.startswith("unavailable: ")
    assert frames[-1].stats.best_frame_score is None
    assert not (tmp_path / "empty-torch-home").exists()  # nothing was downloaded


def test_adding_or_removing_avatars_keeps_driving_the_same_file(driving_video, avatars_dir, tmp_path):
    library = AvatarLibrary([tmp_path / "user", avatars_dir])
    pipeline = Pipeline(VideoFileSource(driving_video), library, None)
    try:
        mona = library.paths[library.find("mona")]
        picture = library.image(library.find("mona"))
        pipeline.select_avatar(library.find("mona"))
        # `add` and `remove` list the folders again before the pipeline hears of it; every index moves.
        added = library.add(picture, "aaa")
        pipeline.reload_avatars()
        assert library.paths[pipeline.avatar_index] == mona
        library.remove(library.paths.index(added))
        pipeline.reload_avatars()
        assert library.paths[pipeline.avatar_index] == mona

        # Removing the driven avatar drives the one that takes its place, in the list and in the model.
        first = library.add(picture[::-1], "a")
        second = library.add(np.full((64, 64, 3), 200, np.uint8), "b")
        pipeline.select_avatar(library.paths.index(first))
        library.remove(library.paths.index(first))
        pipeline.reload_avatars()
        assert library.paths[pipeline.avatar_index] == second
        assert np.array_equal(pipeline._avatar_image, prepare_frame(library.image(pipeline.avatar_index)))
    finally:
        pipeline.stop()


def test_a_closed_virtual_camera_is_not_reopened_by_a_late_frame():
    # The output thread may still send to a virtual camera that `set_output` just closed.
    output = VirtualCameraOutput(device="closed-late", backend=BACKEND)
    frame = np.zeros((64, 64, 3), np.uint8)
    assert output.send(frame)
    output.close()
    assert not output.send(frame)
    (device,) = backends_for("closed-late")
    assert device.closed
    assert output.open((64, 64)) and output.send(frame)  # opening explicitly makes it usable again
    assert len(backends_for("closed-late")) == 2
    output.close()


class OneBadFrame:
    """The driving video as a camera whose first frame is one OpenCV cannot resize (a misbehaving driver)."""

    def __init__(self, path: Path) -> None:
        self.source = VideoFileSource(path)
        self.name, self.fps, self.size = self.source.name, self.source.fps, self.source.size
        self.bad_sent = False

    def read(self, timeout: float = 1.0) -> np.ndarray | None:
        if not self.bad_sent:
            self.bad_sent = True
            return np.zeros((64, 64, 3), np.float16)
        return self.source.read(timeout)

    def close(self) -> None:
        self.source.close()


def test_a_frame_that_fails_is_reported_and_capture_goes_on(driving_video, avatars_dir):
    pipeline = Pipeline(OneBadFrame(driving_video), AvatarLibrary([avatars_dir]), None)
    log = FrameLog(pipeline)
    with pipeline:
        frames = log.next(2, animated=False)
    assert frames[-1].output.shape == (512, 512, 3)
    assert len(log.errors) == 1 and log.errors[0].startswith("A camera frame could not be processed: error: ")
    assert "\n" not in log.errors[0]


class FailingLandmarks(LandmarkDetector):
    """A landmark detector whose network fails on every face."""

    def __init__(self) -> None:
        super().__init__(allow_download=False)
        self.calls = 0

    def landmarks(self, image, face=None):
        self.calls += 1
        raise RuntimeError("landmark network failed")


def test_a_landmark_failure_is_reported_once_and_analysis_goes_on(driving_video, avatars_dir):
    detector = FailingLandmarks()
    pipeline = Pipeline(VideoFileSource(driving_video), AvatarLibrary([avatars_dir]), None, landmarks=detector)
    log = FrameLog(pipeline)
    pipeline.set_show_landmarks(True)
    with pipeline:
        eventually(lambda: log.errors, "the failure reported")
        calls = detector.calls
        eventually(lambda: detector.calls > calls + 2, "more frames analysed")
    assert log.errors == ["Face analysis failed on a frame: RuntimeError: landmark network failed"]


def test_a_lost_camera_is_named_once(driving_video, avatars_dir, tmp_path):
    video = tmp_path / "camera.mp4"
    shutil.copy(driving_video, video)
    pipeline = Pipeline(VideoFileSource(video, fps=200), AvatarLibrary([avatars_dir]), None)
    log = FrameLog(pipeline)
    with pipeline:
        log.next(1, animated=False)
        video.unlink()  # the video starts over after its last frame and finds the file gone
        eventually(lambda: log.errors, "the camera problem reported")
    assert log.errors == [f"Video file {video} is missing; put it back or choose another camera. Retrying."]


class ClosablePredictor(Predictor):
    """The real predictor with the `close` a remote predictor has, counting the calls."""

    def __init__(self, model) -> None:
        super().__init__(model, optimize=False)
        self.closed = 0

    def close(self) -> None:
        self.closed += 1


def test_replaced_and_last_predictors_are_closed(small_model, driving_video, avatars_dir):
    first, second = ClosablePredictor(small_model), ClosablePredictor(small_model)
    pipeline = Pipeline(VideoFileSource(driving_video), AvatarLibrary([avatars_dir]), first)
    pipeline.set_predictor(second)
    assert (first.closed, second.closed) == (1, 0)
    pipeline.set_predictor(second)  # the same one again: still in use
    assert second.closed == 0
    pipeline.stop()
    assert (first.closed, second.closed) == (1, 1)
