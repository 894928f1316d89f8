"""The whole real-time path with real parts: a driving video as the camera, the small golden checkpoint, the real
pyvirtualcam API through a registered backend and face-alignment's network, built by a session and driven through
the controller with every control the app offers."""
from __future__ import annotations

import queue
import shutil
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from avatarify.core.frame import MotionOptions, prepare_frame
from avatarify.core.settings import Settings, SettingsModel
from avatarify.core.status import State
from avatarify.model.landmarks import LandmarkDetector
from avatarify.model.predictor import Predictor
from avatarify.pipeline.avatars import AvatarLibrary
from avatarify.pipeline.drawing import SMART_CROP_COLOR
from avatarify.pipeline.frames import PipelineFrame
from avatarify.session import Controller, Session, SessionOptions
from avatarify.session.openers import Openers
from fakes import BACKEND, backends_for, eventually

pytestmark = pytest.mark.slow
WAIT = 120.0  # a guard against hanging, never a speed requirement


class FrameLog:
    """Collects the frames a pipeline hands its listeners."""

    def __init__(self, session: Session) -> None:
        self.queue: queue.Queue[PipelineFrame] = queue.Queue()
        session.pipeline.add_listener(self.queue.put)

    def next(self, count: int = 1, skip: int = 3, fresh: bool = True) -> list[PipelineFrame]:
        """`count` camera-frame outputs (model results with `fresh`) after now, the first `skip` dropped."""
        while not self.queue.empty():
            self.queue.get_nowait()
        frames: list[PipelineFrame] = []
        deadline = time.monotonic() + WAIT
        while len(frames) < count + skip:
            frame = self.queue.get(timeout=max(0.1, deadline - time.monotonic()))
            if frame.animated and (frame.fresh if fresh else frame.tick):
                frames.append(frame)
        return frames[skip:]


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


@pytest.fixture
def headline(small_predictor, driving_video, avatars_dir, tmp_path, monkeypatch, random_landmark_weights):
    monkeypatch.setenv("TORCH_HOME", str(random_landmark_weights))
    library = AvatarLibrary([tmp_path / "user-avatars", avatars_dir])
    settings = SettingsModel(Settings(camera=str(driving_video), mirror_preview=False, vcam_device="headline",
                                      vcam_backend=BACKEND))  # fmt: skip
    openers = Openers(local_model=lambda options, motion: small_predictor,
                      landmarks=lambda device: LandmarkDetector(allow_download=False))  # fmt: skip
    session = Session(settings, SessionOptions(), library, openers)
    session.start()
    yield session, library, small_predictor
    assert session.close(timeout=10.0)


