"""The whole app, started like `avatarify gui`, in a child process: on a real X server (Xvfb) for screenshots of the
three states a user meets first (no weights, model running, camera missing), and stopped by Ctrl+C or SIGTERM.

The app runs in a child process (Qt cannot switch from the offscreen platform the other tests use to X11 within one
process). The screenshots go to test-artifacts/, grabbed from the X server: the real window as a user sees it.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest

pytestmark = [pytest.mark.gui, pytest.mark.slow]
REPO_ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO_ROOT / "test-artifacts"
XVFB = shutil.which("Xvfb")
NEEDS_XVFB = pytest.mark.skipif(
    XVFB is None,
    reason="Xvfb is not installed; on Debian/Ubuntu: apt-get install -y xvfb libxcb-icccm4 libxcb-keysyms1 "
    "libxcb-xinerama0 libxcb-image0 libxcb-render-util0 libxkbcommon-x11-0",
)

# Runs `avatarify gui ...` through the console-script entry point with a virtual-camera backend that records what
# it gets. In "shoot" mode it waits until `ready` holds, grabs the window from the X server and quits; in "serve"
# mode it prints READY once the window shows frames and runs until a signal stops it.
CHILD = r"""
import json, sys
from pathlib import Path

import pyvirtualcam
from PyQt5.QtCore import QTimer

from avatarify.cli import main as cli
from avatarify.core.status import State
from avatarify.gui.app import create_application
from avatarify.gui.main_window import MainWindow

mode, target, report, args = sys.argv[1], sys.argv[2], Path(sys.argv[3]), sys.argv[4:]
sent = {"frames": 0, "closed": False}


class RecordingCamera:
    def __init__(self, *, width, height, fps, fourcc, device, **kw):
        self.name = device or "Test Virtual Camera"

    def send(self, frame):
        sent["frames"] += 1

    def close(self):
        sent["closed"] = True
        report.write_text(json.dumps(sent))

    def device(self):
        return self.name

    def native_fourcc(self):
        return None


pyvirtualcam.register_backend("app-test", RecordingCamera)
app = create_application()
result = {}
READY = {
    "no-weights": lambda w: w.statuses["model"].failed and w.frames_shown > 10,
    "running": lambda w: w.last_stats is not None and w.last_stats.model_fps > 0 and w.frames_shown > 30,
    "camera-missing": lambda w: w.statuses["camera"].failed and w.statuses["model"].state is State.RUNNING,
    "serve": lambda w: w.frames_shown > 5 and sent["frames"] > 5,
}


def window():
    found = [w for w in app.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible()]
    return found[0] if found else None


def check():
    main = window()
    if main is None or not READY[target](main):
        return
    poll.stop()
    if mode == "serve":
        print("READY", flush=True)
        return
    QTimer.singleShot(800, lambda: shoot(main))


def shoot(main):
    pixmap = main.screen().grabWindow(main.winId())
    shot = report.with_name(f"gui-{target}.png")
    shot.parent.mkdir(parents=True, exist_ok=True)
    result.update(
        saved=pixmap.save(str(shot)), shot=str(shot), width=pixmap.width(), height=pixmap.height(),
        platform=app.platformName(), problems=main.problems.messages,
        status_bar=[label.text() for label in main.status_line.labels.values() if not label.isHidden()],
        remedies={key: [r.value for r in row.remedy_buttons] for key, row in main.problems.rows.items()},
        output_title=main.panes.output.title.text(), camera_title=main.panes.camera.title.text(),
        vcam_frames=sent["frames"],
    )
    main.shutdown()


