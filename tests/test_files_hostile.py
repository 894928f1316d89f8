"""Outputs that are inputs, devices or FIFOs; names too long for the file system; names that are not UTF-8.

Each is one clear line, and nothing is replaced, lost or left half-written. Everything uses real files, links,
FIFOs and device nodes in a temporary folder (never the system's own devices: a regression must not be able to
replace /dev/null).
"""
from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from avatarify.cli.main import main
from avatarify.core.errors import InputError
from avatarify.core.files import check_input_file, check_writable_output, temp_path_beside, write_atomically
from avatarify.core.images import read_image
from avatarify.core.video import Mp4Writer, media_path, probe_video, read_frames
from avatarify.pipeline.recorder import Recorder

REPO_ROOT = Path(__file__).resolve().parents[1]


def one_line(code: int, err: str, *phrases: str) -> str:
    """The single error line of a failed command (status 2), checked for `phrases`."""
    assert code == 2, err
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("avatarify: error: "), err
    assert "Traceback" not in err
    for phrase in phrases:
        assert phrase in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def inputs(tmp_path, avatar_path, driving_video):
    """Copies of a real avatar and driving video that the tests may try to overwrite."""
    folder = tmp_path / "in"
    folder.mkdir()
    avatar, video = folder / "avatar.jpg", folder / "talk.mp4"
    shutil.copyfile(avatar_path, avatar)
    shutil.copyfile(driving_video, video)
    return avatar, video


def aliases(target: Path) -> dict[str, Path]:
    """Other names for the same file: the path itself, another spelling of it, a hard link and a symbolic link."""
    folder = target.parent
    (folder / "sub").mkdir(exist_ok=True)
    os.link(target, folder / f"hard-{target.name}")
    (folder / f"soft-{target.name}").symlink_to(target)
    return {
        "same path": target,
        "another spelling": folder / "sub" / ".." / "." / target.name,
        "hard link": folder / f"hard-{target.name}",
        "symbolic link": folder / f"soft-{target.name}",
    }


@pytest.mark.parametrize("which", ["avatar", "driving video"])
@pytest.mark.parametrize("alias", ["same path", "another spelling", "hard link", "symbolic link"])
def test_animate_never_writes_over_its_inputs(which, alias, inputs, small_checkpoint, small_config, capsys):
    avatar, video = inputs
    target = avatar if which == "avatar" else video
    before = {path: path.read_bytes() for path in inputs}
    output = aliases(target)[alias]
    code = main(["animate", str(avatar), str(video), "-o", str(output), "--checkpoint", str(small_checkpoint),
                 "--config", str(small_config)])  # fmt: skip
    one_line(code, capsys.readouterr().err, "the same file", target.name)
    assert {path: path.read_bytes() for path in inputs} == before
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".")], "temporary files left behind"


