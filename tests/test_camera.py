"""Camera sources: video files and image folders as cameras, newest-frame-only reading, loss and recovery."""
from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from avatarify.core.settings import Settings
from avatarify.pipeline.camera import (
    CameraError,
    FrameSource,
    ImageFolderSource,
    VideoFileSource,
    _linux_cameras,
    open_source,
)
from avatarify.pipeline.pipeline import Pipeline
from avatarify.core.video import read_frames

WAIT = 60.0  # a guard against hanging, never a speed requirement


def take_frames(source: FrameSource, count: int) -> list[np.ndarray]:
    frames = []
    deadline = time.monotonic() + WAIT
    while len(frames) < count:
        assert time.monotonic() < deadline, "the source stopped delivering frames"
        frame = source.read(timeout=1.0)
        if frame is not None:
            frames.append(frame)
    return frames


@pytest.fixture(scope="module")
def driving_frames(driving_video) -> list[np.ndarray]:
    return list(read_frames(driving_video))


def test_video_file_plays_at_its_own_fps_and_loops(driving_video, driving_frames):
    with VideoFileSource(driving_video, fps=200) as source:
        assert source.name == "d0.mp4" and source.size == (512, 512)
        frames = take_frames(source, len(driving_frames) + 5)
    assert len(driving_frames) == 78
    # Frames come in order (the reader may skip some) and the video starts over after its last frame.
    positions = [next(i for i, f in enumerate(driving_frames) if np.array_equal(f, frame)) for frame in frames]
    wrapped = [b < a for a, b in zip(positions, positions[1:])]
    assert sum(wrapped) >= 1
    assert all(frame.shape == (512, 512, 3) and frame.dtype == np.uint8 for frame in frames)


def test_video_file_reports_the_files_frame_rate(driving_video):
    with VideoFileSource(driving_video) as source:
        assert source.fps == pytest.approx(25.0)


def test_reading_returns_only_the_newest_frame(driving_video, driving_frames):
    with VideoFileSource(driving_video, fps=100, loop=False) as source:
        first = take_frames(source, 1)[0]
        time.sleep(0.3)  # the source moves on meanwhile; the frames in between are dropped
        second = take_frames(source, 1)[0]
    index = [i for i, f in enumerate(driving_frames) if np.array_equal(f, first) or np.array_equal(f, second)]
    assert len(index) == 2 and index[1] - index[0] > 1


def test_image_folder_is_a_looping_camera(tmp_path, avatars_dir):
    names = ["a.png", "b.png", "c.png"]
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    for name, colour in zip(names, colours):
        cv2.imwrite(str(tmp_path / name), np.full((48, 64, 3), colour[::-1], np.uint8))
    (tmp_path / "notes.txt").write_text("not an image")
    with open_source(tmp_path, fps=10) as source:
        assert isinstance(source, ImageFolderSource)
        frames = take_frames(source, 7)
    seen = [colours.index(tuple(int(v) for v in frame[0, 0])) for frame in frames]
    assert set(seen) == {0, 1, 2}
    assert all(b == (a + 1) % 3 or b == (a + 2) % 3 for a, b in zip(seen, seen[1:]))  # in order, maybe skipping


