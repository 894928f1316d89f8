"""LivePortrait loading: the published files' exact layout, the folder layouts accepted, and one clear line for
every bad input (missing or misplaced files, code in a pickle, damage, another configuration)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from avatarify.core.errors import CheckpointError
from avatarify.model.pickles import code_in_checkpoint
from avatarify.model.liveportrait.model import DEFAULT_CONFIG, build_networks, load_model, read_model_params
from avatarify.model.liveportrait.weights import PUBLISHED_FILES, checkpoint_files


@pytest.fixture(scope="module")
def published_shapes(shared_dir):
    return json.loads((shared_dir / "liveportrait-reference" / "liveportrait_state_dict_shapes.json").read_text())


@pytest.fixture(scope="module")
def published_networks():
    """The published architecture without memory: shapes only."""
    with torch.device("meta"):
        return build_networks(read_model_params(DEFAULT_CONFIG))


@pytest.mark.parametrize("name", [n for n in PUBLISHED_FILES if n != "stitching_retargeting_module"])
def test_published_architecture_matches_each_file_key_for_key(published_shapes, published_networks, name):
    reference = published_shapes[f"{name}.pth"]
    actual = {k: list(v.shape) for k, v in published_networks[name].state_dict().items()}
    assert list(actual) == list(reference)
    assert actual == reference


def test_published_stitching_file_matches(published_shapes, published_networks):
    reference = published_shapes["stitching_retargeting_module.pth"]
    module = published_networks["stitching_retargeting_module"]
    for attribute, key in (("stitching", "retarget_shoulder"), ("lip", "retarget_mouth"), ("eye", "retarget_eye")):
        actual = {k: list(v.shape) for k, v in getattr(module, attribute).state_dict().items()}
        assert actual == reference[key]


def test_published_sizes(published_networks):
    millions = {name: sum(p.numel() for p in net.parameters()) / 1e6 for name, net in published_networks.items()}
    assert millions["motion_extractor"] == pytest.approx(28.1, abs=0.05)
    assert millions["warping_module"] == pytest.approx(45.5, abs=0.05)
    assert millions["spade_generator"] == pytest.approx(55.4, abs=0.05)


def place(golden: Path, folder: Path, layout: str) -> Path:
    """The golden weights copied into `folder` in one of the accepted layouts."""
    for name, relative in PUBLISHED_FILES.items():
        target = {"published": folder / relative, "nested": folder / "liveportrait" / relative,
                  "flat": folder / Path(relative).name}[layout]
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(golden / Path(relative).name, target)
    return folder


@pytest.mark.parametrize("layout", ["published", "nested", "flat"])
def test_accepted_layouts_load_the_same_weights(layout, lp_golden_dir, tmp_path):
    folder = place(lp_golden_dir, tmp_path / "weights", layout)
    model = load_model(lp_golden_dir / "config.yaml", folder)
    expected = torch.load(lp_golden_dir / "motion_extractor.pth", weights_only=True)["detector.fc_kp.weight"]
    assert torch.equal(model.motion_extractor.detector.fc_kp.weight, expected.float())


def assert_one_line(info: pytest.ExceptionInfo, *phrases: str) -> None:
    message = str(info.value)
    assert "\n" not in message
    for phrase in phrases:
        assert phrase in message, message


def test_missing_file_is_named(lp_golden_dir, tmp_path):
    folder = place(lp_golden_dir, tmp_path / "weights", "published")
    (folder / PUBLISHED_FILES["warping_module"]).unlink()
    with pytest.raises(CheckpointError) as info:
        load_model(lp_golden_dir / "config.yaml", folder)
    assert_one_line(info, "base_models/warping_module.pth is missing", "not a LivePortrait weights folder")


def test_empty_folder_missing_folder_and_a_file(lp_golden_dir, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError) as info:
        checkpoint_files(tmp_path / "empty")
    assert_one_line(info, "is missing and 4 more")
    with pytest.raises(CheckpointError) as info:
        checkpoint_files(tmp_path / "nope")
    assert_one_line(info, "does not exist", "avatarify weights download --engine liveportrait")
    with pytest.raises(CheckpointError) as info:
        checkpoint_files(lp_golden_dir / "spade_generator.pth")
    assert_one_line(info, "is a file", "folder")


class CodeCarrier:
    """Unpickling this creates the file at `marker`: stands for any pickle that runs code when loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_code_in_a_pickle_is_refused_and_never_run(zip_format, lp_golden_dir, tmp_path):
    folder = place(lp_golden_dir, tmp_path / "weights", "flat")
    marker = tmp_path / "code-ran"
    state = torch.load(lp_golden_dir / "warping_module.pth", weights_only=True)
    state["payload"] = CodeCarrier(marker)
    torch.save(state, folder / "warping_module.pth", _use_new_zipfile_serialization=zip_format)
    torch.load(folder / "warping_module.pth", weights_only=False)  # it really would run code ...
    assert marker.exists()
    marker.unlink()
    with pytest.raises(CheckpointError) as info:  # ... and loading refuses it
        load_model(lp_golden_dir / "config.yaml", folder)
    assert_one_line(info, "Refused to load", "warping_module.pth", "contains code", "io.open")
    assert not marker.exists()


