"""Checkpoints whose pickle reaches for code: every way of doing it is reported as "contains code" and never run.

Each payload, if it ran, would create a marker file; the tests check the report and that the marker never
appears. The last test runs each payload unsafely once, so that the refusals guard against something real.
"""
from __future__ import annotations

import builtins
import os
import pickle
import subprocess
import warnings
from pathlib import Path

import pytest
import torch

from avatarify.cli.main import main
from avatarify.core.errors import CheckpointError
from avatarify.model.checkpoint import read_weights
from avatarify.model.fomm import read_checkpoint
from avatarify.model.pickles import code_in_checkpoint


class Reducer:
    """Pickles as a call of `function(*args)`."""

    def __init__(self, function, *args) -> None:
        self.function, self.args = function, args

    def __reduce__(self):
        return (self.function, self.args)


class MarksOnRestore:
    """A class instance whose restoring runs code (its own __setstate__)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __setstate__(self, state) -> None:
        Path(state["marker"]).touch()


def save(obj, path: Path, zip_format: bool = True) -> None:
    torch.save({"generator": obj, "kp_detector": {"w": torch.zeros(2)}}, path, _use_new_zipfile_serialization=zip_format)


def payloads(marker: Path) -> dict[str, callable]:
    """Ways to write a checkpoint that creates `marker` when loaded unsafely (each is a function of the path)."""
    touch = f"touch {marker}"
    return {
        "os.system, zip": lambda p: save(Reducer(os.system, touch), p),
        "os.system, legacy format": lambda p: save(Reducer(os.system, touch), p, zip_format=False),
        "builtins.eval": lambda p: save(Reducer(builtins.eval, f"open({str(marker)!r}, 'w')"), p),
        "builtins.exec, legacy format": lambda p: save(Reducer(builtins.exec, f"open({str(marker)!r}, 'w')"), p, False),
        "subprocess.check_call": lambda p: save(Reducer(subprocess.check_call, ["touch", str(marker)]), p),
        "a class instance that runs code": lambda p: save(MarksOnRestore(marker), p),
        "a torch function that is not allowed": lambda p: save(Reducer(torch.save, {}, str(marker)), p),
        "protocol 4 pickle (STACK_GLOBAL)": lambda p: p.write_bytes(
            pickle.dumps({"generator": Reducer(os.system, touch)}, protocol=4)
        ),
        "protocol 5, nested": lambda p: p.write_bytes(
            pickle.dumps({"generator": {"layer": [1, Reducer(os.system, touch)]}, "kp_detector": {}}, protocol=5)
        ),
        "protocol 0, GLOBAL posix.system": lambda p: p.write_bytes(f"cposix\nsystem\n(V{touch}\ntR.".encode()),
        "protocol 0, INST": lambda p: p.write_bytes(f"(V{touch}\nios\nsystem\n.".encode()),
    }


@pytest.fixture
def marker(tmp_path) -> Path:
    return tmp_path / "code-ran"


@pytest.mark.parametrize("name", payloads(Path("x")).keys())
def test_code_carrying_checkpoints_are_refused_as_code_and_never_run(name, marker, tmp_path, capsys):
    path = tmp_path / "evil.pth.tar"
    payloads(marker)[name](path)
    with pytest.raises(CheckpointError, match="contains code") as info:
        read_checkpoint(path)
    assert "\n" not in str(info.value)
    assert main(["weights", "verify", str(path)]) == 2
    assert "contains code" in capsys.readouterr().err
    assert not marker.exists()


def test_each_payload_really_runs_code_when_loaded_unsafely(marker, tmp_path):
    for name, write in payloads(marker).items():
        path = tmp_path / "evil.pth.tar"
        write(path)
        try:
            torch.load(path, weights_only=False)
        except Exception:  # noqa: BLE001 - some payloads fail after running, which is all this needs
            pass
        assert marker.exists(), f"{name} does not run code: the refusal test above would prove nothing"
        marker.unlink()


def test_plain_weights_name_no_code(tmp_path, small_checkpoint):
    path = tmp_path / "plain.pth.tar"
    save({"w": torch.ones(3)}, path, zip_format=False)
    assert code_in_checkpoint(path) == []
    assert code_in_checkpoint(small_checkpoint) == []


@pytest.mark.parametrize("protocol", [3, 4, 5])
def test_a_file_of_any_pickle_protocol_gives_the_user_no_torch_warning(protocol, tmp_path):
    path = tmp_path / "pickled.pth"
    path.write_bytes(pickle.dumps({"generator": {"w": [1.0]}, "kp_detector": {}}, protocol=protocol))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(CheckpointError, match="not a weights file"):
            read_weights(path, "hint")
    assert [str(warning.message) for warning in caught] == []


def test_reading_a_damaged_pickle_for_code_gives_no_warnings(tmp_path):
    path = tmp_path / "broken.pth"
    path.write_bytes(b"S'\\q'\n(S'x'\n.")  # a string with an invalid escape, as random bytes often hold
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert code_in_checkpoint(path) == []
    assert [str(warning.message) for warning in caught] == []


@pytest.mark.parametrize("data", [os.urandom(5000), b"PK\x03\x04" + os.urandom(500), b"\x80\x02" + os.urandom(200)])
def test_damaged_files_are_corrupt_not_code(data, tmp_path):
    path = tmp_path / "broken.pth.tar"
    path.write_bytes(data)
    with pytest.raises(CheckpointError, match="corrupt"):
        read_checkpoint(path)