def test_open_source_errors_are_one_line_and_say_what_to_do(tmp_path):
    with pytest.raises(CameraError, match="give a camera index or name, a video file or an image folder"):
        open_source("No Such Camera Anywhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CameraError, match="holds no images"):
        open_source(tmp_path / "empty")
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all")
    with pytest.raises(CameraError, match="not a video OpenCV can read"):
        open_source(broken)


def test_linux_camera_names_come_from_sysfs(tmp_path):
    for node, name, index in (("video0", "Integrated Webcam", "0"), ("video1", "Integrated Webcam", "1"),
                              ("video10", "Avatarify", "0")):
        (tmp_path / node).mkdir()
        (tmp_path / node / "name").write_text(name + "\n")
        (tmp_path / node / "index").write_text(index + "\n")
    cameras = _linux_cameras(tmp_path)
    assert [(c.index, c.name) for c in cameras] == [(0, "Integrated Webcam"), (10, "Avatarify")]


def test_video_file_that_disappears_is_reported_and_recovers(driving_video, tmp_path):
    video = tmp_path / "camera.mp4"
    shutil.copy(driving_video, video)
    source = VideoFileSource(video, fps=200)
    source.retry.interval = 0.05
    try:
        take_frames(source, 3)
        video.rename(tmp_path / "away.mp4")
        deadline = time.monotonic() + WAIT
        with pytest.raises(CameraError, match="is missing"):
            while time.monotonic() < deadline:
                source.read(timeout=0.5)
        (tmp_path / "away.mp4").rename(video)
        recovered = None
        while recovered is None:
            assert time.monotonic() < deadline, "the source did not recover"
            try:
                recovered = source.read(timeout=0.5)
            except CameraError:
                time.sleep(0.05)
        assert recovered.shape == (512, 512, 3)
        assert source.error is None
    finally:
        source.close()


class FlakySource:
    """A FrameSource that delivers frames, fails for a while (like an unplugged camera), then delivers again."""

    def __init__(self, frames: list[np.ndarray], fail_from: int, fail_count: int) -> None:
        self.frames, self.fail_from, self.fail_count = frames, fail_from, fail_count
        self.fps, self.size, self.name = 50.0, (512, 512), "flaky"
        self.calls = 0
        self.closed = False

    def read(self, timeout: float = 1.0) -> np.ndarray | None:
        self.calls += 1
        time.sleep(0.02)
        if self.fail_from <= self.calls < self.fail_from + self.fail_count:
            raise CameraError("unplugged.")
        return self.frames[self.calls % len(self.frames)]

    def close(self) -> None:
        self.closed = True


def test_pipeline_reports_camera_loss_keeps_last_output_and_recovers(driving_frames):
    from avatarify.pipeline.vcam import VirtualCameraOutput
    from fakes import BACKEND, backends_for

    camera = FlakySource(driving_frames[:10], fail_from=10, fail_count=8)
    pipeline = Pipeline(camera, Settings(passthrough=True), output=VirtualCameraOutput("flaky-out", backend=BACKEND))
    outputs, errors = [], []
    pipeline.add_listener(lambda frame: outputs.append(camera.calls))
    pipeline.problems.add_listener(lambda topic, message: errors.append(message))
    with pipeline:
        deadline = time.monotonic() + WAIT
        while camera.calls < 30 or len(outputs) < 12:
            assert time.monotonic() < deadline, "the pipeline did not recover"
            time.sleep(0.05)
        assert pipeline.problems.get("camera") is None
    assert errors == ["Camera flaky lost: unplugged. Retrying.", None]
    assert any(calls > 18 for calls in outputs)  # frames again after the outage
    (vcam,) = backends_for("flaky-out")
    # During the outage the last good output was re-sent: the virtual camera never went dark.
    assert len(vcam.frames) > len(outputs)


def test_a_video_played_once_ends_instead_of_restarting(driving_video):
    with VideoFileSource(driving_video, fps=400, loop=False) as source:
        frames = 0
        deadline = time.monotonic() + WAIT
        with pytest.raises(CameraError, match="has ended"):
            while time.monotonic() < deadline:
                frames += source.read(timeout=0.5) is not None
        assert 0 < frames <= 78
        source._thread.join(timeout=WAIT)  # the capture thread ends by itself
        assert not source._thread.is_alive()


@pytest.mark.skipif(sys.platform != "linux", reason="the device check reads Linux /dev")
def test_an_absent_webcam_is_reported_without_asking_opencv(capfd) -> None:
    from avatarify.pipeline.camera import DeviceCamera

    index = next(i for i in range(60, 100) if not Path(f"/dev/video{i}").exists())
    with pytest.raises(CameraError, match=f"/dev/video{index}.*not connected"):
        DeviceCamera(index)
    assert "WARN" not in capfd.readouterr().err  # OpenCV was never asked, so it printed nothing
