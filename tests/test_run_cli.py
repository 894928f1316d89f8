"""`avatarify run` end to end through the command-line entry point."""
from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from avatarify.cli.main import main
from avatarify.core.video import probe_video, read_frames


def frame_count(path) -> int:
    return sum(1 for _ in read_frames(path))


def test_run_records_exactly_n_frames(driving_video, avatar_path, small_checkpoint, small_config, tmp_path):
    out = tmp_path / "avatar.mp4"
    status = main([
        "run", "--camera", str(driving_video), "--avatar", str(avatar_path), "--no-vcam",
        "--record", str(out), "--frames", "6", "--checkpoint", str(small_checkpoint),
        "--config", str(small_config), "--device", "cpu",
    ])
    assert status == 0
    assert frame_count(out) == 6
    info = probe_video(out)
    assert (info.width, info.height) == (512, 512) and info.fps == pytest.approx(25)


def test_run_passthrough_with_padded_output_needs_no_model(driving_video, avatar_path, tmp_path):
    out = tmp_path / "camera.mp4"
    status = main([
        "run", "--camera", str(driving_video), "--avatar", str(avatar_path), "--no-vcam",
        "--passthrough", "--keep-aspect", "--record", str(out), "--frames", "3",
    ])
    assert status == 0 and frame_count(out) == 3


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--camera", "no-such-camera-or-file"], "give a camera index or name, a video file or an image folder"),
        (["--avatar", "nobody-by-this-name"], "No avatar called 'nobody-by-this-name'"),
        (["--frames", "0"], "--frames must be at least 1"),
    ],
)
def test_run_user_errors_are_one_line(arguments, message, driving_video, avatar_path, capsys, tmp_path, monkeypatch):
    if "--avatar" not in arguments:
        arguments = [*arguments, "--avatar", str(avatar_path)]
    if "--camera" not in arguments:
        arguments = [*arguments, "--camera", str(driving_video)]
    status = main(["run", "--no-vcam", "--passthrough", *arguments])
    err = capsys.readouterr().err
    assert status == 2
    assert message in err and "Traceback" not in err


def test_run_rejects_an_unreadable_avatar_before_loading_anything(driving_video, tmp_path, capsys):
    picture = tmp_path / "broken.png"
    picture.write_bytes(b"not a picture")
    status = main(["run", "--camera", str(driving_video), "--avatar", str(picture), "--no-vcam", "--passthrough"])
    assert status == 2 and "is not an image avatarify can read" in capsys.readouterr().err


def test_list_cameras_prints_both_lists(capsys):
    assert main(["run", "--list-cameras"]) == 0
    out = capsys.readouterr().out
    assert "Cameras" in out and "Virtual cameras" in out


def test_ctrl_c_stops_cleanly(driving_video, avatar_path):
    process = subprocess.Popen(
        [sys.executable, "-m", "avatarify", "run", "--camera", str(driving_video), "--avatar", str(avatar_path),
         "--no-vcam", "--passthrough"],
        stderr=subprocess.PIPE, text=True,
    )
    try:
        lines = []
        for line in process.stderr:
            lines.append(line)
            if "Press Ctrl-C to stop" in line:
                break
        process.send_signal(signal.SIGINT)
        _, rest = process.communicate(timeout=120)
    finally:
        process.kill()
    log = "".join(lines) + rest
    assert process.returncode == 0, log
    assert "Stopping." in log and "frames made (no virtual camera)." in log and "Traceback" not in log


def test_a_recording_never_replaces_its_own_camera_file(driving_video, avatar_path, tmp_path, capsys):
    camera = tmp_path / "camera.mp4"
    camera.write_bytes(driving_video.read_bytes())
    link = tmp_path / "link.mp4"
    link.symlink_to(camera)
    before = camera.read_bytes()
    for target in (camera, link, tmp_path / "." / "camera.mp4"):
        status = main(["run", "--camera", str(camera), "--avatar", str(avatar_path), "--no-vcam", "--passthrough",
                       "--record", str(target), "--frames", "2"])  # fmt: skip
        assert status == 2 and "Traceback" not in capsys.readouterr().err
    assert camera.read_bytes() == before


def test_a_camera_file_whose_name_is_not_utf8_is_one_line(avatar_path, tmp_path, capsys, driving_video):
    import os

    name = os.path.join(os.fsencode(tmp_path), b"caf\xe9.mp4")
    with open(name, "wb") as out:
        out.write(driving_video.read_bytes())
    status = main(["run", "--camera", os.fsdecode(name), "--avatar", str(avatar_path), "--no-vcam", "--passthrough",
                   "--frames", "2"])  # fmt: skip
    err = capsys.readouterr().err
    assert status == 2 and "not valid UTF-8" in err and "Traceback" not in err
