"""The main window over the real pipeline: a driving video as the camera, the small golden checkpoint as the model.

Every hotkey and every setting must reach the pipeline; avatars are added, removed and switched through the
gallery; the first-run panel appears without weights; problems show up as messages in the window.
"""
from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest
import pyvirtualcam
from PyQt5.QtCore import QMimeData, QPoint, Qt, QUrl
from PyQt5.QtGui import QDragEnterEvent, QDropEvent
from PyQt5.QtWidgets import QApplication, QLineEdit, QMessageBox

from avatarify.gui.app import LaunchOptions, launch
from avatarify.gui.crop_editor import CropEditor
from avatarify.gui.devices import ModelOptions, PendingCamera
from avatarify.gui.hotkeys import HOTKEYS, HotkeyHelpDialog
from avatarify.gui.main_window import MAX_PENDING_FRAMES, MOVE_STEP, OPACITY_STEP, ZOOM_STEP, FrameBridge, MainWindow
from avatarify.gui.settings import AppSettings, SettingsStore
from avatarify.gui.settings_dialog import SettingsDialog
from avatarify.pipeline.avatars import AvatarLibrary
from avatarify.pipeline.camera import open_source
from avatarify.pipeline.pipeline import Pipeline
from avatarify.model.predictor import prepare_frame

VCAM_BACKEND = "avatarify-gui-test"


class CountingBackend:
    """A pyvirtualcam backend that counts the frames each device receives; device "absent" does not exist."""

    frames: dict[str, int] = {}

    def __init__(self, *, width: int, height: int, fps: float, fourcc: int, device: str | None, **kw) -> None:
        if device == "absent":
            raise RuntimeError("no such virtual camera")
        self.name = device or "GUI Test Camera"
        CountingBackend.frames.setdefault(self.name, 0)

    def send(self, frame: np.ndarray) -> None:
        CountingBackend.frames[self.name] += 1

    def close(self) -> None:
        pass

    def device(self) -> str:
        return self.name

    def native_fourcc(self) -> None:
        return None


pyvirtualcam.register_backend(VCAM_BACKEND, CountingBackend)


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
    """Build a window over a real pipeline (not started unless asked); everything is stopped afterwards."""
    pipelines: list[Pipeline] = []

    def make(predictor=None, start: bool = False, settings: AppSettings | None = None) -> MainWindow:
        settings = settings or AppSettings(camera=str(driving_video), vcam_enabled=False)
        pipeline = Pipeline(open_source(driving_video), library, predictor)
        pipelines.append(pipeline)
        window = MainWindow(
            pipeline, settings, SettingsStore(tmp_path / "settings.json"), ModelOptions(config=small_config)
        )
        qtbot.addWidget(window)
        window.show()
        qtbot.waitExposed(window)
        window.activateWindow()
        qtbot.waitUntil(lambda: QApplication.activeWindow() is window)
        if start:
            pipeline.start()
        return window

    yield make
    for pipeline in pipelines:
        pipeline.stop()


def press(qtbot, window: MainWindow, key: str) -> None:
    """Type a key sequence such as "W", "Shift+Z" or "Ctrl+Up" on the window, as a user would."""
    from PyQt5.QtGui import QKeySequence

    combined = QKeySequence(key)[0]
    modifiers = Qt.KeyboardModifiers(combined & int(Qt.KeyboardModifierMask))
    qtbot.keyClick(window, Qt.Key(combined & ~int(Qt.KeyboardModifierMask)), modifiers)


# -- hotkeys ------------------------------------------------------------------------------------

def _offset_after(dx: float, dy: float):
    # The pipeline moves the crop as seen in the (mirrored by default) preview.
    return lambda s: s.crop_offset == pytest.approx((-dx if s.mirror_preview else dx, dy))


