"""Building the FOMM networks from a config file and loading published checkpoints strictly."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch

from ...core.errors import CheckpointError
from ..checkpoint import load_state_strictly, read_weights
from ..checkpoint import read_model_params as read_params
from .generator import OcclusionAwareGenerator
from .keypoints import KPDetector

DEFAULT_CONFIG = Path(__file__).with_name("configs") / "vox-256.yaml"
CHECKPOINT_PARTS = ("generator", "kp_detector")


@dataclass
class FOMM:
    """The two inference networks of a First Order Motion Model, in eval mode on one device."""

    kp_detector: KPDetector
    generator: OcclusionAwareGenerator
    config: dict = field(repr=False)
    device: torch.device = torch.device("cpu")


def read_model_params(config_path: str | Path) -> dict:
    """The `model_params` section of an original FOMM config YAML."""
    return read_params(config_path, {"common_params", "kp_detector_params", "generator_params"}, "FOMM")


def build_networks(model_params: Mapping[str, Any], align_corners: bool = True) -> tuple[KPDetector, OcclusionAwareGenerator]:
    """Fresh (randomly initialised) networks for a `model_params` dict."""
    common = dict(model_params["common_params"])
    kp_detector = KPDetector(**model_params["kp_detector_params"], **common)
    generator = OcclusionAwareGenerator(**model_params["generator_params"], **common, align_corners=align_corners)
    return kp_detector, generator


def read_checkpoint(checkpoint_path: str | Path) -> dict[str, dict[str, torch.Tensor]]:
    """The `generator` and `kp_detector` state dicts of a checkpoint, loaded without executing code."""
    path = Path(checkpoint_path)
    data = read_weights(path, "Use the published FOMM checkpoint; download it again with `avatarify weights download`.")
    if not isinstance(data, dict) or not all(isinstance(data.get(part), Mapping) for part in CHECKPOINT_PARTS):
        raise CheckpointError(f"{path} is not a FOMM checkpoint: it needs 'generator' and 'kp_detector' state dicts.")
    return {part: data[part] for part in CHECKPOINT_PARTS}


def load_networks(
    kp_detector: KPDetector, generator: OcclusionAwareGenerator, state: Mapping[str, Mapping[str, torch.Tensor]], source: str
) -> None:
    """Load checkpoint state dicts strictly, with a readable report of what does not fit."""
    for name, module in (("kp_detector", kp_detector), ("generator", generator)):
        load_state_strictly(module, state[name], f"Checkpoint {source}", name)


def load_model(
    config_path: str | Path | None = None,
    checkpoint_path: str | Path | None = None,
    device: str | torch.device = "cpu",
    align_corners: bool = True,
) -> FOMM:
    """Build the networks from a FOMM config and load a checkpoint into them (strict keys and shapes).

    `align_corners=True` reproduces the grid sampling the published weights were trained with
    (torch 1.0); `False` reproduces the original code run unmodified on modern torch.
    Without a checkpoint the networks keep their random initialisation (for benchmarks).
    """
    model_params = read_model_params(config_path or DEFAULT_CONFIG)
    # Read before building: a damaged or hostile file is refused without the seconds of initialising vox-256.
    state = None if checkpoint_path is None else read_checkpoint(checkpoint_path)
    kp_detector, generator = build_networks(model_params, align_corners=align_corners)
    if state is not None:
        load_networks(kp_detector, generator, state, str(checkpoint_path))
    target = torch.device(device)
    kp_detector.to(target).eval()
    generator.to(target).eval()
    return FOMM(kp_detector=kp_detector, generator=generator, config=model_params, device=target)
