"""Per-frame cost of the predictor's paths against the original per-frame FOMM call, on the vox-256 architecture.

Prints, for each path this machine has: median ms/frame, ratio to the plain forward, and fidelity (mean
absolute difference of the output images, in [0, 1], from the plain float32 forward). Weights are random
(the published ones cannot be shipped), with BatchNorm statistics calibrated on real face frames so that
activations have realistic ranges. Paths are timed in interleaved rounds so that machine noise hits all alike.

The torch paths run side by side with the ONNX backend on every execution provider installed for the device
(on a CUDA machine: CUDA fp32 and fp16, TensorRT fp16; on a CPU: ONNX Runtime's CPU provider and OpenVINO), so
one run gives the whole table. `--no-onnx` leaves them out.

    python bench/engine.py [--rounds 7] [--device cpu|cuda] [--threads N] [--memory] [--no-onnx]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from avatarify.model.fomm import DEFAULT_CONFIG, FOMM, load_model, normalize_kp
from avatarify.model.fomm.optimize import reduced_precision_dtype
from avatarify.core.frame import prepare_frame
from avatarify.model.measure import random_vox_model
from avatarify.model.predictor import Predictor

GOLDEN = Path(__file__).resolve().parents[2] / "shared" / "fomm-reference" / "golden_small_a" / "inputs.npz"


def face_frames() -> tuple[np.ndarray, list[np.ndarray]]:
    """The golden source and driving frames when available, else smooth random images."""
    if GOLDEN.exists():
        data = np.load(GOLDEN)
        return data["source_uint8_hwc"], list(data["driving_uint8_nhwc"])
    rng = np.random.default_rng(0)
    images = [prepare_frame(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)) for _ in range(5)]
    return images[0], images[1:]


def to_tensor(image: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(image).to(device).permute(2, 0, 1)[None].float() / 255


def state_of(model: FOMM) -> dict:
    return {"kp": model.kp_detector.state_dict(), "gen": model.generator.state_dict()}


def clone(model: FOMM, state: dict, device: torch.device) -> FOMM:
    fresh = load_model(DEFAULT_CONFIG, None, device=device)
    fresh.kp_detector.load_state_dict(state["kp"])
    fresh.generator.load_state_dict(state["gen"])
    return fresh


def make_plain(model: FOMM, source: np.ndarray, neutral: np.ndarray):
    """The original call pattern: keypoints of the driving frame, then the whole generator including the encoder."""
    device = model.device
    source_tensor = to_tensor(source, device)
    kp_source = model.kp_detector(source_tensor)
    kp_neutral = model.kp_detector(to_tensor(neutral, device))

    def run(frame: np.ndarray) -> torch.Tensor:
        kp_norm = normalize_kp(
            kp_source, model.kp_detector(to_tensor(frame, device)), kp_neutral,
            adapt_movement_scale=True, use_relative_movement=True, use_relative_jacobian=True,
        )
        return model.generator(source_tensor, kp_source=kp_source, kp_driving=kp_norm)["prediction"]

    return torch.no_grad()(run)


def make_predictor(model: FOMM, source: np.ndarray, neutral: np.ndarray, **options):
    predictor = Predictor(model, **options)
    predictor.set_avatar(source)
    predictor.set_neutral(neutral)
    return predictor.animate_frame, predictor.fast_path


def onnx_paths(base: FOMM, device: torch.device, source: np.ndarray, neutral: np.ndarray) -> dict:
    """The ONNX backend on each provider installed for this device: float32, and float16 decoders where the
    provider has them (TensorRT in float16 only: its point is the fp16 engine)."""
    from avatarify.model.backend import ModelSource, candidate_providers
    from avatarify.model.onnx.predictor import OnnxEngine
    from avatarify.model.onnx.runtime import runtime_installed

    if not runtime_installed():
        print("ONNX Runtime is not installed: no ONNX rows (pip install 'avatarify[onnx]').")
        return {}
    model_source = ModelSource(model=base)
    paths = {}
    for provider in candidate_providers(device.type):
        precisions = ("fp16",) if provider.name == "tensorrt" else ("fp32", "fp16") if provider.fp16 else ("fp32",)
        for precision in precisions:
            engine = OnnxEngine(model_source.graphs(precision), provider, str(device), precision)
            predictor = engine.predictor()
            predictor.set_avatar(source)
            predictor.set_neutral(neutral)
            details = "; ".join([engine.device_name, *engine.warnings])
            paths[f"onnx {provider.name} ({precision})"] = (predictor.animate_frame, details)
    return paths


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def peak_memory_mb(device: str) -> float:
    """Peak resident memory of a fresh process that loads vox-256 and runs the default predictor."""
    code = (
        "import sys, resource, numpy as np; sys.argv=['x'];"
        "from avatarify.model.fomm import load_model; from avatarify.model.predictor import Predictor;"
        f"p=Predictor(load_model(device='{device}'));"
        "rng=np.random.default_rng(0); p.set_avatar(rng.integers(0,255,(256,256,3),dtype=np.uint8));"
        "[p.predict(rng.integers(0,255,(256,256,3),dtype=np.uint8)) for _ in range(5)];"
        # VmHWM belongs to this process image; ru_maxrss would carry the parent's peak across exec.
        "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return int(out.strip().splitlines()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    parser.add_argument("--memory", action="store_true", help="also measure the predictor's peak memory")
    parser.add_argument("--no-onnx", action="store_true", help="leave out the ONNX backend")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    source, driving = face_frames()
    neutral, frames = driving[0], driving[1:]
    base = random_vox_model(device)
    state = state_of(base)

    paths = {"plain per-frame FOMM (fp32)": (make_plain(base, source, neutral), "original call pattern")}
    paths["predictor, cached source only"] = make_predictor(clone(base, state, device), source, neutral, optimize=False)
    paths["predictor, + rewrites (fp32)"] = make_predictor(clone(base, state, device), source, neutral, precision="fp32")
    if reduced_precision_dtype(device) is not None:
        paths["predictor, default (auto)"] = make_predictor(clone(base, state, device), source, neutral)
    if not args.no_onnx:
        paths.update(onnx_paths(clone(base, state, torch.device("cpu")), device, source, neutral))

    reference = [paths["plain per-frame FOMM (fp32)"][0](frame) for frame in frames]
    fidelity = {
        name: float(np.mean([(run(frame).float().cpu() - ref.cpu()).abs().mean().item()
                             for frame, ref in zip(frames, reference)]))
        for name, (run, _) in paths.items()
    }
    timings: dict[str, list[float]] = {name: [] for name in paths}
    for name, (run, _) in paths.items():  # warm-up
        run(frames[0])
    for round_index in range(args.rounds):
        frame = frames[round_index % len(frames)]
        for name, (run, _) in paths.items():
            synchronize(device)
            start = time.perf_counter()
            run(frame)
            synchronize(device)
            timings[name].append((time.perf_counter() - start) * 1000)

    card = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"vox-256, 256x256, batch 1, {card}, torch {torch.__version__}, {args.rounds} rounds")
    plain = statistics.median(timings["plain per-frame FOMM (fp32)"])
    print(f"{'path':34} {'median ms':>10} {'fps':>7} {'ratio':>7} {'MAE vs fp32':>12}  details")
    for name, (_, details) in paths.items():
        median = statistics.median(timings[name])
        print(f"{name:34} {median:10.1f} {1000 / median:7.2f} {median / plain:7.3f} {fidelity[name]:12.2e}  {details}")
    if args.memory:
        print(f"peak memory of the default predictor (fresh process, vox-256): {peak_memory_mb(args.device):.0f} MB")


if __name__ == "__main__":
    main()
