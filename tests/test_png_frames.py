"""PNG frame folders: written all at once or not at all, lossless, and never over a folder that is not ours."""
from __future__ import annotations

import fnmatch
import os
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from avatarify.core.errors import InputError
from avatarify.core.files import name_limit
from avatarify.core.png_frames import MARKER, PngFramesWriter, check_frames_folder, is_ours, names_a_folder


def read_png(path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGR2RGB)


def test_an_error_mid_render_leaves_no_frames(tmp_path):
    target = tmp_path / "frames"
    frame = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(RuntimeError), PngFramesWriter(target) as writer:
        writer.write(frame)
        writer.write(frame)
        raise RuntimeError("the model failed on frame 3")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(InputError, match=r"^No frames were produced; nothing was written\.$"), PngFramesWriter(target) as writer:
        writer.commit()
    assert list(tmp_path.iterdir()) == []


def test_frames_are_lossless(tmp_path):
    frame = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    with PngFramesWriter(tmp_path / "f") as writer:
        writer.write(frame)
        assert writer.commit() == tmp_path / "f"
    np.testing.assert_array_equal(read_png(tmp_path / "f" / "000001.png"), frame)


def test_which_outputs_name_a_folder(tmp_path):
    assert names_a_folder("frames/") and names_a_folder("frames") and names_a_folder(str(tmp_path))
    assert not names_a_folder("out.mp4") and not names_a_folder(str(tmp_path / "x.mov"))


def frames_folder(folder, count: int = 2):
    """A folder of `count` frames as an earlier render left it."""
    with PngFramesWriter(folder) as writer:
        for value in range(count):
            writer.write(np.full((4, 4, 3), value, np.uint8))
        writer.commit()
    return folder


def test_a_commit_writes_numbered_frames_and_the_marker(tmp_path):
    target = tmp_path / "f"
    with PngFramesWriter(target) as writer:
        assert writer.frames_written == 0
        for value in (10, 20, 30):
            writer.write(np.full((4, 4, 3), value, np.uint8))
        assert writer.frames_written == 3
        writer.commit()
    assert sorted(p.name for p in target.iterdir()) == [MARKER, "000001.png", "000002.png", "000003.png"]
    assert read_png(target / "000003.png")[0, 0].tolist() == [30, 30, 30]
    assert (target / MARKER).read_text() == "PNG frames written by avatarify; replaced when rendered again.\n"
    assert is_ours(target) and sorted(p.name for p in tmp_path.iterdir()) == ["f"]


def test_which_outputs_name_a_folder_by_their_spelling(tmp_path):
    (tmp_path / "clips.d").mkdir()
    assert names_a_folder(str(tmp_path / "clips.d")) and names_a_folder(f"out.mp4{os.sep}")
    assert names_a_folder("~/renders") and not names_a_folder("~/render.mp4")


@pytest.mark.parametrize(
    "names, ours",
    [
        ([MARKER, "000001.png", "000002.png"], True),
        ([MARKER], True),
        (["000001.png"], False),
        ([MARKER, "000001.png", "notes.txt"], False),
        ([MARKER, "0000001.png"], False),
        ([MARKER, "00001.png"], False),
        ([MARKER, "000001.png.bak"], False),
    ],
)
def test_a_folder_is_ours_only_with_the_marker_and_nothing_but_frames(tmp_path, names, ours):
    for name in names:
        (tmp_path / name).write_bytes(b"")
    assert is_ours(tmp_path) is ours


