"""Per-frame cost of each engine's paths against its original per-frame call, FOMM and LivePortrait in one run.

FOMM (vox-256): the plain per-frame call, the predictor with the cached avatar, its rewrites, the default
precision, and the ONNX backend on every execution provider installed for the device (on a CUDA machine: CUDA fp32
and fp16, TensorRT fp16; on a CPU: ONNX Runtime's CPU provider and OpenVINO; `--no-onnx` leaves them out). LivePortrait (the published architecture): the plain per-frame call (avatar encoded every frame), the
predictor with the cached avatar, and reduced precision where the device has it (or `--lp-precision`), each with
its stages (source encoding, motion + stitching, warp, decode).

Prints per path: median ms/frame, fps, ratio to the engine's plain call, ratio to FOMM's default path, and
fidelity (mean absolute difference of the output images, in [0, 1], from the engine's plain float32 call).
Weights are random (the published ones cannot be shipped; the cost is the same); FOMM's BatchNorm statistics are
calibrated on real face frames so that activations have realistic ranges. Paths are timed in interleaved rounds so
that machine noise hits all alike. LivePortrait takes seconds per frame on a CPU: `--lp-rounds` (default 2) keeps
the run to a few minutes there; raise it on a GPU.

    python bench/engine.py [--rounds 7] [--lp-rounds 2] [--engines fomm,liveportrait] [--lp-precision bf16]
                           [--device cpu|cuda] [--threads N] [--memory] [--no-onnx]
"""
from __future__ import annotations

import argparse
import copy
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from avatarify.core.frame import prepare_frame
from avatarify.model.fomm import DEFAULT_CONFIG, FOMM, load_model, normalize_kp
from avatarify.model.fomm.optimize import reduced_precision_dtype
from avatarify.model.liveportrait import model as liveportrait
from avatarify.model.liveportrait.keypoints import relative_keypoints, transform_keypoints
from avatarify.model.liveportrait.predictor import LivePortraitPredictor
from avatarify.model.measure import random_vox_model
from avatarify.model.predictor import Predictor

GOLDEN = Path(__file__).resolve().parents[2] / "shared" / "fomm-reference" / "golden_small_a" / "inputs.npz"
LP_STAGES = ("source", "motion + stitching", "warp", "decode")


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


@dataclass
class Laps:
    """Per-frame and per-stage times of one path in ms, each taken after the device has finished its work."""

    device: torch.device
    stages: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    totals: list[float] = field(default_factory=list)
    _start: float = 0.0
    _last: float = 0.0

    def start(self) -> None:
        synchronize(self.device)
        self._start = self._last = time.perf_counter()

    def lap(self, stage: str) -> None:
        synchronize(self.device)
        now = time.perf_counter()
        self.stages[stage].append((now - self._last) * 1000)
        self._last = now

    def finish(self) -> None:
        synchronize(self.device)
        self.totals.append((time.perf_counter() - self._start) * 1000)


@dataclass
class BenchPath:
    """One way of animating a frame: `run(frame, laps)` returns the output picture, marking stages on `laps`."""

    run: Callable[[np.ndarray, Laps], torch.Tensor]
    details: str


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


def make_plain(model: FOMM, source: np.ndarray, neutral: np.ndarray) -> BenchPath:
    """The original call pattern: keypoints of the driving frame, then the whole generator including the encoder."""
    device = model.device
    source_tensor = to_tensor(source, device)
    kp_source = model.kp_detector(source_tensor)
    kp_neutral = model.kp_detector(to_tensor(neutral, device))

    @torch.no_grad()
    def run(frame: np.ndarray, laps: Laps) -> torch.Tensor:
        kp_norm = normalize_kp(
            kp_source, model.kp_detector(to_tensor(frame, device)), kp_neutral,
            adapt_movement_scale=True, use_relative_movement=True, use_relative_jacobian=True,
        )
        return model.generator(source_tensor, kp_source=kp_source, kp_driving=kp_norm)["prediction"]

    return BenchPath(run, "original call pattern")


def make_predictor(model: FOMM, source: np.ndarray, neutral: np.ndarray, **options) -> BenchPath:
    predictor = Predictor(model, **options)
    predictor.set_avatar(source)
    predictor.set_neutral(neutral)
    return BenchPath(lambda frame, laps: predictor.animate_frame(frame), predictor.fast_path)


