"""Latency the real-time pipeline adds beyond the model, with a video file as the camera.

Runs the model alone on the video's frames (median ms per frame), then the whole pipeline
(capture -> crop -> model -> output, no virtual camera) and camera passthrough, and prints medians:
end-to-end latency (camera frame grabbed -> output frame out), per-stage times, frame rates,
and what the latency is made of: the model's time inside the pipeline, the frame's wait for the model
(at most one camera interval: the model takes the newest frame when it becomes free), and the rest,
which is what the pipeline itself adds.

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


from avatarify.core.faces import center_crop, cut_square
from avatarify.core.frame import FRAME_SIZE
from avatarify.core.images import read_image
from avatarify.core.settings import Settings
from avatarify.core.video import read_frames
from avatarify.model.fomm import DEFAULT_CONFIG, load_model
from avatarify.model.predictor import Predictor
from avatarify.pipeline.camera import VideoFileSource
from avatarify.pipeline.frames import PipelineFrame
from avatarify.pipeline.pipeline import Pipeline
from avatarify.pipeline.state import Avatar

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


def run_pipeline(predictor: Predictor | None, video: Path, avatar: Avatar, seconds: float) -> dict[str, float]:
    frames: list[tuple[float, PipelineFrame]] = []
    camera = VideoFileSource(video)
    settings = Settings(mirror_preview=False, passthrough=predictor is None)
    pipeline = Pipeline(camera, settings, predictor, avatar=avatar)
    pipeline.add_listener(lambda frame: frames.append((time.monotonic(), frame)))
    with pipeline:
        time.sleep(WARMUP_SECONDS + seconds)
    camera.close()
    start = frames[0][0] + WARMUP_SECONDS
    kept = [(t, f) for t, f in frames if t >= start and f.animated and f.fresh]
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
        "wait for the model ms": median("wait_ms"),
        "result to output ms": median("handoff_ms"),
        # Per frame, then the median: a difference of medians can even come out negative.
        "pipeline ms": statistics.median(s.latency_ms - s.model_ms - s.wait_ms for s in stats),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("small", "vox"), default="small")
    parser.add_argument("--video", type=Path, default=SHARED / "media" / "driving" / "d0.mp4")
    parser.add_argument("--avatar", type=Path, default=SHARED / "media" / "avatars" / "einstein.jpg")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    if args.model == "small":
        model = load_model(GOLDEN / "config.yaml", GOLDEN / "checkpoint.pth.tar", device=args.device)
    else:
        model = load_model(DEFAULT_CONFIG, None, device=args.device)
    predictor = Predictor(model)
    avatar = Avatar.from_picture(read_image(args.avatar))  # read only: nothing is written beside the picture
    predictor.set_avatar(avatar.image)
    before = model_alone(predictor, args.video)
    with_model = run_pipeline(predictor, args.video, avatar, args.seconds)
    passthrough = run_pipeline(None, args.video, avatar, args.seconds)
    after = model_alone(predictor, args.video)
    # Measured on both sides of the pipeline runs; the lower is the least disturbed by warm-up and machine noise.
    alone = min(before, after)

    print(f"model {args.model} on {args.device}, camera {args.video.name}; medians over {args.seconds:g} s")
    print(f"model alone:                 {alone:7.1f} ms/frame (before {before:.1f}, after {after:.1f})")
    print(f"{'':28} {'with model':>12} {'passthrough':>12}")
    for key in with_model:
        print(f"{key:28} {with_model[key]:12.1f} {passthrough[key]:12.1f}")
    interval = 1000.0 / with_model["camera fps"] if with_model["camera fps"] else float("nan")
    waiting = with_model["wait for the model ms"]
    print(f"latency {with_model['latency ms']:.1f} ms (medians): model inside the pipeline {with_model['model ms']:.1f} ms "
          f"(alone {alone:.1f}; the CPU is shared with capture and output), wait for the model {waiting:.1f} ms "
          f"(camera interval {interval:.1f} ms), pipeline {with_model['pipeline ms']:.1f} ms")
    print(f"pipeline latency without a model (passthrough): {passthrough['latency ms']:.1f} ms")


if __name__ == "__main__":
    main()
