"""`avatarify animate -o FOLDER/`: lossless PNG frames, written all at once or not at all, for both engines; and
LivePortrait end to end on the golden set."""
from __future__ import annotations

import subprocess

import cv2
import imageio_ffmpeg
import numpy as np
import pytest

from avatarify.cli.main import main
from avatarify.core.png_frames import MARKER
from avatarify.core.video import read_frames


def write_lossless_clip(path, frames: np.ndarray, fps: int = 25) -> None:
    """RGB frames as an FFV1 video (lossless), through the ffmpeg that imageio-ffmpeg ships."""
    height, width = frames.shape[1:3]
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo",
               "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", str(fps), "-i", "-", "-c:v", "ffv1",
               "-pix_fmt", "bgr0", str(path)]
    subprocess.run(command, input=np.ascontiguousarray(frames).tobytes(), check=True)


def read_png(path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGR2RGB)


def widen(image: np.ndarray, margin: int, seed: int) -> np.ndarray:
    """`image` with `margin` columns of noise on each side: its centre square is the image itself."""
    noise = np.random.default_rng(seed).integers(0, 256, (image.shape[0], margin, 3), dtype=np.uint8)
    return np.concatenate([noise, image, noise[:, ::-1]], axis=1)


def test_liveportrait_frames_equal_the_original_code(lp_golden_dir, lp_golden, tmp_path):
    """The golden source and a lossless clip of its driving frames, both wider than square, with --no-crop:
    the PNG frames equal the original code's pictures within one level of 255."""
    avatar = tmp_path / "source.png"
    assert cv2.imwrite(str(avatar), cv2.cvtColor(widen(lp_golden["source"], 32, 0), cv2.COLOR_RGB2BGR))
    clip = tmp_path / "driving.mkv"
    driving = np.stack([widen(frame, 32, 1) for frame in lp_golden["driving"]])
    write_lossless_clip(clip, driving)
    assert all(np.array_equal(a, b) for a, b in zip(read_frames(clip), driving)), "the clip must be lossless"
    out = tmp_path / "frames"
    code = main(["animate", str(avatar), str(clip), "-o", f"{out}/", "--engine", "liveportrait", "--no-crop",
                 "--checkpoint", str(lp_golden_dir), "--config", str(lp_golden_dir / "config.yaml")])
    assert code == 0
    names = sorted(path.name for path in out.iterdir())
    assert names == [MARKER, "000001.png", "000002.png", "000003.png"]
    for index, expected in enumerate(lp_golden["image_pose"]):
        written = read_png(out / f"{index + 1:06d}.png").astype(float)
        assert written.shape == (512, 512, 3)
        assert np.abs(written - expected.transpose(1, 2, 0) * 255).max() <= 1.0
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.fixture
def silent_clip(tmp_path_factory, shared_dir):
    """Four frames of a real talking-face video."""
    path = tmp_path_factory.mktemp("clip") / "talk.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-i",
                    str(shared_dir / "media/driving/d0.mp4"), "-frames:v", "4", "-c:v", "libx264", str(path)],
                   check=True)
    return path


def animate_fomm(avatar, clip, output, small_config, small_checkpoint) -> int:
    return main(["animate", str(avatar), str(clip), "-o", str(output), "--checkpoint", str(small_checkpoint),
                 "--config", str(small_config)])


def test_fomm_frames_replace_earlier_frames_but_never_other_files(
    avatar_path, silent_clip, small_config, small_checkpoint, tmp_path, capsys
):
    out = tmp_path / "render"
    assert animate_fomm(avatar_path, silent_clip, out, small_config, small_checkpoint) == 0  # no extension: a folder
    frames = sorted(out.glob("*.png"))
    assert [p.name for p in frames] == [f"{i:06d}.png" for i in range(1, 5)]
    assert read_png(frames[0]).shape == (256, 256, 3)
    first = frames[0].read_bytes()
    assert animate_fomm(avatar_path, silent_clip, f"{out}/", small_config, small_checkpoint) == 0  # ours: replaced
    assert frames[0].read_bytes() == first  # the same input gives the same lossless frames

    (out / "notes.txt").write_text("mine")
    capsys.readouterr()
    assert animate_fomm(avatar_path, silent_clip, out, small_config, small_checkpoint) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("avatarify: error: Output folder") and "not empty" in err and "\n" not in err
    assert (out / "notes.txt").read_text() == "mine" and len(list(out.glob("*.png"))) == 4


def test_liveportrait_bad_weights_folder_writes_nothing(avatar_path, silent_clip, tmp_path, capsys):
    out = tmp_path / "frames"
    code = main(["animate", str(avatar_path), str(silent_clip), "-o", f"{out}/", "--engine", "liveportrait",
                 "--checkpoint", str(tmp_path / "nowhere")])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert "does not exist" in err and "weights download --engine liveportrait" in err and "\n" not in err
    assert list(tmp_path.iterdir()) == []
