"""The main window over a real session: a driving video as the camera, the small golden checkpoint as the model.

Every hotkey and setting must reach the session; every part's problem shows with its remedy and goes when solved;
nothing surprises a user in the middle of a call (Esc, quitting, the real face going out, stale claims).
"""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from PyQt5.QtCore import QMimeData, QPoint, Qt, QTimer, QUrl
from PyQt5.QtGui import QDragEnterEvent, QDropEvent, QKeySequence
from PyQt5.QtWidgets import QApplication, QLabel, QLineEdit, QMessageBox

from avatarify import __version__

from avatarify.core.settings import Settings, SettingsModel
from avatarify.core.settings_file import SettingsFile
from avatarify.core.status import Remedy, State
from avatarify.gui.about import AboutDialog
from avatarify.gui.crop_editor import CropEditor
from avatarify.gui.hotkeys import HOTKEYS, HotkeyHelpDialog
from avatarify.gui.main_window import CALIBRATE_HINT, MainWindow
from avatarify.gui.settings_dialog import SettingsDialog
from avatarify.pipeline.avatars import AvatarLibrary
from avatarify.remote.options import RemoteOptions
from avatarify.session import Controller, Session, SessionOptions
from avatarify.session.controller import MOVE_STEP, OPACITY_STEP, ZOOM_STEP
from avatarify.session.openers import Openers
from fakes import BACKEND, FakePredictor

pytestmark = pytest.mark.gui
WAIT_MS = 60_000  # guards against hangs only


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    # The landmark network must not be fetched from the internet during tests.
    monkeypatch.setenv("AVATARIFY_OFFLINE", "1")


@pytest.fixture
def user_avatars(tmp_path: Path) -> Path:
    return tmp_path / "my-avatars"


@pytest.fixture
def library(user_avatars: Path, avatars_dir: Path) -> AvatarLibrary:
    return AvatarLibrary([user_avatars, avatars_dir])


@pytest.fixture
def make_window(qtbot, tmp_path: Path, driving_video: Path, library: AvatarLibrary, small_config, small_checkpoint):
    """A window over a started session (with the small model when `model`); closed afterwards."""
    sessions: list[Session] = []

    def make(model: bool = False, settings: Settings | None = None, openers: Openers = Openers(), **options) -> MainWindow:
        store = SettingsFile(tmp_path / "settings.json")
        model_options = dict(checkpoint=small_checkpoint, device="cpu") if model else {}
        session_options = SessionOptions(config=small_config, **{**model_options, **options})
        model_settings = SettingsModel(settings or Settings(camera=str(driving_video), vcam_enabled=False))
        session = Session(model_settings, session_options, library, openers)
        sessions.append(session)
        window = MainWindow(session, Controller(session), store.path)
        store.attach(model_settings, window.show_notice)
        qtbot.addWidget(window)
        window.show()
        qtbot.waitExposed(window)
        window.activateWindow()
        qtbot.waitUntil(lambda: QApplication.activeWindow() is window)
        for notice in session.start():
            window.show_notice(notice)
        return window

    yield make
    for session in sessions:
        session.close()


def press(qtbot, widget, key: str) -> None:
    """Type a key sequence such as "W", "Shift+Z" or "Ctrl+Up", as a user would."""
    combined = QKeySequence(key)[0]
    modifiers = Qt.KeyboardModifiers(combined & int(Qt.KeyboardModifierMask))
    qtbot.keyClick(widget, Qt.Key(combined & ~int(Qt.KeyboardModifierMask)), modifiers)


def answer_next_box(button: QMessageBox.StandardButton, never_ask: bool = False) -> None:
    """Click `button` in the next modal message box (which blocks the test until answered)."""

    def click() -> None:
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox):
            QTimer.singleShot(50, click)
            return
        if never_ask:
            box.checkBox().setChecked(True)
        box.button(button).click()

    QTimer.singleShot(50, click)


def settled(qtbot, window: MainWindow, component: str, state: State) -> None:
    qtbot.waitUntil(lambda: window.statuses.get(component) is not None and window.statuses[component].state is state,
                    timeout=WAIT_MS)


# -- hotkeys ------------------------------------------------------------------------------------------------

def _offset_after(dx: float, dy: float):
    # The crop moves as seen in the (mirrored by default) preview.
    return lambda s: s.crop_offset == pytest.approx((-dx if s.mirror_preview else dx, dy))


