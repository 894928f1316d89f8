"""The avatar library: listing, adding without ever overwriting, removing only the user's pictures."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from avatarify.core.errors import InputError
from avatarify.core.images import read_image
from avatarify.core.paths import user_avatar_dir
from avatarify.pipeline.avatars import AvatarLibrary, safe_file_stem


@pytest.fixture
def library(tmp_path, avatars_dir):
    shipped = tmp_path / "shipped"
    shutil.copytree(avatars_dir, shipped)
    return AvatarLibrary([tmp_path / "user", shipped])


def test_lists_user_folder_first_then_shipped_pictures(library, avatars_dir):
    assert len(library) == len(list(avatars_dir.iterdir()))
    assert library.names == sorted(library.names, key=str.casefold)  # first listing: by name
    image = library.image(library.find("mona"))
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert library.find("MONA.jpg") == library.find("mona")
    assert library.find("nobody") is None


def test_add_saves_a_png_in_the_user_folder_and_never_overwrites(library):
    image = library.image(library.find("mona"))
    first = library.add(image, "My Face!")
    second = library.add(image[::-1], "My Face!")
    assert first.name == "My_Face.png" and second.name == "My_Face-2.png"
    assert first.parent == library.user_folder
    np.testing.assert_array_equal(read_image(first), image)
    np.testing.assert_array_equal(read_image(second), image[::-1])
    assert library.names[-2:] == ["My Face!", "My Face!"]  # at the end, under the name the user gave
    assert library.find("my face!") == len(library) - 2
    leftovers = [p for p in library.user_folder.iterdir() if p.name.startswith(".") and p != library.index_path]
    assert not leftovers  # no temporary files left behind


def test_add_keeps_files_other_programs_put_there(library):
    library.user_folder.mkdir(parents=True, exist_ok=True)
    existing = library.user_folder / "me.png"
    existing.write_bytes(b"someone else's file")
    saved = library.add(np.zeros((8, 8, 3), np.uint8), "me")
    assert saved.name == "me-2.png"
    assert existing.read_bytes() == b"someone else's file"


def test_remove_deletes_only_user_pictures(library):
    added = library.add(np.full((16, 16, 3), 7, np.uint8), "temporary")
    count = len(library)
    library.remove(library.paths.index(added))
    assert not added.exists() and len(library) == count - 1
    shipped = library.find("mona")
    with pytest.raises(InputError, match="only those can be removed"):
        library.remove(shipped)
    assert library.paths[shipped].exists()
    with pytest.raises(InputError, match="no avatar number"):
        library.remove(len(library))


def test_reload_sees_pictures_added_outside_the_app_at_the_end(library, avatars_dir):
    before = list(library.paths)
    library.user_folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(avatars_dir / "mona.jpg", library.user_folder / "aaa-outside.jpg")
    library.reload()
    assert library.paths[:-1] == before and library.names[-1] == "aaa-outside"


def test_numbers_stay_put_across_adds_reloads_and_restarts(library, tmp_path):
    first_three = list(library.paths[:3])
    added = library.add(np.full((16, 16, 3), 9, np.uint8), "Albert E.")
    library.reload()
    assert library.paths[:3] == first_three and library.paths[-1] == added
    library.move(len(library) - 1, 0)  # dragged to the front
    again = AvatarLibrary(library.folders)  # the next start
    assert again.paths[0] == added and again.names[0] == "Albert E." and again.paths[1:4] == first_three


def test_a_damaged_gallery_index_is_ignored(library):
    library.index_path.parent.mkdir(parents=True, exist_ok=True)
    for junk in (b"\xff\xfe", b"[" * 5000, b'{"order": 3, "names": []}', b"null"):
        library.index_path.write_bytes(junk)
        library.reload()
        assert library.names == sorted(library.names, key=str.casefold)


def test_removing_keeps_the_others_numbers(library):
    added = library.add(np.full((16, 16, 3), 9, np.uint8), "x")
    library.move(len(library) - 1, 1)
    order = [p for p in library.paths if p != added]
    library.remove(library.paths.index(added))
    assert library.paths == order and not added.exists()


def test_names_and_default_folder():
    assert safe_file_stem("  ../../etc/passwd ") == "etc_passwd"
    assert safe_file_stem("???") == "avatar"
    assert user_avatar_dir().name == "avatars"


def test_a_picture_file_is_found_by_its_path(tmp_path, avatars_dir, monkeypatch):
    monkeypatch.setattr("avatarify.pipeline.avatars.user_avatar_dir", lambda: tmp_path / "user")
    outside = tmp_path / "elsewhere" / "me.jpg"
    outside.parent.mkdir()
    shutil.copy(avatars_dir / "obama.jpg", outside)
    library = AvatarLibrary.default(str(outside))
    assert library.paths[0] == outside and library.find(str(outside)) == 0
    assert library.find(str(tmp_path / "elsewhere" / ".." / "elsewhere" / "me.jpg")) == 0
    assert AvatarLibrary.default().find(str(outside)) is None  # not part of the library without the choice
