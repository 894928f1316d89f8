"""Assembling a ready predictor from the user's model options (checkpoint, config, device).

torch is imported only when a predictor is built, so that defining the options keeps `--help` fast.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .predictor import AvatarPredictor, Predictor


def add_model_arguments(parser: argparse.ArgumentParser, remote: bool = True) -> None:
    """The options every command that runs the model shares (with `remote`, also --worker and its options)."""
    group = parser.add_argument_group("model")
    group.add_argument("--checkpoint", type=Path, help="FOMM checkpoint (default: looked up, see README)")
    group.add_argument("--config", type=Path, help="FOMM config YAML (default: the bundled vox-256.yaml)")
    group.add_argument("--device", default="auto", help="auto (CUDA, then Apple MPS, then CPU), cpu, cuda, cuda:1, mps")
    group.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16", "fp16"),
        default="auto",
        help="number type of the decoder: auto picks bf16 on CPUs that have it, fp16 on CUDA, else fp32",
    )
    if remote:
        from .remote.cli import add_client_arguments

        add_client_arguments(group)


def create_predictor(
    checkpoint: Path | None = None,
    config: Path | None = None,
    device: str = "auto",
    relative: bool = True,
    adapt_movement_scale: bool = True,
    precision: str = "auto",
) -> Predictor:
    """A local predictor with the checkpoint found by the usual lookup order (config None: vox-256)."""
    from .device import select_device
    from .fomm import load_model
    from .predictor import Predictor
    from .weights import find_checkpoint

    model = load_model(config, find_checkpoint(checkpoint), device=select_device(device))
    return Predictor(model, relative=relative, adapt_movement_scale=adapt_movement_scale, precision=precision)


def predictor_from_args(
    args: argparse.Namespace, relative: bool = True, adapt_movement_scale: bool = True
) -> AvatarPredictor:
    """`create_predictor` with the options `add_model_arguments` defined, or a remote predictor with --worker."""
    if getattr(args, "worker", None):
        from .remote.cli import remote_predictor_from_args

        return remote_predictor_from_args(args, relative, adapt_movement_scale)
    return create_predictor(
        args.checkpoint, args.config, args.device, relative, adapt_movement_scale, args.precision
    )