SETTING_KEYS = {
    "passthrough": lambda s: s.passthrough,
    "zoom_in": lambda s: s.crop_zoom == pytest.approx(ZOOM_STEP),
    "zoom_out": lambda s: s.crop_zoom == pytest.approx(1 / ZOOM_STEP),
    "move_crop_up": _offset_after(0.0, -MOVE_STEP),
    "move_crop_down": _offset_after(0.0, MOVE_STEP),
    "move_crop_left": _offset_after(-MOVE_STEP, 0.0),
    "move_crop_right": _offset_after(MOVE_STEP, 0.0),
    "overlay_more": lambda s: s.overlay_opacity == pytest.approx(OPACITY_STEP),
    "landmarks": lambda s: s.show_landmarks,
    "mirror_preview": lambda s: not s.mirror_preview,
    "mirror_output": lambda s: s.mirror_output,
    "stats": lambda s: s.show_stats,
}
# Tested one by one below.
OTHER_KEYS = {"calibrate", "find_best_frame", "previous_avatar", "next_avatar", "select_avatar", "reload_avatars",
              "reset_crop", "overlay_less", "fullscreen", "leave_fullscreen", "settings", "help", "about", "quit"}


def test_every_hotkey_has_a_test() -> None:
    assert {entry.action for entry in HOTKEYS} == set(SETTING_KEYS) | OTHER_KEYS


@pytest.mark.parametrize(
    "action,key", [(entry.action, key) for entry in HOTKEYS if entry.action in SETTING_KEYS for key in entry.keys]
)
def test_setting_hotkeys_reach_the_session(qtbot, make_window, action: str, key: str) -> None:
    window = make_window()
    assert not SETTING_KEYS[action](window.session.settings.value)
    press(qtbot, window, key)
    assert SETTING_KEYS[action](window.session.settings.value)
    assert SETTING_KEYS[action](window.session.pipeline.settings)  # the pipeline has the same snapshot


def test_overlay_down_and_reset_crop(qtbot, make_window) -> None:
    window = make_window()
    for key in ("]", "]", "]", "["):
        press(qtbot, window, key)
    settings = window.session.settings
    assert settings.value.overlay_opacity == pytest.approx(2 * OPACITY_STEP) and window.controls.opacity.value() == 20
    for key in ("W", "W", "U", "K"):
        press(qtbot, window, key)
    assert settings.value.crop_zoom != 1.0 and settings.value.crop_offset != (0.0, 0.0)
    press(qtbot, window, "Z")  # Z alone is not bound: nothing happens
    assert settings.value.crop_zoom != 1.0
    press(qtbot, window, "Shift+Z")
    assert settings.value.crop_zoom == 1.0 and settings.value.crop_offset == (0.0, 0.0)


def test_avatar_hotkeys(qtbot, make_window, library: AvatarLibrary) -> None:
    window = make_window()
    avatars = window.session.avatars
    count = len(library)
    assert count >= 3 and avatars.index == 0
    press(qtbot, window, "Right")
    assert avatars.index == 1
    press(qtbot, window, "D")
    assert avatars.index == 2
    press(qtbot, window, "A")
    press(qtbot, window, "Left")
    assert avatars.index == 0
    press(qtbot, window, "Left")
    assert avatars.index == count - 1
    for number in range(1, min(count, 9) + 1):
        press(qtbot, window, str(number))
        assert avatars.index == number - 1 and window.gallery.selected_index == number - 1
    press(qtbot, window, "0")
    assert window.session.settings.value.passthrough and window.gallery.selected_index is None
    press(qtbot, window, "3")  # choosing an avatar leaves passthrough
    assert not window.session.settings.value.passthrough and avatars.index == 2


def test_reload_hotkey_finds_new_files_at_the_end(qtbot, make_window, library, user_avatars, avatar_path) -> None:
    window = make_window()
    before = list(library.paths)
    user_avatars.mkdir(exist_ok=True)
    shutil.copy(avatar_path, user_avatars / "copied.jpg")
    press(qtbot, window, "L")
    assert library.paths[:-1] == before and library.names[-1] == "copied"
    assert window.gallery.list.count() == len(before) + 1


