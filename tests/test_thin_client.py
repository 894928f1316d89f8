"""The thin client: `pip install .` without extras has no torch, and runs the avatar through a worker.

A second environment with the base install only (made once, in .venv-thin beside the repository, or where
AVATARIFY_THIN_VENV says) runs `avatarify run --worker` and `avatarify animate --worker` against a worker started
from this full environment, over loopback.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import venv
from pathlib import Path

import pytest

from avatarify.core.video import probe_video

pytestmark = [pytest.mark.slow, pytest.mark.worker]
REPO_ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 600


@pytest.fixture(scope="module")
def thin_python() -> Path:
    """The thin environment's Python; (re)installed when setup.cfg is newer than the last install."""
    home = Path(os.environ.get("AVATARIFY_THIN_VENV", REPO_ROOT / ".venv-thin"))
    python = home / "bin" / "python"
    stamp = home / ".avatarify-thin-installed"
    if not stamp.exists() or stamp.stat().st_mtime < (REPO_ROOT / "setup.cfg").stat().st_mtime:
        venv.create(home, with_pip=True, clear=True)
        # Editable, so the environment follows the working tree; its dependencies are the base install's only.
        install = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "-e", str(REPO_ROOT)],
                                 capture_output=True, text=True, timeout=TIMEOUT)  # fmt: skip
        if install.returncode != 0:
            pytest.fail(f"the base install failed:\n{install.stderr[-3000:]}")
        stamp.touch()
    return python


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def worker(golden_dir: Path, tmp_path_factory):
    """A worker from this (full) environment on a loopback port."""
    address = f"tcp://127.0.0.1:{free_port()}"
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "avatarify", "worker", "--bind", address, "--device", "cpu",
             "--checkpoint", str(golden_dir / "checkpoint.pth.tar"), "--config", str(golden_dir / "config.yaml")],
            cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    deadline = time.monotonic() + TIMEOUT
    while "Worker serving on" not in log.read_text(errors="replace"):
        assert process.poll() is None and time.monotonic() < deadline, log.read_text(errors="replace")
        time.sleep(0.1)
    yield address
    process.terminate()
    process.wait(timeout=30)


def thin(python: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "AVATARIFY_CHECKPOINT")}
    command = [str(python.parent / "avatarify"), *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT)


def test_the_base_install_has_no_torch(thin_python: Path, tmp_path: Path) -> None:
    code = "import importlib.util as u; print([m for m in ('torch', 'scipy', 'face_alignment') if u.find_spec(m)])"
    result = subprocess.run([str(thin_python), "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert result.stdout.strip() == "[]", result.stderr


def test_a_local_model_needs_the_model_install_in_one_line(thin_python, tmp_path, driving_video, avatar_path) -> None:
    result = thin(thin_python, "run", "--camera", str(driving_video), "--avatar", str(avatar_path), "--no-vcam",
                  "--frames", "2", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert "pip install 'avatarify[model]'" in last and "--worker" in last


def test_run_through_a_worker(thin_python, worker, tmp_path, driving_video, avatar_path) -> None:
    out = tmp_path / "avatar.mp4"
    result = thin(thin_python, "run", "--worker", worker, "--camera", str(driving_video), "--avatar", str(avatar_path),
                  "--no-vcam", "--record", str(out), "--frames", "5", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert probe_video(out).frame_count == 5 and "Traceback" not in result.stderr


def test_animate_through_a_worker(thin_python, worker, tmp_path, driving_video, avatar_path) -> None:
    out = tmp_path / "animated.mp4"
    result = thin(thin_python, "animate", str(avatar_path), str(driving_video), "-o", str(out), "--worker", worker,
                  cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert probe_video(out).frame_count == probe_video(driving_video).frame_count
