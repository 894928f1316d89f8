"""`avatarify animate` end to end on real driving videos with the small golden checkpoint."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import cv2
import imageio_ffmpeg
import numpy as np
import pytest

from avatarify.cli.main import main
from avatarify.core.video import has_audio_stream, probe_video, read_frames

pytestmark = pytest.mark.slow



def ffmpeg(*args: str) -> None:
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


@pytest.fixture(scope="session")
def clips(tmp_path_factory, shared_dir):
    """Short cuts of real driving videos: one with an audio track, one without."""
    folder = tmp_path_factory.mktemp("clips")
    with_audio = folder / "talk_audio.mp4"
    ffmpeg("-i", str(shared_dir / "media/driving/d3.mp4"), "-frames:v", "12", "-t", "0.4",
           "-c:v", "libx264", "-c:a", "aac", str(with_audio))
    silent = folder / "talk_silent.mp4"
    ffmpeg("-i", str(shared_dir / "media/driving/d0.mp4"), "-frames:v", "8", "-c:v", "libx264", str(silent))
    return {"audio": with_audio, "silent": silent}


def count_frames(path) -> int:
    capture = cv2.VideoCapture(str(path))
    count = 0
    while capture.read()[0]:
        count += 1
    capture.release()
    return count


def animate(*args, small_config, small_checkpoint) -> int:
    return main(["animate", *map(str, args), "--checkpoint", str(small_checkpoint), "--config", str(small_config)])


@pytest.fixture
def run_animate(small_config, small_checkpoint):
    def run(*args):
        return animate(*args, small_config=small_config, small_checkpoint=small_checkpoint)
    return run


def test_keeps_fps_frame_count_and_audio(run_animate, clips, avatar_path, tmp_path):
    out = tmp_path / "result.mp4"
    assert run_animate(avatar_path, clips["audio"], "-o", out) == 0
    source, result = probe_video(clips["audio"]), probe_video(out)
    assert result.fps == pytest.approx(source.fps)
    assert count_frames(out) == count_frames(clips["audio"]) == 12
    assert (result.width, result.height) == (256, 256)
    assert has_audio_stream(out)
    assert [p.name for p in tmp_path.iterdir()] == ["result.mp4"], "temporary files left behind"


def test_silent_video_side_by_side(run_animate, clips, avatar_path, tmp_path):
    out = tmp_path / "sbs.mp4"
    assert run_animate(avatar_path, clips["silent"], "-o", out, "--side-by-side", "--absolute", "--no-adapt-scale") == 0
    info = probe_video(out)
    assert (info.width, info.height) == (512, 256)
    assert count_frames(out) == 8
    assert not has_audio_stream(out)
    # The left half is the driving crop, so it follows the video; the right half is the model's output.
    capture = cv2.VideoCapture(str(out))
    ok, frame = capture.read()
    capture.release()
    assert ok and np.abs(frame[:, :256].astype(int) - frame[:, 256:].astype(int)).mean() > 5


def test_no_crop_uses_centre_square(run_animate, clips, avatar_path, tmp_path):
    out = tmp_path / "nocrop.mp4"
    assert run_animate(avatar_path, clips["silent"], "-o", out, "--no-crop", "--side-by-side") == 0
    assert count_frames(out) == 8
    # The left half is the driving input: with --no-crop, the whole (square) video frame scaled to 256.
    driving = next(read_frames(clips["silent"]))
    expected = cv2.resize(driving, (256, 256), interpolation=cv2.INTER_AREA).astype(int)
    written = next(read_frames(out))[:, :256].astype(int)
    assert np.abs(written - expected).mean() < 6
    cropped = tmp_path / "crop.mp4"
    assert run_animate(avatar_path, clips["silent"], "-o", cropped, "--side-by-side") == 0
    assert np.abs(next(read_frames(cropped))[:, :256].astype(int) - expected).mean() > 10  # the face crop differs


def write_image(path, array):
    assert cv2.imwrite(str(path), array)
    return path


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda rgb: cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), id="grayscale"),
        pytest.param(lambda rgb: np.dstack([rgb[:, :, ::-1], np.full(rgb.shape[:2], 200, np.uint8)]), id="rgba"),
        pytest.param(lambda rgb: rgb[:, :, ::-1].astype(np.uint16) * 257, id="16-bit"),
    ],
)
def test_unusual_avatar_formats_are_handled(make, run_animate, clips, avatar_path, tmp_path):
    rgb = cv2.cvtColor(cv2.imread(str(avatar_path)), cv2.COLOR_BGR2RGB)
    avatar = write_image(tmp_path / "avatar.png", make(rgb))
    out = tmp_path / "out.mp4"
    assert run_animate(avatar, clips["silent"], "-o", out) == 0
    assert count_frames(out) == 8


def test_huge_avatar_is_handled(run_animate, clips, tmp_path):
    huge = np.full((10000, 10000, 3), 180, np.uint8)  # 100 megapixels: the largest allowed
    cv2.circle(huge, (5000, 5000), 2500, (40, 90, 160), -1)
    avatar = write_image(tmp_path / "huge.png", huge)
    out = tmp_path / "out.mp4"
    assert run_animate(avatar, clips["silent"], "-o", out) == 0
    assert count_frames(out) == 8


def assert_clean_failure(code, capsys, out, *phrases):
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("avatarify: error: ") and "\n" not in err, err
    assert "Traceback" not in err
    for phrase in phrases:
        assert phrase in err, err
    assert not out.exists()
    assert not list(out.parent.glob(f".{out.stem}*")), "partial output left behind"


@pytest.mark.parametrize(
    "kind, phrase",
    [("missing", "does not exist"), ("zero-byte", "empty file"), ("non-image", "not an image"),
     ("folder", "is a folder")],
)
def test_bad_avatar(kind, phrase, run_animate, clips, tmp_path, capsys):
    avatar = tmp_path / "avatar.jpg"
    if kind == "zero-byte":
        avatar.write_bytes(b"")
    elif kind == "non-image":
        avatar.write_text("not a picture")
    elif kind == "folder":
        avatar.mkdir()
    out = tmp_path / "out.mp4"
    assert_clean_failure(run_animate(avatar, clips["silent"], "-o", out), capsys, out, phrase)


def test_unreadable_video(run_animate, avatar_path, tmp_path, capsys):
    video = tmp_path / "broken.mp4"
    video.write_bytes(os.urandom(4096))
    out = tmp_path / "out.mp4"
    assert_clean_failure(run_animate(avatar_path, video, "-o", out), capsys, out, "not a readable video")


def test_zero_frame_video(run_animate, avatar_path, tmp_path, capsys):
    video = tmp_path / "empty.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 25, (64, 64))
    writer.release()
    out = tmp_path / "out.mp4"
    assert_clean_failure(run_animate(avatar_path, video, "-o", out), capsys, out, "no frames")


@pytest.mark.parametrize("kind", ["missing", "truncated", "not-a-checkpoint", "other-config"])
def test_bad_checkpoint(kind, clips, avatar_path, small_checkpoint, tmp_path, capsys):
    config_args = []
    if kind == "missing":
        checkpoint = tmp_path / "nope.pth.tar"
    elif kind == "truncated":
        checkpoint = tmp_path / "cut.pth.tar"
        checkpoint.write_bytes(small_checkpoint.read_bytes()[:50_000])
    elif kind == "not-a-checkpoint":
        checkpoint = tmp_path / "text.pth.tar"
        checkpoint.write_text("hello")
    else:
        checkpoint = small_checkpoint  # the small model's weights against the default vox-256 config
    out = tmp_path / "out.mp4"
    code = main(["animate", str(avatar_path), str(clips["silent"]), "-o", str(out), "--checkpoint", str(checkpoint),
                 *config_args])
    phrases = {
        "missing": ["does not exist", "avatarify weights download"],
        "truncated": ["corrupt"],
        "not-a-checkpoint": ["corrupt"],
        "other-config": ["does not fit the model config", "is [32, 3, 3, 3] in the checkpoint"],
    }[kind]
    assert_clean_failure(code, capsys, out, *phrases)


def test_missing_output_folder(run_animate, clips, avatar_path, tmp_path, capsys):
    out = tmp_path / "no" / "such" / "out.mp4"
    code = run_animate(avatar_path, clips["silent"], "-o", out)
    assert code == 2
    assert "does not exist" in capsys.readouterr().err
    assert not out.parent.exists()


def test_output_folder_not_writable(run_animate, clips, avatar_path, tmp_path, capsys):
    if os.geteuid() == 0:
        # root may write into any ordinary folder; sysfs refuses new files even to root
        folder = Path("/sys")
    else:
        folder = tmp_path / "locked"
        folder.mkdir()
        folder.chmod(0o555)
    out = folder / "out.mp4"
    code = run_animate(avatar_path, clips["silent"], "-o", out)
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("avatarify: error: Cannot write to output folder") and "\n" not in err, err
    assert not out.exists()


@pytest.fixture
def full_disk(tmp_path):
    """A 64 KiB file system: writing a video into it fails the way a full disk does."""
    folder = tmp_path / "tiny"
    folder.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)], capture_output=True).returncode:
        pytest.skip("needs permission to mount a small tmpfs (root)")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


def test_full_disk_is_one_line_and_leaves_nothing(full_disk):
    from avatarify.core.errors import InputError
    from avatarify.core.video import Mp4Writer

    noise = np.random.default_rng(0).integers(0, 255, (256, 256, 3), dtype=np.uint8)
    with pytest.raises(InputError, match="failed .*disk space") as info:
        with Mp4Writer(full_disk / "out.mp4", 25.0) as writer:
            for _ in range(50):
                writer.write(noise)
            writer.commit()
    assert "\n" not in str(info.value)
    assert list(full_disk.iterdir()) == []