def test_calibrate_hotkeys_reset_the_neutral_pose(qtbot, make_window, small_predictor) -> None:
    window = make_window(openers=Openers(local_model=lambda options, motion: small_predictor))
    settled(qtbot, window, "model", State.RUNNING)
    qtbot.waitUntil(lambda: small_predictor.neutral_keypoints is not None, timeout=WAIT_MS)
    assert CALIBRATE_HINT in window.problems.messages  # told what to do once the model runs
    for key in ("C", "X"):
        neutral = small_predictor.neutral_keypoints
        press(qtbot, window, key)
        qtbot.waitUntil(lambda: small_predictor.neutral_keypoints is not None
                        and small_predictor.neutral_keypoints is not neutral, timeout=WAIT_MS)  # fmt: skip
    assert CALIBRATE_HINT not in window.problems.messages


def test_find_best_frame_hotkey_needs_landmarks(qtbot, make_window, small_predictor) -> None:
    window = make_window(openers=Openers(local_model=lambda options, motion: small_predictor))
    settled(qtbot, window, "model", State.RUNNING)
    press(qtbot, window, "F")
    assert window.session.settings.value.find_best_frame  # on; landmarks load (and fail: offline, no file)
    settled(qtbot, window, "landmarks", State.FAILED)
    row = window.problems.row("landmarks")
    assert "2DFAN4" in row.label.text() and Remedy.LANDMARK_FILE in row.remedy_buttons
    press(qtbot, window, "F")
    press(qtbot, window, "F")  # cannot come back on without landmarks: said why, setting unchanged
    assert not window.session.settings.value.find_best_frame
    assert any("Find best frame needs the face landmarks" in message for message in window.problems.messages)
    assert not window.controls.toggles["find_best_frame"].isEnabled()


def test_window_hotkeys(qtbot, make_window) -> None:
    window = make_window()
    press(qtbot, window, "F1")
    assert isinstance(window.help_dialog, HotkeyHelpDialog) and window.help_dialog.isVisible()
    window.help_dialog.close()
    press(qtbot, window, "Ctrl+,")
    assert isinstance(window.settings_dialog, SettingsDialog) and window.settings_dialog.isVisible()
    window.settings_dialog.reject()
    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window)
    press(qtbot, window, "Ctrl+I")
    assert isinstance(window.about_dialog, AboutDialog) and window.about_dialog.isVisible()
    window.about_dialog.reject()
    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window)
    press(qtbot, window, "F11")
    qtbot.waitUntil(lambda: bool(window.windowState() & Qt.WindowFullScreen))
    assert window.actions_by_name["fullscreen"].isChecked()
    press(qtbot, window, "Esc")  # leaves full screen
    qtbot.waitUntil(lambda: not window.windowState() & Qt.WindowFullScreen)
    press(qtbot, window, "Ctrl+Q")  # nothing is being sent: no question
    qtbot.waitUntil(lambda: not window.isVisible())


def test_esc_never_quits(qtbot, make_window) -> None:
    """Closing a dialog with Esc and pressing Esc again must leave the app running (it is in a call)."""
    window = make_window()
    for _ in range(3):
        press(qtbot, window, "Esc")
    window.open_settings()
    dialog = window.settings_dialog
    qtbot.waitExposed(dialog)
    press(qtbot, dialog, "Esc")
    qtbot.waitUntil(lambda: not dialog.isVisible())
    window.activateWindow()
    press(qtbot, window, "Esc")
    QApplication.processEvents()
    assert window.isVisible() and window.session.pipeline.running


def test_quitting_while_the_virtual_camera_sends_asks_first(qtbot, make_window, driving_video, tmp_path) -> None:
    window = make_window(settings=Settings(camera=str(driving_video), vcam_device="quit-test", vcam_backend=BACKEND))
    settled(qtbot, window, "vcam", State.RUNNING)
    answer_next_box(QMessageBox.Cancel)
    press(qtbot, window, "Ctrl+Q")
    assert window.isVisible()
    answer_next_box(QMessageBox.Cancel)
    window.close()  # the window's close button asks too
    assert window.isVisible()
    answer_next_box(QMessageBox.Yes, never_ask=True)
    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window)
    press(qtbot, window, "Ctrl+Q")
    qtbot.waitUntil(lambda: not window.isVisible())
    assert SettingsFile(tmp_path / "settings.json").load().confirm_quit is False


def test_keys_do_not_fire_while_typing(qtbot, make_window) -> None:
    window = make_window()
    field = QLineEdit(window.centralWidget())
    window.centralWidget().layout().addWidget(field)
    field.setFocus()
    qtbot.waitUntil(field.hasFocus)
    before, index = window.session.settings.value, window.session.avatars.index
    for key in ("W", "0", "R", "]", "Ctrl+Up", "Left", "2", "Shift+Z"):
        press(qtbot, field, key)
    assert window.session.settings.value == before and window.session.avatars.index == index
    assert sorted(field.text().lower()) == sorted("w0r]2z")


