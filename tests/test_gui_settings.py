"""The desktop app's settings file: round trip, atomic writes, corrupt files."""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
from pathlib import Path

import pytest

from avatarify.gui.settings import AppSettings, SettingsStore, default_settings_path


def test_defaults_when_no_file(tmp_path: Path) -> None:
    store = SettingsStore(tmp_path / "settings.json")
    assert store.load() == AppSettings()
    assert not store.path.exists()


def test_round_trip(tmp_path: Path) -> None:
    store = SettingsStore(tmp_path / "nested" / "settings.json")
    settings = AppSettings(camera="Integrated Webcam", camera_width=640, camera_height=480, vcam_enabled=False,
                           mirror_output=True, overlay_opacity=0.4, relative=False, model_device="cpu",
                           checkpoint="/weights/vox.pth.tar", avatar="mona")
    store.save(settings)
    assert SettingsStore(store.path).load() == settings
    assert json.loads(store.path.read_text())["camera"] == "Integrated Webcam"


def test_save_is_atomic_rename_and_leaves_no_temp_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = SettingsStore(tmp_path / "settings.json")
    store.save(AppSettings(camera="first"))
    replaced: list[tuple[str, str]] = []
    real_replace = os.replace

    def failing_replace(src, dst) -> None:
        replaced.append((str(src), str(dst)))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError):
        store.save(AppSettings(camera="second"))
    monkeypatch.setattr(os, "replace", real_replace)
    # The new content went to a temporary file beside the target, which was then renamed over it.
    assert len(replaced) == 1 and Path(replaced[0][0]).parent == tmp_path and replaced[0][1] == str(store.path)
    assert store.load().camera == "first"  # the old file is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["settings.json"]


def test_corrupt_file_gives_defaults_and_is_kept(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "settings.json"
    path.write_text('{"camera": "1", "mirror_output": tr')
    store = SettingsStore(path)
    with caplog.at_level(logging.WARNING):
        assert store.load() == AppSettings()
    assert "corrupt" in caplog.text
    assert path.read_text() == '{"camera": "1", "mirror_output": tr'
    store.save(AppSettings(camera="2"))
    # The unreadable file survives beside the new one.
    assert store.backup_path.read_text() == '{"camera": "1", "mirror_output": tr'
    assert store.load().camera == "2"


def test_file_that_is_not_utf8_is_treated_as_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    content = b'{"camera": "caf\xe9"}'  # Latin-1, written by some other editor
    path.write_bytes(content)
    store = SettingsStore(path)
    assert store.load() == AppSettings()
    assert path.read_bytes() == content
    store.save(AppSettings(camera="1"))
    assert store.backup_path.read_bytes() == content and store.load().camera == "1"


@pytest.mark.parametrize("content", ["[1, 2]", "null", "\x00\x01binary"])
def test_non_object_files_give_defaults(tmp_path: Path, content: str) -> None:
    path = tmp_path / "settings.json"
    path.write_text(content)
    assert SettingsStore(path).load() == AppSettings()
    assert path.read_text() == content


def test_bad_values_fall_back_one_by_one(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    data = dataclasses.asdict(AppSettings())
    data.update(camera=3, mirror_output=True, overlay_opacity=1, camera_width="wide", unknown_key=5)
    path.write_text(json.dumps(data))
    settings = SettingsStore(path).load()
    assert settings.camera == AppSettings().camera  # wrong type
    assert settings.camera_width == AppSettings().camera_width
    assert settings.mirror_output is True
    assert settings.overlay_opacity == 1.0 and isinstance(settings.overlay_opacity, float)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="XDG_CONFIG_HOME applies on Linux only")
def test_default_path_is_in_the_user_config_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert default_settings_path() == tmp_path / "avatarify" / "settings.json"
