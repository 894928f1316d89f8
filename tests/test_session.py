"""The session with fake parts: it builds, replaces and closes every part, reports statuses, and the later of two
loads always wins (the races of a window that asks again before a slow load finished)."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from avatarify.core.errors import CheckpointError
from avatarify.core.settings import Settings, SettingsModel
from avatarify.core.status import Remedy, State
from avatarify.model.device import DeviceError
from avatarify.model.loader import ModelNotInstalledError
from avatarify.model.weights import WeightsNotFoundError
from avatarify.pipeline.avatars import AvatarLibrary
from avatarify.pipeline.camera import CameraError
from avatarify.session import Session, SessionOptions
from avatarify.session.openers import Openers
from fakes import FakeCamera, FakeLandmarks, FakePredictor, eventually


@pytest.fixture
def library(tmp_path) -> AvatarLibrary:
    import cv2

    folder = tmp_path / "avatars"
    folder.mkdir()
    for name, value in (("anna", 60), ("bert", 200)):
        cv2.imwrite(str(folder / f"{name}.png"), np.full((64, 64, 3), value, np.uint8))
    return AvatarLibrary([folder])


class Openings:
    """Openers that hand out fakes and remember everything they made."""

    def __init__(self) -> None:
        self.cameras: list[FakeCamera] = []
        self.predictors: list[FakePredictor] = []
        self.model_options = []
        self.camera_failures: dict[str, int] = {}
        self.model_failure: Exception | None = None

    def camera(self, spec, width, height, fps):
        if self.camera_failures.get(spec, 0):
            self.camera_failures[spec] -= 1
            raise CameraError(f"Camera {spec} cannot be opened: it is unplugged or used by another program.")
        camera = FakeCamera(name=f"camera {spec}")
        self.cameras.append(camera)
        return camera

    def model(self, options, motion):
        self.model_options.append(options)
        if self.model_failure is not None:
            raise self.model_failure
        predictor = FakePredictor()
        self.predictors.append(predictor)
        return predictor

    def openers(self, **replace) -> Openers:
        parts = {"camera": self.camera, "local_model": self.model, "landmarks": lambda device: FakeLandmarks()}
        return Openers(**{**parts, **replace})


@pytest.fixture
def make_session(library):
    sessions = []

    def make(openings: Openings, settings: Settings | None = None, **options) -> Session:
        session = Session(
            SettingsModel(settings or Settings(vcam_enabled=False)), SessionOptions(**options), library,
            openings.openers(),
        )  # fmt: skip
        sessions.append(session)
        return session

    yield make
    for session in sessions:
        assert session.close(timeout=5.0)


def test_start_opens_every_part_and_close_releases_them(make_session):
    openings = Openings()
    session = make_session(openings)
    session.start()
    assert session.settled("camera", 10).state is State.RUNNING
    assert session.settled("model", 10).state is State.RUNNING
    assert session.pipeline.snapshot.avatar.name == "anna"
    eventually(lambda: openings.predictors[0].faces, "a frame animated")
    assert session.close(timeout=3.0)
    assert openings.cameras[0].closed.is_set() and openings.predictors[0].closed == 1


def test_a_slower_older_model_load_never_wins(make_session):
    """Two loads in flight: the first finishes last. It must be closed, and the newer model kept."""
    openings = Openings()
    release_first = threading.Event()
    made = []

    def model(options, motion):
        predictor = FakePredictor(device_name=str(options.checkpoint))
        made.append(predictor)
        if len(made) == 1:
            release_first.wait(10)
        return predictor

    session = make_session(openings)
    session.openers = openings.openers(local_model=model)
    session.load_model(Path("first.pth.tar"))
    eventually(lambda: made, "the first load under way")
    session.load_model(Path("second.pth.tar"))
    eventually(lambda: session.pipeline.snapshot.predictor is not None, "the second model")
    release_first.set()
    eventually(lambda: made[0].closed == 1, "the stale model closed")
    assert session.pipeline.snapshot.predictor is made[1] and made[1].closed == 0
    assert session.statuses()["model"].message == "Model on second.pth.tar"


def test_a_camera_that_opens_late_after_another_was_chosen_is_closed(make_session):
    """The camera the session kept retrying opens after the user picked another: it must not stay open."""
    openings = Openings()
    release = threading.Event()
    late = []

    def camera(spec, width, height, fps):
        if spec == "0":
            release.wait(10)
            late.append(FakeCamera(name="late"))
            return late[0]
        return openings.camera(spec, width, height, fps)

    session = make_session(openings)
    session.openers = openings.openers(camera=camera)
    session.open_camera()
    session.settings.update(camera="video.mp4")
    eventually(lambda: session.pipeline.snapshot.camera is not None, "the chosen camera")
    release.set()
    eventually(lambda: late and late[0].closed.is_set(), "the late camera closed")
    assert session.pipeline.snapshot.camera.name == "camera video.mp4"


def test_a_missing_camera_is_reported_with_remedies_and_retried(make_session, monkeypatch):
    monkeypatch.setattr("avatarify.session.session.CAMERA_RETRY_INTERVAL", 0.05)
    openings = Openings()
    openings.camera_failures["2"] = 3
    session = make_session(openings, camera="2")
    session.open_camera()
    status = session.settled("camera", 10)
    assert status.failed and status.remedies == (Remedy.CHOOSE_CAMERA, Remedy.VIDEO_FILE)
    assert "Camera 2 cannot be opened" in status.message
    eventually(lambda: session.statuses()["camera"].state is State.RUNNING, "the camera back")
    assert session.camera_spec == "2"


@pytest.mark.parametrize(
    ("failure", "remedies", "words"),
    [
        (WeightsNotFoundError("No model weights found."), (Remedy.DOWNLOAD_WEIGHTS, Remedy.LOCATE_WEIGHTS), "No model"),
        (CheckpointError("Checkpoint x is corrupt or truncated."), (Remedy.DOWNLOAD_WEIGHTS, Remedy.LOCATE_WEIGHTS), "corrupt"),
        (DeviceError("CUDA was requested…", "cuda"), (Remedy.USE_CPU,), "cannot run on “cuda”"),
        (ModelNotInstalledError("no torch"), (), "use a worker"),
        (RuntimeError("out of memory\nmore"), (), "RuntimeError: out of memory"),
    ],
)
def test_model_failures_name_their_remedy(make_session, failure, remedies, words):
    openings = Openings()
    openings.model_failure = failure
    session = make_session(openings)
    session.load_model()
    status = session.settled("model", 10)
    assert status.failed and status.remedies == remedies and words in status.message
    assert "--device" not in status.message  # window words, not command-line ones
    openings.model_failure = None
    session.load_model()
    assert session.settled("model", 10).state is State.RUNNING


def test_a_located_checkpoint_is_remembered_only_once_it_loaded(make_session, tmp_path):
    openings = Openings()
    openings.model_failure = CheckpointError("corrupt")
    session = make_session(openings)
    session.load_model(tmp_path / "bad.pth.tar")
    assert session.settled("model", 10).failed
    assert session.settings.value.checkpoint == ""
    openings.model_failure = None
    session.load_model(tmp_path / "good.pth.tar")
    assert session.settled("model", 10).state is State.RUNNING
    assert session.settings.value.checkpoint == str(tmp_path / "good.pth.tar")
    assert len(openings.model_options) == 2  # remembering it did not load it again


def test_a_broken_remembered_checkpoint_falls_back_to_the_usual_lookup_and_says_so(make_session, tmp_path):
    openings = Openings()
    gone = tmp_path / "gone.pth.tar"

    def model(options, motion):
        if options.checkpoint == gone:
            raise CheckpointError(f"Checkpoint {gone} does not exist.")
        return openings.model(options, motion)

    session = make_session(openings, Settings(vcam_enabled=False, checkpoint=str(gone)))
    session.openers = openings.openers(local_model=model)
    session.load_model()
    status = session.settled("model", 10)
    assert status.state is State.RUNNING and "the remembered checkpoint gone.pth.tar could not be used" in status.message
    assert openings.model_options[-1].checkpoint is None and session.settings.value.checkpoint == ""


def test_device_changes_reload_the_model_and_settings_reach_the_pipeline(make_session):
    openings = Openings()
    session = make_session(openings)
    session.load_model()
    session.settled("model", 10)
    session.settings.update(model_device="cpu", motion_strength=2.0)
    eventually(lambda: len(openings.model_options) == 2, "the model loaded again")
    assert openings.model_options[-1].device == "cpu"
    assert session.pipeline.settings.motion_strength == 2.0


def test_the_virtual_camera_follows_its_settings(make_session):
    from fakes import BACKEND

    session = make_session(Openings(), Settings(vcam_enabled=True, vcam_backend=BACKEND, vcam_device="session-vcam"))
    session.open_vcam()
    first = session.pipeline.snapshot.output
    assert first is not None and session.statuses()["vcam"].state is State.STARTING
    session.settings.update(vcam_enabled=False)
    assert session.pipeline.snapshot.output is None and session.statuses()["vcam"].state is State.OFF


def test_landmarks_are_created_only_when_wanted(make_session):
    session = make_session(Openings())
    session.start()
    assert session.pipeline.snapshot.landmarks is None and session.statuses()["landmarks"].state is State.OFF
    session.settings.update(show_landmarks=True)
    assert session.pipeline.snapshot.landmarks is not None
    assert session.statuses()["landmarks"].state is State.RUNNING


def test_status_listeners_hear_each_change_once(make_session):
    openings = Openings()
    session = make_session(openings)
    heard = []
    session.add_status_listener(lambda name, status: heard.append((name, status.state)))
    session.start()
    session.settled("model", 10)
    eventually(lambda: ("model", State.RUNNING) in heard, "the model running")
    assert heard.count(("model", State.RUNNING)) == 1


class HangingCamera(FakeCamera):
    def close(self) -> None:
        time.sleep(30)


def test_close_is_bounded_even_when_a_part_hangs(make_session):
    openings = Openings()
    session = make_session(openings)
    session.openers = openings.openers(camera=lambda *args: HangingCamera())
    session.start()
    session.settled("camera", 10)
    started = time.monotonic()
    assert not session.close(timeout=1.0)
    assert time.monotonic() - started < 2.0


def test_a_model_partly_left_to_the_cpu_says_so(make_session):
    openings = Openings()

    def model(options, motion):
        predictor = FakePredictor(device_name="cuda:0 (TensorRT, fp16 decoder)")
        predictor.status_note = "TensorRT cannot run 2 GridSample of the animate graph: they run on the CPU"
        return predictor

    session = make_session(openings)
    session.openers = openings.openers(local_model=model)
    session.load_model()
    status = session.settled("model", 10)
    assert status.state is State.RUNNING and "they run on the CPU" in status.message and status.detail
