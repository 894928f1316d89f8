"""GUI parts that need no pipeline: the hotkey table and its help dialog, the crop editor, the settings dialog's
camera list, the first-run panel."""
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
from avatarify.gui.first_run import FirstRunPanel, WeightsSource
from avatarify.gui.hotkeys import HOTKEYS, HotkeyHelpDialog, hotkey, tooltip
from avatarify.gui.settings import AppSettings
from avatarify.gui.settings_dialog import SettingsDialog
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
    assert hotkey("quit").keys == ("Esc", "Ctrl+Q")
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


def test_settings_dialog_shows_cameras_by_name_and_keeps_the_index(qtbot) -> None:
    dialog = SettingsDialog(AppSettings(camera="0"), CAMERAS)
    qtbot.addWidget(dialog)
    assert dialog.camera.currentText() == "Integrated Camera"
    assert dialog.values() == AppSettings(camera="0")  # OK without changes changes nothing
    dialog.camera.setCurrentIndex(1)
    assert dialog.values().camera == "2"
    dialog.camera.setCurrentText("/videos/me.mp4")
    assert dialog.values().camera == "/videos/me.mp4"
    dialog.camera.setCurrentText("")
    assert dialog.values().camera == "0"


def test_settings_dialog_keeps_a_camera_given_by_name(qtbot) -> None:
    dialog = SettingsDialog(AppSettings(camera="USB Camera"), CAMERAS)
    qtbot.addWidget(dialog)
    assert dialog.camera.currentText() == "USB Camera" and dialog.values().camera == "USB Camera"
    dialog.camera.setCurrentIndex(0)
    assert dialog.values().camera == "0"


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def http_folder(tmp_path: Path):
    """A real HTTP server on 127.0.0.1 serving a folder."""
    folder = tmp_path / "served"
    folder.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_Handler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_first_run_panel_downloads_with_progress(qtbot, tmp_path: Path, http_folder) -> None:
    folder, base = http_folder
    payload = np.random.default_rng(0).integers(0, 256, 3_000_000, dtype=np.uint8).tobytes()
    (folder / "weights.bin").write_bytes(payload)
    source = WeightsSource(dest_dir=tmp_path / "weights", urls=[f"{base}/weights.bin"],
                           md5=hashlib.md5(payload).hexdigest(), name="weights.bin", expected_size=len(payload))
    panel = FirstRunPanel(source)
    qtbot.addWidget(panel)
    panel.show()
    with qtbot.waitSignal(panel.checkpoint_ready, timeout=30_000) as ready:
        qtbot.mouseClick(panel.download_button, Qt.LeftButton)
        assert not panel.download_button.isEnabled() and panel.progress.isVisible()
    assert ready.args == [tmp_path / "weights" / "weights.bin"]
    assert (tmp_path / "weights" / "weights.bin").read_bytes() == payload
    assert panel.progress.value() == 100
    qtbot.waitUntil(lambda: panel.download_button.isEnabled())


def test_first_run_panel_reports_a_failed_download(qtbot, tmp_path: Path, http_folder) -> None:
    _, base = http_folder
    source = WeightsSource(dest_dir=tmp_path / "weights", urls=[f"{base}/missing.bin"], md5="0" * 32, name="w.bin")
    panel = FirstRunPanel(source)
    qtbot.addWidget(panel)
    panel.start_download()
    qtbot.waitUntil(lambda: panel.status.text().startswith("Download failed"), timeout=30_000)
    assert "404" in panel.status.text()
    assert panel.download_button.isEnabled() and not (tmp_path / "weights" / "w.bin").exists()