SETTING_KEYS = {
    "find_best_frame": lambda s: s.find_best_frame,
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
OTHER_KEYS = {"calibrate", "previous_avatar", "next_avatar", "select_avatar", "reload_avatars", "reset_crop",
              "overlay_less", "fullscreen", "settings", "help", "quit"}


def test_every_hotkey_has_a_test() -> None:
    assert {entry.action for entry in HOTKEYS} == set(SETTING_KEYS) | OTHER_KEYS


@pytest.mark.parametrize(
    "action,key", [(entry.action, key) for entry in HOTKEYS if entry.action in SETTING_KEYS for key in entry.keys]
)
def test_setting_hotkeys_reach_the_pipeline(qtbot, make_window, action: str, key: str) -> None:
    window = make_window()
    before = window.pipeline.settings
    assert not SETTING_KEYS[action](before)
    press(qtbot, window, key)
    assert SETTING_KEYS[action](window.pipeline.settings)


def test_overlay_down_and_reset_crop(qtbot, make_window) -> None:
    window = make_window()
    for key in ("]", "]", "]", "["):
        press(qtbot, window, key)
    assert window.pipeline.settings.overlay_opacity == pytest.approx(2 * OPACITY_STEP)
    assert window.opacity_slider.value() == 20
    for key in ("W", "W", "U", "K"):
        press(qtbot, window, key)
    assert window.pipeline.settings.crop_zoom != 1.0 and window.pipeline.settings.crop_offset != (0.0, 0.0)
    press(qtbot, window, "Z")  # Z alone is not bound: nothing happens
    assert window.pipeline.settings.crop_zoom != 1.0
    press(qtbot, window, "Shift+Z")
    assert window.pipeline.settings.crop_zoom == 1.0 and window.pipeline.settings.crop_offset == (0.0, 0.0)


def test_avatar_hotkeys(qtbot, make_window, library: AvatarLibrary) -> None:
    window = make_window()
    p = window.pipeline
    count = len(library)
    assert count >= 3 and p.avatar_index == 0
    press(qtbot, window, "Right")
    assert p.avatar_index == 1
    press(qtbot, window, "D")
    assert p.avatar_index == 2
    press(qtbot, window, "A")
    press(qtbot, window, "Left")
    assert p.avatar_index == 0
    press(qtbot, window, "Left")
    assert p.avatar_index == count - 1
    for number in range(1, min(count, 9) + 1):
        press(qtbot, window, str(number))
        assert p.avatar_index == number - 1
        assert window.gallery.selected_index == number - 1
    press(qtbot, window, "0")
    assert p.settings.passthrough and window.gallery.selected_index is None
    press(qtbot, window, "3")  # choosing an avatar leaves passthrough
    assert not p.settings.passthrough and p.avatar_index == 2


def test_reload_hotkey_finds_new_files(qtbot, make_window, library: AvatarLibrary, user_avatars: Path,
                                       avatar_path: Path) -> None:
    window = make_window()
    count = len(library)
    user_avatars.mkdir()
    shutil.copy(avatar_path, user_avatars / "copied.jpg")
    press(qtbot, window, "L")
    assert len(window.pipeline.avatars) == count + 1
    assert window.gallery.list.count() == count + 1
    assert "copied" in window.pipeline.avatars.names


def test_calibrate_hotkeys_reset_the_neutral_pose(qtbot, make_window, small_predictor) -> None:
    window = make_window(predictor=small_predictor, start=True)
    qtbot.waitUntil(lambda: small_predictor.neutral_keypoints is not None, timeout=30_000)
    for key in ("C", "X"):
        neutral = small_predictor.neutral_keypoints
        press(qtbot, window, key)
        # The next frame the model sees becomes the new neutral pose.
        qtbot.waitUntil(lambda: small_predictor.neutral_keypoints is not None and small_predictor.neutral_keypoints is not neutral,
                        timeout=30_000)


def test_window_hotkeys(qtbot, make_window) -> None:
    window = make_window()
    press(qtbot, window, "F1")
    assert isinstance(window.help_dialog, HotkeyHelpDialog) and window.help_dialog.isVisible()
    window.help_dialog.close()
    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window)
    press(qtbot, window, "Ctrl+,")
    assert isinstance(window.settings_dialog, SettingsDialog) and window.settings_dialog.isVisible()
    window.settings_dialog.reject()
    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window)
    press(qtbot, window, "F11")
    qtbot.waitUntil(lambda: bool(window.windowState() & Qt.WindowFullScreen))
    assert window.actions_by_name["fullscreen"].isChecked()
    press(qtbot, window, "Esc")  # leaves full screen first
    qtbot.waitUntil(lambda: not window.windowState() & Qt.WindowFullScreen)
    assert window.isVisible()
    press(qtbot, window, "Esc")
    qtbot.waitUntil(lambda: not window.isVisible())


