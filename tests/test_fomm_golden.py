"""The model reproduces the original FOMM code's outputs on the golden set, in both grid-sampling conventions."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from avatarify.model.fomm import load_model, normalize_kp

pytestmark = pytest.mark.slow


FRAMES = range(4)
COMBOS = {"rel_adapt": (True, True), "rel_noadapt": (True, False), "abs": (False, False)}
# Tolerances suggested with the golden set: float-noise level of an independent float32 implementation.
ATOL = {
    "mask": 2e-4,
    "occlusion_map": 2e-4,
    "deformation": 2e-4,
    "sparse_deformed": 1e-3,
    "prediction": 3e-3,
    "deformed": 5e-3,
}
IMAGE_OUTPUTS = {"prediction", "deformed", "sparse_deformed"}


@pytest.fixture(scope="module")
def inputs(golden_dir):
    data = np.load(golden_dir / "inputs.npz")
    return torch.from_numpy(data["source"]), torch.from_numpy(data["driving"])


@pytest.fixture(scope="module")
def kp_reference(golden_dir):
    return np.load(golden_dir / "kp.npz")


def golden_cases(golden_dir, folder):
    for path in sorted((golden_dir / folder).glob("*.npz")):
        combo, frame = path.stem.rsplit("_f", 1)
        yield path, combo, int(frame)


@torch.no_grad()
def test_keypoints_match(golden_dir, inputs, kp_reference):
    model = load_model(golden_dir / "config.yaml", golden_dir / "checkpoint.pth.tar")
    source, driving = inputs
    kp_source = model.kp_detector(source)
    np.testing.assert_allclose(kp_source["value"].numpy(), kp_reference["kp_source_value"], atol=1e-5)
    np.testing.assert_allclose(kp_source["jacobian"].numpy(), kp_reference["kp_source_jacobian"], atol=1e-5)
    for k in FRAMES:
        kp = model.kp_detector(driving[k : k + 1])
        np.testing.assert_allclose(kp["value"].numpy(), kp_reference["kp_driving_value"][k], atol=1e-5)
        np.testing.assert_allclose(kp["jacobian"].numpy(), kp_reference["kp_driving_jacobian"][k], atol=1e-5)


@torch.no_grad()
def test_normalized_keypoints_match(golden_dir, inputs, kp_reference):
    model = load_model(golden_dir / "config.yaml", golden_dir / "checkpoint.pth.tar")
    source, driving = inputs
    kp_source = model.kp_detector(source)
    kp_driving = [model.kp_detector(driving[k : k + 1]) for k in FRAMES]
    for combo, (relative, adapt) in COMBOS.items():
        for k in FRAMES:
            kp_norm = normalize_kp(
                kp_source, kp_driving[k], kp_driving[0],
                adapt_movement_scale=adapt, use_relative_movement=relative, use_relative_jacobian=relative,
            )
            np.testing.assert_allclose(kp_norm["value"].numpy(), kp_reference[f"kp_norm_{combo}_value"][k], atol=1e-5)
            np.testing.assert_allclose(
                kp_norm["jacobian"].numpy(), kp_reference[f"kp_norm_{combo}_jacobian"][k], atol=1e-5
            )


@pytest.mark.parametrize("align_corners, folder", [(True, "align_corners_true"), (False, "default_align")])
@torch.no_grad()
def test_generator_outputs_match(golden_dir, inputs, align_corners, folder):
    model = load_model(golden_dir / "config.yaml", golden_dir / "checkpoint.pth.tar", align_corners=align_corners)
    source, driving = inputs
    kp_source = model.kp_detector(source)
    kp_driving = [model.kp_detector(driving[k : k + 1]) for k in FRAMES]
    cases = list(golden_cases(golden_dir, folder))
    assert cases, f"no golden files in {folder}"
    for path, combo, k in cases:
        relative, adapt = COMBOS[combo]
        reference = np.load(path)
        kp_norm = normalize_kp(
            kp_source, kp_driving[k], kp_driving[0],
            adapt_movement_scale=adapt, use_relative_movement=relative, use_relative_jacobian=relative,
        )
        out = model.generator(source, kp_source=kp_source, kp_driving=kp_norm)
        compared = [name for name in ATOL if name in reference.files]
        assert {"prediction", "mask", "occlusion_map", "deformation"} <= set(compared)
        for name in compared:
            actual = out[name].numpy()
            assert actual.shape == reference[name].shape, (path.name, name)
            np.testing.assert_allclose(actual, reference[name], atol=ATOL[name], err_msg=f"{path.name}:{name}")
            if name in IMAGE_OUTPUTS:
                assert np.abs(actual - reference[name]).mean() < 5e-5, (path.name, name)


@torch.no_grad()
def test_conventions_differ(golden_dir, inputs):
    """The setting really switches the sampling: the two conventions give clearly different predictions."""
    source, driving = inputs
    outputs = []
    for align_corners in (True, False):
        model = load_model(golden_dir / "config.yaml", golden_dir / "checkpoint.pth.tar", align_corners=align_corners)
        kp_source = model.kp_detector(source)
        kp_driving = model.kp_detector(driving[1:2])
        outputs.append(model.generator(source, kp_source=kp_source, kp_driving=kp_driving)["prediction"])
    assert (outputs[0] - outputs[1]).abs().mean() > 1e-3


def test_align_corners_true_is_the_default(golden_dir):
    model = load_model(golden_dir / "config.yaml", golden_dir / "checkpoint.pth.tar")
    assert model.generator.align_corners and model.generator.dense_motion_network.align_corners
