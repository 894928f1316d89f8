"""Recording the output to a video file."""
from __future__ import annotations

import numpy as np
import pytest

from avatarify.core.errors import InputError
from avatarify.pipeline.recorder import Recorder
from avatarify.core.video import probe_video, read_frames


def test_recording_is_a_readable_mp4_with_every_frame(tmp_path):
    path = tmp_path / "out.mp4"
    frames = [np.full((120, 160, 3), (i * 20, 255 - i * 20, 90), np.uint8) for i in range(12)]
    with Recorder(path, fps=20) as recorder:
        for frame in frames:
            recorder.write(frame)
        assert not path.exists()  # written to a partial file first
    assert probe_video(path).fps == pytest.approx(20)
    read = list(read_frames(path))
    assert len(read) == 12 and read[0].shape == (120, 160, 3)
    for original, decoded in zip(frames, read):
        assert np.abs(original.astype(int) - decoded.astype(int)).mean() < 6  # lossy, but the same colours
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]


def test_frames_of_another_size_are_fitted_to_the_first(tmp_path):
    path = tmp_path / "mixed.mp4"
    with Recorder(path) as recorder:
        recorder.write(np.zeros((100, 100, 3), np.uint8))
        recorder.write(np.zeros((50, 80, 3), np.uint8))
    frames = list(read_frames(path))
    assert len(frames) == 2 and frames[1].shape == (100, 100, 3)


def test_bad_destinations_are_one_line_errors(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        Recorder(tmp_path / "missing" / "out.mp4")
    with pytest.raises(InputError, match="use a .mp4 file name"):
        Recorder(tmp_path / "out.gif")
    with Recorder(tmp_path / "never.mp4"):
        pass
    assert not list(tmp_path.iterdir())  # no frames, no file
