"""GUI parts that need no session: the hotkey table and its help dialog, the crop editor, the settings dialog,
the camera picker, the problem panel, the status bar texts, the preview panes and the weights download."""
from __future__ import annotations

import hashlib
import http.server
import threading
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from PyQt5.QtCore import QEvent, QPoint, QPointF, Qt
from PyQt5.QtGui import QKeySequence, QMouseEvent, QWheelEvent
from PyQt5.QtWidgets import QApplication

from avatarify.core.faces import largest_face
from avatarify.gui.crop_editor import CropEditor
from avatarify.core.settings import Settings
from avatarify.core.status import Remedy, State, failed, running, starting
from avatarify.gui.camera_picker import IMAGE_FOLDER, VIDEO_FILE, CameraPicker
from avatarify.gui.downloads import WeightsDownload, WeightsSource
from avatarify.gui.hotkeys import HOTKEYS, HotkeyHelpDialog, create_action, hotkey, tooltip
from avatarify.gui.problems import ProblemPanel
from avatarify.gui.settings_dialog import SettingsDialog
from avatarify.gui.status_line import describe
from avatarify.gui.views import PreviewPanes
from avatarify.pipeline.frames import PipelineStats
from avatarify.core.images import read_image
from avatarify.pipeline.camera import CameraInfo


def test_every_key_is_bound_once_and_parses() -> None:
    seen: dict[str, str] = {}
    for entry in HOTKEYS:
        for key in entry.keys:
            sequence = QKeySequence(key)
            assert sequence.count() == 1 and not sequence.isEmpty(), key
            canonical = sequence.toString()
            assert canonical not in seen, f"{key} is bound to both {seen[canonical]} and {entry.action}"
            seen[canonical] = entry.action


def test_table_has_the_documented_keys() -> None:
    assert hotkey("calibrate").keys == ("C", "X")
    assert set(hotkey("previous_avatar").keys) == {"Left", "A"}
    assert set(hotkey("next_avatar").keys) == {"Right", "D"}
    assert hotkey("select_avatar").keys == tuple("123456789")
    assert hotkey("passthrough").keys == ("0",)
    assert (hotkey("zoom_in").keys, hotkey("zoom_out").keys) == (("W",), ("S",))
    assert hotkey("reset_crop").keys == ("Shift+Z",)
    assert hotkey("quit").keys == ("Ctrl+Q",) and hotkey("leave_fullscreen").keys == ("Esc",)
    assert "C, X" in tooltip("calibrate")


def test_help_dialog_lists_every_entry(qtbot) -> None:
    dialog = HotkeyHelpDialog()
    qtbot.addWidget(dialog)
    rows = {dialog.table.item(row, 1).text(): dialog.table.item(row, 0).text() for row in range(dialog.table.rowCount())}
    assert len(rows) == len(HOTKEYS)
    assert rows[hotkey("select_avatar").text] == "1 … 9"
    assert rows[hotkey("move_crop_up").text] == hotkey("move_crop_up").key_text


@pytest.fixture
def portrait(avatar_path: Path) -> np.ndarray:
    return read_image(avatar_path)


def test_crop_editor_is_seeded_by_face_detection(qtbot, portrait: np.ndarray) -> None:
    editor = CropEditor(portrait, "mona")
    qtbot.addWidget(editor)
    face = largest_face(portrait)
    assert face is not None and editor.face_found
    crop = editor.canvas.crop
    assert crop.cx == pytest.approx(face.center[0]) and crop.cy == pytest.approx(face.center[1])
    assert crop.side > max(face.w, face.h)