def test_ctrl_q_quits(qtbot, make_window) -> None:
    window = make_window()
    press(qtbot, window, "Ctrl+Q")
    qtbot.waitUntil(lambda: not window.isVisible())


def test_keys_do_not_fire_while_typing(qtbot, make_window) -> None:
    window = make_window()
    field = QLineEdit(window.centralWidget())
    window.centralWidget().layout().addWidget(field)
    field.setFocus()
    qtbot.waitUntil(field.hasFocus)
    before = window.pipeline.settings
    index = window.pipeline.avatar_index
    for key in ("W", "0", "R", "]", "Ctrl+Up", "Left", "2", "Shift+Z"):
        press(qtbot, field, key)
    assert window.pipeline.settings == before and window.pipeline.avatar_index == index
    # The keys went to the text field instead ("Left" moved its cursor, so compare the characters).
    assert sorted(field.text().lower()) == sorted("w0r]2z")


def test_controls_have_hotkey_tooltips(make_window) -> None:
    window = make_window()
    assert "(C, X)" in window.calibrate_button.toolTip()
    assert "(0)" in window.passthrough_button.toolTip()
    assert "[" in window.opacity_slider.toolTip() and "]" in window.opacity_slider.toolTip()
    assert window.actions_by_name["mirror_output"].text().endswith("\tT")


# -- frames and status ---------------------------------------------------------------------------

def test_live_frames_and_status_bar(qtbot, make_window, small_predictor) -> None:
    window = make_window(predictor=small_predictor, start=True)
    qtbot.waitUntil(lambda: window.last_stats is not None and window.last_stats.model_fps > 0, timeout=60_000)
    # The square video, scaled down at most to fit the view.
    width, height = window.preview.frame_size
    assert width == height and 0 < width <= 512
    assert window.output.has_frame
    qtbot.waitUntil(lambda: window.model_label.text().startswith("Model ") and "fps" in window.model_label.text())
    assert window.camera_label.text().startswith("Camera ") and "fps" in window.camera_label.text()
    assert "CPU" in window.device_label.text() and window.device_label.property("warning") is True
    assert window.vcam_label.text() == "Virtual camera: off"
    assert window.frames_shown > 0


def test_frame_bridge_drops_frames_while_the_gui_is_behind(qtbot) -> None:
    bridge = FrameBridge()
    received = []
    bridge.frame.connect(received.append)
    for number in range(MAX_PENDING_FRAMES + 2):
        bridge.post_frame(number)
    assert received == list(range(MAX_PENDING_FRAMES)) and bridge.dropped == 2
    bridge.frame_done()  # one frame painted: room for the next
    bridge.post_frame("next")
    assert received[-1] == "next" and bridge.dropped == 2


# -- settings ------------------------------------------------------------------------------------

def _open_settings(qtbot, window: MainWindow) -> SettingsDialog:
    window.open_settings()
    dialog = window.settings_dialog
    qtbot.waitExposed(dialog)
    return dialog


def test_every_setting_reaches_the_pipeline(qtbot, make_window, shared_dir: Path, tmp_path: Path) -> None:
    window = make_window(start=True)
    p = window.pipeline
    old_camera = p.camera
    dialog = _open_settings(qtbot, window)
    other_video = shared_dir / "media" / "driving" / "d3.mp4"
    dialog.camera.setCurrentText(str(other_video))
    dialog.resolution.setCurrentIndex(dialog.resolution.findData("640x480"))
    dialog.vcam_enabled.setChecked(True)
    dialog.vcam_device.setCurrentText("Settings Test Camera")
    dialog.vcam_backend.addItem(VCAM_BACKEND, VCAM_BACKEND)
    dialog.vcam_backend.setCurrentIndex(dialog.vcam_backend.count() - 1)
    dialog.output_keep_aspect.setChecked(True)
    dialog.smart_crop.setChecked(True)
    dialog.mirror_preview.setChecked(False)
    dialog.mirror_output.setChecked(True)
    dialog.overlay_opacity.setValue(35)
    dialog.absolute.setChecked(True)
    dialog.adapt_scale.setChecked(False)
    dialog.motion_strength.setValue(1.5)
    qtbot.mouseClick(dialog.ok_button, Qt.LeftButton)

    s = p.settings
    assert (s.smart_crop, s.mirror_preview, s.mirror_output, s.output_keep_aspect) == (True, False, True, True)
    assert s.overlay_opacity == pytest.approx(0.35)
    assert (s.relative, s.adapt_movement_scale, s.motion_strength) == (False, False, pytest.approx(1.5))
    qtbot.waitUntil(lambda: p.camera is not old_camera and p.camera.name == "d3.mp4", timeout=20_000)
    qtbot.waitUntil(lambda: CountingBackend.frames.get("Settings Test Camera", 0) > 0, timeout=20_000)
    assert p.stats().vcam_state.startswith("Settings Test Camera")
    saved = SettingsStore(tmp_path / "settings.json").load()
    assert saved == window.settings
    assert (saved.camera, saved.camera_width, saved.camera_height) == (str(other_video), 640, 480)
    assert (saved.vcam_device, saved.vcam_backend, saved.relative) == ("Settings Test Camera", VCAM_BACKEND, False)

    dialog = _open_settings(qtbot, window)
    dialog.vcam_enabled.setChecked(False)
    qtbot.mouseClick(dialog.ok_button, Qt.LeftButton)
    assert p.stats().vcam_state == "off"


