"""The options every command that runs the model shares, and their translation into typed options.

Parsed values never travel further than this module: commands hand `ModelOptions` and `RemoteOptions` on.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from typing import TYPE_CHECKING

from ..core.settings import ENGINES
from ..model.loader import PRECISIONS, ModelOptions
from ..model.onnx.runtime import BACKENDS, PROVIDER_NAMES

if TYPE_CHECKING:
    from ..remote.options import RemoteOptions
    from ..session.options import SessionOptions

# Stands for "the default keys folder" when --worker-keys / --keys is given without a folder.
DEFAULT_KEYS = "default"


def add_model_arguments(parser: argparse.ArgumentParser, remote: bool = True) -> argparse._ArgumentGroup:
    """--engine, --checkpoint, --config, --device, --precision, --backend, --provider (with `remote`, also --worker
    and its options)."""
    group = parser.add_argument_group("model")
    group.add_argument(
        "--engine", choices=ENGINES, default="fomm",
        help="fomm (the default: 256x256, runs on a CPU) or liveportrait (512x512, best picture, wants a GPU)",
    )
    group.add_argument(
        "--checkpoint", type=Path,
        help="FOMM checkpoint file, or LivePortrait's weights folder (default: looked up, see README)",
    )
    group.add_argument(
        "--config", type=Path,
        help="model config YAML (default: FOMM's bundled vox-256.yaml, LivePortrait's published architecture)",
    )
    group.add_argument("--device", default="auto", help="auto (CUDA, then Apple MPS, then CPU), cpu, cuda, cuda:1, mps")
    group.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="number type of the decoder: auto picks fp16 on CUDA (LivePortrait: Apple GPUs too), bf16 for FOMM on "
        "CPUs that have it, else fp32",
    )
    group.add_argument(
        "--backend", choices=BACKENDS, default="auto",
        help="torch, or onnx (ONNX Runtime / OpenVINO); auto times both once per device and keeps the fastest",
    )
    group.add_argument(
        "--provider", choices=PROVIDER_NAMES,
        help="force an ONNX execution provider (implies --backend onnx)",
    )
    if remote:
        add_client_arguments(group)
    return group


def add_client_arguments(group: argparse._ArgumentGroup) -> None:
    """The options of commands that can use a remote worker instead of the local model."""
    group.add_argument(
        "--worker", metavar="tcp://HOST:PORT", help="run the model on a remote worker (`avatarify worker`)"
    )
    group.add_argument(
        "--worker-keys",
        nargs="?",
        const=DEFAULT_KEYS,
        metavar="DIR",
        help="connect with CurveZMQ keys: server.key and the client pair in DIR (default: the user keys folder)",
    )
    group.add_argument(
        "--worker-transport", choices=("jpeg", "raw"), default="jpeg", help="how frames travel (jpeg, the default)"
    )
    group.add_argument("--worker-jpeg-quality", type=int, default=90, metavar="Q", help="JPEG quality 1-100 (90)")


def keys_dir(value: str | None) -> Path | None:
    """The keys folder an option names: None when not given, the user's default folder for a bare flag."""
    from ..core.paths import keys_dir as default_keys_dir

    if value is None:
        return None
    return default_keys_dir() if value == DEFAULT_KEYS else Path(value).expanduser()


def model_options(args: argparse.Namespace, device: str | None = None) -> ModelOptions:
    """The local model the options name (`device` replaces --device when given)."""
    return ModelOptions(
        engine=args.engine, checkpoint=args.checkpoint, config=args.config, device=device or args.device or "auto",
        precision=args.precision, backend=args.backend, provider=args.provider,
    )


def remote_options(args: argparse.Namespace) -> RemoteOptions | None:
    """The worker the options name, checked (one-line AvatarifyError when wrong); None without --worker."""
    from ..remote.options import RemoteOptions

    if not getattr(args, "worker", None):
        return None
    return RemoteOptions(
        address=args.worker,
        keys_dir=keys_dir(args.worker_keys),
        transport=args.worker_transport,
        jpeg_quality=args.worker_jpeg_quality,
    )


def session_options(args: argparse.Namespace, **choices: object) -> SessionOptions:
    """This session's options from the model and worker options, plus the command's own `choices`."""
    from ..session.options import SessionOptions

    return SessionOptions(
        engine=args.engine, checkpoint=args.checkpoint, config=args.config, device=args.device,
        precision=args.precision, backend=args.backend, provider=args.provider, remote=remote_options(args),
        **choices,
    )  # fmt: skip
