"""The whole app, started like `avatarify gui`, on a real X server (Xvfb): live output and a screenshot.

The app runs in a child process (Qt cannot switch from the offscreen platform the other tests use to X11
within one process) with a driving video as its camera and the small golden checkpoint as its model.
It writes test-artifacts/gui-screenshot.png, grabbed from the X server: the real window as a user sees it.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SCREENSHOT = REPO_ROOT / "test-artifacts" / "gui-screenshot.png"
XVFB = shutil.which("Xvfb")
# CI installs: xvfb libxcb-icccm4 libxcb-keysyms1 libxcb-xinerama0 libxcb-image0 libxcb-render-util0 libxkbcommon-x11-0
pytestmark = pytest.mark.skipif(
    XVFB is None,
    reason="Xvfb is not installed; on Debian/Ubuntu: apt-get install -y xvfb libxcb-icccm4 libxcb-keysyms1 "
    "libxcb-xinerama0 libxcb-image0 libxcb-render-util0 libxkbcommon-x11-0",
)

# Runs `avatarify gui ...` through the console-script entry point, watches for live model output,
# grabs the window from the X server and closes it, which ends the app normally.
CHILD = r"""
import json, sys
from pathlib import Path

import numpy as np
import pyvirtualcam
from PyQt5.QtCore import QTimer

from avatarify import cli
from avatarify.gui.app import create_application
from avatarify.gui.main_window import MainWindow

sent = {"frames": 0}


class TestVirtualCamera:
    def __init__(self, *, width, height, fps, fourcc, device, **kw):
        self.name = device or "Test Virtual Camera"

    def send(self, frame: np.ndarray) -> None:
        sent["frames"] += 1

    def close(self) -> None:
        pass

    def device(self) -> str:
        return self.name

    def native_fourcc(self):
        return None


pyvirtualcam.register_backend("screenshot-test", TestVirtualCamera)
screenshot, args = Path(sys.argv[1]), sys.argv[2:]
app = create_application()
state = {}


def window():
    found = [w for w in app.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible()]
    return found[0] if found else None


def check() -> None:
    main = window()
    stats = main.last_stats if main else None
    # Live: the model has produced frames for a while and the status bar shows them.
    if stats and stats.model_fps > 0 and main.frames_shown > 50 and "fps" in main.model_label.text():
        poll.stop()
        QTimer.singleShot(600, shoot)


def shoot() -> None:
    main = window()
    stats = main.last_stats
    pixmap = main.screen().grabWindow(main.winId())
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    state.update(
        saved=pixmap.save(str(screenshot)), width=pixmap.width(), height=pixmap.height(),
        platform=app.platformName(), model_fps=stats.model_fps, device=stats.device, vcam=stats.vcam_state,
        frames_shown=main.frames_shown, vcam_frames=sent["frames"], banner=main.banner.message,
        model_label=main.model_label.text(), device_label=main.device_label.text(),
        output_title=main.output_title.text(), first_run=main.first_run.isVisible(),
    )
    main.close()


poll = QTimer()
poll.timeout.connect(check)
poll.start(100)
status = cli.main(args)
print("RESULT " + json.dumps({"status": status, **state}), flush=True)
"""


@pytest.fixture
def x_display():
    """A private Xvfb server; yields its DISPLAY value."""
    read_end, write_end = os.pipe()
    server = subprocess.Popen(
        [XVFB, "-displayfd", str(write_end), "-screen", "0", "1280x900x24", "-nolisten", "tcp"],
        pass_fds=(write_end,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        number = pipe.readline().strip()
    if not number:
        server.kill()
        pytest.fail("Xvfb did not start")
    yield f":{number}"
    server.terminate()
    server.wait(timeout=10)


def test_full_app_under_xvfb_shows_live_output(tmp_path: Path, x_display: str, driving_video: Path,
                                               avatar_path: Path, small_config: Path, small_checkpoint: Path) -> None:
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({"vcam_backend": "screenshot-test", "vcam_device": "Avatarify Camera"}))
    env = {
        **os.environ,
        "DISPLAY": x_display,
        "QT_QPA_PLATFORM": "xcb",
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "XDG_RUNTIME_DIR": str(tmp_path),
        "AVATARIFY_OFFLINE": "1",
    }
    env.pop("QT_QPA_PLATFORM_PLUGIN_PATH", None)
    args = ["gui", "--camera", str(driving_video), "--avatar", str(avatar_path), "--settings", str(settings),
            "--checkpoint", str(small_checkpoint), "--config", str(small_config), "--device", "cpu"]
    SCREENSHOT.unlink(missing_ok=True)
    child = subprocess.run([sys.executable, "-c", CHILD, str(SCREENSHOT), *args], env=env, cwd=REPO_ROOT,
                           capture_output=True, text=True, timeout=300)
    lines = [line for line in child.stdout.splitlines() if line.startswith("RESULT ")]
    assert child.returncode == 0 and lines, child.stderr[-3000:]
    result = json.loads(lines[-1][len("RESULT "):])
    assert result["status"] == 0 and result["platform"] == "xcb" and result["saved"], result
    assert result["model_fps"] > 0 and result["device"] == "cpu" and not result["first_run"]
    assert result["vcam"].startswith("Avatarify Camera") and result["vcam_frames"] > 0
    assert result["banner"] == "", result["banner"]
    assert "CPU" in result["device_label"] and result["output_title"].endswith("mona")

    image = cv2.imread(str(SCREENSHOT))
    assert image is not None and image.shape[:2] == (result["height"], result["width"])
    assert image.shape[1] >= 900 and image.shape[0] >= 600
    # The window is drawn, not blank: many distinct colours (video, avatar thumbnails, text).
    assert len({tuple(pixel) for pixel in image[::7, ::7].reshape(-1, 3)}) > 500