poll = QTimer()
poll.timeout.connect(check)
poll.start(100)
status = cli.main(args)
print("RESULT " + json.dumps({"status": status, **result}), flush=True)
"""


@pytest.fixture
def x_display():
    """A private Xvfb server; yields its DISPLAY value."""
    read_end, write_end = os.pipe()
    server = subprocess.Popen(
        [XVFB, "-displayfd", str(write_end), "-screen", "0", "1280x900x24", "-nolisten", "tcp"],
        pass_fds=(write_end,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        number = pipe.readline().strip()
    if not number:
        server.kill()
        pytest.fail("Xvfb did not start")
    yield f":{number}"
    server.terminate()
    server.wait(timeout=10)


def child_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "XDG_RUNTIME_DIR": str(tmp_path),
        "AVATARIFY_OFFLINE": "1",
        **extra,
    }
    env.pop("QT_QPA_PLATFORM_PLUGIN_PATH", None)
    env.pop("AVATARIFY_CHECKPOINT", None)
    return env


def gui_args(tmp_path: Path, camera: Path, avatar: Path, model: tuple[Path, Path] | None) -> list[str]:
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({"vcam_backend": "app-test", "vcam_device": "Avatarify Camera"}))
    args = ["gui", "--camera", str(camera), "--avatar", str(avatar), "--settings", str(settings)]
    if model is not None:
        args += ["--checkpoint", str(model[0]), "--config", str(model[1]), "--device", "cpu"]
    return args


def shoot(tmp_path: Path, display: str, state: str, args: list[str]) -> dict:
    env = child_env(tmp_path, DISPLAY=display, QT_QPA_PLATFORM="xcb")
    report = ARTIFACTS / f"gui-{state}.json"
    (ARTIFACTS / f"gui-{state}.png").unlink(missing_ok=True)
    child = subprocess.run([sys.executable, "-c", CHILD, "shoot", state, str(report), *args], env=env, cwd=REPO_ROOT,
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    lines = [line for line in child.stdout.splitlines() if line.startswith("RESULT ")]
    assert child.returncode == 0 and lines, child.stderr[-3000:]
    result = json.loads(lines[-1][len("RESULT "):])
    assert result["status"] == 0 and result["platform"] == "xcb" and result["saved"], result
    image = cv2.imread(result["shot"])
    assert image is not None and image.shape[:2] == (result["height"], result["width"])
    assert image.shape[1] >= 900 and image.shape[0] >= 600
    # The window is drawn, not blank: many distinct colours (video, avatar thumbnails, text).
    assert len({tuple(pixel) for pixel in image[::7, ::7].reshape(-1, 3)}) > 300
    return result


@NEEDS_XVFB
def test_screenshot_without_weights(tmp_path, x_display, driving_video, avatar_path) -> None:
    result = shoot(tmp_path, x_display, "no-weights", gui_args(tmp_path, driving_video, avatar_path, None))
    assert any("No model weights found" in message for message in result["problems"])
    assert ["Download weights", "Locate file…"] in result["remedies"].values()
    assert "paused" in result["output_title"]  # the avatar is held; the camera does not go out
    assert "Model: not available" in result["status_bar"] and result["vcam_frames"] > 0


@NEEDS_XVFB
def test_screenshot_with_the_model_running(tmp_path, x_display, driving_video, avatar_path, small_checkpoint,
                                           small_config) -> None:  # fmt: skip
    args = gui_args(tmp_path, driving_video, avatar_path, (small_checkpoint, small_config))
    result = shoot(tmp_path, x_display, "running", args)
    assert result["output_title"] == "Avatar output · mona" and result["camera_title"] == "Camera · d0.mp4"
    assert any(text.startswith("Model: cpu ·") for text in result["status_bar"])
    assert result["problems"] == ["Look straight at the camera with a neutral face and press C to calibrate."]


@NEEDS_XVFB
def test_screenshot_with_the_camera_missing(tmp_path, x_display, avatar_path, small_checkpoint, small_config) -> None:
    args = gui_args(tmp_path, tmp_path / "unplugged.mp4", avatar_path, (small_checkpoint, small_config))
    result = shoot(tmp_path, x_display, "camera-missing", args)
    assert any("unplugged.mp4" in message for message in result["problems"])
    assert ["Choose camera", "Video file…"] in result["remedies"].values()
    assert "Camera: not available" in result["status_bar"]


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_signal_closes_the_app_and_releases_the_devices(tmp_path, driving_video, avatar_path, stop) -> None:
    report = tmp_path / "vcam.json"
    env = child_env(tmp_path, QT_QPA_PLATFORM="offscreen")
    args = gui_args(tmp_path, driving_video, avatar_path, None)
    child = subprocess.Popen([sys.executable, "-c", CHILD, "serve", "serve", str(report), *args], env=env,
                             cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        for line in child.stdout:
            if line.startswith("READY") or time.monotonic() > deadline:
                break
        sent_at = time.monotonic()
        child.send_signal(stop)
        out, err = child.communicate(timeout=30)
        took = time.monotonic() - sent_at
    finally:
        child.kill()
    assert child.returncode == 0, err[-3000:]
    assert took < 5.0  # closed within the 3 s the session allows, plus the interpreter's exit
    assert "Traceback" not in err and "KeyboardInterrupt" not in err and "Unexpected error" not in err
    assert json.loads(report.read_text())["closed"] is True  # the virtual camera was released