def test_whole_session_with_every_control(headline, driving_video, tmp_path):
    session, library, predictor = headline
    controller, settings, pipeline = Controller(session), session.settings, session.pipeline
    log = FrameLog(session)
    assert session.settled("model", WAIT).state is State.RUNNING

    # Model output reaches the listeners and the virtual camera, square, at the video's size.
    frames = log.next(3)
    assert all(f.output.shape == (512, 512, 3) and f.preview.shape == (512, 512, 3) for f in frames)
    assert frames[-1].output.std() > 1.0
    (vcam,) = backends_for("headline")
    assert (vcam.width, vcam.height) == (512, 512)
    assert any(np.array_equal(frames[-1].output, received) for received in vcam.frames[-5:])
    eventually(lambda: pipeline.stats().model_fps > 0, "a second model frame")
    stats = pipeline.stats()
    assert stats.camera_fps > 0 and stats.model_ms > 0 and stats.latency_ms > 0
    assert stats.device == "cpu" and stats.vcam_state == "headline 512x512@25"
    assert session.statuses()["vcam"].state is State.RUNNING

    # Avatars: by index, next/previous with wrap-around; the predictor gets each one.
    controller.run("select_avatar", 2)
    expected = prepare_frame(library.image(2))
    eventually(lambda: np.array_equal(predictor.avatar, expected), "avatar 2 in the predictor")
    controller.run("next_avatar")
    assert session.avatars.index == 3
    controller.run("previous_avatar")
    controller.run("previous_avatar")
    assert session.avatars.index == 1
    controller.run("select_avatar", len(library) - 1)
    controller.run("next_avatar")
    assert session.avatars.index == 0 and settings.value.avatar == library.names[0]
    eventually(lambda: np.array_equal(predictor.avatar, prepare_frame(library.image(0))), "avatar 0")
    cached = predictor.cached_avatars
    controller.run("select_avatar", 2)
    eventually(lambda: np.array_equal(predictor.avatar, expected), "avatar 2 again")
    assert predictor.cached_avatars == cached  # switching back reuses the cached encoding

    # Calibrate: the next frame becomes the neutral pose.
    neutral = predictor.neutral_keypoints
    assert controller.run("calibrate").startswith("Calibrated")
    eventually(lambda: predictor.neutral_keypoints is not None and predictor.neutral_keypoints is not neutral,
               "a new neutral pose")

    # Motion settings reach the predictor as one snapshot.
    settings.update(relative=False, adapt_scale=False, motion_strength=1.5)
    log.next(2)
    assert predictor.motion == MotionOptions(False, False, 1.5)
    settings.update(relative=True, adapt_scale=True, motion_strength=1.0)

    # Passthrough: the camera itself goes out (the preview is the camera frame plus the crop outline).
    controller.run("passthrough")
    (frame,) = log.next(1, fresh=False)
    assert inner_diff(frame.output, frame.preview) < 2.0
    controller.run("mirror_output")
    (frame,) = log.next(1, fresh=False)
    assert inner_diff(frame.output, frame.preview[:, ::-1]) < 2.0
    controller.run("mirror_output")
    controller.run("mirror_preview")
    (frame,) = log.next(1, fresh=False)
    assert inner_diff(frame.output, frame.preview[:, ::-1]) < 2.0 and inner_diff(frame.output, frame.preview) > 5.0
    controller.run("mirror_preview")

    # Manual crop: zoom 2 shows the centre half of the camera frame; moves are fractions of the frame.
    settings.update(crop_zoom=2.0)
    (frame,) = log.next(1, fresh=False)
    centre = cv2.resize(frame.preview[128:384, 128:384], (512, 512))
    assert mean_diff(frame.output, centre) < 6.0
    controller.move_crop(0.1, -0.05)
    assert settings.value.crop_offset == pytest.approx((0.1, -0.05))
    controller.run("reset_crop")
    assert settings.value.crop_zoom == 1.0 and settings.value.crop_offset == (0.0, 0.0)

    # Smart crop follows the face: with zoom the outline is inside the frame and drawn in its colour.
    settings.update(smart_crop=True, crop_zoom=2.0)
    (frame,) = log.next(1, skip=5, fresh=False)
    assert np.all(frame.preview == SMART_CROP_COLOR, axis=2).sum() > 100
    controller.run("reset_crop")
    settings.update(smart_crop=False)

    # Overlay the avatar on the preview at full opacity: the preview shows the avatar.
    settings.update(overlay_opacity=1.0)
    (frame,) = log.next(1, fresh=False)
    avatar = cv2.resize(prepare_frame(library.image(session.avatars.index)), (512, 512))
    assert inner_diff(frame.preview, avatar) < 3.0
    settings.update(overlay_opacity=0.0)
    controller.run("passthrough")

    # Landmarks (real face-alignment network, loaded from the local cache) are found and drawn.
    controller.run("landmarks")
    eventually(lambda: session.statuses()["landmarks"].state is State.RUNNING, "the landmark network")
    eventually(lambda: pipeline.landmarks is not None, "landmarks of a camera frame")
    assert pipeline.landmarks.points.shape == (68, 2)
    controller.run("landmarks")

    # Find best frame: a pose score appears and the predictor's neutral pose is replaced.
    neutral = predictor.neutral_keypoints
    controller.run("find_best_frame")
    eventually(lambda: pipeline.stats().best_frame_score is not None, "a best-frame score")
    assert 0.0 < pipeline.stats().best_frame_score <= 1.0 and predictor.neutral_keypoints is not neutral
    controller.run("find_best_frame")
    assert pipeline.stats().best_frame_score is None

    # Another camera (the same video, faster) and another virtual camera; the old ones are released.
    old_camera = pipeline.snapshot.camera
    shutil.copy(driving_video, tmp_path / "other.mp4")
    settings.update(camera=str(tmp_path / "other.mp4"))
    eventually(lambda: pipeline.snapshot.camera is not old_camera, "the new camera")
    eventually(lambda: not old_camera._thread.is_alive(), "the old camera released")
    settings.update(vcam_device="second")
    log.next(2)
    eventually(lambda: vcam.closed, "the old virtual camera released")
    (second,) = backends_for("second")
    assert len(second.frames) >= 2
    settings.update(vcam_enabled=False)
    assert pipeline.stats().vcam_state == "off"
    eventually(lambda: second.closed, "the virtual camera released")
    assert session.pipeline.problems.current() == {}