def test_model_settings_load_the_model(qtbot, make_window, small_checkpoint: Path) -> None:
    window = make_window(start=True)  # no model yet
    assert window.pipeline.stats().device == "none"
    dialog = _open_settings(qtbot, window)
    dialog.model_device.setCurrentText("cpu")
    dialog.checkpoint.setText(str(small_checkpoint))
    qtbot.mouseClick(dialog.ok_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: window.pipeline.stats().device == "cpu", timeout=30_000)
    assert window.settings.model_device == "cpu" and window.settings.checkpoint == str(small_checkpoint)


def test_hotkey_changes_are_remembered(qtbot, make_window, tmp_path: Path) -> None:
    window = make_window()
    press(qtbot, window, "T")
    press(qtbot, window, "]")
    press(qtbot, window, "3")
    saved = SettingsStore(tmp_path / "settings.json").load()
    assert saved.mirror_output is True and saved.overlay_opacity == pytest.approx(OPACITY_STEP)
    assert saved.avatar == window.pipeline.avatars.names[2]


# -- gallery -------------------------------------------------------------------------------------

def _item_center(window: MainWindow, row: int) -> QPoint:
    return window.gallery.list.visualItemRect(window.gallery.list.item(row)).center()


def test_gallery_clicks_switch_avatars_and_passthrough(qtbot, make_window) -> None:
    window = make_window()
    p = window.pipeline
    viewport = window.gallery.list.viewport()
    qtbot.mouseClick(viewport, Qt.LeftButton, pos=_item_center(window, 1))
    assert p.avatar_index == 1 and not p.settings.passthrough
    assert window.output_title.text().endswith(p.avatars.names[1])
    qtbot.mouseClick(viewport, Qt.LeftButton, pos=_item_center(window, 1))
    assert p.settings.passthrough and "passthrough" in window.output_title.text()
    qtbot.mouseClick(viewport, Qt.LeftButton, pos=_item_center(window, 1))
    assert not p.settings.passthrough and p.avatar_index == 1


