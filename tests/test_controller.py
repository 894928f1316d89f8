"""The user's actions without a window: each one changes what it should, and says why when it cannot."""
from __future__ import annotations

import numpy as np
import pytest

from avatarify.core.errors import AvatarifyError
from avatarify.core.settings import Settings, SettingsModel
from avatarify.core.status import State
from avatarify.pipeline.avatars import AvatarLibrary
from avatarify.session import ACTIONS, Controller, Session
from avatarify.session.controller import MOVE_STEP, OPACITY_STEP, ZOOM_STEP
from avatarify.session.openers import Openers
from fakes import FakeCamera, FakeLandmarks, FakePredictor, eventually


@pytest.fixture
def library(tmp_path) -> AvatarLibrary:
    import cv2

    for name, value in (("anna", 60), ("bert", 120), ("cleo", 200)):
        cv2.imwrite(str(tmp_path / f"{name}.png"), np.full((64, 64, 3), value, np.uint8))
    return AvatarLibrary([tmp_path])


@pytest.fixture
def controller(library):
    predictor = FakePredictor()
    openers = Openers(camera=lambda *args: FakeCamera(), local_model=lambda options, motion: predictor,
                      landmarks=lambda device: FakeLandmarks())  # fmt: skip
    session = Session(SettingsModel(Settings(vcam_enabled=False)), library=library, openers=openers)
    session.start(model=False)
    yield Controller(session)
    assert session.close()


def test_toggles_flip_their_setting(controller) -> None:
    settings = controller.session.settings
    for action, field in (("passthrough", "passthrough"), ("landmarks", "show_landmarks"), ("stats", "show_stats"),
                          ("mirror_preview", "mirror_preview"), ("mirror_output", "mirror_output")):  # fmt: skip
        before = getattr(settings.value, field)
        controller.run(action)
        assert getattr(settings.value, field) is not before
        controller.run(action)
        assert getattr(settings.value, field) is before


def test_crop_actions_zoom_move_and_reset(controller) -> None:
    settings = controller.session.settings
    controller.run("zoom_in")
    controller.run("zoom_in")
    assert settings.value.crop_zoom == pytest.approx(ZOOM_STEP**2)
    controller.run("zoom_out")
    assert settings.value.crop_zoom == pytest.approx(ZOOM_STEP)
    controller.run("move_crop_right")  # the preview is mirrored: right on screen is left in the camera frame
    controller.run("move_crop_up")
    assert settings.value.crop_offset == pytest.approx((-MOVE_STEP, -MOVE_STEP))
    settings.update(mirror_preview=False)
    controller.run("move_crop_right")
    assert settings.value.crop_offset == pytest.approx((0.0, -MOVE_STEP))
    epoch = controller.session.pipeline.snapshot.crop_epoch
    controller.run("reset_crop")
    assert settings.value.crop_zoom == 1.0 and settings.value.crop_offset == (0.0, 0.0)
    assert controller.session.pipeline.snapshot.crop_epoch == epoch + 1  # the face-following crop starts over


def test_overlay_steps_stay_within_range(controller) -> None:
    settings = controller.session.settings
    controller.run("overlay_less")
    assert settings.value.overlay_opacity == 0.0
    for _ in range(15):
        controller.run("overlay_more")
    assert settings.value.overlay_opacity == 1.0
    controller.run("overlay_less")
    assert settings.value.overlay_opacity == pytest.approx(1.0 - OPACITY_STEP)


def test_avatar_actions_drive_avatars_and_leave_passthrough(controller, library) -> None:
    session = controller.session
    assert session.avatars.index == 0
    controller.run("passthrough")
    controller.run("next_avatar")
    assert session.avatars.index == 1 and not session.settings.value.passthrough
    assert session.settings.value.avatar == "bert" and session.pipeline.snapshot.avatar.name == "bert"
    controller.run("previous_avatar")
    controller.run("previous_avatar")
    assert session.avatars.index == 2
    controller.run("select_avatar", 0)
    assert session.avatars.index == 0
    controller.run("select_avatar", 8)  # no ninth avatar: nothing happens
    assert session.avatars.index == 0


def test_calibrate_and_find_best_frame_need_the_model(controller) -> None:
    with pytest.raises(AvatarifyError, match="Calibrate needs the model"):
        controller.run("calibrate")
    with pytest.raises(AvatarifyError, match="Find best frame needs the model"):
        controller.run("find_best_frame")
    assert not controller.session.settings.value.find_best_frame
    controller.session.load_model()
    assert controller.session.settled("model", 30).state is State.RUNNING
    assert controller.blocked("calibrate") is None
    assert controller.run("calibrate") == "Calibrated: your current pose is the neutral pose."
    eventually(lambda: controller.session.pipeline.snapshot.predictor.calibrations == 1, "the calibration")
    controller.run("find_best_frame")
    assert controller.session.settings.value.find_best_frame


def test_without_avatars_the_avatar_actions_say_so(tmp_path) -> None:
    session = Session(SettingsModel(Settings(vcam_enabled=False)), library=AvatarLibrary([tmp_path / "none"]),
                      openers=Openers(camera=lambda *args: FakeCamera()))  # fmt: skip
    controller = Controller(session)
    for action in ("next_avatar", "previous_avatar", "select_avatar"):
        assert controller.blocked(action) == "There are no avatars yet: add a picture first."
    assert session.close()


def test_every_action_is_known_to_the_controller(controller) -> None:
    for action in ACTIONS:
        controller.blocked(action)  # no KeyError: every name is handled
    assert set(controller._actions) == set(ACTIONS)
