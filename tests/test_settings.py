"""One settings record: checked values, a model that tells observers what changed, and a file that never stops the
app (round trip, atomic writes, damaged or hostile files, backups that are never overwritten)."""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
from pathlib import Path

import pytest

from avatarify.core.paths import settings_path
from avatarify.core.settings import (
    MAX_CROP_ZOOM, MAX_MOTION_STRENGTH, MAX_TEXT_LENGTH, MIN_CROP_ZOOM, Settings, SettingsModel, persistent_fields,
)
from avatarify.core.settings_file import MAX_FILE_BYTES, SettingsFile, SettingsFileError, parse_settings


def test_defaults_when_no_file(tmp_path: Path) -> None:
    store = SettingsFile(tmp_path / "settings.json")
    assert store.load() == Settings()
    assert not store.path.exists()


def test_round_trip(tmp_path: Path) -> None:
    store = SettingsFile(tmp_path / "nested" / "settings.json")
    settings = Settings(camera="Integrated Webcam", camera_width=640, camera_height=480, vcam_enabled=False,
                           mirror_output=True, overlay_opacity=0.4, relative=False, model_device="cpu",
                           checkpoint="/weights/vox.pth.tar", avatar="mona")
    store.save(settings)
    assert SettingsFile(store.path).load() == settings
    assert json.loads(store.path.read_text())["camera"] == "Integrated Webcam"


def test_save_is_atomic_rename_and_leaves_no_temp_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = SettingsFile(tmp_path / "settings.json")
    store.save(Settings(camera="first"))
    replaced: list[tuple[str, str]] = []
    real_replace = os.replace

    def failing_replace(src, dst) -> None:
        replaced.append((str(src), str(dst)))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError):
        store.save(Settings(camera="second"))
    monkeypatch.setattr(os, "replace", real_replace)
    # The new content went to a temporary file beside the target, which was then renamed over it.
    assert len(replaced) == 1 and Path(replaced[0][0]).parent == tmp_path and replaced[0][1] == str(store.path)
    assert store.load().camera == "first"  # the old file is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["settings.json"]


def test_corrupt_file_gives_defaults_and_is_kept(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "settings.json"
    path.write_text('{"camera": "1", "mirror_output": tr')
    store = SettingsFile(path)
    with caplog.at_level(logging.WARNING):
        assert store.load() == Settings()
    assert "cannot be used" in caplog.text
    assert path.read_text() == '{"camera": "1", "mirror_output": tr'
    store.save(Settings(camera="2"))
    # The unreadable file survives beside the new one.
    assert (store.path.parent / 'settings.json.bad').read_text() == '{"camera": "1", "mirror_output": tr'
    assert store.load().camera == "2"


def test_file_that_is_not_utf8_is_treated_as_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    content = b'{"camera": "caf\xe9"}'  # Latin-1, written by some other editor
    path.write_bytes(content)
    store = SettingsFile(path)
    assert store.load() == Settings()
    assert path.read_bytes() == content
    store.save(Settings(camera="1"))
    assert (store.path.parent / 'settings.json.bad').read_bytes() == content and store.load().camera == "1"


@pytest.mark.parametrize("content", ["[1, 2]", "null", "\x00\x01binary"])
def test_non_object_files_give_defaults(tmp_path: Path, content: str) -> None:
    path = tmp_path / "settings.json"
    path.write_text(content)
    assert SettingsFile(path).load() == Settings()
    assert path.read_text() == content


def test_bad_values_fall_back_one_by_one(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    data = {field.name: getattr(Settings(), field.name) for field in dataclasses.fields(Settings) if field.name != "crop_offset"}
    data.update(camera=3, mirror_output=True, overlay_opacity=1, camera_width="wide", unknown_key=5)
    path.write_text(json.dumps(data))
    settings = SettingsFile(path).load()
    assert settings.camera == Settings().camera  # wrong type
    assert settings.camera_width == Settings().camera_width
    assert settings.mirror_output is True
    assert settings.overlay_opacity == 1.0 and isinstance(settings.overlay_opacity, float)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="XDG_CONFIG_HOME applies on Linux only")
def test_default_path_is_in_the_user_config_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert settings_path() == tmp_path / "avatarify" / "settings.json"


@pytest.mark.parametrize(
    "content",
    [
        '{"motion_strength": NaN}',
        '{"overlay_opacity": Infinity}',
        '{"camera_width": -Infinity}',
        "[" * 100_000 + "]" * 100_000,
        '{"camera": "' + "x" * (MAX_FILE_BYTES + 10) + '"}',
        '{"a": ' * 5000 + "1" + "}" * 5000,
    ],
    ids=["nan", "infinity", "minus-infinity", "deep-list", "huge", "deep-object"],
)
def test_hostile_files_give_defaults_never_an_error(tmp_path: Path, content: str) -> None:
    path = tmp_path / "settings.json"
    path.write_text(content)
    assert SettingsFile(path).load() == Settings()
    assert path.read_text() == content  # left as it was


def test_values_out_of_range_are_brought_into_it(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"motion_strength": 1e308, "overlay_opacity": -5, "camera_width": 10**12,
                                "camera_height": 0, "checkpoint": "a\u0000b", "avatar": "y" * 10_000}))
    settings = SettingsFile(path).load()
    assert settings.motion_strength == MAX_MOTION_STRENGTH and settings.overlay_opacity == 0.0
    assert 16 <= settings.camera_width <= 7680 and 16 <= settings.camera_height <= 7680
    assert settings.checkpoint == "" and settings.avatar == ""  # NUL characters and absurd lengths refused


NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize(
    "given, expected",
    [
        (dict(camera_width=NAN, camera_height=INF), dict(camera_width=1280, camera_height=720)),
        (dict(camera_width=3, camera_height=10**9), dict(camera_width=16, camera_height=7680)),
        (dict(camera_width=640.7, camera_height=480), dict(camera_width=640, camera_height=480)),
        (dict(overlay_opacity=NAN, motion_strength=-INF), dict(overlay_opacity=0.0, motion_strength=1.0)),
        (dict(overlay_opacity=2.0, motion_strength=-1.0), dict(overlay_opacity=1.0, motion_strength=0.0)),
        (dict(crop_zoom=NAN), dict(crop_zoom=1.0)),
        (dict(crop_zoom=0.1), dict(crop_zoom=MIN_CROP_ZOOM)),
        (dict(crop_offset=(NAN, 0.25)), dict(crop_offset=(0.0, 0.25))),
        (dict(crop_offset=(-9.0, INF)), dict(crop_offset=(-0.5, 0.0))),
        (dict(engine="liveportrait"), dict(engine="liveportrait")),
        (dict(engine="../../etc"), dict(engine="fomm")),
    ],
)
def test_checked_brings_each_number_into_range_and_non_numbers_to_the_default(given, expected) -> None:
    checked = Settings(**given).checked()
    assert {name: getattr(checked, name) for name in expected} == expected
    assert type(checked.camera_width) is int and type(checked.camera_height) is int


def test_checked_keeps_what_is_already_fine() -> None:
    fine = Settings(camera_width=640, camera_height=480, overlay_opacity=0.5, motion_strength=2.0, crop_zoom=2.0,
                    crop_offset=(0.1, -0.2), engine="liveportrait")  # fmt: skip
    assert fine.checked() == fine