def test_controls_have_hotkey_tooltips_and_menus_show_keys(make_window) -> None:
    window = make_window()
    assert "(0)" in window.controls.toggles["passthrough"].toolTip()
    assert "[" in window.controls.opacity.toolTip() and "]" in window.controls.opacity.toolTip()
    pose = {action.text(): action.shortcut().toString() for action in window.menuBar().actions()[1].menu().actions()}
    assert pose == {"Calibrate: take your current pose as the neutral pose": "C",
                    "Find best frame: keep the frame whose pose matches the avatar best": "F",
                    "Passthrough: send the camera unchanged": "0"}  # fmt: skip


# -- what the window shows -----------------------------------------------------------------------------------

def test_live_frames_and_status_bar(qtbot, make_window) -> None:
    window = make_window(model=True)
    qtbot.waitUntil(lambda: window.last_stats is not None and window.last_stats.model_fps > 0, timeout=WAIT_MS)
    width, height = window.preview.frame_size
    assert width == height and 0 < width <= 512 and window.output.has_frame
    labels = window.status_line.labels
    qtbot.waitUntil(lambda: labels["model"].text().startswith("Model: cpu ·") and "fps" in labels["model"].text())
    assert labels["camera"].text().startswith("Camera: d0.mp4 · ")
    assert labels["model"].property("warning") is True and "CPU" in labels["model"].toolTip()
    assert labels["vcam"].text() == "Virtual camera: off" and labels["worker"].isHidden()
    assert window.panes.camera.title.text() == "Camera · d0.mp4"
    press(qtbot, window, "0")
    qtbot.waitUntil(lambda: labels["model"].text() == "Model: idle (passthrough)")
    assert "your camera goes out" in window.panes.output.title.text()


def test_statistics_are_an_overlay_not_camera_pixels(qtbot, make_window) -> None:
    window = make_window(model=True)
    qtbot.waitUntil(lambda: window.last_stats is not None and window.last_stats.model_fps > 0, timeout=WAIT_MS)
    plain = window.last_frame.preview.copy()
    press(qtbot, window, "I")
    qtbot.waitUntil(lambda: window.panes.stats.isVisible() and "latency" in window.panes.stats.text(), timeout=5000)
    assert window.panes.stats.font().pointSizeF() >= 8 or window.panes.stats.font().pixelSize() >= 10
    qtbot.waitUntil(lambda: window.frames_shown > 3)
    # The camera picture itself carries no text: the corner looks like the camera's.
    assert np.abs(window.last_frame.preview[:60, :300].astype(int) - plain[:60, :300]).mean() < 20


def test_a_short_window_scales_the_previews_instead_of_cutting_them(qtbot, make_window) -> None:
    window = make_window(model=True)
    window.resize(1000, 600)
    qtbot.waitUntil(lambda: window.output.has_frame, timeout=WAIT_MS)
    QApplication.processEvents()
    for pane in (window.panes.camera, window.panes.output):
        view = pane.view
        bottom = view.mapTo(window, QPoint(0, view.height())).y()
        assert bottom <= window.height() and view.height() > 100
        assert abs(view.width() - view.height()) <= 2  # square pictures in square views: no empty bars


def test_no_model_holds_the_avatar_and_never_sends_the_camera(qtbot, make_window) -> None:
    window = make_window()  # no weights on this computer
    qtbot.waitUntil(lambda: window.output.has_frame and window.last_frame is not None, timeout=WAIT_MS)
    frame = window.last_frame
    assert not frame.animated and "paused" in window.panes.output.title.text()
    avatar = window.session.pipeline.snapshot.avatar.image
    assert np.abs(frame.output.astype(int)[::8, ::8].mean() - avatar.astype(int)[::8, ::8].mean()) < 3