def test_a_new_empty_or_earlier_frames_folder_can_be_the_output(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert check_frames_folder("new") == tmp_path / "new"  # made absolute
    (tmp_path / "empty").mkdir()
    assert check_frames_folder(tmp_path / "empty") == tmp_path / "empty"
    assert check_frames_folder(frames_folder(tmp_path / "earlier")) == tmp_path / "earlier"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["earlier", "empty"]  # the write probe leaves nothing


def test_each_unusable_output_is_refused_in_one_line(tmp_path):
    (tmp_path / "clip.mp4").write_bytes(b"")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    long_name = "n" * 300
    refusals = {
        "/": "Output / is a file system root; give a folder for the frames.",
        tmp_path / "missing" / "f": f"Folder {tmp_path}/missing does not exist; create it or choose another output folder.",
        tmp_path / long_name: "Output folder name is 300 bytes long, more than this file system allows; choose a "
                              "shorter name.",
        tmp_path / "clip.mp4": f"Output {tmp_path}/clip.mp4 is a file; give a folder for PNG frames or a .mp4 file name.",
        tmp_path / "mine": f"Output folder {tmp_path}/mine is not empty; choose a new or empty folder (frames "
                           "avatarify wrote there before are replaced).",
    }
    for output, message in refusals.items():
        with pytest.raises(InputError) as caught:
            check_frames_folder(output)
        assert str(caught.value) == message
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"


def test_a_folder_that_cannot_be_written_is_refused_before_any_work(tmp_path, monkeypatch):
    def no_room(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tempfile, "NamedTemporaryFile", no_room)
    with pytest.raises(InputError, match=rf"^Cannot write to {tmp_path} \(No space left on device\); choose another "
                                         r"output folder\.$"):
        check_frames_folder(tmp_path / "f")
    with pytest.raises(InputError, match=rf"^Cannot write to {tmp_path}/missing \(No such file or directory\); "
                                         r"choose another folder\.$"):
        PngFramesWriter(tmp_path / "missing" / "f")


def test_a_frame_that_cannot_be_encoded_or_written_says_which(tmp_path, monkeypatch):
    with PngFramesWriter(tmp_path / "f") as writer:
        writer.write(np.zeros((4, 4, 3), np.uint8))
        monkeypatch.setattr(cv2, "imencode", lambda ext, image: (False, None))
        with pytest.raises(InputError, match=r"^Could not encode frame 2 as PNG\.$"):
            writer.write(np.zeros((4, 4, 3), np.uint8))
        monkeypatch.undo()

        def disk_full(self, data):
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(Path, "write_bytes", disk_full)
        with pytest.raises(InputError, match=rf"^Writing {tmp_path}/f failed \(No space left on device\); check the "
                                             r"free disk space and the folder\.$"):
            writer.write(np.zeros((4, 4, 3), np.uint8))
        assert writer.frames_written == 1
    assert list(tmp_path.iterdir()) == []


def test_a_new_render_replaces_earlier_frames_whole(tmp_path):
    target = frames_folder(tmp_path / "f", count=3)
    frames_folder(target, count=1)
    assert sorted(p.name for p in target.iterdir()) == [MARKER, "000001.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]  # neither the old set nor the new one's temp remains


def test_an_output_filled_meanwhile_is_left_alone(tmp_path):
    target = tmp_path / "f"
    with PngFramesWriter(target) as writer:
        writer.write(np.zeros((4, 4, 3), np.uint8))
        target.mkdir()
        (target / "notes.txt").write_text("mine")
        with pytest.raises(InputError, match=rf"^Output folder {target} was filled meanwhile; nothing was replaced\.$"):
            writer.commit()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"] and (target / "notes.txt").read_text() == "mine"


def fail_rename(monkeypatch, failing: int) -> list:
    """Make the `failing`-th `os.rename` from now on fail as a move across file systems does; the list records the
    destinations asked for."""
    real_rename = os.rename
    renames: list = []

    def rename(source, destination):
        renames.append(destination)
        if len(renames) == failing:
            raise OSError(18, "Invalid cross-device link")
        real_rename(source, destination)

    monkeypatch.setattr(os, "rename", rename)
    return renames


def test_earlier_frames_come_back_when_the_new_ones_cannot_be_moved_in(tmp_path, monkeypatch):
    target = frames_folder(tmp_path / "f", count=2)
    with PngFramesWriter(target) as writer:
        writer.write(np.zeros((4, 4, 3), np.uint8))
        fail_rename(monkeypatch, 2)
        with pytest.raises(InputError, match=rf"^Could not put the frames in place at {target} \(Invalid cross-device "
                                             r"link\)\.$"):
            writer.commit()
    assert sorted(p.name for p in target.iterdir()) == [MARKER, "000001.png", "000002.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]


def test_the_longest_name_the_file_system_allows_can_hold_frames(tmp_path):
    longest = tmp_path / ("n" * name_limit(tmp_path))
    assert check_frames_folder(longest) == longest
    frames_folder(longest, count=1)
    frames_folder(longest, count=2)  # and replacing them
    assert sorted(p.name for p in longest.iterdir()) == [MARKER, "000001.png", "000002.png"]
    assert [p.name for p in tmp_path.iterdir()] == [longest.name]


def test_the_write_probe_is_a_hidden_file_in_the_output_s_parent(tmp_path, monkeypatch):
    real = tempfile.NamedTemporaryFile
    probes = []

    def recording(*args, **kwargs):
        probe = real(*args, **kwargs)
        probes.append(Path(probe.name))
        return probe

    monkeypatch.setattr(tempfile, "NamedTemporaryFile", recording)
    check_frames_folder(tmp_path / "f")
    assert len(probes) == 1 and probes[0].parent == tmp_path  # the folder the frames go to, not elsewhere
    assert fnmatch.fnmatch(probes[0].name, ".avatarify-*.probe") and not probes[0].exists()


def test_new_frames_that_cannot_be_moved_in_say_why(tmp_path, monkeypatch):
    with PngFramesWriter(tmp_path / "f") as writer:
        writer.write(np.zeros((4, 4, 3), np.uint8))
        renames = fail_rename(monkeypatch, 1)
        with pytest.raises(InputError, match=r"\(Invalid cross-device link\)\.$"):
            writer.commit()
    assert len(renames) == 1 and list(tmp_path.iterdir()) == []  # nothing was there before: nothing to put back


def test_earlier_frames_that_cannot_be_deleted_do_not_fail_the_render(tmp_path, monkeypatch):
    target = frames_folder(tmp_path / "f", count=2)

    def undeletable(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    with PngFramesWriter(target) as writer:
        writer.write(np.zeros((4, 4, 3), np.uint8))
        monkeypatch.setattr(os, "rmdir", undeletable)
        assert writer.commit() == target
    assert sorted(p.name for p in target.iterdir()) == [MARKER, "000001.png"]