def drop_files(widget, paths: list[Path]) -> bool:
    """Drag files onto `widget` and drop them, as a file manager does; whether the drag was accepted."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path)) for path in paths])
    point = widget.rect().center()
    enter = QDragEnterEvent(point, Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
    QApplication.sendEvent(widget, enter)
    QApplication.sendEvent(widget, QDropEvent(point, Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier))
    return enter.isAccepted()


def _save_editor(qtbot, window: MainWindow, name: str) -> None:
    qtbot.waitUntil(lambda: isinstance(window.gallery.editor, CropEditor) and window.gallery.editor.isVisible())
    window.gallery.editor.name_edit.setText(name)
    qtbot.mouseClick(window.gallery.editor.save_button, Qt.LeftButton)


def test_adding_by_drop_saves_new_files_and_never_overwrites(qtbot, make_window, avatar_path: Path,
                                                             user_avatars: Path) -> None:
    window = make_window()
    count = len(window.pipeline.avatars)
    source_bytes = avatar_path.read_bytes()
    assert drop_files(window.gallery, [avatar_path])
    _save_editor(qtbot, window, "my face")
    added = user_avatars / "my_face.png"
    assert added.is_file()
    assert len(window.pipeline.avatars) == count + 1 and window.gallery.list.count() == count + 1
    assert window.pipeline.avatars.paths[window.pipeline.avatar_index] == added  # the new avatar is driven

    window.gallery.add_files([avatar_path])  # same name again: a second file, the first is kept
    _save_editor(qtbot, window, "my face")
    assert (user_avatars / "my_face-2.png").is_file()
    assert added.stat().st_size > 0 and avatar_path.read_bytes() == source_bytes


def test_removing_an_avatar_asks_first(qtbot, make_window, avatar_path: Path, user_avatars: Path) -> None:
    user_avatars.mkdir()
    shutil.copy(avatar_path, user_avatars / "temporary.jpg")
    window = make_window()
    window.gallery.reload()
    p = window.pipeline
    index = p.avatars.names.index("temporary")
    window.gallery.activate(index)
    count = len(p.avatars)
    neighbour = p.avatars.paths[index + 1]

    qtbot.mouseClick(window.gallery.remove_button, Qt.LeftButton)
    qtbot.mouseClick(window.gallery.confirm.button(QMessageBox.Cancel), Qt.LeftButton)
    assert (user_avatars / "temporary.jpg").exists() and len(p.avatars) == count

    qtbot.mouseClick(window.gallery.remove_button, Qt.LeftButton)
    qtbot.mouseClick(window.gallery.confirm.button(QMessageBox.Yes), Qt.LeftButton)
    assert not (user_avatars / "temporary.jpg").exists()
    assert len(p.avatars) == count - 1 and window.gallery.list.count() == count - 1
    assert "temporary" not in p.avatars.names
    # The avatar that took its place is driven: by the model, in the gallery and in the saved settings.
    assert p.avatars.paths[p.avatar_index] == neighbour and window.gallery.selected_index == p.avatar_index
    assert np.array_equal(p._avatar_image, prepare_frame(p.avatars.image(p.avatar_index)))
    assert window.settings.avatar == neighbour.stem


def test_shipped_avatars_cannot_be_removed(qtbot, make_window, avatars_dir: Path) -> None:
    window = make_window()
    files = sorted(avatars_dir.iterdir())
    window.gallery.activate(1)
    qtbot.mouseClick(window.gallery.remove_button, Qt.LeftButton)
    assert window.gallery.confirm is None  # not even asked
    assert "only avatars you added can be removed" in window.banner.message
    assert sorted(avatars_dir.iterdir()) == files


# -- first run and errors ------------------------------------------------------------------------

def test_first_run_without_weights(qtbot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, driving_video: Path,
                                   small_config: Path, small_checkpoint: Path) -> None:
    """The app as `avatarify gui` starts it, on a computer without weights: preview and passthrough work."""
    from avatarify.core.errors import CheckpointError
    from avatarify.model.weights import find_checkpoint

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.delenv("AVATARIFY_CHECKPOINT", raising=False)
    with pytest.raises(CheckpointError):
        try:
            find_checkpoint()
        except CheckpointError:
            raise
        else:
            pytest.skip("model weights are installed on this computer")
    store = SettingsStore(tmp_path / "settings.json")
    store.save(AppSettings(vcam_enabled=False))
    window, pipeline = launch(LaunchOptions(camera=str(driving_video), avatar="no-such-avatar",
                                            model=ModelOptions(config=small_config), settings_path=store.path))
    qtbot.addWidget(window)
    try:
        assert window.first_run.isVisible() and window.first_run.download_button.isEnabled()
        assert "No model weights found" in window.first_run.status.text()
        assert "no-such-avatar" in window.banner.message
        qtbot.waitUntil(lambda: window.preview.has_frame and window.output.has_frame, timeout=20_000)
        assert window.last_stats.device == "none"
        qtbot.waitUntil(lambda: window.model_label.text() == "Model: not loaded")
        window.first_run.locate(small_checkpoint)
        qtbot.waitUntil(lambda: pipeline.stats().device == "cpu", timeout=30_000)
        assert not window.first_run.isVisible()
        assert store.load().checkpoint == str(small_checkpoint)  # a located file is remembered
    finally:
        window.close()
        pipeline.stop()


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_precision_option_reaches_the_model(small_config: Path, small_checkpoint: Path, precision: str) -> None:
    from avatarify.cli.main import build_parser
    from avatarify.cli.gui import model_options
    from avatarify.gui.devices import load_predictor

    args = build_parser().parse_args(["gui", "--config", str(small_config), "--precision", precision])
    model = model_options(args)
    assert model.precision == precision
    predictor = load_predictor(AppSettings(model_device="cpu"), model, small_checkpoint)
    assert predictor.fast_path.startswith(f"{precision} decoder")


def test_checkpoint_problem_is_shown(qtbot, make_window, tmp_path: Path) -> None:
    window = make_window()
    broken = tmp_path / "broken.pth.tar"
    broken.write_bytes(b"not a checkpoint")
    window.load_model(broken)
    qtbot.waitUntil(lambda: window.banner.message != "", timeout=30_000)
    assert "broken.pth.tar" in window.banner.message
    assert window.first_run.isVisible() and "broken.pth.tar" in window.first_run.status.text()
    assert window.pipeline.stats().device == "none"


def test_unavailable_device_is_shown(qtbot, make_window, small_checkpoint: Path) -> None:
    window = make_window()
    if __import__("torch").cuda.is_available():
        pytest.skip("a CUDA GPU is present")
    window.apply_settings(dataclasses.replace(window.settings, model_device="cuda", checkpoint=str(small_checkpoint)))
    qtbot.waitUntil(lambda: "CUDA" in window.banner.message, timeout=30_000)


def test_bad_avatar_file_is_shown(qtbot, make_window, user_avatars: Path) -> None:
    user_avatars.mkdir()
    (user_avatars / "damaged.png").write_bytes(b"\x89PNG but not really")
    window = make_window(start=True)
    window.gallery.reload()
    index = window.pipeline.avatars.names.index("damaged")
    assert "damaged.png" in window.gallery.list.item(index).toolTip()
    window.gallery.activate(index)
    qtbot.waitUntil(lambda: "damaged.png" in window.banner.message, timeout=10_000)


def test_picture_drop_of_a_non_image_is_refused(qtbot, make_window, tmp_path: Path) -> None:
    window = make_window()
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    assert drop_files(window.gallery, [text])
    assert "Skipped notes.txt: only picture files" in window.banner.message and window.gallery.editor is None


def test_missing_virtual_camera_is_shown(qtbot, make_window) -> None:
    window = make_window(start=True)
    window.apply_settings(dataclasses.replace(window.settings, vcam_enabled=True, vcam_device="absent",
                                              vcam_backend=VCAM_BACKEND))
    qtbot.waitUntil(lambda: "virtual camera" in window.banner.message.lower(), timeout=20_000)
    qtbot.waitUntil(lambda: window.vcam_label.text() == "Virtual camera: unavailable", timeout=5_000)
    assert window.vcam_label.property("warning") is True


def test_camera_gone_is_shown_and_clears_when_it_returns(qtbot, make_window, driving_video: Path,
                                                         tmp_path: Path) -> None:
    window = make_window(start=True)
    video = tmp_path / "camera.mp4"
    shutil.copy(driving_video, video)
    window.apply_settings(dataclasses.replace(window.settings, camera=str(video)))
    qtbot.waitUntil(lambda: window.pipeline.camera.name == "camera.mp4", timeout=20_000)
    video.unlink()
    qtbot.waitUntil(lambda: "camera.mp4" in window.banner.message, timeout=30_000)
    shutil.copy(driving_video, video)
    qtbot.waitUntil(lambda: window.banner.message == "", timeout=30_000)


def test_camera_missing_at_launch_opens_later(qtbot, tmp_path: Path, driving_video: Path) -> None:
    late = tmp_path / "late.mp4"
    settings = AppSettings(camera=str(late))
    from avatarify.gui.devices import open_camera_or_pending

    camera, problem = open_camera_or_pending(settings)
    assert isinstance(camera, PendingCamera) and "late.mp4" in problem
    with pytest.raises(Exception, match="late.mp4"):
        camera.read(timeout=0.01)
    shutil.copy(driving_video, late)
    qtbot.waitUntil(lambda: _reads(camera), timeout=10_000)
    assert camera.name == "late.mp4" and camera.size == (512, 512)
    camera.close()


def _reads(camera: PendingCamera) -> bool:
    try:
        return camera.read(timeout=0.2) is not None
    except Exception:
        return False