def test_a_worker_that_stops_answering_pauses_the_avatar_visibly(qtbot, make_window) -> None:
    fake = FakePredictor()
    window = make_window(openers=Openers(remote_model=lambda options, motion: fake),
                         remote=RemoteOptions("tcp://gpu:5557"))  # fmt: skip
    qtbot.waitUntil(lambda: window.last_frame is not None and window.last_frame.animated, timeout=WAIT_MS)
    fake.unavailable = "The worker at tcp://gpu:5557 is not animating (worker unreachable)."
    fake.state = "worker unreachable"
    qtbot.waitUntil(lambda: "paused" in window.panes.output.title.text(), timeout=WAIT_MS)
    assert window.status_line.labels["model"].text().startswith("Model: paused")
    held = window.last_frame.output
    assert not window.last_frame.animated and held.std() > 0  # the last avatar frame, not the camera
    settled(qtbot, window, "worker", State.FAILED)
    assert "does not answer" in window.problems.row("worker").label.text()
    fake.unavailable, fake.state = None, "connected"
    qtbot.waitUntil(lambda: "paused" not in window.panes.output.title.text(), timeout=WAIT_MS)
    settled(qtbot, window, "worker", State.RUNNING)


# -- problems and their remedies ------------------------------------------------------------------------------

def test_every_problem_shows_at_once_and_goes_when_solved(qtbot, make_window, driving_video, tmp_path) -> None:
    late = tmp_path / "late.mp4"
    broken = tmp_path / "broken.pth.tar"
    broken.write_bytes(b"not a checkpoint")
    window = make_window(settings=Settings(camera=str(late), vcam_enabled=False), checkpoint=broken)
    settled(qtbot, window, "camera", State.FAILED)
    settled(qtbot, window, "model", State.FAILED)
    camera, model = window.problems.row("camera"), window.problems.row("model")
    assert "late.mp4" in camera.label.text() and set(camera.remedy_buttons) == {Remedy.CHOOSE_CAMERA, Remedy.VIDEO_FILE}
    assert "broken.pth.tar" in model.label.text() and Remedy.LOCATE_WEIGHTS in model.remedy_buttons
    labels = window.status_line.labels
    assert labels["camera"].text() == "Camera: not available" and labels["model"].text() == "Model: not available"
    qtbot.mouseClick(model.dismiss_button, Qt.LeftButton)
    assert window.problems.row("model") is None and window.problems.row("camera") is not None
    shutil.copy(driving_video, late)  # the camera comes: its problem goes by itself
    settled(qtbot, window, "camera", State.RUNNING)
    assert window.problems.row("camera") is None
    assert window.problems.row("model") is None  # still dismissed: the same problem


def test_a_located_file_is_remembered_only_when_it_loads(qtbot, make_window, tmp_path, small_checkpoint) -> None:
    window = make_window()
    settled(qtbot, window, "model", State.FAILED)
    assert "No model weights found" in window.problems.row("model").label.text()
    broken = tmp_path / "broken.pth.tar"
    broken.write_bytes(b"junk")
    window.session.load_model(broken)
    qtbot.waitUntil(lambda: "broken.pth.tar" in (window.problems.row("model").label.text()
                                                 if window.problems.row("model") else ""), timeout=WAIT_MS)  # fmt: skip
    assert SettingsFile(tmp_path / "settings.json").load().checkpoint == ""
    window.session.load_model(small_checkpoint)
    settled(qtbot, window, "model", State.RUNNING)
    qtbot.waitUntil(lambda: SettingsFile(tmp_path / "settings.json").load().checkpoint == str(small_checkpoint))
    assert window.problems.row("model") is None


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="a CUDA GPU is present")
def test_a_device_problem_is_named_as_such_with_use_the_cpu(qtbot, make_window, driving_video) -> None:
    window = make_window(model=True, device=None, settings=Settings(camera=str(driving_video), vcam_enabled=False,
                                                                    model_device="cuda"))  # fmt: skip
    settled(qtbot, window, "model", State.FAILED)
    row = window.problems.row("model")
    assert "cannot run on “cuda”" in row.label.text() and "--device" not in row.label.text()
    assert list(row.remedy_buttons) == [Remedy.USE_CPU]
    qtbot.mouseClick(row.remedy_buttons[Remedy.USE_CPU], Qt.LeftButton)
    settled(qtbot, window, "model", State.RUNNING)
    assert window.session.settings.value.model_device == "cpu"
    window.open_settings()
    devices = window.settings_dialog.model_device
    assert [devices.itemText(i) for i in range(devices.count())] == ["auto", "cpu"]  # no mps, no cuda here