def test_a_pickled_module_counts_as_code(lp_golden_dir, tmp_path):
    folder = place(lp_golden_dir, tmp_path / "weights", "flat")
    torch.save(torch.nn.Linear(2, 2), folder / "motion_extractor.pth")
    with pytest.raises(CheckpointError) as info:
        load_model(lp_golden_dir / "config.yaml", folder)
    assert_one_line(info, "contains code", "torch.nn.modules.linear.Linear")


@pytest.mark.parametrize("damage", ["truncated", "text", "empty", "not a state dict"])
def test_damaged_files_are_reported_as_such(damage, lp_golden_dir, tmp_path):
    folder = place(lp_golden_dir, tmp_path / "weights", "flat")
    target = folder / "spade_generator.pth"
    if damage == "truncated":
        target.write_bytes(target.read_bytes()[: target.stat().st_size // 2])
    elif damage == "text":
        target.write_text("<html>Access denied</html>")
    elif damage == "empty":
        target.write_bytes(b"")
    else:
        torch.save([torch.zeros(2)], target)
    with pytest.raises(CheckpointError) as info:
        load_model(lp_golden_dir / "config.yaml", folder)
    phrase = {"truncated": "corrupt", "text": "corrupt", "empty": "is empty", "not a state dict": "no state dict"}
    assert_one_line(info, str(target), phrase[damage])
    assert code_in_checkpoint(target) == []  # damage is never mistaken for code


def test_weights_of_another_configuration_name_the_first_difference(lp_golden_dir):
    with pytest.raises(CheckpointError) as info:
        load_model(None, lp_golden_dir)  # the small golden weights against the published architecture
    assert_one_line(
        info, "does not fit the model config", "appearance_feature_extractor",
        "first.conv.weight is [16, 3, 3, 3] in the checkpoint but [64, 3, 3, 3] in the config", "--config",
    )


def test_stitching_file_with_parallel_prefix_loads_and_without_a_part_is_refused(lp_golden_dir, tmp_path):
    folder = place(lp_golden_dir, tmp_path / "weights", "flat")
    target = folder / "stitching_retargeting_module.pth"
    data = torch.load(target, weights_only=True)
    torch.save({part: {f"module.{k}": v for k, v in state.items()} for part, state in data.items()}, target)
    model = load_model(lp_golden_dir / "config.yaml", folder)
    assert torch.equal(model.stitching_retargeting_module.eye.mlp[0].weight, data["retarget_eye"]["mlp.0.weight"].float())
    del data["retarget_eye"]
    torch.save(data, target)
    with pytest.raises(CheckpointError) as info:
        load_model(lp_golden_dir / "config.yaml", folder)
    assert_one_line(info, "retarget_shoulder, retarget_mouth, retarget_eye")


def test_stitching_weights_of_wrong_shape(lp_golden_dir, tmp_path):
    folder = place(lp_golden_dir, tmp_path / "weights", "flat")
    target = folder / "stitching_retargeting_module.pth"
    data = torch.load(target, weights_only=True)
    data["retarget_mouth"]["mlp.0.weight"] = torch.zeros(128, 64)
    torch.save(data, target)
    with pytest.raises(CheckpointError) as info:
        load_model(lp_golden_dir / "config.yaml", folder)
    assert_one_line(info, "retarget_mouth: mlp.0.weight is [128, 64] in the checkpoint but [128, 65]")


PUBLISHED = DEFAULT_CONFIG.read_text()


@pytest.mark.parametrize(
    "text, phrase",
    [
        ("model_params: [1, 2]", "no LivePortrait model_params"),
        ("a: [", "not valid YAML"),
        (PUBLISHED.replace("backbone: convnextv2_tiny", "backbone: resnet50"),
         "does not describe LivePortrait's motion_extractor"),
        (PUBLISHED.replace("# W\n    num_kp: 21", "# W\n    num_kp: 20"),
         "do not fit together: keypoints (motion extractor vs warping module): 21 and 20"),
    ],
    ids=["no params", "not yaml", "unknown backbone", "inconsistent"],
)
def test_bad_configs(text, phrase, tmp_path):
    config = tmp_path / "models.yaml"
    config.write_text(text)
    with pytest.raises(CheckpointError) as info:
        load_model(config)
    assert_one_line(info, phrase)
