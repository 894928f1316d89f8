"""Outputs that are inputs, devices or FIFOs; names too long for the file system; names that are not UTF-8.

Each is one clear line, and nothing is replaced, lost or left half-written. Everything uses real files, links,
FIFOs and device nodes in a temporary folder (never the system's own devices: a regression must not be able to
replace /dev/null).
"""
from __future__ import annotations

import errno
import os
import re
import secrets
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from avatarify.cli.main import main
from avatarify.core.errors import InputError
from avatarify.core.files import (
    check_input_file,
    check_writable_output,
    fit_name,
    is_regular_file,
    name_limit,
    shown,
    temp_path_beside,
    write_atomically,
)
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


# --- The checks one at a time, with the exact line each gives.
def test_long_paths_are_shown_with_the_middle_left_out():
    assert shown("a" * 120) == "a" * 120
    long = "b" * 58 + "c" * 5 + "d" * 58
    assert shown(long) == "b" * 58 + "..." + "d" * 58 and len(shown(long)) == 119
    assert shown(Path("/x") / ("e" * 200)) == "/x/" + "e" * 55 + "..." + "e" * 58


def test_names_are_cut_to_the_bytes_the_file_system_stores(tmp_path):
    assert name_limit(tmp_path) == os.pathconf(tmp_path, "PC_NAME_MAX")
    assert name_limit(tmp_path / "missing" / "folder") == 255
    assert fit_name("é" * 10, 20) == "é" * 10
    cut = fit_name("é" * 10, 19)
    assert len(os.fsencode(cut)) == 19 and cut.startswith("é" * 9)
    assert fit_name("abc", 2) == "ab"


def test_temporary_names_are_hidden_unique_and_exactly_short_enough(tmp_path):
    first, second = temp_path_beside(tmp_path / "clip.mp4"), temp_path_beside(tmp_path / "clip.mp4", ".mp4")
    assert first.parent == tmp_path and re.fullmatch(r"\.clip-[0-9a-f]{8}\.tmp", first.name), first.name
    assert re.fullmatch(r"\.clip-[0-9a-f]{8}\.mp4", second.name) and first.name[:14] != second.name[:14]
    longest = temp_path_beside(tmp_path / ("é" * 200 + ".mp4"))
    assert len(os.fsencode(longest.name)) == 255 and longest.name.startswith("." + "é" * 120)


def test_input_checks_name_what_is_wrong_in_one_line(tmp_path):
    (tmp_path / "folder").mkdir()
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    (tmp_path / "clip.mp4").write_bytes(b"1234")
    assert check_input_file(tmp_path / "clip.mp4").st_size == 4
    cases = {
        "missing": f"File {tmp_path}/missing does not exist.",
        "clip.mp4/inside": f"File {tmp_path}/clip.mp4/inside does not exist.",
        "folder": f"File {tmp_path}/folder is a folder, not a file; choose a file.",
        "fifo": f"File {tmp_path}/fifo is not a regular file (a device, FIFO or socket); choose a file.",
        "loop": f"File {tmp_path}/loop is a symbolic link that leads back to itself.",
        "a\0b": f"File name {repr(str(tmp_path / 'a'))[:-1]}\\x00b' contains a NUL character.",
    }
    for name, message in cases.items():
        with pytest.raises(InputError) as info:
            check_input_file(tmp_path / name)
        assert str(info.value) == message
    with pytest.raises(InputError) as info:
        check_input_file(tmp_path / ("x" * 300), "Avatar")
    assert str(info.value) == (
        f"Avatar name {shown(tmp_path / ('x' * 300))} is too long for the file system (300 bytes in one name, "
        f"{len(str(tmp_path)) + 301} in all); choose a shorter name or folder."
    )


def test_input_that_cannot_be_looked_up_for_another_reason(tmp_path, monkeypatch):
    def failing_stat(self, **kwargs):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(Path, "stat", failing_stat)
    with pytest.raises(InputError) as info:
        check_input_file(tmp_path / "clip.mp4", "Driving video")
    assert str(info.value) == f"Cannot look up driving video {tmp_path}/clip.mp4 (Input/output error)."


def test_is_regular_file_is_a_plain_answer_for_any_name(tmp_path):
    (tmp_path / "clip.mp4").write_bytes(b"")
    (tmp_path / "link.mp4").symlink_to(tmp_path / "clip.mp4")
    os.mkfifo(tmp_path / "fifo")
    assert is_regular_file(tmp_path / "clip.mp4") and is_regular_file(str(tmp_path / "link.mp4"))
    for name in ("fifo", "missing", "a\0b", "x" * 300, "clip.mp4/inside"):
        assert not is_regular_file(tmp_path / name), name
    assert not is_regular_file(tmp_path)