def test_adding_or_removing_avatars_keeps_driving_the_same_file(driving_video, avatars_dir, tmp_path):
    library = AvatarLibrary([tmp_path / "user", avatars_dir])
    session = Session(SettingsModel(Settings(camera=str(driving_video), vcam_enabled=False)), library=library)
    choice = session.avatars
    mona = library.paths[library.find("mona")]
    picture = library.image(library.find("mona"))
    choice.select(library.find("mona"))
    added = library.add(picture, "aaa")
    choice.reload()
    assert library.paths[choice.index] == mona
    library.remove(library.paths.index(added))
    choice.reload()
    assert library.paths[choice.index] == mona

    # Removing the driven avatar drives the one that takes its place, in the list and in the pipeline.
    first = library.add(picture[::-1], "a")
    second = library.add(np.full((64, 64, 3), 200, np.uint8), "b")
    choice.select(library.paths.index(first))
    library.remove(library.paths.index(first))
    choice.reload()
    assert library.paths[choice.index] == second
    assert np.array_equal(session.pipeline.snapshot.avatar.image, prepare_frame(library.image(choice.index)))
    assert session.close()


def test_replaced_and_last_predictors_are_closed(small_model, driving_video, tmp_path):
    class ClosablePredictor(Predictor):
        closed = 0

        def close(self) -> None:
            self.closed += 1

    made = []

    def model(options, motion):
        made.append(ClosablePredictor(small_model, optimize=False))
        return made[-1]

    settings = SettingsModel(Settings(camera=str(driving_video), vcam_enabled=False))
    session = Session(settings, library=AvatarLibrary([tmp_path]), openers=Openers(local_model=model))
    session.load_model()
    assert session.settled("model", WAIT).state is State.RUNNING
    session.load_model()
    eventually(lambda: len(made) == 2 and made[0].closed == 1, "the first predictor closed")
    assert session.close() and (made[0].closed, made[1].closed) == (1, 1)


def test_a_lost_camera_is_named_once(driving_video, tmp_path):
    video = tmp_path / "camera.mp4"
    shutil.copy(driving_video, video)
    session = Session(SettingsModel(Settings(camera=str(video), vcam_enabled=False, passthrough=True)),
                      library=AvatarLibrary([tmp_path / "none"]))  # fmt: skip
    reports = []
    session.pipeline.problems.add_listener(lambda topic, message: reports.append(message))
    session.start(model=False)
    try:
        eventually(lambda: session.statuses()["camera"].state is State.RUNNING, "the camera")
        video.unlink()  # the video starts over after its last frame and finds the file gone
        eventually(lambda: reports, "the camera problem reported")
        eventually(lambda: session.statuses()["camera"].failed, "the camera shown as failed")
    finally:
        assert session.close()
    named = [message for message in reports if message is not None]
    assert named == [f"Video file {video} is missing; put it back or choose another camera. Retrying."]
