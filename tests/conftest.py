"""Shared fixtures: the small golden FOMM checkpoint, the real media beside the repository and frames read from it."""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from avatarify.core.images import read_image

# Qt must never look for a display in tests; set before any Qt import.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Non-headless OpenCV ships its own Qt plugins; pointing PyQt5 at them aborts the process.
os.environ.pop("QT_QPA_PLATFORM_PLUGIN_PATH", None)

REPO_ROOT = Path(__file__).resolve().parents[1]
# The shared test media beside the repository; AVATARIFY_SHARED points elsewhere (or nowhere, to run without it).
# Frames of the driving video the worker tests send.
WORKER_FRAMES = 6
SHARED_DIR = Path(os.environ.get("AVATARIFY_SHARED", REPO_ROOT.parent / "shared"))


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"test data {path} is not available (it lives in ../shared beside the repository)")
    return path


@pytest.fixture(autouse=True)
def user_folders(tmp_path_factory, monkeypatch) -> Path:
    """Each test gets its own user config and data folders: nothing a test does touches a real user's files."""
    home = tmp_path_factory.mktemp("user")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    monkeypatch.delenv("AVATARIFY_CHECKPOINT", raising=False)
    return home


@pytest.fixture(autouse=True)
def fresh_test_cameras() -> None:
    """Each test sees only the test virtual cameras it opened itself, even when the tests run twice in one process."""
    from fakes import RecordingBackend

    RecordingBackend.opened.clear()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return _require(SHARED_DIR)


@pytest.fixture(scope="session")
def golden_dir(shared_dir: Path) -> Path:
    return _require(shared_dir / "fomm-reference" / "golden_small_a")


@pytest.fixture(scope="session")
def small_config(golden_dir: Path) -> Path:
    return golden_dir / "config.yaml"


@pytest.fixture(scope="session")
def small_checkpoint(golden_dir: Path) -> Path:
    return golden_dir / "checkpoint.pth.tar"


@pytest.fixture
def small_model(small_config: Path, small_checkpoint: Path):
    """A fresh small model per test: predictors rewrite their model in place for speed."""
    from avatarify.model.fomm import load_model

    return load_model(small_config, small_checkpoint)


@pytest.fixture
def small_predictor(small_config: Path, small_checkpoint: Path):
    """A predictor on its own copy of the small model, in float32 (exact comparisons need it)."""
    from avatarify.model.fomm import load_model
    from avatarify.model.predictor import Predictor

    return Predictor(load_model(small_config, small_checkpoint), precision="fp32")


@pytest.fixture(scope="session")
def driving_video(shared_dir: Path) -> Path:
    """A real talking-face video: 78 frames, 25 fps, 512x512, no audio."""
    return _require(shared_dir / "media" / "driving" / "d0.mp4")


@pytest.fixture(scope="session")
def avatar_path(shared_dir: Path) -> Path:
    return _require(shared_dir / "media" / "avatars" / "mona.jpg")


@pytest.fixture(scope="session")
def avatars_dir(shared_dir: Path) -> Path:
    return _require(shared_dir / "media" / "avatars")


@pytest.fixture(scope="session")
def lp_golden_dir() -> Path:
    """LivePortrait's golden set: $AVATARIFY_LP_GOLDEN when set (to run the same tests on another set), else the
    small one in ../shared. Holds config.yaml, the five weight files and golden.npz."""
    chosen = os.environ.get("AVATARIFY_LP_GOLDEN")
    return _require(Path(chosen) if chosen else SHARED_DIR / "liveportrait-reference" / "golden_small_a")


@pytest.fixture(scope="session")
def lp_golden(lp_golden_dir: Path) -> dict:
    with np.load(lp_golden_dir / "golden.npz") as data:
        return {key: data[key] for key in data.files}


@pytest.fixture(scope="module")
def frames(driving_video) -> list[np.ndarray]:
    """The first frames of the driving video, RGB: what the worker tests send."""
    capture = cv2.VideoCapture(str(driving_video))
    result = []
    while len(result) < WORKER_FRAMES:
        ok, frame = capture.read()
        assert ok, "the driving video has too few frames"
        result.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    capture.release()
    return result


@pytest.fixture(scope="module")
def avatars(avatars_dir) -> dict[str, np.ndarray]:
    """Three real avatar pictures by name."""
    return {name: read_image(avatars_dir / f"{name}.jpg") for name in ("mona", "einstein", "obama")}