def test_output_checks_name_what_is_wrong_in_one_line(tmp_path):
    (tmp_path / "folder").mkdir()
    (tmp_path / "file").write_bytes(b"")
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "input.mp4").write_bytes(b"input")
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    cases = {
        "loop/out.mp4": f"Output folder {tmp_path}/loop is a symbolic link that leads back to itself.",
        "loop": f"Output {tmp_path}/loop is a symbolic link that leads back to itself.",
        "missing/out.mp4": f"Output folder {tmp_path}/missing does not exist; create it or choose another output file.",
        "file/out.mp4": f"Output folder {tmp_path}/file does not exist; create it or choose another output file.",
        "o" * 252 + ".mp4": f"Output name {'o' * 58}...{'o' * 54}.mp4 is 256 bytes long; this folder allows names of "
        "at most 255. Choose a shorter name.",
        "folder": f"Output {tmp_path}/folder is a folder; give a file name such as {tmp_path}/folder/result.mp4.",
        "fifo": f"Output {tmp_path}/fifo is not a regular file (a device, FIFO or socket) and will not be replaced; "
        "choose a file name.",
        "input.mp4": f"Output {tmp_path}/input.mp4 is the input {tmp_path}/input.mp4 (the same file); writing it "
        "would destroy the input. Choose another output name.",
    }
    inputs = [tmp_path / "a\0b", tmp_path / "missing.mp4", tmp_path / "file", str(tmp_path / "input.mp4")]
    for name, message in cases.items():
        with pytest.raises(InputError) as info:
            check_writable_output(tmp_path / name, inputs)
        assert str(info.value) == message
    assert check_writable_output(tmp_path / ("o" * 251 + ".mp4"), inputs) == tmp_path / ("o" * 251 + ".mp4")
    assert check_writable_output(tmp_path / "input.mp4") == tmp_path / "input.mp4"  # replacing a file is fine
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo", "file", "folder", "input.mp4", "loop"]  # no probe left


def test_output_names_starting_with_a_tilde_are_in_the_home_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert check_writable_output("~/out.mp4") == tmp_path / "out.mp4"


def test_the_output_folder_itself_is_tried_with_a_hidden_probe(tmp_path, monkeypatch):
    read_only = tmp_path / "read-only"
    read_only.mkdir()
    probes = []
    real = tempfile.NamedTemporaryFile

    def on_a_read_only_folder(*args, **kwargs):  # as if `read_only` were mounted read-only (tests run as root)
        probe = real(*args, **kwargs)
        probes.append(Path(probe.name))
        if Path(probe.name).parent == read_only:
            probe.close()
            raise OSError(errno.EROFS, "Read-only file system")
        return probe

    monkeypatch.setattr(tempfile, "NamedTemporaryFile", on_a_read_only_folder)
    assert check_writable_output(tmp_path / "out.mp4") == tmp_path / "out.mp4"
    with pytest.raises(InputError) as info:
        check_writable_output(read_only / "out.mp4")
    assert str(info.value) == (
        f"Cannot write to output folder {read_only} (Read-only file system); choose another output file."
    )
    # Were the check ever cut short, what it leaves behind is hidden and says what it was.
    assert [probe.parent for probe in probes] == [tmp_path, read_only]
    assert all(re.fullmatch(r"\.avatarify-\w+\.probe", probe.name) for probe in probes), probes
    assert not any(probe.exists() for probe in probes)


def test_writing_never_follows_a_link_planted_at_the_temporary_name(tmp_path, monkeypatch):
    victim, target = tmp_path / "victim", tmp_path / "settings.json"
    victim.write_bytes(b"victim")
    monkeypatch.setattr(secrets, "token_hex", lambda size: "0" * 2 * size)  # the name another user could guess
    (tmp_path / ".settings-00000000.tmp").symlink_to(victim)
    with pytest.raises(FileExistsError):
        write_atomically(target, b"data")
    assert victim.read_bytes() == b"victim" and not target.exists()


def test_written_atomically_private_and_nothing_left_on_failure(tmp_path):
    target = tmp_path / "settings.json"
    target.write_bytes(b"old")
    write_atomically(target, b"new")
    assert target.read_bytes() == b"new" and stat.S_IMODE(target.stat().st_mode) == 0o600
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "inside").write_bytes(b"")
    with pytest.raises(IsADirectoryError):
        write_atomically(tmp_path / "folder", b"data")  # the rename fails: the temporary file goes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder", "settings.json"]