def test_crop_editor_zooms_and_drags(qtbot, portrait: np.ndarray) -> None:
    editor = CropEditor(portrait, "mona")
    qtbot.addWidget(editor)
    editor.show()
    qtbot.waitExposed(editor)
    canvas = editor.canvas
    before = canvas.crop
    wheel = QWheelEvent(QPointF(50, 50), QPointF(50, 50), QPoint(0, 0), QPoint(0, 120), Qt.NoButton, Qt.NoModifier,
                        Qt.NoScrollPhase, False)
    canvas.wheelEvent(wheel)
    assert canvas.crop.side == pytest.approx(before.side / 1.1)
    start = QPoint(canvas.width() // 2, canvas.height() // 2)
    qtbot.mousePress(canvas, Qt.LeftButton, pos=start)
    # QTest's mouseMove carries no pressed button; a real drag does.
    move = QMouseEvent(QEvent.MouseMove, QPointF(start + QPoint(40, 0)), Qt.NoButton, Qt.LeftButton, Qt.NoModifier)
    QApplication.sendEvent(canvas, move)
    qtbot.mouseRelease(canvas, Qt.LeftButton, pos=start + QPoint(40, 0))
    assert canvas.crop.cx > before.cx and canvas.crop.cy == pytest.approx(before.cy)
    zoomed = canvas.crop.side
    editor.zoom_slider.setValue(editor.zoom_slider.value() - 10)
    assert canvas.crop.side > zoomed
    result = editor.result_image()
    assert result.shape[0] == result.shape[1] and result.shape[2] == 3 and result.dtype == np.uint8


def test_crop_editor_without_a_face_uses_the_centre(qtbot) -> None:
    image = np.full((300, 500, 3), 90, np.uint8)
    editor = CropEditor(image, "")
    qtbot.addWidget(editor)
    assert not editor.face_found
    assert (editor.canvas.crop.cx, editor.canvas.crop.cy, editor.canvas.crop.side) == (250, 150, 300)
    assert not editor.save_button.isEnabled()  # no name yet
    editor.name_edit.setText("plain")
    assert editor.save_button.isEnabled()
    editor.name_edit.setText("  ")
    assert not editor.save_button.isEnabled()


def test_crop_editor_with_a_name_can_save_at_once(qtbot, portrait: np.ndarray) -> None:
    editor = CropEditor(portrait, "mona")
    qtbot.addWidget(editor)
    assert editor.save_button.isEnabled()


CAMERAS = [CameraInfo(0, "Integrated Camera"), CameraInfo(2, "USB Camera")]


def test_menu_entries_show_their_keys(qtbot) -> None:
    from PyQt5.QtWidgets import QWidget

    parent = QWidget()
    qtbot.addWidget(parent)
    for entry in HOTKEYS:
        if not entry.indexed:
            action = create_action(parent, entry.action, lambda: None)
            assert [key.toString() for key in action.shortcuts()] == [QKeySequence(k).toString() for k in entry.keys]
            assert action.shortcutContext() == Qt.WidgetShortcut  # shown in the menu, bound by the window


def test_settings_dialog_offers_only_what_exists_and_keeps_unchanged_values(qtbot) -> None:
    settings = Settings(model_device="cpu", vcam_backend="v4l2loopback")
    dialog = SettingsDialog(settings, ["auto", "cpu"], [("", "Automatic"), ("v4l2loopback", "v4l2loopback")])
    qtbot.addWidget(dialog)
    assert [dialog.model_device.itemText(i) for i in range(dialog.model_device.count())] == ["auto", "cpu"]
    assert [dialog.vcam_backend.itemData(i) for i in range(dialog.vcam_backend.count())] == ["", "v4l2loopback"]
    assert dialog.values() == settings  # OK without changes changes nothing
    dialog.camera_when_unavailable.setChecked(True)
    dialog.confirm_quit.setChecked(False)
    assert dialog.values().camera_when_unavailable and not dialog.values().confirm_quit


def test_settings_dialog_keeps_a_device_that_is_gone(qtbot) -> None:
    dialog = SettingsDialog(Settings(model_device="cuda:1"), ["auto", "cpu"])
    qtbot.addWidget(dialog)
    assert dialog.values().model_device == "cuda:1"


def test_camera_picker_lists_cameras_by_name_and_shows_what_plays(qtbot) -> None:
    picker = CameraPicker()
    qtbot.addWidget(picker)
    picker.set_cameras(CAMERAS)
    picker.show_playing("2")
    assert picker.currentText() == "USB Camera"
    picker.show_playing("/videos/me.mp4")
    assert picker.currentText() == "me.mp4" and "/videos/me.mp4" in picker.toolTip()
    items = [picker.itemData(i) for i in range(picker.count())]
    assert items[:2] == ["0", "2"] and items[-2:] == [VIDEO_FILE, IMAGE_FOLDER]
    with qtbot.waitSignal(picker.chosen) as chosen:
        picker.activated.emit(0)
    assert chosen.args == ["0"]


def test_camera_picker_says_when_there_is_no_camera(qtbot) -> None:
    picker = CameraPicker()
    qtbot.addWidget(picker)
    picker.set_cameras([])
    assert picker.itemText(0) == "No cameras found" and not picker.model().item(0).isEnabled()


def test_problem_panel_shows_every_problem_and_a_dismissed_one_returns(qtbot) -> None:
    panel = ProblemPanel()
    qtbot.addWidget(panel)
    remedies = []
    panel.remedy.connect(lambda component, remedy: remedies.append((component, remedy)))
    camera = failed("Camera 0 cannot be opened.", Remedy.CHOOSE_CAMERA, Remedy.VIDEO_FILE)
    model = failed("No model weights found.", Remedy.DOWNLOAD_WEIGHTS, Remedy.LOCATE_WEIGHTS, detail="where")
    panel.show_status("camera", camera)
    panel.show_status("model", model)
    assert panel.messages == ["Camera 0 cannot be opened.", "No model weights found."]
    qtbot.mouseClick(panel.row("model").remedy_buttons[Remedy.LOCATE_WEIGHTS], Qt.LeftButton)
    assert remedies == [("model", Remedy.LOCATE_WEIGHTS)]
    qtbot.mouseClick(panel.row("camera").dismiss_button, Qt.LeftButton)
    assert panel.messages == ["No model weights found."]
    panel.show_status("camera", camera)  # the same problem, still dismissed
    assert panel.messages == ["No model weights found."]
    panel.show_status("camera", running("d0.mp4"))
    panel.show_status("camera", camera)  # solved, then back: shown again
    assert "Camera 0 cannot be opened." in panel.messages
    panel.show_status("model", starting("Loading the model…"))
    assert panel.messages == ["Camera 0 cannot be opened."]


def test_problem_details_offer_the_setup_command_to_copy(qtbot) -> None:
    panel = ProblemPanel()
    qtbot.addWidget(panel)
    panel.show()
    panel.show_status("vcam", failed("No virtual camera.", Remedy.SETUP_VCAM, detail="Install it.", command="setup.sh"))
    row = panel.row("vcam")
    assert row.details.isHidden()
    qtbot.mouseClick(row.details_button, Qt.LeftButton)
    assert row.details.isVisible() and row.details.toPlainText() == "Install it."
    qtbot.mouseClick(row.copy_button, Qt.LeftButton)
    assert QApplication.clipboard().text() == "setup.sh"


def test_status_texts_name_every_state() -> None:
    stats = PipelineStats(camera_fps=25.0, model_fps=4.2, model_ms=230, device="cpu")
    assert describe("camera", running("d0.mp4"), stats) == "Camera: d0.mp4 · 25 fps"
    assert describe("model", running("Model on cpu"), stats) == "Model: cpu · 4.2 fps · 230 ms"
    assert describe("model", running("Model on cpu"), stats, "idle (passthrough)") == "Model: idle (passthrough)"
    assert describe("model", starting("Loading"), None) == "Model: starting…"
    assert describe("vcam", failed("No virtual camera."), None) == "Virtual camera: not available"
    assert describe("landmarks", running("Face landmarks ready"), None) == "Landmarks: Face landmarks ready"
    assert describe("worker", failed("x"), None) == "Worker: not available"
    assert describe("model", failed("x"), stats).endswith("not available")
    assert State.OFF.value == "off"


def test_panes_follow_their_pictures_and_fit_a_short_window(qtbot) -> None:
    panes = PreviewPanes()
    qtbot.addWidget(panes)
    panes.resize(1100, 300)
    panes.show()
    qtbot.waitExposed(panes)
    panes.set_aspects(1.0, 1.0)
    for pane in (panes.camera, panes.output):
        view = pane.view.geometry()
        assert abs(view.width() - view.height()) <= 2  # no empty bars inside the pane
        assert pane.geometry().bottom() <= panes.height()  # scaled, not clipped
    panes.set_aspects(16 / 9, 1.0)
    QApplication.processEvents()
    camera = panes.camera.view.geometry()
    assert abs(camera.width() / camera.height() - 16 / 9) < 0.05


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def http_folder(tmp_path: Path):
    """A real HTTP server on 127.0.0.1 serving a folder."""
    folder = tmp_path / "served"
    folder.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_Handler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_weights_download_reports_progress_and_the_file(qtbot, tmp_path: Path, http_folder) -> None:
    folder, base = http_folder
    payload = np.random.default_rng(0).integers(0, 256, 3_000_000, dtype=np.uint8).tobytes()
    (folder / "weights.bin").write_bytes(payload)
    source = WeightsSource(dest_dir=tmp_path / "weights", urls=[f"{base}/weights.bin"],
                           md5=hashlib.md5(payload).hexdigest(), name="weights.bin", expected_size=len(payload))
    download = WeightsDownload(source)
    progress = []
    download.progress.connect(progress.append)
    with qtbot.waitSignal(download.finished, timeout=30_000) as done:
        download.start()
        download.start()  # a second click while it runs does nothing
        assert download.running
    assert done.args == [tmp_path / "weights" / "weights.bin"]
    assert (tmp_path / "weights" / "weights.bin").read_bytes() == payload
    assert progress[0] == 0 and progress == sorted(progress)
    qtbot.waitUntil(lambda: not download.running)


def test_weights_download_reports_a_failure(qtbot, tmp_path: Path, http_folder) -> None:
    _, base = http_folder
    source = WeightsSource(dest_dir=tmp_path / "weights", urls=[f"{base}/missing.bin"], md5="0" * 32, name="w.bin")
    download = WeightsDownload(source)
    with qtbot.waitSignal(download.failed, timeout=30_000) as failure:
        download.start()
    assert "404" in failure.args[0] and not (tmp_path / "weights" / "w.bin").exists()