def test_a_second_damaged_file_does_not_overwrite_the_first_backup(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    for number, junk in enumerate(("first {", "second {", "third {"), start=1):
        path.write_text(junk)
        store = SettingsFile(path)
        store.load()
        store.save(Settings(camera=str(number)))
    backups = sorted(p.name for p in tmp_path.iterdir() if p.name != "settings.json")
    assert backups == ["settings.json.bad", "settings.json.bad.2", "settings.json.bad.3"]
    assert [(tmp_path / name).read_text() for name in backups] == ["first {", "second {", "third {"]


def test_only_persistent_fields_are_saved(tmp_path: Path) -> None:
    store = SettingsFile(tmp_path / "settings.json")
    store.save(Settings(passthrough=True, crop_zoom=2.0, show_stats=True, mirror_output=True))
    saved = json.loads(store.path.read_text())
    assert "passthrough" not in saved and "crop_zoom" not in saved and saved["mirror_output"] is True
    assert store.load() == Settings(mirror_output=True)


def test_the_model_checks_values_and_tells_observers_of_the_fields_they_watch() -> None:
    model = SettingsModel()
    every, crop = [], []
    model.observe(lambda old, new: every.append((old, new)))
    model.observe(lambda old, new: None, [f.name for f in dataclasses.fields(Settings)])  # every name is real
    model.observe(lambda old, new: crop.append(new.crop_zoom), ["crop_zoom"])
    holder = type("Holder", (), {})()
    model.connect_setattr("mirror_output", holder, "mirrored")
    assert holder.mirrored is False
    model.update(crop_zoom=100.0)
    assert crop == [MAX_CROP_ZOOM] and model.value.crop_zoom == MAX_CROP_ZOOM
    model.update(mirror_output=True, motion_strength=float("nan"))
    assert holder.mirrored is True and model.value.motion_strength == 1.0
    assert len(every) == 2 and len(crop) == 1
    assert every[1][0].mirror_output is False and every[1][1].mirror_output is True  # old, then new
    model.update(mirror_output=True)  # nothing changed: nobody is told
    assert len(every) == 2
    with pytest.raises(TypeError):
        model.update(no_such_setting=1)
    with pytest.raises(ValueError, match=r"unknown settings: \['no_such_setting'\]"):
        model.observe(lambda old, new: None, ["camera", "no_such_setting"])


def test_connect_setattr_follows_its_own_field_only() -> None:
    model = SettingsModel()
    holder = type("Holder", (), {})()
    model.connect_setattr("relative", holder, "relative")
    holder.relative = "changed by hand"
    model.update(camera="2")  # another field: the attribute is left alone
    assert holder.relative == "changed by hand"
    model.update(relative=False)
    assert holder.relative is False


def test_an_observer_can_be_disconnected() -> None:
    model = SettingsModel()
    heard = []
    disconnect = model.observe(lambda old, new: heard.append(new.camera))
    model.update(camera="1")
    disconnect()
    model.update(camera="2")
    assert heard == ["1"]


def test_saving_follows_the_model_and_reports_failures(tmp_path: Path) -> None:
    model = SettingsModel()
    store = SettingsFile(tmp_path / "settings.json")
    errors = []
    store.attach(model, errors.append)
    model.update(crop_zoom=2.0)  # session-only: nothing written
    assert not store.path.exists()
    model.update(mirror_output=True)
    assert store.load().mirror_output is True
    store.path.unlink()
    (tmp_path / "settings.json").mkdir()  # a folder where the file should go
    model.update(mirror_output=False)
    assert len(errors) == 1 and errors[0].startswith(f"Could not save the settings to {store.path}")


def test_parse_settings_names_each_ignored_value_and_why() -> None:
    raw = json.dumps({"camera": 3, "mirror_output": 1, "overlay_opacity": True, "camera_width": False,
                      "motion_strength": "0.5", "avatar": "z" * (MAX_TEXT_LENGTH + 1), "relative": False})
    settings, ignored = parse_settings(raw.encode())
    assert ignored == [  # in the order of the fields
        "camera: expected str, got int",
        "camera_width: expected int, got bool",
        "mirror_output: expected bool, got int",
        "overlay_opacity: expected float, got bool",
        "motion_strength: expected float, got str",
        "avatar: expected str, got str",
    ]
    assert settings == Settings(relative=False)  # everything else stays at its default


def test_parse_settings_says_why_a_file_cannot_be_used() -> None:
    with pytest.raises(SettingsFileError, match=r"^it does not hold a JSON object$"):
        parse_settings(b"[1, 2]")
    with pytest.raises(SettingsFileError, match=r"^not JSON \(Expecting value at byte 11\)$"):
        parse_settings(b'{"camera": }')


def test_text_of_the_longest_allowed_length_is_kept() -> None:
    longest = "a" * MAX_TEXT_LENGTH
    settings, ignored = parse_settings(json.dumps({"avatar": longest, "checkpoint": longest + "b"}).encode())
    assert settings.avatar == longest and settings.checkpoint == "" and len(ignored) == 1


def test_each_problem_is_logged_with_the_file(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "settings.json"
    path.write_text('{"camera": 3}')
    with caplog.at_level(logging.WARNING):
        SettingsFile(path).load()
    assert caplog.messages == [f"Ignoring a setting in {path}: camera: expected str, got int."]
    caplog.clear()
    path.write_text("[]")
    store = SettingsFile(path)
    with caplog.at_level(logging.WARNING):
        store.load()
        store.save(Settings())
    assert caplog.messages == [
        f"Settings file {path} cannot be used (it does not hold a JSON object); using the defaults and keeping the file.",
        f"Kept the unusable settings file as {path}.bad.",
    ]


def test_a_file_that_cannot_be_read_gives_defaults_and_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "settings.json"
    path.write_text('{"camera": "7"}')
    store = SettingsFile(path)
    real_read_bytes = Path.read_bytes

    def unreadable(self: Path) -> bytes:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "read_bytes", unreadable)
    with caplog.at_level(logging.WARNING):
        assert store.load() == Settings()
    assert caplog.messages == [f"Cannot read settings {path} (Permission denied); using the defaults."]
    monkeypatch.setattr(Path, "read_bytes", real_read_bytes)
    store.save(Settings(camera="8"))
    assert (tmp_path / "settings.json.bad").read_text() == '{"camera": "7"}' and store.load().camera == "8"


def test_only_a_file_found_unusable_by_the_last_load_is_backed_up(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text('{"camera": "old"}')
    SettingsFile(path).save(Settings(camera="new"))  # never loaded: nothing to keep
    path.write_text("junk {")
    store = SettingsFile(path)
    store.load()
    path.write_text('{"camera": "mended"}')
    assert store.load().camera == "mended"  # usable again: the next save keeps no copy
    store.save(Settings(camera="saved"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["settings.json"]


def test_the_file_is_sorted_indented_json_ending_in_a_newline(tmp_path: Path) -> None:
    store = SettingsFile(tmp_path / "a" / "b" / "settings.json")  # missing folders are made
    store.save(Settings())
    values = {f.name: getattr(Settings(), f.name) for f in persistent_fields()}
    assert store.path.read_text(encoding="utf-8") == json.dumps(values, indent=2, sort_keys=True) + "\n"
    assert store.path.read_text().startswith('{\n  "adapt_scale": true,\n  "avatar": "",\n')


def test_a_value_json_cannot_hold_is_never_written(tmp_path: Path) -> None:
    store = SettingsFile(tmp_path / "settings.json")
    store.save(Settings(camera="kept"))
    with pytest.raises(ValueError):
        store.save(Settings(motion_strength=float("nan")))  # unchecked on purpose: the file would not load
    assert store.load().camera == "kept"


def test_a_failed_save_is_reported_in_one_plain_line(tmp_path: Path) -> None:
    model = SettingsModel()
    store = SettingsFile(tmp_path / "settings.json")
    store.path.mkdir()  # a folder where the file should go
    errors: list[str] = []
    store.attach(model, errors.append)
    model.update(mirror_output=True)
    assert errors == [f"Could not save the settings to {store.path}: Is a directory."]
