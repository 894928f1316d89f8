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
    with pytest.raises(AvatarifyError, match=r"^Calibrate needs the model, which is not running yet\.$"):
        controller.run("calibrate")
    with pytest.raises(AvatarifyError, match=r"^Find best frame needs the model, which is not running yet\.$"):
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


def test_each_move_goes_one_step_its_own_way(controller) -> None:
    settings = controller.session.settings
    settings.update(mirror_preview=False)
    for action, offset in (("move_crop_down", (0.0, MOVE_STEP)), ("move_crop_left", (-MOVE_STEP, MOVE_STEP)),
                           ("move_crop_up", (-MOVE_STEP, 0.0)), ("move_crop_right", (0.0, 0.0))):  # fmt: skip
        assert controller.run(action) is None
        assert settings.value.crop_offset == pytest.approx(offset)
    settings.update(mirror_preview=True)
    controller.run("move_crop_left")  # mirrored: left on screen is right in the camera frame
    assert settings.value.crop_offset == pytest.approx((MOVE_STEP, 0.0))


def test_zoom_and_overlay_steps_are_exact(controller) -> None:
    settings = controller.session.settings
    controller.run("zoom_in")
    assert settings.value.crop_zoom == ZOOM_STEP == 1.1
    controller.run("zoom_out")
    assert settings.value.crop_zoom == pytest.approx(1.0)
    for _ in range(3):
        controller.run("overlay_more")
    assert settings.value.overlay_opacity == 0.3  # rounded: never 0.30000000000000004 in the settings file
    assert OPACITY_STEP == 0.1


def test_find_best_frame_toggles_and_can_always_be_turned_off(controller) -> None:
    settings = controller.session.settings
    settings.update(find_best_frame=True)  # on from before the model went away
    assert controller.blocked("find_best_frame") is None
    assert controller.run("find_best_frame") is None
    assert settings.value.find_best_frame is False


def test_find_best_frame_says_when_the_landmarks_are_unavailable(library) -> None:
    openers = Openers(camera=lambda *args: FakeCamera(), local_model=lambda options, motion: FakePredictor(),
                      landmarks=lambda device: FakeLandmarks("unavailable: no landmark file"))  # fmt: skip
    session = Session(SettingsModel(Settings(vcam_enabled=False)), library=library, openers=openers)
    session.start()
    try:
        controller = Controller(session)
        assert session.settled("model", 30).state is State.RUNNING
        assert controller.blocked("find_best_frame") is None  # no detector yet: it is made when wanted
        controller.run("landmarks")
        eventually(lambda: session.pipeline.snapshot.landmarks is not None, "the landmark detector")
        reason = "Find best frame needs the face landmarks, which are unavailable: no landmark file"
        assert controller.blocked("find_best_frame") == reason
        with pytest.raises(AvatarifyError, match=f"^{reason}$"):
            controller.run("find_best_frame")
        assert not session.settings.value.find_best_frame
    finally:
        assert session.close()


def test_selecting_the_avatar_after_the_last_does_nothing(controller) -> None:
    session = controller.session
    controller.run("passthrough")
    controller.run("select_avatar", 3)  # three avatars: numbers 0 to 2
    assert session.avatars.index == 0 and session.settings.value.passthrough
    controller.run("select_avatar", 2)
    assert session.avatars.index == 2 and session.settings.value.passthrough is False


def test_reloading_finds_new_avatars(controller, library, tmp_path) -> None:
    import cv2

    cv2.imwrite(str(tmp_path / "dora.png"), np.full((64, 64, 3), 90, np.uint8))
    assert len(library) == 3
    assert controller.run("reload_avatars") is None
    assert library.names == ["anna", "bert", "cleo", "dora"]
