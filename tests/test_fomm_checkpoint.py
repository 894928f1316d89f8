"""Checkpoint loading: exact vox-256 state dict layout, strict matching and clear errors for bad files."""
from __future__ import annotations

import json

import pytest
import torch

from avatarify.core.errors import CheckpointError
from avatarify.model.fomm import DEFAULT_CONFIG, build_networks, load_model, read_model_params

pytestmark = pytest.mark.slow



@pytest.fixture(scope="module")
def vox_reference(shared_dir):
    path = shared_dir / "fomm-reference" / "vox256_state_dict_shapes.json"
    return json.loads(path.read_text())["configs"]["vox-256.yaml"]


@pytest.fixture(scope="module")
def vox_networks():
    return build_networks(read_model_params(DEFAULT_CONFIG))


@pytest.mark.parametrize("part, index", [("kp_detector", 0), ("generator", 1)])
def test_vox256_state_dict_keys_and_shapes(vox_reference, vox_networks, part, index):
    reference = {entry["key"]: (tuple(entry["shape"]), entry["dtype"]) for entry in vox_reference[part]["state_dict"]}
    actual = {k: (tuple(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in vox_networks[index].state_dict().items()}
    assert list(actual) == list(reference)
    assert actual == reference
    module = vox_networks[index]
    assert sum(p.numel() for p in module.parameters()) == vox_reference[part]["total_parameters"]


def test_shipped_config_equals_published_model_params(vox_reference):
    params = read_model_params(DEFAULT_CONFIG)
    published = vox_reference["model_params"]
    for section in ("common_params", "kp_detector_params", "generator_params"):
        assert params[section] == published[section]


def save_vox_checkpoint(path, vox_networks, **extra):
    kp_detector, generator = vox_networks
    torch.save({"generator": generator.state_dict(), "kp_detector": kp_detector.state_dict(), **extra}, path)


def test_published_layout_with_extra_keys_loads(tmp_path, vox_networks):
    path = tmp_path / "vox-adv-cpk.pth.tar"
    save_vox_checkpoint(path, vox_networks, epoch=100, optimizer_generator={"state": {}, "param_groups": []})
    model = load_model(DEFAULT_CONFIG, path)
    expected = vox_networks[1].state_dict()["final.weight"]
    assert torch.equal(model.generator.state_dict()["final.weight"], expected)


def test_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_model(DEFAULT_CONFIG, tmp_path / "nope.pth.tar")


def test_zero_byte_checkpoint(tmp_path):
    path = tmp_path / "empty.pth.tar"
    path.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        load_model(DEFAULT_CONFIG, path)


def test_truncated_checkpoint(tmp_path, small_checkpoint, small_config):
    path = tmp_path / "cut.pth.tar"
    path.write_bytes(small_checkpoint.read_bytes()[:100_000])
    with pytest.raises(CheckpointError, match="corrupt|truncated"):
        load_model(small_config, path)


def test_not_a_checkpoint(tmp_path):
    path = tmp_path / "list.pth.tar"
    torch.save([1, 2, 3], path)
    with pytest.raises(CheckpointError, match="not a FOMM checkpoint"):
        load_model(DEFAULT_CONFIG, path)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match="corrupt|not a checkpoint"):
        load_model(DEFAULT_CONFIG, text)


def test_checkpoint_for_another_config_names_the_difference(small_checkpoint):
    with pytest.raises(CheckpointError) as info:
        load_model(DEFAULT_CONFIG, small_checkpoint)
    message = str(info.value)
    assert "does not fit the model config" in message
    assert "predictor.encoder.down_blocks.0.conv.weight is [32, 3, 3, 3] in the checkpoint but [64, 3, 3, 3] in the config" in message
    assert "\n" not in message


class CodeCarrier:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_pickle_with_code_is_refused_and_never_run(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth.tar"
    torch.save({"generator": CodeCarrier(marker), "kp_detector": {}}, path)
    with pytest.raises(CheckpointError, match="contains code"):
        load_model(DEFAULT_CONFIG, path)
    assert not marker.exists()


def test_bad_config(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model_params: [1, 2]")
    with pytest.raises(CheckpointError, match="no FOMM model_params"):
        load_model(path)
