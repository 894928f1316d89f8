"""Latency the real-time pipeline adds beyond the model, with a video file as the camera.

Runs the model alone on the video's frames (median ms per frame), then the whole pipeline
(capture -> crop -> model -> output, no virtual camera) and camera passthrough, and prints medians:
end-to-end latency (camera frame grabbed -> output frame out), per-stage times, frame rates,
and the latency added beyond the model alone.

    python bench/pipeline.py [--model small|vox] [--seconds 10] [--video FILE] [--device cpu]

`small` is the tiny golden checkpoint from ../shared; `vox` is the full vox-256 architecture
with random weights (same cost as the published checkpoint).
"""
from __future__ import annotations

import argparse
import statistics
import time
from itertools import islice
from pathlib import Path

import numpy as np

from avatarify.core.faces import center_crop, cut_square
from avatarify.model.fomm import DEFAULT_CONFIG, load_model
from avatarify.pipeline.avatars import AvatarLibrary
from avatarify.pipeline.camera import VideoFileSource
from avatarify.pipeline.frames import PipelineFrame
from avatarify.pipeline.pipeline import Pipeline
from avatarify.pipeline.settings import PipelineSettings
from avatarify.model.predictor import FRAME_SIZE, Predictor
from avatarify.core.video import read_frames

SHARED = Path(__file__).resolve().parents[2] / "shared"
GOLDEN = SHARED / "fomm-reference" / "golden_small_a"
WARMUP_SECONDS = 2.0


def model_alone(predictor: Predictor, video: Path, count: int = 40, warmup: int = 10) -> float:
    faces = [cut_square(frame, center_crop(frame.shape), FRAME_SIZE) for frame in islice(read_frames(video), count)]
    for face in faces[:warmup]:
        predictor.predict(face)
    times = []
    for face in faces:
        started = time.perf_counter()
        predictor.predict(face)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def run_pipeline(predictor: Predictor | None, video: Path, avatars: Path, seconds: float) -> dict[str, float]:
    frames: list[tuple[float, PipelineFrame]] = []
    pipeline = Pipeline(
        VideoFileSource(video), AvatarLibrary([avatars]), predictor, settings=PipelineSettings(mirror_preview=False)
    )
    pipeline.add_listener(lambda frame: frames.append((time.monotonic(), frame)))
    with pipeline:
        time.sleep(WARMUP_SECONDS + seconds)
    start = frames[0][0] + WARMUP_SECONDS
    kept = [(t, f) for t, f in frames if t >= start and f.animated]
    stats = [f.stats for _, f in kept]

    def median(name: str) -> float:
        return statistics.median(getattr(s, name) for s in stats)

    return {
        "output fps": (len(kept) - 1) / (kept[-1][0] - kept[0][0]),
        "camera fps": median("camera_fps"),
        "model fps": median("model_fps"),
        "capture ms": median("capture_ms"),
        "crop ms": median("crop_ms"),
        "model ms": median("model_ms"),
        "output ms": median("output_ms"),
        "latency ms": median("latency_ms"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("small", "vox"), default="small")
    parser.add_argument("--video", type=Path, default=SHARED / "media" / "driving" / "d0.mp4")
    parser.add_argument("--avatars", type=Path, default=SHARED / "media" / "avatars")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    if args.model == "small":
        model = load_model(GOLDEN / "config.yaml", GOLDEN / "checkpoint.pth.tar", device=args.device)
    else:
        model = load_model(DEFAULT_CONFIG, None, device=args.device)
    predictor = Predictor(model)
    predictor.set_avatar(np.asarray(AvatarLibrary([args.avatars]).image(0)))
    before = model_alone(predictor, args.video)
    with_model = run_pipeline(predictor, args.video, args.avatars, args.seconds)
    passthrough = run_pipeline(None, args.video, args.avatars, args.seconds)
    after = model_alone(predictor, args.video)
    # Measured on both sides of the pipeline runs; the lower is the least disturbed by warm-up and machine noise.
    alone = min(before, after)

    print(f"model {args.model} on {args.device}, camera {args.video.name}; medians over {args.seconds:g} s")
    print(f"model alone:                 {alone:7.1f} ms/frame (before {before:.1f}, after {after:.1f})")
    print(f"{'':28} {'with model':>12} {'passthrough':>12}")
    for key in with_model:
        print(f"{key:28} {with_model[key]:12.1f} {passthrough[key]:12.1f}")
    added = with_model["latency ms"] - alone
    print(f"latency added beyond the model alone: {added:.1f} ms "
          f"(latency / model alone = {with_model['latency ms'] / alone:.2f}); "
          f"pipeline latency without a model: {passthrough['latency ms']:.1f} ms")
    waiting = with_model["latency ms"] - with_model["model ms"]
    print(f"of the latency: model inside the pipeline {with_model['model ms']:.1f} ms (sharing the CPU with capture "
          f"and output), waiting in hand-offs for the model and the next camera tick {waiting:.1f} ms")


if __name__ == "__main__":
    main()