def onnx_paths(base: FOMM, device: torch.device, source: np.ndarray, neutral: np.ndarray) -> dict[str, BenchPath]:
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
            paths[f"onnx {provider.name} ({precision})"] = BenchPath(
                lambda frame, laps, p=predictor: p.animate_frame(frame), "; ".join([engine.device_name, *engine.warnings])
            )
    return paths


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


def lp_model(device: torch.device) -> liveportrait.LivePortrait:
    """The published LivePortrait architecture with seeded random weights."""
    torch.manual_seed(0)
    return liveportrait.load_model(None, None, device=device)


def lp_plain(model: liveportrait.LivePortrait, source: np.ndarray, neutral: np.ndarray) -> BenchPath:
    """Everything per frame, the avatar encoded again each time, in float32 (the original code caches the avatar
    of a still-image source as the predictor does; this row shows what that caching saves)."""
    device = model.device
    neutral_info = model.motion(to_tensor(neutral, device))

    @torch.no_grad()
    def run(frame: np.ndarray, laps: Laps) -> torch.Tensor:
        source_tensor = to_tensor(source, device)
        source_info = model.motion(source_tensor)
        x_s = transform_keypoints(source_info)
        warp_source = model.warping_module.prepare(model.appearance_feature_extractor(source_tensor), x_s)
        laps.lap("source")
        moved = relative_keypoints(source_info, model.motion(to_tensor(frame, device)), neutral_info)
        keypoints = model.stitching_retargeting_module(x_s, moved)
        laps.lap("motion + stitching")
        features = model.warping_module(warp_source, keypoints).features
        laps.lap("warp")
        picture = model.spade_generator(features)
        laps.lap("decode")
        return picture

    return BenchPath(run, "avatar re-encoded every frame")


def lp_predictor(model: liveportrait.LivePortrait, source: np.ndarray, neutral: np.ndarray, precision: str) -> BenchPath:
    predictor = LivePortraitPredictor(model, precision=precision)
    predictor.set_avatar(source)
    predictor.set_neutral(neutral)

    def run(frame: np.ndarray, laps: Laps) -> torch.Tensor:
        keypoints = predictor.driving_keypoints(frame)
        laps.lap("motion + stitching")
        features = predictor.warp(keypoints).features
        laps.lap("warp")
        picture = predictor.decode(features)
        laps.lap("decode")
        return picture

    return BenchPath(run, f"{str(predictor.decoder_dtype).removeprefix('torch.')} decoder, fp32 motion and warp")


def fomm_paths(device: torch.device, source: np.ndarray, driving: list[np.ndarray], onnx: bool) -> dict[str, BenchPath]:
    neutral = driving[0]
    base = random_vox_model(device)
    state = state_of(base)
    paths = {"plain per-frame FOMM (fp32)": make_plain(base, source, neutral)}
    paths["predictor, cached source only"] = make_predictor(clone(base, state, device), source, neutral, optimize=False)
    paths["predictor, + rewrites (fp32)"] = make_predictor(clone(base, state, device), source, neutral, precision="fp32")
    if reduced_precision_dtype(device) is not None:
        paths["predictor, default (auto)"] = make_predictor(clone(base, state, device), source, neutral)
    if onnx:
        paths.update(onnx_paths(clone(base, state, torch.device("cpu")), device, source, neutral))
    return paths


def liveportrait_paths(device: torch.device, source: np.ndarray, neutral: np.ndarray,
                       precision: str | None) -> dict[str, BenchPath]:
    """Plain, cached (fp32), and the reduced precision asked for or the device's default when it is not fp32."""
    model = lp_model(device)
    paths = {"per-frame LivePortrait, no cache (fp32)": lp_plain(model, source, neutral)}
    if precision is None and device.type in ("cuda", "mps"):
        precision = "auto"
    reduced = copy.deepcopy(model) if precision else None
    paths["predictor, cached avatar (fp32)"] = lp_predictor(model, source, neutral, "fp32")
    if reduced is not None:
        paths[f"predictor, cached avatar ({precision})"] = lp_predictor(reduced, source, neutral, precision)
    return paths


