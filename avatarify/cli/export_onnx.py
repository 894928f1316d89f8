"""`avatarify export-onnx`: write the ONNX graphs of a checkpoint and show how they compare with torch."""
from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export-onnx",
        help="export the model to ONNX graphs for the onnx backend",
        description="Export the keypoint detector, the avatar encoder and the per-frame animate graph of a checkpoint "
        "to ONNX (opset 17, 256x256 frames), check them against torch on real face frames, and cache them next to "
        "the weights (the onnx backend does this by itself on first use). Cached graphs that are current are kept.",
    )
    parser.add_argument("--checkpoint", type=Path, help="FOMM checkpoint (default: looked up, see README)")
    parser.add_argument("--config", type=Path, help="FOMM config YAML (default: the bundled vox-256.yaml)")
    parser.add_argument(
        "--precision", choices=("fp32", "fp16", "both"), default="both",
        help="decoder precision of the animate graph (fp16 is for GPU providers; default: both)",
    )
    parser.add_argument("--dest", type=Path, help="cache folder (default: onnx/ beside the downloaded weights)")
    parser.add_argument("--force", action="store_true", help="export again even if the cached graphs are current")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..model.loader import require_model

    require_model()
    from ..model.backend import ModelSource
    from ..model.fomm import DEFAULT_CONFIG
    from ..model.onnx.runtime import import_onnxruntime
    from ..model.weights import find_checkpoint

    import_onnxruntime()  # the export checks run the graphs on ONNX Runtime
    source = ModelSource(config=args.config or DEFAULT_CONFIG, checkpoint=find_checkpoint(args.checkpoint))
    precisions = ("fp32", "fp16") if args.precision == "both" else (args.precision,)
    files, checks = {}, {}
    for precision in precisions:
        graphs = source.graphs(precision, root=args.dest, force=args.force)
        files.update(graphs.files)
        checks.update(graphs.checks)
    print(f"ONNX graphs of {source.checkpoint} in {graphs.folder}:")
    for stem, path in sorted(files.items()):
        print(f"  {path.name:20} {path.stat().st_size / 1e6:7.1f} MB  {_check_text(checks.get(stem, {}))}")
    return 0


def _check_text(check: dict) -> str:
    if "mae" in check:
        return (f"check vs torch fp32: mean error {check['mae']:.1e}, largest {check['max']:.1e} "
                f"(tolerance {check['tolerance']:g})")
    if "max" in check:
        return f"check vs torch fp32: largest keypoint difference {check['max']:.1e}"
    return "checked through the animate graph"
