"""Building the LivePortrait networks from a model YAML and loading the five published weight files strictly."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from ...core.errors import CheckpointError
from ...core.frame import FRAME_SIZE
from ..checkpoint import load_state_strictly, read_weights
from ..checkpoint import read_model_params as read_params
from .appearance import AppearanceFeatureExtractor
from .decoder import SPADEDecoder
from .keypoints import MotionInfo, motion_info
from .motion import MotionExtractor
from .stitching import FILE_KEYS, StitchingRetargeting
from .warping import WarpingNetwork
from .weights import FETCH_HINT, checkpoint_files

DEFAULT_CONFIG = Path(__file__).with_name("configs") / "liveportrait.yaml"
NETWORK_CLASSES: dict[str, type[nn.Module]] = {
    "appearance_feature_extractor": AppearanceFeatureExtractor,
    "motion_extractor": MotionExtractor,
    "warping_module": WarpingNetwork,
    "spade_generator": SPADEDecoder,
    "stitching_retargeting_module": StitchingRetargeting,
}
# The original loader removes this prefix from the stitching file's keys (saved from a DataParallel wrapper).
PARALLEL_PREFIX = "module."


@dataclass
class LivePortrait:
    """LivePortrait's five inference networks, in eval mode on one device."""

    appearance_feature_extractor: AppearanceFeatureExtractor
    motion_extractor: MotionExtractor
    warping_module: WarpingNetwork
    spade_generator: SPADEDecoder
    stitching_retargeting_module: StitchingRetargeting
    config: dict = field(repr=False)
    device: torch.device = torch.device("cpu")

    @property
    def output_size(self) -> int:
        """The side of the pictures the decoder makes from 256x256 inputs (512 for the published model)."""
        return FRAME_SIZE * self.spade_generator.upscale

    def motion(self, image: torch.Tensor) -> MotionInfo:
        """The motion parameters of B x 3 x 256 x 256 faces in [0, 1], always in float32."""
        return motion_info({k: v.float() for k, v in self.motion_extractor(image).items()})


def read_model_params(config_path: str | Path) -> dict:
    """The `model_params` section of a LivePortrait model YAML (the original `models.yaml` layout)."""
    return read_params(config_path, {f"{name}_params" for name in NETWORK_CLASSES}, "LivePortrait")


def build_networks(model_params: Mapping[str, Any], source: str = "the model config") -> dict[str, nn.Module]:
    """Fresh (randomly initialised) networks for a `model_params` dict."""
    networks = {}
    for name, cls in NETWORK_CLASSES.items():
        try:
            networks[name] = cls(**model_params[f"{name}_params"])
        except (TypeError, ValueError, KeyError, RuntimeError, ZeroDivisionError) as exc:
            raise CheckpointError(f"{source} does not describe LivePortrait's {name} ({exc}); fix the config.") from exc
    problem = _mismatched_sizes(networks)
    if problem:
        raise CheckpointError(f"{source} describes networks that do not fit together: {problem}; fix the config.")
    return networks


def _mismatched_sizes(networks: Mapping[str, nn.Module]) -> str | None:
    """What one network hands another in a different size than the other expects, if anything."""
    appearance, motion = networks["appearance_feature_extractor"], networks["motion_extractor"]
    dense = networks["warping_module"].dense_motion_network
    stitching = networks["stitching_retargeting_module"].stitching.mlp
    checks = {
        "keypoints (motion extractor vs warping module)": (motion.num_kp, dense.num_kp),
        "volume channels (appearance vs warping module)": (appearance.reshape_channel, dense.compress.in_channels),
        "volume depth x width (appearance vs warping module)": (
            appearance.reshape_channel * appearance.reshape_depth, networks["warping_module"].third.conv.in_channels),
        "warped features (warping module vs decoder)": (
            networks["warping_module"].fourth.out_channels, networks["spade_generator"].in_channels),
        "stitching input (2 x keypoints x 3)": (6 * motion.num_kp, stitching[0].in_features),
        "stitching output (keypoints x 3 + 2)": (3 * motion.num_kp + 2, stitching[-1].out_features),
    }
    for what, (given, expected) in checks.items():
        if given != expected:
            return f"{what}: {given} and {expected}"
    return None


def _state_dict(data: object, path: Path) -> Mapping[str, object]:
    if not isinstance(data, Mapping) or not data:
        raise CheckpointError(f"{path} is not a LivePortrait weights file (it holds no state dict). {FETCH_HINT}")
    return data


def load_weights(networks: Mapping[str, nn.Module], files: Mapping[str, Path]) -> None:
    """Load each file into its network, every key and shape matching."""
    for name, path in files.items():
        data = _state_dict(read_weights(path, FETCH_HINT), path)
        if name != "stitching_retargeting_module":
            load_state_strictly(networks[name], data, str(path), name)
            continue
        if not all(isinstance(data.get(key), Mapping) for key in FILE_KEYS.values()):
            raise CheckpointError(
                f"{path} is not LivePortrait's stitching file: it needs the {', '.join(FILE_KEYS.values())} "
                f"state dicts. {FETCH_HINT}"
            )
        for attribute, key in FILE_KEYS.items():
            state = {k.removeprefix(PARALLEL_PREFIX): v for k, v in data[key].items()}
            load_state_strictly(getattr(networks[name], attribute), state, str(path), key)


def load_model(
    config_path: str | Path | None = None,
    checkpoint_dir: str | Path | None = None,
    device: str | torch.device = "cpu",
) -> LivePortrait:
    """Build the networks (default: the published architecture) and load a weights folder into them, strictly.

    Without a folder the networks keep their random initialisation (for benchmarks).
    """
    config = Path(config_path) if config_path else DEFAULT_CONFIG
    model_params = read_model_params(config)
    networks = build_networks(model_params, f"Model config {config}")
    if checkpoint_dir is not None:
        load_weights(networks, checkpoint_files(checkpoint_dir))
    target = torch.device(device)
    for network in networks.values():
        network.to(target).eval()
    return LivePortrait(**networks, config=model_params, device=target)