def measure(paths: dict[str, BenchPath], frames: list[np.ndarray], rounds: int, device: torch.device,
            fidelity_frames: int) -> tuple[dict[str, Laps], dict[str, float]]:
    """Interleaved timing rounds after a warm-up; fidelity against the first (plain) path on a few frames."""
    checked = frames[:fidelity_frames]
    reference = [next(iter(paths.values())).run(frame, Laps(device)).float() for frame in checked]
    fidelity = {
        name: float(np.mean([(path.run(f, Laps(device)).float() - ref).abs().mean().item()
                             for f, ref in zip(checked, reference)]))
        for name, path in paths.items()
    }  # also the warm-up
    laps = {name: Laps(device) for name in paths}
    for round_index in range(rounds):
        frame = frames[round_index % len(frames)]
        for name, path in paths.items():
            laps[name].start()
            path.run(frame, laps[name])
            laps[name].finish()
    return laps, fidelity


def print_rows(engine: str, paths: dict[str, BenchPath], laps: dict[str, Laps], fidelity: dict[str, float],
               fomm_default: float | None) -> None:
    plain = statistics.median(next(iter(laps.values())).totals)
    for name, path in paths.items():
        median = statistics.median(laps[name].totals)
        versus = f"{median / fomm_default:9.2f}" if fomm_default else f"{'-':>9}"
        print(f"{engine:13} {name:38} {median:10.1f} {1000 / median:7.2f} {median / plain:7.3f} {versus} "
              f"{fidelity[name]:12.2e}  {path.details}")


def print_stages(laps: dict[str, Laps]) -> None:
    print(f"\nLivePortrait per stage, median ms: {'path':38} " + " ".join(f"{s:>18}" for s in LP_STAGES))
    for name, path_laps in laps.items():
        cells = [statistics.median(path_laps.stages[s]) if path_laps.stages.get(s) else None for s in LP_STAGES]
        print(f"{'':34} {name:38} " + " ".join(f"{c:18.1f}" if c is not None else f"{'cached':>18}" for c in cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7, help="FOMM timing rounds")
    parser.add_argument("--lp-rounds", type=int, default=2, help="LivePortrait timing rounds (seconds each on a CPU)")
    parser.add_argument("--engines", default="fomm,liveportrait", help="comma-separated: fomm, liveportrait")
    parser.add_argument("--lp-precision", choices=("fp16", "bf16"), help="also time LivePortrait's decoder in this type")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    parser.add_argument("--memory", action="store_true", help="also measure FOMM's predictor's peak memory")
    parser.add_argument("--no-onnx", action="store_true", help="leave out FOMM's ONNX backend rows")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    engines = set(args.engines.split(","))
    device = torch.device(args.device)
    source, driving = face_frames()
    frames = driving[1:]
    card = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"batch 1, 256x256 input, {card}, torch {torch.__version__}; FOMM vox-256 {args.rounds} rounds, "
          f"LivePortrait (published architecture, 512x512 output) {args.lp_rounds} rounds")
    print(f"{'engine':13} {'path':38} {'median ms':>10} {'fps':>7} {'ratio':>7} {'vs FOMM':>9} {'MAE vs fp32':>12}  "
          "details")
    fomm_default = None
    if "fomm" in engines:
        paths = fomm_paths(device, source, driving, onnx=not args.no_onnx)
        laps, fidelity = measure(paths, frames, args.rounds, device, fidelity_frames=len(frames))
        default = "predictor, default (auto)" if "predictor, default (auto)" in laps else "predictor, + rewrites (fp32)"
        fomm_default = statistics.median(laps[default].totals)
        print_rows("FOMM", paths, laps, fidelity, fomm_default)
    if "liveportrait" in engines:
        paths = liveportrait_paths(device, source, driving[0], args.lp_precision)
        laps, fidelity = measure(paths, frames, args.lp_rounds, device, fidelity_frames=1)
        print_rows("LivePortrait", paths, laps, fidelity, fomm_default)
        print_stages(laps)
    if args.memory:
        print(f"peak memory of FOMM's default predictor (fresh process, vox-256): {peak_memory_mb(args.device):.0f} MB")


if __name__ == "__main__":
    main()