def test_the_virtual_camera_switch_and_its_problem(qtbot, make_window, driving_video) -> None:
    window = make_window(settings=Settings(camera=str(driving_video), vcam_enabled=False, vcam_device="missing",
                                           vcam_backend=BACKEND))  # fmt: skip
    switch = window.controls.vcam
    assert not switch.isChecked() and switch.text() == "Virtual camera: off"
    qtbot.mouseClick(switch, Qt.LeftButton)
    assert window.session.settings.value.vcam_enabled and switch.text() == "Virtual camera: on"
    settled(qtbot, window, "vcam", State.FAILED)
    row = window.problems.row("vcam")
    assert "\n" not in row.label.text() and len(row.label.text()) < 100
    qtbot.mouseClick(row.remedy_buttons[Remedy.SETUP_VCAM], Qt.LeftButton)
    assert row.details.isVisible() and "device missing does not exist" in row.details.toPlainText()
    qtbot.mouseClick(row.copy_button, Qt.LeftButton)
    assert QApplication.clipboard().text() == row.command and row.command
    qtbot.mouseClick(switch, Qt.LeftButton)
    settled(qtbot, window, "vcam", State.OFF)
    assert window.problems.row("vcam") is None


def test_the_virtual_camera_problem_is_logged_once(qtbot, make_window, driving_video, caplog) -> None:
    with caplog.at_level(logging.INFO):
        window = make_window(settings=Settings(camera=str(driving_video), vcam_device="missing", vcam_backend=BACKEND))
        settled(qtbot, window, "vcam", State.FAILED)
        qtbot.wait(1500)
    lines = [record for record in caplog.records if "virtual camera" in record.getMessage().lower()]
    assert len(lines) == 1


def test_the_camera_picker_shows_what_plays_and_switches(qtbot, make_window, driving_video, tmp_path) -> None:
    window = make_window(camera=str(driving_video), settings=Settings(camera="0", vcam_enabled=False))
    picker = window.controls.camera
    qtbot.waitUntil(lambda: picker.currentText() == "d0.mp4", timeout=WAIT_MS)
    other = tmp_path / "other.mp4"
    shutil.copy(driving_video, other)
    picker.chosen.emit(str(other))
    qtbot.waitUntil(lambda: window.panes.camera.title.text() == "Camera · other.mp4", timeout=WAIT_MS)
    assert picker.currentText() == "other.mp4" and window.session.settings.value.camera == str(other)


def test_gallery_numbers_follow_drags_and_names_are_kept(qtbot, make_window, library, avatar_path) -> None:
    window = make_window()
    third = library.paths[2]
    window.gallery.list.moved.emit(2, 0)
    assert library.paths[0] == third and window.gallery.list.item(0).text().startswith("1 · ")
    press(qtbot, window, "1")
    assert window.session.avatars.path == third
    added = library.add(np.full((32, 32, 3), 90, np.uint8), "Albert E.")
    window.gallery.refresh()
    assert library.paths[0] == third and library.paths[-1] == added
    assert window.gallery.list.item(len(library) - 1).text().endswith("Albert E.")


def test_adding_several_pictures_counts_and_can_cancel_the_rest(qtbot, make_window, avatar_path, library) -> None:
    window = make_window()
    count = len(library)
    window.gallery.add_files([avatar_path, avatar_path, avatar_path])
    qtbot.waitUntil(lambda: isinstance(window.gallery.editor, CropEditor) and window.gallery.editor.isVisible())
    editor = window.gallery.editor
    assert editor.windowTitle() == "New avatar 1 of 3"
    qtbot.mouseClick(editor.save_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: window.gallery.editor is not None and window.gallery.editor is not editor)
    assert window.gallery.editor.windowTitle() == "New avatar 2 of 3"
    qtbot.mouseClick(window.gallery.editor.cancel_rest_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: window.gallery.editor is None)
    assert len(library) == count + 1