def special_files(tmp_path: Path) -> dict[str, Path]:
    """A FIFO, a socket, a device node (as root) and a symbolic link to a device, all inside `tmp_path`."""
    found = {}
    fifo = tmp_path / "fifo.mp4"
    os.mkfifo(fifo)
    found["FIFO"] = fifo
    sock_path = tmp_path / "socket.mp4"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(sock_path))
    found["socket"] = sock_path
    if os.geteuid() == 0:
        device = tmp_path / "null.mp4"
        os.mknod(device, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # the same device as /dev/null
        found["device node"] = device
    link = tmp_path / "to-device.mp4"
    link.symlink_to(found.get("device node", Path("/dev/null")))
    found["link to a device"] = link
    return found


def test_outputs_that_are_devices_fifos_or_sockets_are_refused(tmp_path, inputs, capsys):
    avatar, video = inputs
    for name, path in special_files(tmp_path).items():
        kind = os.stat(path).st_mode
        with pytest.raises(InputError, match="not a regular file") as info:
            check_writable_output(path)
        assert "\n" not in str(info.value), name
        with pytest.raises(InputError, match="not a regular file"):
            Recorder(path)
        one_line(main(["animate", str(avatar), str(video), "-o", str(path)]), capsys.readouterr().err,
                 "not a regular file")  # fmt: skip
        assert os.stat(path).st_mode == kind, f"{name} was replaced"
    with pytest.raises(InputError, match="not a regular file"):
        check_writable_output("/dev/null")  # checked only: nothing is written near the system's devices


@pytest.mark.parametrize("alias", ["same path", "another spelling", "hard link", "symbolic link"])
def test_recording_never_writes_over_the_camera_file(alias, inputs):
    _, video = inputs
    before = video.read_bytes()
    with pytest.raises(InputError, match="the same file") as info:
        Recorder(aliases(video)[alias], inputs=[video])
    assert "\n" not in str(info.value)
    assert video.read_bytes() == before
    with Recorder(video.with_name("record.mp4"), inputs=[video]) as recorder:  # another name is fine
        recorder.write(np.zeros((64, 64, 3), np.uint8))
    assert video.read_bytes() == before


LONG_STEM = "n" * 246  # with ".mp4", a 250-byte name: allowed, yet its temporary name used to be too long


def test_long_output_names_are_written_through_short_enough_temporary_names(tmp_path):
    target = tmp_path / f"{LONG_STEM}.mp4"
    assert len(temp_path_beside(target, ".mp4").name) <= 255
    with Mp4Writer(check_writable_output(target), 25.0) as writer:
        for value in range(3):
            writer.write(np.full((64, 64, 3), value * 50, np.uint8))
        writer.commit()
    assert len(list(read_frames(target))) == 3
    other = tmp_path / ("s" * 255)
    write_atomically(other, b"settings")
    assert other.read_bytes() == b"settings"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([target.name, other.name])


@pytest.mark.parametrize("length", [256, 300, 1000])
def test_output_names_beyond_the_limit_are_one_line(length, tmp_path, inputs, capsys):
    avatar, video = inputs
    output = tmp_path / ("o" * (length - 4) + ".mp4")
    with pytest.raises(InputError, match="bytes long") as info:
        check_writable_output(output)
    assert "\n" not in str(info.value) and len(str(info.value)) < 400
    with pytest.raises(InputError, match="bytes long"):
        Recorder(output)
    one_line(main(["animate", str(avatar), str(video), "-o", str(output)]), capsys.readouterr().err, "bytes long")


def long_names(tmp_path: Path) -> dict[str, Path]:
    return {
        "one name of 300 bytes": tmp_path / ("i" * 296 + ".mp4"),
        "one name of 300 UTF-8 characters": tmp_path / ("é" * 296 + ".mp4"),
        "a path longer than the system allows": tmp_path.joinpath(*["d" * 200] * 25, "x.mp4"),
    }


def test_input_names_too_long_for_the_file_system_are_one_line(tmp_path, inputs, capsys):
    avatar, video = inputs
    for name, long in long_names(tmp_path).items():
        for check in (check_input_file, read_image, probe_video):
            with pytest.raises(InputError, match="too long") as info:
                check(long)
            assert "\n" not in str(info.value) and len(str(info.value)) < 400, name
        one_line(main(["animate", str(long), str(video), "-o", str(tmp_path / "a.mp4")]), capsys.readouterr().err,
                 "too long")  # fmt: skip
        one_line(main(["animate", str(avatar), str(long), "-o", str(tmp_path / "b.mp4")]), capsys.readouterr().err,
                 "too long")  # fmt: skip
        one_line(main(["animate", str(avatar), str(video), "-o", str(long)]), capsys.readouterr().err)
    assert not list(tmp_path.glob("*.mp4"))


def test_a_writer_that_fails_closes_without_raising_again(tmp_path):
    writer = Mp4Writer(tmp_path / "out.mp4", 25.0)
    writer.write(np.zeros((64, 64, 3), np.uint8))
    # Something the unfinished file cannot be removed as (a folder in its place): closing still must not raise.
    unfinished = writer._temp  # noqa: SLF001 - the one name close() removes
    unfinished.unlink(missing_ok=True)
    unfinished.mkdir()
    writer.close()
    writer.close()
    assert unfinished.is_dir()


NOT_UTF8 = [b"clip-\xff.mp4", b"\xc3\x28-bad.mp4", b"caf\xe9.mp4", b"\xed\xa0\x80surrogate.mp4"]


@pytest.mark.parametrize("raw_name", NOT_UTF8, ids=["xff", "bad-continuation", "latin-1", "encoded-surrogate"])
def test_driving_videos_whose_names_are_not_utf8_are_one_line_not_a_crash(raw_name, tmp_path, inputs):
    avatar, video = inputs
    bad = os.path.join(os.fsencode(tmp_path), raw_name)
    shutil.copyfile(video, bad)
    name = os.fsdecode(bad)
    with pytest.raises(InputError, match="not valid UTF-8"):
        media_path(name)
    # In a child process: before this was checked, OpenCV crashed the whole process with a segmentation fault.
    result = subprocess.run(
        [sys.executable, "-m", "avatarify", "animate", str(avatar), name, "-o", str(tmp_path / "out.mp4")],
        cwd=REPO_ROOT, capture_output=True, text=True, errors="replace", timeout=120,
    )  # fmt: skip
    one_line(result.returncode, result.stderr, "not valid UTF-8", "rename the file")
    assert not (tmp_path / "out.mp4").exists()