def drop_files(widget, paths: list[Path]) -> bool:
    """Drag files onto `widget` and drop them, as a file manager does; whether the drag was accepted."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path)) for path in paths])
    point = widget.rect().center()
    enter = QDragEnterEvent(point, Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
    QApplication.sendEvent(widget, enter)
    QApplication.sendEvent(widget, QDropEvent(point, Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier))
    return enter.isAccepted()


def test_adding_by_drop_saves_new_files_and_never_overwrites(qtbot, make_window, avatar_path, user_avatars) -> None:
    window = make_window()
    source_bytes = avatar_path.read_bytes()
    assert drop_files(window.gallery, [avatar_path])
    qtbot.waitUntil(lambda: isinstance(window.gallery.editor, CropEditor) and window.gallery.editor.isVisible())
    window.gallery.editor.name_edit.setText("my face")
    qtbot.mouseClick(window.gallery.editor.save_button, Qt.LeftButton)
    added = user_avatars / "my_face.png"
    assert added.is_file() and window.session.avatars.path == added  # the new avatar is driven
    window.gallery.add_files([avatar_path])
    qtbot.waitUntil(lambda: isinstance(window.gallery.editor, CropEditor) and window.gallery.editor.isVisible())
    window.gallery.editor.name_edit.setText("my face")
    qtbot.mouseClick(window.gallery.editor.save_button, Qt.LeftButton)
    assert (user_avatars / "my_face-2.png").is_file() and avatar_path.read_bytes() == source_bytes


def test_removing_asks_first_and_only_the_users_avatars(qtbot, make_window, avatar_path, user_avatars) -> None:
    user_avatars.mkdir(exist_ok=True)
    shutil.copy(avatar_path, user_avatars / "temporary.jpg")
    window = make_window()
    library = window.session.avatars.library
    press(qtbot, window, "L")
    current = window.session.avatars.index
    bundled = next(i for i in range(len(library)) if not library.removable(i) and i != current)
    window.gallery.activate(bundled)
    assert not window.gallery.remove_button.isEnabled() and "cannot be removed" in window.gallery.remove_button.toolTip()
    index = library.names.index("temporary")
    window.gallery.activate(index)
    assert window.gallery.remove_button.isEnabled()
    window.gallery.ask_remove()
    qtbot.mouseClick(window.gallery.confirm.button(QMessageBox.Cancel), Qt.LeftButton)
    assert (user_avatars / "temporary.jpg").exists()
    window.gallery.ask_remove()
    qtbot.mouseClick(window.gallery.confirm.button(QMessageBox.Yes), Qt.LeftButton)
    assert not (user_avatars / "temporary.jpg").exists() and "temporary" not in library.names
    assert window.session.settings.value.avatar == library.names[window.session.avatars.index]


def test_controls_that_cannot_work_say_why(qtbot, make_window) -> None:
    window = make_window()
    settled(qtbot, window, "model", State.FAILED)
    calibrate = window.controls.calibrate
    assert not calibrate.isEnabled() and "needs the model" in calibrate.toolTip()
    press(qtbot, window, "C")
    assert any("Calibrate needs the model" in message for message in window.problems.messages)
    assert not window.controls.toggles["find_best_frame"].isEnabled()


def test_a_bad_avatar_file_and_a_non_picture_drop_are_shown(qtbot, make_window, user_avatars, tmp_path) -> None:
    user_avatars.mkdir(exist_ok=True)
    (user_avatars / "damaged.png").write_bytes(b"\x89PNG but not really")
    window = make_window()
    press(qtbot, window, "L")
    index = window.session.avatars.library.names.index("damaged")
    assert "damaged.png" in window.gallery.list.item(index).toolTip()
    window.gallery.activate(index)
    assert any("damaged.png" in message for message in window.problems.messages)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    assert drop_files(window.gallery, [text])
    assert any("Skipped notes.txt: only picture files" in m for m in window.problems.messages)


def test_about_shows_version_licences_and_opens_the_folders(qtbot, make_window, monkeypatch) -> None:
    opened = []
    monkeypatch.setattr(AboutDialog, "open_folder", staticmethod(lambda folder: opened.append(folder) or True))
    window = make_window()
    press(qtbot, window, "Ctrl+I")
    dialog = window.about_dialog
    texts = " ".join(label.text() for label in dialog.findChildren(QLabel))
    assert f"avatarify {__version__}" in texts and "CC BY-NC 4.0" in texts and "MIT" in texts
    assert set(dialog.open_buttons) == {"Settings", "Avatars", "Weights"}
    qtbot.mouseClick(dialog.open_buttons["Avatars"], Qt.LeftButton)
    assert opened and opened[-1].name == "avatars"
    # The same report `avatarify doctor` prints, ready to copy.
    qtbot.waitUntil(lambda: dialog.copy_button.isEnabled(), timeout=WAIT_MS)
    report = dialog.report.toPlainText()
    assert "System" in report and "Virtual camera" in report and "Cameras" in report
    qtbot.mouseClick(dialog.copy_button, Qt.LeftButton)
    assert QApplication.clipboard().text() == report
